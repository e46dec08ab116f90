"""Fit probes on extracted features and write the study's numbers.

    python downstream.py --model vggish --task tagging --demo
    python downstream.py --model handcrafted --task pitch --demo --seeds 5
    python downstream.py --model clmr --task-csv ~/moods.csv --demo

For every checkpoint of the model found under features/<data>/<task>/<model>/, the clean
features are standardised with their train-split statistics and probes (linear, mlp1,
mlp2, and the study's slp and mlp; several seeds) are fitted on the train split with early
stopping on the valid split (common/evaluation/probes.py: all of them at once, batched, on the
device). Every probe is then scored on the clean valid split and on the clean test split
and every degraded version of it (noise, the study's deformations: common/evaluation/metrics.py).

A task of one's own (--task-csv, common/evaluation/task_csv.py) is probed the same way, scored as a
multi-label or single-label task, and its definition kept beside its results (task.json).

With --label-fraction F and --shots K every probe is also fitted on part of the train
split's labels (common/evaluation/labels.py: stratified; --label-draws draws of them), its
results named <checkpoint>+labels<F> or <checkpoint>+shots<K> (-draw<k> for draw k >= 1).

Writes results/<data>/<task>/<model>.csv, one row per (checkpoint, probe, seed, snr,
metric): model, checkpoint, layer (empty for the model's embedding; K for the feature set
<checkpoint>#layer<K> of extract_features.py --layers), subset (untrained, 1, ..., full),
draw (0 is the study's subset), budget (steps<N> for a run of train.py --budget, else empty),
train_steps and train_flops (the optimizer steps and FLOPs that made the weights), minutes,
labels (the labelled train examples the probe learned from), label_budget (all, labels<F>
or shots<K>), label_draw, adaptation ("probe": finetune.py writes the same columns for an
encoder adapted on the task), probe, seed, split (valid or test), snr (the condition:
clean, an SNR in dB, deform_0..2), metric, value; and prints, per checkpoint, the probe
kind with the best validation score and its clean test score (never a choice made on test
scores: common/evaluation/selection.py). Every feature set extracted for the model is
probed: the weights a run kept along the way too (checkpoint names such as 5@1000).

Beside the CSV, <model>.provenance.json records what it was fitted on: the task's clips,
each feature set's own provenance (common/provenance.py) and conditions, and the probe
settings. A finished results file is fitted again only when one of them changed (said in
one line), or with --overwrite. A feature set without its clean features (an interrupted
extraction) or extracted for other clips is named and left out.
"""
import csv
import json
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from common.cli import (
    REPO_ROOT,
    ArgumentParser,
    UserError,
    add_data_options,
    check_output_dir,
    folder,
    fraction,
    positive_int,
    run,
)
from common.data.subsets import checkpoint_order
from common.evaluation import labels
from common.evaluation.labels import WHOLE_SPLIT
from common.evaluation.metrics import task_metrics
from common.evaluation.noise import CLEAN, condition_label, condition_order
from common.evaluation.predictions import Predictions
from common.evaluation.probes import MAX_EPOCHS, PROBES, RECIPES, ProbeSpec, fit, predict
from common.evaluation.results import (
    COLUMNS,
    FLOAT16_RANGE,
    PROBED,
    described,
    print_summary,
    read_index,
    summary,
    up_to_date,
    write_results,
)
from common.evaluation.task_arguments import add_task_options, task_from_args
from common.models.registry import model_argument
from common.provenance import clips_digest, digest
from common.training.distributed import add_device_option, add_precision_option, resolve_device, resolve_precision


def parse_args():
    parser = ArgumentParser(prog="python downstream.py", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=model_argument("handcrafted"),
                        help="a model id (python -m common.models.registry), or handcrafted")
    add_task_options(parser)
    add_data_options(parser)
    parser.add_argument("--features-dir", type=folder, default=REPO_ROOT / "features")
    parser.add_argument("--results-dir", type=folder, default=REPO_ROOT / "results")
    parser.add_argument("--probes", nargs="+", choices=PROBES, default=list(PROBES))
    parser.add_argument("--seeds", type=positive_int, default=3, help="probe seeds per checkpoint and kind (default 3)")
    parser.add_argument("--epochs", type=positive_int, default=MAX_EPOCHS,
                        help="most epochs of probe training (default %(default)s)")
    parser.add_argument("--label-fraction", nargs="+", type=fraction, default=[], metavar="F",
                        help="also fit every probe on this fraction of the train split's labelled examples "
                             "(stratified; results as <checkpoint>+labels<F>)")
    parser.add_argument("--shots", nargs="+", type=positive_int, default=[], metavar="K",
                        help="also fit every probe on K examples per class (for tags, at least K positives per tag; "
                             "results as <checkpoint>+shots<K>)")
    parser.add_argument("--label-draws", type=positive_int, default=1,
                        help="draws of the labelled examples for each --label-fraction and --shots (default 1; "
                             "results of draw k >= 1 as <checkpoint>+labels<F>-draw<k>)")
    add_device_option(parser)
    add_precision_option(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="fit again even if the results file is up to date with its features")
    args = parser.parse_args()
    args.label_budgets = labels.budgets(args.label_fraction, args.shots)
    if args.label_draws > 1 and not args.label_budgets:
        raise UserError("--label-draws draws the examples of a --label-fraction below 1 or of --shots: give one")
    return args


def _extract_command(args):
    task = f"--task-csv {args.task_csv}" if args.task_csv else f"--task {args.task}"
    return f"python extract_features.py --model {args.model} {task}{' --demo' if args.demo else ''}"


def usable_feature_sets(model_dir, index, args, precision):
    """(the feature sets to probe, in checkpoint order; the provenance of results fitted on
    them). A set without clean features, or extracted for other clips than the index lists,
    is named and left out."""
    with open(index, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    clips = clips_digest((r["clip_id"], r["split"]) for r in rows)
    usable, provenance = [], {"index": digest(rows), "probes": list(args.probes), "seeds": args.seeds,
                              "epochs": args.epochs, "recipes": {n: asdict(r) for n, r in RECIPES.items()},
                              "precision": str(precision), "columns": list(COLUMNS),
                              "label budgets": [b.name for b in args.label_budgets], "label draws": args.label_draws}
    for path in sorted((p for p in model_dir.iterdir() if (p / "meta.json").exists()),
                       key=lambda p: checkpoint_order(p.name)):
        meta = json.loads((path / "meta.json").read_text())
        if not (path / "clean.npy").exists():
            print(f"warning: {path.name} has no clean.npy (an interrupted extraction?): left out; "
                  f"run python extract_features.py again")
        elif meta.get("provenance", {}).get("clips", clips) != clips:
            print(f"warning: {path.name} was extracted for other clips than {index} lists: left out; "
                  f"run python extract_features.py again")
        else:
            usable.append(path.name)
            provenance[f"features {path.name}"] = digest([meta.get("provenance"),
                                                          sorted(p.name for p in path.glob("*.npy"))])
    return usable, provenance


@dataclass
class FeatureSet:
    """One checkpoint's (or layer's) features, standardised with the train split's statistics."""
    name: str               # the checkpoint's, e.g. untrained, 5, 5@1000, 5#layer3
    clean: np.ndarray       # (clips, dim), every split
    degraded: dict          # {condition file stem: (test clips, dim)}
    described: dict         # its columns of the results CSV: layer, subset, draw, budget, train_steps, ...


def main():
    args = parse_args()
    check_output_dir(args.results_dir, "--results-dir")
    task, own_dataset = task_from_args(args)
    data_name = "demo" if args.demo else "real"
    task_dir = args.features_dir / data_name / task.name
    model_dir = task_dir / args.model
    target = args.results_dir / data_name / task.name / f"{args.model}.csv"
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    # reuse: results up to date with their features are printed, not fitted again
    names, provenance = checked_feature_sets(args, task, task_dir, target, precision)
    if names is None:
        return print_summary(target, task)
    # features: each usable set, standardised; the conditions every one of them has
    targets, splits, clip_ids = read_index(task_dir / "index.csv", task)
    empty = [split for split, rows in splits.items() if len(rows) == 0]
    if empty:
        raise UserError(f"{task_dir / 'index.csv'} has no {' or '.join(empty)} clips: the probes need clips in every "
                        f"split (train, valid, test); complete the dataset and extract the features again")
    sets = [load_feature_set(model_dir / name, splits) for name in names]
    conditions = shared_conditions(sets)
    # probes: fitted together on the sets of one width, scored on every split and condition
    label_fits = [(None, 0)] + [(b, d) for b in args.label_budgets for d in range(args.label_draws)]
    print(f"fitting {len(sets) * len(args.probes) * args.seeds * len(label_fits)} probes ({len(sets)} checkpoints x "
          f"{len(args.probes)} kinds x {args.seeds} seeds x {len(label_fits)} sets of train labels) for {args.model} "
          f"on {task.name} ...", flush=True)
    rows, kept = [], Predictions()
    for budget, draw in label_fits:
        train = splits["train"] if budget is None else labels.select(targets, splits["train"], budget, draw)
        for group in _by_width(sets):
            group_rows, group_predictions = probe_rows(args, task, group, conditions, targets,
                                                       {**splits, "train": train}, device, precision, budget, draw)
            rows += group_rows
            kept.extend(group_predictions)
    test = splits["test"]
    write_results(target, rows, provenance, task if own_dataset else None,
                  lambda path: kept.save(path, clip_ids[test], targets[test]))
    print(f"{len(rows)} rows -> {target}\n{summary(rows, task)}")
    if args.label_budgets:
        print(f"and the same probes on {', '.join(b.text for b in args.label_budgets)} ({args.label_draws} draw(s) "
              f"each): the rows <checkpoint>+<budget>, drawn in metric_by_labels.png (docs/scaling.md)")


def checked_feature_sets(args, task, task_dir, target, precision):
    """(the names of the feature sets to probe, the provenance the results will record), or
    (None, None) when the results file is up to date with them (or its features are gone)."""
    model_dir = task_dir / args.model
    if target.exists() and not model_dir.is_dir() and not args.overwrite:
        print(f"{target} (its features are not under {model_dir}: it cannot be checked against them)")
        return None, None
    if not model_dir.is_dir() or not (task_dir / "index.csv").exists():
        raise UserError(f"no features of {args.model} for {task.name} under {model_dir}: make them with "
                        f"{_extract_command(args)}")
    names, provenance = usable_feature_sets(model_dir, task_dir / "index.csv", args, precision)
    if not names:
        raise UserError(f"no complete features of {args.model} for {task.name} under {model_dir}: make them with "
                        f"{_extract_command(args)}")
    if up_to_date(target, provenance, args.overwrite):
        return None, None
    return names, provenance


def load_feature_set(path, splits):
    """The FeatureSet in `path`, standardised with its train split's mean and deviation."""
    features = np.load(path / "clean.npy")
    mean, std = features[splits["train"]].mean(0), features[splits["train"]].std(0) + 1e-8
    degraded = {p.stem: (np.load(p) - mean) / std for p in sorted(path.glob("*.npy")) if p.stem != CLEAN}
    meta = json.loads((path / "meta.json").read_text())
    return FeatureSet(path.name, (features - mean) / std, degraded, described(meta))


def shared_conditions(sets):
    """The degraded conditions every set has, in the figures' order; one missing for some is
    named and left out for all."""
    held = [set(s.degraded) for s in sets]
    shared = sorted(set.intersection(*held), key=lambda stem: condition_order(condition_label(stem)))
    for stem in sorted(set.union(*held) - set(shared)):
        lacking = [s.name for s in sets if stem not in s.degraded]
        print(f"warning: no {stem}.npy for {', '.join(lacking)}: {stem} is not evaluated for any checkpoint "
              f"(extract it, then run again)")
    return shared


def _by_width(sets):
    """The sets grouped by feature width: probes are stacked over sets of one width (a model's
    layers differ)."""
    groups = {}
    for s in sets:
        groups.setdefault(s.clean.shape[1], []).append(s)
    return list(groups.values())


def probe_rows(args, task, sets, conditions, targets, splits, device, precision, budget=None, label_draw=0):
    """Fit every kind and seed of probe on each set, on the train rows of `splits` (all of
    them, or those a label `budget` chose in draw `label_draw`); (a results row per (set,
    probe, seed, split, condition, metric), the test Predictions). Test scores are computed
    from the float16 outputs that are kept, so the CSV and the statistics on the predictions
    agree exactly."""
    suffix = "" if budget is None else budget.suffix(label_draw)
    trained_on = {"labels": len(splits["train"]), "label_budget": WHOLE_SPLIT if budget is None else budget.name,
                  "label_draw": "" if budget is None else label_draw}
    specs = [ProbeSpec(kind, j, seed, zlib.crc32(sets[j].name.encode())) for j in range(len(sets))
             for kind in args.probes for seed in range(args.seeds)]
    fitted = fit(task.kind, specs, [s.clean for s in sets], targets, splits, len(task.classes), device,
                 epochs=args.epochs, precision=precision)
    rows, kept = [], Predictions()
    for kind, probes in fitted.items():
        inputs = {("valid", CLEAN): [s.clean[splits["valid"]] for s in sets],
                  ("test", CLEAN): [s.clean[splits["test"]] for s in sets],
                  **{("test", stem): [s.degraded[stem] for s in sets] for stem in conditions}}
        for (split, stem), features in inputs.items():
            outputs = predict(probes, features)
            if split == "test":  # kept as float16: beyond its range an output is its largest finite value
                outputs = np.clip(outputs, *FLOAT16_RANGE).astype(np.float16)
            for g, i in enumerate(probes.members):
                feature_set, seed, condition = sets[specs[i].feature_set], specs[i].seed, condition_label(stem)
                if split == "test":
                    kept.add(feature_set.name + suffix, kind, seed, condition, outputs[g])
                scores = task_metrics(task.kind, targets[splits[split]], outputs[g].astype(np.float32))
                for metric, value in scores.items():
                    rows.append({"model": args.model, "checkpoint": feature_set.name + suffix,
                                 **feature_set.described, **trained_on, "adaptation": PROBED, "probe": kind,
                                 "seed": seed, "split": split,
                                 "snr": condition, "metric": metric, "value": f"{value:.6f}"})
    return rows, kept


if __name__ == "__main__":
    run(main)
