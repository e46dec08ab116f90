"""Extract clip embeddings for a downstream task from every checkpoint of a model.

    python extract_features.py --model vggish --task instrument --demo
    python extract_features.py --model handcrafted --task pitch --demo
    python extract_features.py --model clmr --task tagging --checkpoints untrained 5 full --snr clean 10
    python extract_features.py --model clmr --task-csv ~/moods.csv --demo
    python extract_features.py --audio-dir ~/music --out ~/music-vggish --checkpoint runs/MTAT/vggish/5/seed0/last.pt

For each checkpoint of the model under runs/<runs-data>/<model>/ (the untrained weights
and every trained subset and draw; --checkpoints narrows, and names the weights a run kept
along the way, e.g. 5@1000 or 5@all), every clip of the task's dataset is read
from the decoded-audio cache at the model's sample rate, cut into windows of its input
length, embedded, and averaged (common/evaluation/extraction.py). --snr names the test
conditions: white Gaussian noise at each SNR (seeded per clip) and the study's deformations
deform_0..2 (noise at 15 and 0 dB, a gain of -12 dB: common/evaluation/noise.py) are
applied first; they are computed for the test split only, the only clips the probes are
evaluated on. `handcrafted` is the librosa feature set of common/evaluation/handcrafted.py
and needs no checkpoint.

Writes features/<data>/<task>/index.csv (clip_id, label, split; the row order of every
clean.npy) and features/<data>/<task>/<model>/<checkpoint>/{clean,snr20,...,deform_0,...}.npy plus
meta.json (minutes of pretraining data, subset, draw, step budget, optimizer steps, training
FLOPs, source). The rows of a noisy file are the test clips, in index order. Files are
written atomically and finished files are skipped, so an interrupted run resumes.

--task-csv names a task of one's own instead (common/evaluation/task_csv.py: a CSV of
audio files, labels and splits); its features go to features/<data>/<the CSV's name>/ as
a built-in task's do, and downstream.py --task-csv probes them.

With --audio-dir and --out, a folder of one's own audio is embedded instead, a .npy per
file (common/evaluation/folder_features.py), by one --checkpoint file (any model's) or
--model handcrafted.
"""
import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from common.atomic import atomic_path, write_json, write_serialised, write_text
from common.cli import (
    REPO_ROOT,
    ArgumentParser,
    UserError,
    add_data_options,
    add_partial_data_option,
    check_output_dir,
    existing_file,
    folder,
    positive_int,
    run,
)
from common.data.dataset import SPLIT_SCHEMES, SPLITS, load_dataset
from common.evaluation import handcrafted, tasks
from common.evaluation.extraction import (
    checked_precision,
    default_batch_size,
    embed_clips,
    first_windows,
    sample_per_split,
)
from common.evaluation.folder_features import embed_folder
from common.evaluation.noise import (
    CLEAN,
    DEFORMATIONS,
    apply_condition,
    condition_label,
    parse_snr,
    recipe,
    snr_name,
)
from common.evaluation.task_arguments import add_task_options, task_from_args
from common.models import checkpoints
from common.models.pretrained import Pretrained
from common.models.registry import build, model_argument, model_class
from common.provenance import changes, clips_digest
from common.training.distributed import add_device_option, add_precision_option, resolve_device, resolve_precision

HANDCRAFTED = "handcrafted"
ALL_CONDITIONS = [CLEAN, 20.0, 10.0, 0.0, *DEFORMATIONS]


def parse_args():
    parser = ArgumentParser(prog="python extract_features.py", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=model_argument(HANDCRAFTED),
                        help="a model id (python -m common.models.registry), or handcrafted")
    add_task_options(parser)
    add_data_options(parser)
    add_partial_data_option(parser)
    parser.add_argument("--runs-dir", type=folder, default=REPO_ROOT / "runs")
    parser.add_argument("--runs-data", help="the pretraining data under runs/ (default: demo with --demo, else MTAT)")
    parser.add_argument("--features-dir", type=folder, default=REPO_ROOT / "features")
    parser.add_argument("--checkpoints", nargs="+", metavar="NAME",
                        help="only these checkpoints: untrained, a subset (1, 2, ..., full), with -draw<k> and "
                             "-seed<k> where runs have them, and <name>@<step> (or <name>@all) for the weights a "
                             "run kept along the way")
    parser.add_argument("--snr", nargs="+", type=parse_snr,
                        metavar="CONDITION", help="test conditions: clean, white noise at SNRs in dB, the study's "
                                                  "deformations deform_0 deform_1 deform_2 (default: all of "
                                                  "clean 20 10 0 deform_0 deform_1 deform_2)")
    parser.add_argument("--splits", choices=SPLIT_SCHEMES, default="study",
                        help="how TinySOL and Beatport are split: study (mir_ref's, as the study evaluated; "
                             "default) or project (this project's own split)")
    parser.add_argument("--clips-per-split", type=positive_int, metavar="N",
                        help="at most N clips of each split, spread over the labels (a fixed sample): a quicker, "
                             "rougher study")
    parser.add_argument("--layers", nargs="+", type=layer_number, metavar="K",
                        help="also each block's embedding (all, or block numbers from 1; python -m "
                             "common.models.registry counts them), pooled over time and frequency or tokens: a "
                             "feature set <checkpoint>#layer<K> each, from the same forward pass")
    parser.add_argument("--batch-size", type=positive_int,
                        help="windows per forward pass (default: 16 on the CPU, 64 on a GPU)")
    parser.add_argument("--audio-dir", type=folder,
                        help="instead of a task: embed every audio file under this folder into --out, a .npy each")
    parser.add_argument("--out", type=folder, help="with --audio-dir: the folder the .npy files go to")
    parser.add_argument("--checkpoint", type=existing_file,
                        help="with --audio-dir: the checkpoint file to embed with (untrained.pt, last.pt, ...)")
    parser.add_argument("--per-window", action="store_true",
                        help="with --audio-dir: every window's embedding and its start time, not their mean")
    add_device_option(parser)
    add_precision_option(parser)
    return parser.parse_args()


def layer_number(text):
    if text != "all" and not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"{text!r} is not a layer: all, or a block number from 1")
    return text


def copy_from_sibling_task(target, task_dir, task, model, checkpoint, provenance):
    """Pitch and instrument read the same TinySOL clips: a file one of them made serves the
    other, when it was made from the same weights, clips, audio and settings."""
    for sibling in tasks.TASKS.values():
        if sibling.dataset != task.dataset or sibling.name == task.name:
            continue
        sibling_dir = task_dir.parent / sibling.name / model / checkpoint
        done = sibling_dir / target.name
        if done.exists() and _read_meta(sibling_dir).get("provenance") == provenance:
            with atomic_path(target) as tmp:
                shutil.copyfile(done, tmp)
            return True
    return False


def copy_same_audio(target, condition):
    """A condition whose audio another one of the feature set's files was made from (deform_1
    and the 0 dB noise: common/evaluation/noise.py) is a copy of that file."""
    for done in target.parent.glob("*.npy"):
        other = parse_snr(condition_label(done.stem))
        if recipe(other) == recipe(condition):
            with atomic_path(target) as tmp:
                shutil.copyfile(done, tmp)
            return True
    return False


def _read_meta(out_dir):
    meta = out_dir / "meta.json"
    return json.loads(meta.read_text()) if meta.exists() else {}


def weights_id(out_dir, source, model):
    """The save id of the checkpoint file, and its loaded state when it had to be read: a file
    not written again since the features were extracted (checkpoints are replaced atomically,
    so a new save is a new modification time) keeps the id recorded then, which spares loading
    up to a gigabyte (AST with its optimizer) to find it."""
    meta = _read_meta(out_dir)
    if meta.get("source") == str(source) and meta.get("source_mtime_ns") == source.stat().st_mtime_ns \
            and meta.get("provenance"):
        return meta["provenance"]["weights"], None
    state = checkpoints.load(source, model)
    return state["save_id"], state


def write_index(path, clips, task, settings):
    """The task's clip list, shared by every model. An existing one that lists other clips is
    refused when this extraction's settings (--splits, --clips-per-split) differ from the ones
    that wrote it; with the same settings the dataset itself changed (clips added, or usable
    again), so the index is written anew, and each model's features follow it when extracted
    again (their provenance names the clips)."""
    text = "clip_id,label,split\n" + "".join(f"{_csv(c.id)},{_csv(task.label(c))},{c.split}\n" for c in clips)
    recorded = path.with_name("index.settings.json")
    existing = path.read_text() if path.exists() else None
    if existing is not None and existing != text:
        if not recorded.exists() or json.loads(recorded.read_text()) != settings:
            raise UserError(f"{path} lists other clips or splits than this extraction would (another --splits or "
                            f"--clips-per-split?): delete {path.parent} to extract every model again")
        print(f"the {task.dataset} clips changed ({len(existing.splitlines()) - 1} -> {len(clips)} usable): {path} "
              f"is written anew, and every model's features are extracted again as it is run")
    if existing != text:
        write_text(path, text)
    if not recorded.exists():
        write_json(recorded, settings)


def resolve_layers(args):
    """The block numbers --layers asks for (none without it), checked against the model's."""
    if not args.layers:
        return []
    if args.model == HANDCRAFTED:
        raise UserError("--layers: handcrafted features have no layers")
    count = build(args.model).layer_count()
    if "all" in args.layers:
        return list(range(1, count + 1))
    wrong = [k for k in args.layers if int(k) > count]
    if wrong:
        raise UserError(f"--layers {' '.join(wrong)}: {args.model} has {count} layers (1 to {count})")
    return sorted({int(k) for k in args.layers})


@torch.inference_mode()
def layer_widths(encoder):
    """{block number: width} of each layer, and {None: emb_dim}."""
    x = torch.zeros(1, encoder.input_samples, device=next(encoder.parameters()).device)
    every = encoder.embed_layers(x)
    return {**{k + 1: o.shape[1] for k, o in enumerate(every[:-1])}, None: every[-1].shape[1]}


def _csv(value):
    """A CSV field: quoted, inner quotes doubled, when it holds a comma, a quote or a line break."""
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n\r') else value


def embed_own_folder(args):
    """--audio-dir: the user's folder to a .npy per file."""
    if args.out is None or args.model not in (None, HANDCRAFTED) or \
            (args.checkpoint is not None) == (args.model == HANDCRAFTED):
        raise UserError("--audio-dir needs --out and either --checkpoint FILE (its model is the checkpoint's) or "
                        "--model handcrafted")
    if args.task or args.task_csv or args.checkpoints or args.layers or args.snr or args.partial_data:
        raise UserError("--audio-dir embeds a folder's files as they are, not a task: leave out --task, --task-csv, "
                        "--checkpoints, --layers, --snr (a task's test conditions) and --partial-data")
    check_output_dir(args.out, "--out")
    device = resolve_device(args.device)
    written, kept, skipped = embed_folder(args.audio_dir, args.out, args.checkpoint, args.per_window, device,
                                          args.precision, args.batch_size or default_batch_size(device))
    print(f"{written} file(s) embedded, {kept} already there, {skipped} skipped -> {args.out}")


@dataclass
class TaskClips:
    """What every checkpoint's extraction for the task shares."""
    task: tasks.Task
    task_dir: Path          # features/<data>/<task>/
    clips: list             # the usable clips, in index.csv's order: the rows of every clean.npy
    cache: object           # their decoded audio at the model's rate (AudioCache)
    test_rows: list         # the rows of the test clips: the rows of every degraded condition's file
    provenance: dict        # what every feature set records besides its weights


@dataclass
class FeatureSets:
    """One checkpoint's feature sets: its embedding (layer None) and each layer --layers asks for."""
    name: str               # the checkpoint's, e.g. untrained, 5, 5-draw1, 5@1000
    folders: dict           # {layer: its folder}
    todo: dict              # {layer: the conditions not extracted yet}
    provenance: dict


def main():
    args = parse_args()
    if args.model == HANDCRAFTED and (args.batch_size or args.precision != "auto"):
        raise UserError("hand-crafted features are computed clip by clip with librosa on the CPU: --batch-size and "
                        "--precision do not apply to them")
    if args.audio_dir is not None:
        return embed_own_folder(args)
    _refuse_folder_options(args)
    args.snr = args.snr or ALL_CONDITIONS
    check_output_dir(args.features_dir, "--features-dir")
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    args.batch_size = args.batch_size or default_batch_size(device)
    # the task, its dataset (downloaded or rendered on first use) and the sources of features
    task, own_dataset = task_from_args(args)
    dataset = own_dataset or load_dataset(task.dataset, args.data_root, demo=args.demo, splits=args.splits)
    task_dir = args.features_dir / ("demo" if args.demo else "real") / task.name
    if own_dataset:
        tasks.save(task, task_dir)
    sources, sample_rate = checkpoint_sources(args)
    # the clips, decoded at the model's rate, listed in index.csv
    job = task_clips(args, task, dataset, task_dir, sample_rate, precision)
    layers = [None, *resolve_layers(args)]
    # every checkpoint: what is not done yet, from one forward pass per batch of windows
    for name, source in sources.items():
        extract_checkpoint(args, job, name, source, layers, device, precision)


def _refuse_folder_options(args):
    if args.model is None:
        raise UserError("give --model and --task or --task-csv (or --audio-dir to embed a folder of audio)")
    if args.out or args.checkpoint or args.per_window:
        raise UserError("--out, --checkpoint and --per-window go with --audio-dir")


def checkpoint_sources(args):
    """({checkpoint name: its file}, the sample rate the features are made at); handcrafted
    features have the one source "none"."""
    if args.model == HANDCRAFTED:
        if args.checkpoints or args.runs_data:
            raise UserError(f"{' '.join(args.checkpoints or [args.runs_data])}: handcrafted features come from no "
                            f"checkpoint (leave out --checkpoints and --runs-data)")
        return {"none": None}, handcrafted.SAMPLE_RATE
    runs_data = args.runs_data or ("demo" if args.demo else "MTAT")
    return (checkpoints.find(args.model, args.runs_dir, runs_data, args.checkpoints),
            model_class(args.model).sample_rate)


def task_clips(args, task, dataset, task_dir, sample_rate, precision):
    """The task's usable clips at `sample_rate` (a fixed sample with --clips-per-split), written
    to index.csv."""
    cache = dataset.audio(sample_rate, partial=args.partial_data)
    clips = [c for c in dataset.clips if c.id in cache]
    empty = [split for split in SPLITS if not any(c.split == split for c in clips)]
    if empty and not args.partial_data:
        listed = ", ".join(f"{sum(c.split == split for c in dataset.clips)} listed in {split}" for split in empty)
        raise UserError(f"{dataset.name}: no usable clips in the {' or '.join(empty)} split ({listed}; see "
                        f"{cache.directory / 'manifest.json'}): the probes need clips in every split; complete the "
                        f"dataset, or pass --partial-data to extract what there is")
    if args.clips_per_split:
        clips = sample_per_split(clips, args.clips_per_split)
    write_index(task_dir / "index.csv", clips, task,
                {"splits": args.splits, "clips_per_split": args.clips_per_split})
    provenance = {"clips": clips_digest((c.id, c.split) for c in clips),
                  "audio": cache.digest([c.id for c in clips]), "precision": str(precision)}
    return TaskClips(task, task_dir, clips, cache, [i for i, c in enumerate(clips) if c.split == "test"],
                     provenance)


def extract_checkpoint(args, job, name, source, layers, device, precision):
    """Every feature set of one checkpoint that is not extracted yet; sets whose provenance
    changed (other weights, clips, audio or precision) are extracted again."""
    folders = {k: job.task_dir / args.model / (name if k is None else f"{name}#layer{k}") for k in layers}
    weights, state = ("handcrafted", None) if source is None else weights_id(folders[None], source, args.model)
    provenance = {"weights": weights, **job.provenance}
    todo = {k: conditions_to_extract(args, out_dir, provenance) for k, out_dir in folders.items()}
    sets = FeatureSets(name, folders, todo, provenance)
    if not any(sets.todo.values()):
        print(f"{args.model} {name}: done already")
        return
    encoder, meta, precision = load_encoder(args, job, name, source, state, device, precision)
    for k, out_dir in folders.items():
        if sets.todo[k]:
            write_json(out_dir / "meta.json", {**meta, "layer": k, "provenance": sets.provenance})
    widths = layer_widths(encoder) if len(layers) > 1 else {None: handcrafted.DIM if encoder is None else
                                                              encoder.emb_dim}
    for snr in args.snr:
        extract_condition(args, job, sets, snr, encoder, widths, device, precision)


def conditions_to_extract(args, out_dir, provenance):
    """The --snr conditions a feature set's folder lacks, after removing its files when they
    were made with another provenance."""
    before = _read_meta(out_dir).get("provenance")
    stale = list(out_dir.glob("*.npy")) if before != provenance else []
    if stale:
        why = (f"{', '.join(changes(before, provenance))} changed since its features were extracted"
               if before else "its meta.json records no provenance")
        print(f"{args.model} {out_dir.name}: {why}: extracting again")
        for path in stale:
            path.unlink()
    return [snr for snr in args.snr if not (out_dir / f"{snr_name(snr)}.npy").exists()]


def load_encoder(args, job, name, source, state, device, precision):
    """(the checkpoint's encoder, its features' meta.json, the precision it is extracted in);
    no encoder for handcrafted features. --precision auto keeps bfloat16 only where it keeps the
    differences between the first clips' embeddings."""
    if source is None:
        return None, {"model": args.model, "checkpoint": name, "minutes": None}, precision
    model = Pretrained(source, device, args.model, state)  # loads the file when weights_id did not
    precision, why = checked_precision(args.precision, model.encoder, lambda: first_windows(
        job.cache, [c.id for c in job.clips], model.encoder.input_samples), device)
    if why:
        print(f"{args.model} {name}: {why}")
    untrained = name.startswith("untrained")
    meta = {"model": args.model, "checkpoint": name, "minutes": 0.0 if untrained else model.minutes,
            "subset": "untrained" if untrained else model.subset, "draw": None if untrained else model.draw,
            "budget": None if untrained else model.budget, "step": model.step, "train_flops": model.train_flops,
            "source": str(source), "source_mtime_ns": source.stat().st_mtime_ns, "precision": str(precision)}
    return model.encoder, meta, precision


def extract_condition(args, job, sets, snr, encoder, widths, device, precision):
    """One test condition (or the clean audio) for every layer that lacks it: copied from a
    condition of the same audio, or from a sibling task on the same clips, where one has it,
    else embedded in one pass."""
    wanted = [k for k in sets.folders if snr in sets.todo[k]]
    targets = {k: sets.folders[k] / f"{snr_name(snr)}.npy" for k in wanted}
    for k in list(wanted):
        if copy_same_audio(targets[k], snr):
            print(f"{args.model} {sets.folders[k].name} {snr_name(snr)}: the same audio as a condition extracted "
                  f"already: copied -> {targets[k]}")
            wanted.remove(k)
        elif copy_from_sibling_task(targets[k], job.task_dir, job.task, args.model, sets.folders[k].name,
                                    sets.provenance):
            print(f"{args.model} {sets.folders[k].name} {snr_name(snr)}: copied from a task on the same clips -> "
                  f"{targets[k]}")
            wanted.remove(k)
    if not wanted:
        return
    clips = job.clips if snr == CLEAN else [job.clips[i] for i in job.test_rows]

    def audio_of(i):
        return apply_condition(job.cache.clip(clips[i].id), snr, clips[i].id)

    # in memory, then written whole (a clip's embedding is a few kB): a memory-mapped file
    # on a disk that fills up would end the process with SIGBUS instead of an error
    outs = [np.zeros((len(clips), widths[k]), dtype=np.float32) for k in wanted]
    with tqdm(total=len(clips), desc=f"{args.model} {sets.name} {snr_name(snr)}", unit="clip", leave=False) as bar:
        if encoder is None:
            for i in range(len(clips)):
                outs[0][i] = handcrafted.features(audio_of(i), handcrafted.SAMPLE_RATE)
                bar.update()
        else:
            embed_clips(encoder, audio_of, len(clips), outs, args.batch_size, device, precision, bar, layers=wanted)
    for k, out in zip(wanted, outs):
        write_serialised(targets[k], lambda file, out=out: np.save(file, out))
        print(f"{args.model} {sets.folders[k].name} {snr_name(snr)}: {len(clips)} clips -> {targets[k]}")


if __name__ == "__main__":
    run(main)
