"""The study's four findings, checked on a run's results and on the study's own numbers.

    python -m common.evaluation.claims results/demo     # our results (their test predictions)
    python -m common.evaluation.claims --study          # the study's published numbers

The findings (the paper's abstract):
  1. representations of untrained and minimally trained models perform comparably to
     fully trained ones: each model's untrained and smallest-subset numbers against its
     largest subset;
  2. larger downstream models recover performance from untrained and minimally trained
     representations: the MLP probe against the single-layer one on those checkpoints;
  3. robustness to noise is bad across the board: each model's untrained and largest-subset
     clean numbers against each noisy test condition;
  4. the gap to hand-crafted features is still significant in pitch and instrument
     recognition: the hand-crafted features against each model's largest subset.
Each check is a difference d (its sign as above), with two one-sided tests: the one whose
rejection means the claim holds and the one whose rejection means it does not; a verdict
is "holds" or "does not hold" when that test rejects at 5% after Holm's correction over
the task's models and checkpoints, else "undecided on this data":
  1. holds when |d| < margin (TOST), does not when d > margin (fully trained better by more);
  2. holds when d > 0, does not when d < margin (no gain worth the margin);
  3. holds when d > margin (the drop exceeds the margin), does not when |d| < margin;
  4. holds when d > 0 (hand-crafted better), does not when d < 0.
Margins are stats.MARGINS (--margin to change one). Each test takes d as normal around its
value: on our results with the standard error of its paired bootstrap (stats.py), on the
study's numbers, which are published without their predictions, with one from the
test-set sizes:
accuracy and the key score as binomial proportions (the key score lies between 0 and 1
and its variance is at most the binomial one), ROC-AUC by Hanley and McNeil (1982) for
each tag's positives and negatives in the MTAT test split, the 50 tags taken as
independent (which understates the error where tags co-occur), and the two numbers of a
difference as independent (which overstates it: they were scored on the same clips).
"""
import functools
from dataclasses import dataclass

import numpy as np

from ..cli import ArgumentParser, UserError, existing_dir, run
from ..data.subsets import checkpoint_order
from . import reference, tasks
from .noise import CLEAN, DEFORMATIONS
from .probes import STUDY_PROBES
from .results import is_probed
from .stats import (
    ALPHA,
    MARGINS,
    Difference,
    TaskNumbers,
    condition_text,
    holm,
    parse_margins,
    study_checkpoint,
    task_dirs,
)

CLAIMS = {1: "untrained and minimally trained representations perform comparably to fully trained ones",
          2: "larger downstream models recover performance from untrained and minimally trained representations",
          3: "robustness to noise is bad across the board",
          4: "the gap to hand-crafted features is still significant in pitch and instrument recognition"}
HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided"


def tests(claim, difference, margin):
    """(p-value of the test that the claim holds, of the test that it does not)."""
    d = difference
    if claim == 1:
        return max(d.p_above(-margin), d.p_below(margin)), min(d.p_above(margin), d.p_below(-margin))
    if claim == 2:
        return d.p_above(0), d.p_below(margin)
    if claim == 3:
        return d.p_above(margin), max(d.p_above(-margin), d.p_below(margin))
    return d.p_above(0), d.p_below(0)


def verdicts(checks, margins):
    """Add its verdict to every check, Holm's correction within each (claim, task)."""
    for key in {(c["claim"], c["task"]) for c in checks}:
        group = [c for c in checks if (c["claim"], c["task"]) == key]
        p_tests = [tests(c["claim"], c["d"], margins[c["metric"]]) for c in group]
        for check, p_holds, p_fails in zip(group, holm([p for p, _ in p_tests]), holm([p for _, p in p_tests])):
            check.update(p_holds=p_holds, p_fails=p_fails, verdict=HOLDS if p_holds < ALPHA else
                         FAILS if p_fails < ALPHA else UNDECIDED)
    return checks


def _noisy(condition):
    return condition not in (CLEAN, *DEFORMATIONS) or DEFORMATIONS.get(condition, ("",))[0] == "noise"


@dataclass
class ModelNumbers:
    """What the claims read of one model on one task: its checkpoints and probes."""
    model: str
    untrained: str | None
    trained: list      # its trained subsets, smallest first
    probes: list       # the probes the claims are checked with
    conditions: list   # the noisy test conditions


def checks_for(model, task, difference):
    """The checks of one model on one task; difference(a, b) -> d or None, with a and b as
    (model, checkpoint, probe, condition)."""
    checks, m = [], model
    if not m.trained:
        return checks
    full, early = m.trained[-1], [c for c in [m.untrained, m.trained[0]] if c and c != m.trained[-1]]

    def add(claim, a, b, what):
        d = difference(a, b)
        if d is not None:
            checks.append({"claim": claim, "task": task.name, "model": m.model, "probe": a[2], "what": what,
                           "metric": task.primary, "d": d})
    for probe in m.probes:
        for checkpoint in early:
            add(1, (m.model, full, probe, CLEAN), (m.model, checkpoint, probe, CLEAN), f"{full} - {checkpoint}")
        for checkpoint in [c for c in (m.untrained, full) if c]:
            for condition in m.conditions:
                add(3, (m.model, checkpoint, probe, CLEAN), (m.model, checkpoint, probe, condition),
                    f"{checkpoint}: clean - {condition_text(condition)}")
        if task.name in ("pitch", "instrument"):
            add(4, ("handcrafted", "none", probe, CLEAN), (m.model, full, probe, CLEAN), f"hand-crafted - {full}")
    small, large = ("slp", "mlp") if "slp" in m.probes else ("linear", "mlp1")
    for checkpoint in early:
        add(2, (m.model, checkpoint, large, CLEAN), (m.model, checkpoint, small, CLEAN),
            f"{checkpoint}: {large} - {small}")
    return checks


def our_checks(results_dir, margins, device="cpu"):
    """The checks on the results under results_dir, from their test predictions."""
    checks = []
    for folder in task_dirs(results_dir):
        numbers = TaskNumbers(folder, device=device)
        for model in sorted({key[0] for key in numbers.units if is_probed(key[0])} - {"handcrafted"}):
            checks += checks_for(_model_numbers(numbers, model), numbers.task,
                                 lambda a, b, numbers=numbers: numbers.difference(a, b, numbers.task.primary))
    return verdicts(checks, margins)


def _model_numbers(numbers, model):
    keys = [k for k in numbers.units if k[0] == model and study_checkpoint(k[1]) and "-seed" not in k[1]]
    checkpoints = sorted({k[1] for k in keys}, key=checkpoint_order)
    fitted = {k[2] for k in keys}
    return ModelNumbers(model, "untrained" if "untrained" in checkpoints else None,
                        [c for c in checkpoints if c != "untrained"],
                        [p for p in STUDY_PROBES if p in fitted] or sorted(fitted)[:1],
                        sorted({k[3] for k in keys if _noisy(k[3])}))


def hanley_mcneil_se(auc, n_pos, n_neg):
    """The standard error of a ROC-AUC from its numbers of positives and negatives (Hanley
    and McNeil 1982, their equation 2)."""
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    return np.sqrt((auc * (1 - auc) + (n_pos - 1) * (q1 - auc ** 2) + (n_neg - 1) * (q2 - auc ** 2)) / (n_pos * n_neg))


@functools.cache
def mtat_test_tags():
    """(positives per top-50 tag, clips) of the MTAT test split."""
    from ..data.mtat import TOP50, read_index
    test = [clip for clip in read_index() if clip.split == "test"]
    return np.array([sum(tag in clip.labels["tags"] for clip in test) for tag in TOP50]), len(test)


def published_se(row):
    """The approximate standard error of one of the study's published numbers."""
    if row["metric"] == "roc_auc":
        positives, clips = mtat_test_tags()
        per_tag = hanley_mcneil_se(row["value"], positives, clips - positives)
        return float(np.sqrt(np.sum(per_tag ** 2)) / len(positives))
    return float(np.sqrt(row["value"] * (1 - row["value"]) / row["support"]))


def study_checks():
    """The checks on the study's published numbers (reference.py)."""
    checks = []
    for task_name in ("tagging", "pitch", "instrument", "key"):
        task = tasks.TASKS[task_name]
        published = {(r["model"], r["checkpoint"], r["probe"], r["condition"]): r for r in reference.load()
                     if r["task"] == task_name and r["metric"] == task.primary}
        published.update({("handcrafted", "none", probe, CLEAN): r for (model, _, probe, condition), r
                          in published.items() if model in reference.HANDCRAFTED and condition == CLEAN})

        def difference(a, b, published=published):
            if a not in published or b not in published:
                return None
            x, y = published[a], published[b]
            return Difference(x["value"] - y["value"], float(np.hypot(published_se(x), published_se(y))))
        for model in sorted({k[0] for k in published} - {"handcrafted", *reference.HANDCRAFTED}):
            checkpoints = sorted({k[1] for k in published if k[0] == model}, key=checkpoint_order)
            conditions = sorted({k[3] for k in published if k[0] == model and _noisy(k[3])})
            checks += checks_for(ModelNumbers(model, "untrained", [c for c in checkpoints if c != "untrained"],
                                              list(STUDY_PROBES), conditions), task, difference)
    return checks


def report(checks, source):
    lines = [f"The study's findings checked on {source} (holds / does not hold: the test named in "
             f"docs/statistics.md rejects at 5% after Holm; else undecided)"]
    for claim, text in CLAIMS.items():
        mine = [c for c in checks if c["claim"] == claim]
        lines.append(f"\n{claim}. {text}")
        if not mine:
            lines.append("   nothing to check it with here")
        for c in mine:
            low, high = c["d"].interval()
            lines.append(f"   {c['task']:<11} {c['model']:<10} {c['probe']:<6} {c['what']:<26} "
                         f"{c['metric']} {c['d'].value:+.3f} [{low:+.3f}, {high:+.3f}]  {c['verdict']}")
        if mine:
            counted = {v: sum(c["verdict"] == v for c in mine) for v in (HOLDS, FAILS, UNDECIDED)}
            lines.append("   " + ", ".join(f"{n} {v}" for v, n in counted.items()))
    return "\n".join(lines)


def main():
    parser = ArgumentParser(prog="python -m common.evaluation.claims", description=__doc__.split("\n")[0])
    parser.add_argument("results_dir", nargs="?", type=existing_dir, metavar="RESULTS_DIR",
                        help="a folder of results/<data>, e.g. results/demo")
    parser.add_argument("--study", action="store_true", help="check the study's own published numbers instead")
    parser.add_argument("--margin", nargs="+", default=[], metavar="METRIC=VALUE",
                        help="equivalence margins, e.g. roc_auc=0.005 (defaults: "
                             + ", ".join(f"{m} {v:g}" for m, v in MARGINS.items()) + ")")
    args = parser.parse_args()
    if args.study == (args.results_dir is not None):
        raise UserError("give a RESULTS_DIR or --study (not both)")
    margins = parse_margins(args.margin)
    if args.study:
        print(report(verdicts(study_checks(), margins), "the study's published numbers"))
    else:
        print(report(our_checks(args.results_dir, margins), str(args.results_dir)))


if __name__ == "__main__":
    run(main)
