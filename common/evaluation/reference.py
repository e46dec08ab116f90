"""The study's own published probe results, and a run's results set beside them.

The study publishes its per-run numbers (raw_results/ in chrispla/limited-music-
representations, mir_ref's reports); resources/study_results.csv.gz is that table as
collected, verbatim (2,182 numbers; see resources/build_study_results.py). Its names
become ours here: tasks mtat_tagging -> tagging, tinysol_instrument -> instrument,
beatport_key -> key; models vgg -> vggish, mae -> tmae (chroma is the study's hand-crafted
key baseline); subset 0 -> untrained, the others as ours; probes model-0 / model-1 of
mir_ref -> slp (single-layer probe) / mlp; conditions clean and the study's three
deformations deform_0..2; metrics average_precision -> pr_auc, macro_f1 -> f1_macro,
weighted_accuracy_micro (the mean MIREX weighted key score) -> weighted_score.

    python -m common.evaluation.reference                                  # every number, a column per subset
    python -m common.evaluation.reference --task tagging --model vggish --probe slp --condition clean
    python -m common.evaluation.reference --compare results/real           # ours beside the study's
"""
import csv
import gzip
import hashlib
import io
from pathlib import Path

import numpy as np

from ..cli import ArgumentParser, UserError, run
from ..data.subsets import SUBSETS
from .results import PROBED

SOURCE = Path(__file__).resolve().parent.parent / "resources" / "study_results.csv.gz"
SOURCE_SHA256 = "11c92655ae20bdc64c8766a2f84c691a2d6fcdd7cad5cebc9cd860b9d7a62ffc"
TASKS = {"mtat_tagging": "tagging", "tinysol_instrument": "instrument", "beatport_key": "key"}
MODELS = {"vgg": "vggish", "musicnn": "musicnn", "ast": "ast", "clmr": "clmr", "mae": "tmae", "chroma": "chroma"}
HANDCRAFTED = ("chroma",)  # the study's hand-crafted features among its models
CHECKPOINTS = {"0": "untrained", "na": "none", **{s: s for s in SUBSETS}}
METRICS = {"average_precision": "pr_auc", "macro_f1": "f1_macro", "weighted_accuracy_micro": "weighted_score"}
PROBES = ("slp", "mlp")
CONDITIONS = ("clean", "deform_0", "deform_1", "deform_2")


def source_text():
    """The shipped source table, checked against the checksum it was shipped with."""
    data = gzip.decompress(SOURCE.read_bytes())
    if hashlib.sha256(data).hexdigest() != SOURCE_SHA256:
        raise UserError(f"{SOURCE} is not the study's table this project shipped (checksum differs)")
    return data.decode("utf-8")


def load():
    """Every published number in our names: dicts of task, model, checkpoint, probe,
    condition, metric, value (float), support (test-set size where the report gives it)."""
    rows = []
    for r in csv.DictReader(io.StringIO(source_text())):
        rows.append({"task": TASKS[r["task"]], "model": MODELS[r["model"]], "checkpoint": CHECKPOINTS[r["subset"]],
                     "probe": r["probe"], "condition": r["condition"], "metric": METRICS.get(r["metric"], r["metric"]),
                     "value": float(r["value"]), "support": int(r["support"]) if r["support"] else None})
    return rows


def table(rows):
    """A line per (task, model, probe, condition, metric), a column per checkpoint."""
    order = [c for c in ("untrained",) + SUBSETS + ("none",) if any(r["checkpoint"] == c for r in rows)]
    cells = {}
    for r in rows:
        cells.setdefault((r["task"], r["model"], r["probe"], r["condition"], r["metric"]), {})[r["checkpoint"]] = r
    head = f"{'task':<10} {'model':<8} {'probe':<5} {'condition':<9} {'metric':<23}"
    lines = [head + "".join(f"{c:>10}" for c in order)]
    for key in sorted(cells, key=lambda k: (list(TASKS.values()).index(k[0]), k[1:])):
        lines.append(f"{key[0]:<10} {key[1]:<8} {key[2]:<5} {key[3]:<9} {key[4]:<23}"
                     + "".join(f"{cells[key][c]['value']:>10.3f}" if c in cells[key] else f"{'-':>10}"
                               for c in order))
    return "\n".join(lines)


def protocol_differences(task, model):
    """Where this project's protocol still differs from the study's for a row (the *differs*
    rows of docs/protocol.md): what a reader must keep in mind before reading a difference."""
    notes = []
    if model == "tmae":
        notes.append("no study code for tmae")
    if task == "key":
        notes.append("Beatport split drawn anew")
    return "; ".join(notes)


def _results_dir(path):
    """(data name, folder of <task>/<model>.csv) for a results folder given with or without its
    data level (results/ holding real/ or demo/, or results/real itself)."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"--compare {path}: not a folder of results")
    for data in ("real", "demo"):
        if path.name == data:
            return data, path
    for data in ("real", "demo"):
        if (path / data).is_dir():
            return data, path / data
    raise UserError(f"--compare {path}: no results of the real or the demo data (results/real or results/demo)")


def compare(path):
    """Rows of ours beside the study's, on the test split, for every (task, model, checkpoint,
    probe, condition, metric) both have; on the demo data every row is marked not comparable."""
    data, folder = _results_dir(path)
    ours = {}
    for csv_path in sorted(folder.glob("*/*.csv")):
        with open(csv_path, newline="") as f:
            for r in csv.DictReader(f):
                if r["split"] == "test" and r["snr"] in CONDITIONS and r["adaptation"] == PROBED:
                    key = (csv_path.parent.name, r["model"], r["checkpoint"], r["probe"], r["snr"], r["metric"])
                    ours.setdefault(key, []).append(float(r["value"]))
    if not ours:
        raise UserError(f"--compare {path}: no results CSVs under {folder}")
    rows = []
    for r in load():
        values = ours.get((r["task"], r["model"], r["checkpoint"], r["probe"], r["condition"], r["metric"]))
        if not values:
            continue
        mean = float(np.mean(values))
        comparable = data == "real"
        rows.append({"task": r["task"], "model": r["model"], "checkpoint": r["checkpoint"], "probe": r["probe"],
                     "condition": r["condition"], "metric": r["metric"], "ours": mean, "study": r["value"],
                     "difference": mean - r["value"] if comparable else None,
                     "note": (protocol_differences(r["task"], r["model"]) or "-") if comparable
                     else "not comparable: demo data"})
    return data, rows


def comparison_table(rows):
    lines = [f"{'task':<10} {'model':<8} {'checkpoint':<10} {'probe':<5} {'condition':<9} {'metric':<15} {'ours':>7} "
             f"{'study':>7} {'diff':>7}  where the protocol differs"]
    for r in rows:
        difference = f"{r['difference']:>+7.3f}" if r["difference"] is not None else f"{'-':>7}"
        lines.append(f"{r['task']:<10} {r['model']:<8} {r['checkpoint']:<10} {r['probe']:<5} {r['condition']:<9} "
                     f"{r['metric']:<15} {r['ours']:>7.3f} {r['study']:>7.3f} {difference}  {r['note']}")
    return "\n".join(lines)


def main():
    parser = ArgumentParser(prog="python -m common.evaluation.reference", description=__doc__.split("\n")[0])
    parser.add_argument("--task", nargs="+", choices=tuple(TASKS.values()))
    parser.add_argument("--model", nargs="+", choices=tuple(MODELS.values()))
    parser.add_argument("--probe", nargs="+", choices=PROBES)
    parser.add_argument("--condition", nargs="+", choices=CONDITIONS)
    parser.add_argument("--compare", type=Path, metavar="RESULTS_DIR",
                        help="set the results of a run (results/real, results/demo, ...) beside the study's")
    args = parser.parse_args()
    if args.compare:
        data, rows = compare(args.compare)
        rows = [r for r in rows if (not args.task or r["task"] in args.task)
                and (not args.model or r["model"] in args.model) and (not args.probe or r["probe"] in args.probe)]
        print(f"ours ({data} data, test split, mean over probe seeds) beside the study's published numbers:")
        print(comparison_table(rows) if rows else "no row in common")
        return
    rows = [r for r in load() if (not args.task or r["task"] in args.task)
            and (not args.model or r["model"] in args.model)
            and (not args.probe or r["probe"] in args.probe)
            and (not args.condition or r["condition"] in args.condition)]
    print("the study's published probe results (raw_results/ of chrispla/limited-music-representations):")
    print(table(rows))


if __name__ == "__main__":
    run(main)
