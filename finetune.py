"""Fine-tune every checkpoint of a model on a task, beside the probes on its frozen features.

    python finetune.py --model vggish --task pitch --demo                 # the whole encoder
    python finetune.py --model tmae --task pitch --demo --unfreeze last:2 # its last two blocks
    python finetune.py --model clmr --task-csv ~/moods.csv --demo --unfreeze none

For every checkpoint whose features extract_features.py made for the task (untrained
included; not single layers), the encoder is trained end to end with a probe's head (the
study's slp and mlp by default, starting from the probe fitted on the checkpoint's features
unless --head-start random) on the train split's clips, from their audio in the
decoded-audio cache, and scored as the probes are: on the clean valid split, and on the
clean test split and every test condition the checkpoint's features were extracted for, or
those --snr names (the audio degraded as extract_features.py degrades it). The recipe is
common/evaluation/finetuning.py's: the windows extraction cuts, each with its clip's label,
one window of each clip an epoch; a clip's output the mean of its windows'; the encoder at
a lower learning rate than the
head (1e-5 and 1e-3: MusicFM's fine-tuning and mir_ref's probes); the best epoch on the
valid split's primary metric, with early stopping. --unfreeze chooses what trains
(common/evaluation/unfreezing.py): all, last:K (the last K blocks and what runs after
them) or none (the head alone, trained further on the windows' embeddings).

Writes results/<data>/<task>/<model>.finetune-<all|lastK|none>.csv in downstream.py's
columns (adaptation says which), its test predictions and provenance beside it, so that the
statistics, figures and summary read them with the probes. A fit saves its progress every
epoch under <model>.finetune-<...>.work/ and a run stopped and started again continues
where it was, with the numbers of a run never stopped; a finished results file is fitted
again only when its features (their checkpoint), the clips or the settings changed.
Under torchrun the batches are shared among the processes.
"""
import argparse
import copy
import json
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from common.atomic import write_json, write_serialised
from common.cli import (
    REPO_ROOT,
    ArgumentParser,
    UserError,
    add_data_options,
    check_output_dir,
    folder,
    positive_int,
    run,
)
from common.data.dataset import load_dataset
from common.data.subsets import checkpoint_order
from common.evaluation import finetuning
from common.evaluation.extraction import checked_precision, default_batch_size, first_windows
from common.evaluation.labels import WHOLE_SPLIT
from common.evaluation.metrics import task_metrics
from common.evaluation.noise import CLEAN, apply_condition, condition_label, condition_order, parse_snr, snr_name
from common.evaluation.predictions import Predictions
from common.evaluation.probes import KINDS, PROBES, RECIPES, STUDY_PROBES, ProbeSpec, StackedMLP, hidden_sizes
from common.evaluation.probes import fit as fit_probes
from common.evaluation.results import (
    COLUMNS,
    FLOAT16_RANGE,
    described,
    print_summary,
    read_index,
    source,
    summary,
    up_to_date,
    write_results,
)
from common.evaluation.task_arguments import add_task_options, task_from_args
from common.evaluation.unfreezing import adaptation_name, unfreeze, unfreeze_option
from common.models.pretrained import Pretrained
from common.models.registry import model_argument, model_class
from common.provenance import digest
from common.training import distributed


def parse_args(argv=None):
    """finetune.py's options, from the command line or `argv` (reproduce.py --plan reads its steps')."""
    parser = ArgumentParser(prog="python finetune.py", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=model_argument(), help="a model id (python -m "
                                                                              "common.models.registry)")
    add_task_options(parser)
    add_data_options(parser)
    parser.add_argument("--features-dir", type=folder, default=REPO_ROOT / "features")
    parser.add_argument("--results-dir", type=folder, default=REPO_ROOT / "results")
    parser.add_argument("--checkpoints", nargs="+", metavar="NAME",
                        help="only these of the checkpoints extracted for the task (untrained, 5, full, ...)")
    parser.add_argument("--snr", nargs="+", type=parse_snr, metavar="CONDITION",
                        help="the test conditions to score, of those the features were extracted for: clean and "
                             "these (default: all of them)")
    parser.add_argument("--unfreeze", type=unfreeze_option, default="all",
                        help="what trains besides the head: all (default), last:K (the last K blocks and what runs "
                             "after them) or none")
    parser.add_argument("--heads", nargs="+", choices=PROBES, default=list(STUDY_PROBES),
                        help="the probe kinds used as heads (default: the study's, slp mlp)")
    parser.add_argument("--head-start", choices=("probe", "random"), default="probe",
                        help="the head's starting weights: probe, the probe fitted on the checkpoint's features as "
                             "downstream.py fits it (default), or random")
    parser.add_argument("--seeds", type=positive_int, default=3, help="fits per checkpoint and head (default 3)")
    parser.add_argument("--epochs", type=positive_int, default=30, help="most epochs per fit (default 30)")
    parser.add_argument("--patience", type=positive_int, default=5,
                        help="stop a fit once its valid score has not improved for this many epochs (default 5)")
    parser.add_argument("--batch-size", type=positive_int,
                        help="windows per optimizer step, over all processes (default: 16 on the CPU, 64 on a GPU)")
    parser.add_argument("--encoder-lr", type=_learning_rate, default=finetuning.ENCODER_LR,
                        help="Adam's learning rate for the encoder (default %(default)g: MusicFM's fine-tuning)")
    parser.add_argument("--head-lr", type=_learning_rate, default=finetuning.HEAD_LR,
                        help="Adam's learning rate for the head (default %(default)g: the probes')")
    distributed.add_device_option(parser)
    distributed.add_precision_option(parser)
    parser.add_argument("--overwrite", action="store_true", help="fit again even if the results are up to date")
    return parser.parse_args(argv)


def _learning_rate(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: a learning rate between 0 and 1")
    return value


def main():
    args = parse_args()
    check_output_dir(args.results_dir, "--results-dir")
    world = distributed.start(args.device)
    task, own_dataset = task_from_args(args)
    data_name = "demo" if args.demo else "real"
    task_dir = args.features_dir / data_name / task.name
    target = args.results_dir / data_name / task.name / f"{source(args.model, adaptation_name(args.unfreeze))}.csv"
    precision = distributed.resolve_precision(args.precision, world.device)
    args.batch_size = args.batch_size or default_batch_size(world.device)
    world.batch_share(args.batch_size)
    names, provenance = feature_sets(args, task, task_dir, precision)
    if up_to_date(target, provenance, args.overwrite, "its features and settings"):
        if world.is_main:
            print_summary(target, task)
        return
    targets, splits, clip_ids = read_index(task_dir / "index.csv", task)
    cache = task_audio(args, task, own_dataset, clip_ids, task_dir)
    job = Job(args, task, task_dir, cache, targets, splits, clip_ids, world)
    work = _work_folder(target, provenance, world)
    print(f"fine-tuning {args.model} ({args.unfreeze}) on {task.name}: {len(names)} checkpoints x {len(args.heads)} "
          f"heads x {args.seeds} seeds ...", flush=True)
    for name in names:
        finetune_checkpoint(job, name, work)
    world.barrier()
    if world.is_main:
        rows, kept = collect(job, names, work)
        write_results(target, rows, provenance, task if own_dataset else None,
                      lambda path: kept.save(path, clip_ids[splits["test"]], targets[splits["test"]]))
        shutil.rmtree(work)
        print(f"{len(rows)} rows -> {target}\n{summary(rows, task)}")
    world.close()


def task_audio(args, task, own_dataset, clip_ids, task_dir):
    """The decoded audio of the index's clips at the model's rate (the cache extraction read)."""
    dataset = own_dataset or load_dataset(task.dataset, args.data_root, demo=args.demo)
    # the index fixes the clips: an incomplete dataset's missing clips are named below, not refused as a whole
    cache = dataset.audio(model_class(args.model).sample_rate, partial=True)
    missing = [c for c in clip_ids if c not in cache]
    if missing:
        raise UserError(f"{len(missing)} clips of {task_dir / 'index.csv'} are not in the audio cache "
                        f"({missing[0]}, ...): run extract_features.py again")
    return cache


@dataclass
class Job:
    """What every fit of the run shares."""
    args: argparse.Namespace
    task: object
    task_dir: Path
    cache: object           # the decoded audio of the task's clips (AudioCache)
    targets: np.ndarray     # per clip of index.csv
    splits: dict            # {split: index rows}
    clip_ids: np.ndarray
    world: distributed.World

    def audio(self, rows, condition=CLEAN):
        """audio_of(i) for extraction.embed_clips: the clip at index row rows[i], degraded by `condition`."""
        return lambda i: apply_condition(self.cache.clip(self.clip_ids[rows[i]]), condition, self.clip_ids[rows[i]])

    def outputs(self, adapted, rows, precision, condition=CLEAN):
        return finetuning.clip_outputs(adapted, self.audio(rows, condition), len(rows), len(self.task.classes),
                                       self.args.batch_size, self.world.device, precision)


def feature_sets(args, task, task_dir, precision):
    """(the checkpoints' feature sets to fine-tune from, in checkpoint order; the provenance
    of the results)."""
    model_dir = task_dir / args.model
    if not (task_dir / "index.csv").exists() or not model_dir.is_dir():
        raise UserError(f"no features of {args.model} for {task.name} under {model_dir}: fine-tuning starts from the "
                        f"checkpoints extract_features.py embedded the task with; run python extract_features.py "
                        f"--model {args.model} {_task_option(args)}{' --demo' if args.demo else ''}")
    found = {p.name: json.loads((p / "meta.json").read_text()) for p in model_dir.iterdir()
             if (p / "meta.json").exists() and (p / "clean.npy").exists()}
    found = {name: meta for name, meta in found.items() if meta.get("layer") is None}
    unknown = sorted(set(args.checkpoints or []) - set(found))
    if unknown or not found:
        raise UserError(f"--checkpoints {' '.join(unknown)}: choose from the checkpoints extracted for {task.name}: "
                        f"{', '.join(sorted(found, key=checkpoint_order)) or 'none'}")
    names = sorted(args.checkpoints or found, key=checkpoint_order)
    settings = {k: getattr(args, k) for k in ("unfreeze", "heads", "head_start", "seeds", "epochs", "patience",
                                               "batch_size", "encoder_lr", "head_lr")}
    provenance = {"index": digest((task_dir / "index.csv").read_text()), **settings, "precision": str(precision),
                  "columns": list(COLUMNS), **{f"features {n}": digest([found[n]["provenance"], _test_conditions(
                      args, model_dir / n)]) for n in names}}
    return names, provenance


def _task_option(args):
    return f"--task-csv {args.task_csv}" if args.task_csv else f"--task {args.task}"


def _test_conditions(args, folder):
    """The test conditions to score a checkpoint under, in the figures' order: clean and --snr's,
    or every one its feature set was extracted for."""
    extracted = sorted((condition_label(p.stem) for p in folder.glob("*.npy")), key=condition_order)
    if args.snr is None:
        return extracted
    asked = [condition_label(snr_name(snr)) for snr in args.snr]
    missing = [label for label in asked if label not in extracted]
    if missing:
        raise UserError(f"--snr {' '.join(missing)}: the features of {folder} were extracted for "
                        f"{', '.join(extracted)} only")
    return sorted({CLEAN, *asked}, key=condition_order)


def _work_folder(target, provenance, world):
    """Where the fits keep their progress: emptied when it holds another provenance's."""
    work = target.with_name(f"{target.stem}.work")
    record = work / "provenance.json"
    if world.is_main:
        if work.exists() and (not record.exists() or json.loads(record.read_text()) != provenance):
            shutil.rmtree(work)
        if not record.exists():
            write_json(record, provenance)
    world.barrier()
    return work


def finetune_checkpoint(job, name, work):
    """Every head and seed of one checkpoint not fitted yet: trained, then scored."""
    todo = [(head, seed) for head in job.args.heads for seed in range(job.args.seeds)
            if not _fit_file(work, name, head, seed, "npz").exists()]
    if not todo:
        return
    encoder, precision, features = _starting_point(job, name)
    for head, seed in todo:
        adapted = _adapted(job, encoder, features, _head(job, name, head, seed, features, precision))
        outputs = fit_and_score(job, name, head, seed, adapted, _fit_file(work, name, head, seed, "pt"), precision)
        if job.world.is_main:  # the outputs, then the progress they make needless
            write_serialised(_fit_file(work, name, head, seed, "npz"), lambda f, o=outputs: np.savez(f, **o))
            _fit_file(work, name, head, seed, "pt").unlink(missing_ok=True)


def _fit_file(work, name, head, seed, kind):
    """A fit's progress (pt) or finished outputs (npz) in the work folder."""
    return work / f"{name}-{head}-seed{seed}.{kind}"


def _starting_point(job, name):
    """(a checkpoint's encoder, the precision it trains in, its clean features): the weights
    its features were extracted from, or a one-line error."""
    folder = job.task_dir / job.args.model / name
    meta = json.loads((folder / "meta.json").read_text())
    pretrained = Pretrained(meta["source"], job.world.device, job.args.model)
    if pretrained.save_id != meta["provenance"]["weights"]:
        raise UserError(f"{meta['source']} holds other weights than {name}'s features were extracted from: run "
                        f"extract_features.py again")
    precision, why = checked_precision(job.args.precision, pretrained.encoder, lambda: first_windows(
        job.cache, job.clip_ids[job.splits["train"]], pretrained.encoder.input_samples), job.world.device)
    if why:
        print(f"{job.args.model} {name}: {why}")
    return pretrained.encoder, precision, np.load(folder / "clean.npy")


def _seed(name, head, seed):
    """A fit's own seed: from its checkpoint's name, head and seed, not from what else runs."""
    return (seed * 1_000_003 + zlib.crc32(name.encode()) * 101 + PROBES.index(head)) % 2**31


def _head(job, name, kind, seed, features, precision):
    """A head of kind `kind`: with --head-start probe, a probe fitted on the checkpoint's
    features as downstream.py fits seed `seed`'s (linear probing, then fine-tuning: Kumar et
    al., ICLR 2022); with random, freshly drawn."""
    n_classes = len(job.task.classes)
    if job.args.head_start == "random":
        sizes = (features.shape[1], *hidden_sizes(kind, features.shape[1], n_classes), n_classes)
        return StackedMLP([_seed(name, kind, seed)], sizes)
    spec = ProbeSpec(kind, 0, seed, zlib.crc32(name.encode()))
    fitted = fit_probes(job.task.kind, [spec], [_standardised(features, job.splits["train"])], job.targets,
                        job.splits, n_classes, job.world.device, precision=precision)
    return fitted[kind].module


def _standardised(features, train):
    return (features - features[train].mean(0)) / (features[train].std(0) + 1e-8)


def _adapted(job, encoder, features, head):
    """A copy of the pretrained encoder with `head` on its embedding, standardised with the
    train split's statistics of the checkpoint's clean features (finetuning.standardisation)."""
    mean, std = finetuning.standardisation(features[job.splits["train"]])
    return finetuning.Adapted(copy.deepcopy(encoder), mean, std, head).to(job.world.device)


def fit_and_score(job, name, head, seed, adapted, state_path, precision):
    """Train one fit (or continue it) and score its best epoch: {valid, test-<condition>: outputs}."""
    args, task = job.args, job.task
    unfrozen = unfreeze(adapted.encoder, args.unfreeze)
    recipe = finetuning.Recipe(args.epochs, args.patience, args.batch_size, args.encoder_lr, args.head_lr,
                               RECIPES[KINDS[head][0]].weight_decay)
    items = finetuning.ClipWindows(job.cache, job.clip_ids[job.splits["train"]], adapted.input_samples)
    valid = job.splits["valid"]
    score = finetuning.valid_score(task, job.targets[valid])

    def scored_on_valid(model):
        outputs = job.outputs(model, valid, precision)
        return score(outputs), torch.from_numpy(outputs)  # a tensor: the progress file loads weights only

    with tqdm(total=args.epochs, desc=f"{args.model} {name} {head} seed{seed}", unit="epoch", leave=False,
              disable=not job.world.is_main) as bar:
        progress = finetuning.fit(adapted, unfrozen, items, job.targets[job.splits["train"]], scored_on_valid, recipe,
                                  _seed(name, head, seed), state_path, job.world, precision, bar)
    test = job.splits["test"]
    outputs = {"valid": progress.best_outputs.numpy()}
    for condition in _test_conditions(args, job.task_dir / args.model / name):
        outputs[f"test {condition}"] = job.outputs(adapted, test, precision, parse_snr(condition))
    return outputs


def collect(job, names, work):
    """(the results rows, the test Predictions) of every fit in `work`."""
    args = job.args
    rows, kept = [], Predictions()
    for name in names:
        meta = json.loads((job.task_dir / args.model / name / "meta.json").read_text())
        columns = {"model": args.model, "checkpoint": name, **described(meta), "labels": len(job.splits["train"]),
                   "label_budget": WHOLE_SPLIT, "label_draw": "", "adaptation": adaptation_name(args.unfreeze)}
        for head in args.heads:
            for seed in range(args.seeds):
                with np.load(_fit_file(work, name, head, seed, "npz")) as outputs:
                    for key in outputs.files:
                        rows += _scored(job, {**columns, "probe": head, "seed": seed}, key, outputs[key], kept)
    return rows, kept


def _scored(job, columns, key, outputs, kept):
    """The rows of one fit's outputs on a split ("valid", or "test <condition>"); test outputs
    are kept as float16, and scored from what is kept, as downstream.py does."""
    split, _, condition = key.partition(" ")
    if split == "test":
        outputs = np.clip(outputs, *FLOAT16_RANGE).astype(np.float16)
        kept.add(columns["checkpoint"], columns["probe"], columns["seed"], condition, outputs)
    scores = task_metrics(job.task.kind, job.targets[job.splits[split]], outputs.astype(np.float32))
    return [{**columns, "split": split, "snr": condition or CLEAN, "metric": metric, "value": f"{value:.6f}"}
            for metric, value in scores.items()]


if __name__ == "__main__":
    run(main)
