"""Choosing what to show: a probe kind, or a checkpoint, by validation score, never by test score.

Choosing on the test split inflates every number shown, most for the small, noisy test
sets of few-shot tasks. downstream.py therefore writes each probe's clean validation scores
beside its test scores (the results' `split` column), and every "best" in the summaries,
figures, notebook and README is the one with the highest mean validation score of the
task's primary metric; the number then shown is its test score.
"""
from . import tasks


def validation(rows, task):
    """The clean validation rows of the task's primary metric (a results DataFrame)."""
    return rows[(rows.split == "valid") & (rows.snr == "clean") & (rows.metric == tasks.get(task).primary)]


def best_probe(rows, task, kinds=None):
    """The probe kind with the highest mean validation score over `rows` (any number of
    checkpoints and seeds), among `kinds` if given."""
    valid = validation(rows, task)
    if kinds is not None:
        valid = valid[valid.probe.isin(kinds)]
    return valid.groupby("probe").value.mean().idxmax()


def best_probes(rows, task):
    """{checkpoint: its best probe kind} for every checkpoint in `rows`."""
    means = validation(rows, task).groupby(["checkpoint", "probe"]).value.mean()
    return {checkpoint: probes.idxmax()[1] for checkpoint, probes in means.groupby(level=0)}
