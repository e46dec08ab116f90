"""The results CSVs that downstream.py and finetune.py write, and how their rows are named.

results/<data>/<task>/<model>.csv holds the probes fitted on a model's extracted features
(adaptation "probe"); <model>.<adaptation>.csv the same heads trained on the model's encoder
adapted on the task (finetune.py: finetune-all, finetune-last2, finetune-none). Both have the
columns COLUMNS, a row per (checkpoint, probe, seed, split, condition, metric), and beside
them the test predictions (predictions.py) and a provenance record (<name>.provenance.json).
Statistics and figures call a results file's name (its stem) its source: a model probed, or
a model adapted one way.
"""
import csv
import io
import json

import numpy as np
import pandas as pd

from ..atomic import write_json, write_text
from ..cli import UserError
from ..data.subsets import checkpoint_order
from ..provenance import changes
from . import predictions, tasks
from .labels import WHOLE_SPLIT
from .noise import CLEAN, condition_order
from .probes import PROBES
from .selection import best_probes

COLUMNS = ("model", "checkpoint", "layer", "subset", "draw", "budget", "train_steps", "train_flops", "minutes",
           "labels", "label_budget", "label_draw", "adaptation", "probe", "seed", "split", "snr", "metric", "value")
FLOAT16_RANGE = (float(np.finfo(np.float16).min), float(np.finfo(np.float16).max))
PROBED = "probe"  # the adaptation of downstream.py's rows: none, a probe on frozen features


def source(model, adaptation=PROBED):
    """A results file's stem: vggish, or vggish.finetune-all."""
    return model if adaptation == PROBED else f"{model}.{adaptation}"


def model_and_adaptation(name):
    """(model, adaptation) of a results file's stem (source())."""
    model, _, adaptation = name.partition(".")
    return model, adaptation or PROBED


def is_probed(name):
    return model_and_adaptation(name)[1] == PROBED


def described(meta):
    """A feature set's columns of the results, from its meta.json (extract_features.py)."""
    return {"layer": meta.get("layer") or "", "subset": meta.get("subset") or "",
            "draw": _blank_if_none(meta.get("draw")), "budget": f"steps{meta['budget']}" if meta.get("budget") else "",
            "train_steps": meta.get("step", ""), "train_flops": _blank_if_none(meta.get("train_flops")),
            "minutes": "" if meta["minutes"] is None else f"{meta['minutes']:.2f}"}


def _blank_if_none(value):
    return "" if value is None else value


def read_index(path, task):
    """(targets, {split: rows}, clip ids) of a task's features/<data>/<task>/index.csv."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    unknown = {label for r in rows for label in (r["label"].split(";") if task.multilabel else [r["label"]])
               if label} - set(task.classes)
    if unknown:
        raise UserError(f"{path} has labels {task.name} does not ({', '.join(sorted(unknown)[:5])}): the task changed "
                        f"since its features were extracted; run extract_features.py again")
    if task.multilabel:
        targets = np.array([[t in r["label"].split(";") for t in task.classes] for r in rows], dtype=np.float32)
    else:
        targets = np.array([task.classes.index(r["label"]) for r in rows])
    splits = {s: np.array([i for i, r in enumerate(rows) if r["split"] == s], dtype=np.int64)
              for s in ("train", "valid", "test")}
    return targets, splits, np.array([r["clip_id"] for r in rows])


def summary(rows, task):
    """Per checkpoint: the probe kind chosen on validation, its clean test score, and every
    kind's clean test score beside it (probes on the whole train split's labels)."""
    df = pd.DataFrame(rows).astype({"value": float})
    df = df[df.label_budget.astype(str) == WHOLE_SPLIT]
    chosen = best_probes(df, task.name)
    test = df[(df.split == "test") & (df.snr == CLEAN) & (df.metric == task.primary)]
    means = test.groupby(["checkpoint", "probe"]).value.agg(["mean", "std"])
    kinds = [p for p in PROBES if p in set(test.probe)]
    width = max(12, *map(len, chosen))
    lines = [f"{'checkpoint':<{width}} {'minutes':>8}  chosen on valid  {task.primary} on test (mean over seeds)   "
             + "".join(f"{k:>8}" for k in kinds)]
    for checkpoint in sorted(chosen, key=checkpoint_order):
        probe, minutes = chosen[checkpoint], df[df.checkpoint == checkpoint].minutes.iloc[0]
        mean, std = means.loc[(checkpoint, probe)]
        kinds_means = "".join(f"{means.loc[(checkpoint, k), 'mean']:>8.3f}" for k in kinds)
        lines.append(f"{checkpoint:<{width}} {minutes or '-':>8}  {probe:<15}  {mean:.4f} "
                     f"(+/- {np.nan_to_num(std):.4f}){'':<17}{kinds_means}")
    return "\n".join(lines)


def print_summary(results, task):
    with open(results, newline="") as f:
        print(summary(list(csv.DictReader(f)), task))


def write_results(target, rows, provenance, own_task, save_predictions):
    """The CSV (rows in checkpoint, probe, seed, split, condition and metric order), the task of
    one's own and the test predictions before it and the provenance after it: results are
    never without what the figures and statistics read them by, and a run killed between the
    CSV and its record fits again."""
    rows.sort(key=lambda r: (checkpoint_order(r["checkpoint"]), PROBES.index(r["probe"]), r["seed"],
                             r["split"] == "test", condition_order(r["snr"]), r["metric"]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    if own_task:
        tasks.save(own_task, target.parent)
    save_predictions(predictions.path_for(target))
    write_text(target, buffer.getvalue())
    write_json(sidecar(target), provenance)


def sidecar(target):
    """The provenance record beside a results CSV."""
    return target.with_name(f"{target.stem}.provenance.json")


def up_to_date(target, provenance, overwrite, what="its features"):
    """Whether the results at `target` were fitted from what `provenance` describes and keep
    their test predictions (said in one line); else why they are fitted again (said too)."""
    if not target.exists() or overwrite:
        return False
    record = sidecar(target)
    before = json.loads(record.read_text()) if record.exists() else None
    kept = predictions.path_for(target)
    if before == provenance and kept.exists():
        print(f"{target} is up to date with {what} (--overwrite to fit again)")
        return True
    why = (f"its test predictions ({kept.name}) are gone" if before == provenance else
           f"{', '.join(changes(before, provenance))} changed since it was fitted" if before
           else "no record of what it was fitted on")
    print(f"{target}: {why}: fitting again")
    return False
