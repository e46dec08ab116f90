"""The study's cost before it runs (`python reproduce.py --plan`): the work of every stage of
a grid, and its time on this device from a few timed steps of each model.

  pretrain  optimizer steps per model and training set, counted as train.py counts them
            (the set's clips and their lengths, the crops per epoch, the batch, --epochs,
            --max-steps), times one timed step of the model's objective; on a CPU the step
            is timed at a batch of at most 4 and scaled per item
  extract   windows to embed per model: each dataset's clips cut as extraction cuts them, for
            every checkpoint (untrained and one per training set) and test condition (the
            noisy ones on the test split only), times a timed forward pass of 8 windows
  probes    probes per model and task (checkpoints x kinds x seeds, fitted together as
            downstream.py fits them), times a timed epoch of those probes on features of
            the task's size, times downstream.py's most epochs (100): an upper bound, as
            early stopping ends most fits sooner; with --layers, a checkpoint's every block
            is one more feature set to probe (timed at the embedding's width), read in the
            same forward pass
  finetune  fits per fine-tuning step (checkpoints x heads x seeds, as finetune.py's options
            say), each --epochs of one train window per clip (a timed optimizer step of what
            --unfreeze trains, per window) and of every valid window scored, then every test
            window under each condition scored: an upper bound, as early stopping ends most
            fits sooner

Timed on random inputs of the real shapes: the estimate needs neither trained weights nor
decoded audio, only the datasets' metadata (the clip lengths of TinySOL and Beatport are
read from their files' headers; a dataset not yet downloaded is named and left out).
"""
import functools
import math
import time

import numpy as np
import soundfile as sf
import torch

from .cli import UserError
from .data import captions
from .data.dataset import load_dataset
from .data.mtat import TOP50, read_index
from .data.subsets import select, training_set_name
from .evaluation import handcrafted, probes
from .evaluation.extraction import default_batch_size, sample_per_split, window_count
from .evaluation.noise import CLEAN, condition_label, snr_name
from .evaluation.unfreezing import unfreeze
from .models.registry import base_name, build, build_for, model_class, pretraining_objective, train_script
from .training.distributed import World, autocast, resolve_precision, synchronize
from .training.epochs import Batch, epoch_plan, items_per_clip
from .training.options import parse_args

STAGES = ("pretrain", "extract", "probes", "finetune")


def _seconds_per_call(function, repeats=2):
    function()  # warm-up: allocations, kernel selection
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def _timed_batch(batch_size, device):
    """The batch a step is timed at: on a CPU at most 4 items, the time then scaled per item."""
    return batch_size if device.type == "cuda" else min(batch_size, 4)


def _step_seconds(loss, optimizer, device, precision, repeats):
    """Seconds of computing `loss()` and, with an `optimizer`, its backward pass and step."""
    def step():
        with torch.set_grad_enabled(optimizer is not None), autocast(device, precision):
            value = loss()
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
        synchronize(device)
    return _seconds_per_call(step, repeats)


def train_step_seconds(model_id, batch_size, device, precision):
    """Seconds of one optimizer step of the model's own objective at `batch_size` items."""
    objective, learns_from, views = pretraining_objective(base_name(model_id))
    timed = _timed_batch(batch_size, device)
    torch.manual_seed(0)
    labels = (torch.rand(timed, len(TOP50)) < 0.1).float()
    texts = [captions.from_tags([t for t, on in zip(TOP50, row) if on], i) for i, row in enumerate(labels)]
    model = build_for(model_id, TOP50 if learns_from == "tags" else None,
                      captions.vocabulary(texts) if learns_from == "captions" else None).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    samples = model.input_samples * model.crop_windows
    audio = torch.randn(views * timed, samples, device=device) * 0.1
    batch = Batch(audio, labels.to(device), views, texts)
    return _step_seconds(lambda: objective(model, batch), optimizer, device, precision, 2) * batch_size / timed


@functools.cache  # extraction's and fine-tuning's estimates time the same forward pass
@torch.inference_mode()
def window_seconds(model_id, device, precision, windows=8):
    model = build(model_id).to(device).eval()
    audio = torch.randn(windows, model.input_samples, device=device) * 0.1

    def forward():
        with autocast(device, precision):
            model.embed(audio)
        synchronize(device)
    return _seconds_per_call(forward, repeats=1) / windows


@functools.cache  # timed once per model and way, whatever the tasks
def finetune_window_seconds(model_id, how, batch_size, device, precision):
    """Seconds per window of a fine-tuning step: the embedding's forward pass, and where
    `how` (--unfreeze) trains some of the encoder, its backward pass and Adam's step; on a CPU
    timed at a batch of at most 4 and scaled per window."""
    encoder = build(model_id).to(device)
    unfrozen = unfreeze(encoder, how)
    unfrozen.set_modes(True)
    parameters = unfrozen.parameters()
    optimizer = torch.optim.Adam(parameters, lr=1e-6) if parameters else None
    audio = torch.randn(_timed_batch(batch_size, device), encoder.input_samples, device=device) * 0.1
    return _step_seconds(lambda: encoder.embed(audio).float().square().mean(), optimizer, device, precision,
                         1) / len(audio)


def probe_epoch_seconds(task, n_clips, n_inputs, n_probes_per_kind, device, precision, kinds):
    """Seconds of one epoch of `n_probes_per_kind` stacked probes of every kind (fitted on
    random features: the cost depends on the shapes only)."""
    generator = np.random.default_rng(0)
    features = [generator.standard_normal((n_clips, n_inputs)).astype(np.float32)
                for _ in range(n_probes_per_kind)]
    n_outputs = len(task.classes)
    targets = (generator.random((n_clips, n_outputs)) < 0.1).astype(np.float32) if task.multilabel else \
        generator.integers(0, n_outputs, n_clips)
    splits = {"train": np.arange(n_clips * 4 // 5), "valid": np.arange(n_clips * 4 // 5, n_clips)}
    specs = [probes.ProbeSpec(kind, k, 0) for k in range(n_probes_per_kind) for kind in kinds]
    started = time.perf_counter()
    probes.fit(task.kind, specs, features, targets, splits, n_outputs, device, epochs=2, patience=2,
               precision=precision)
    return (time.perf_counter() - started) / 2


def _training_steps(model_id, options, clips):
    script = train_script(base_name(model_id))
    args = parse_args(base_name(model_id), "", script.DEFAULTS, argv=options)
    cls = model_class(model_id)
    lengths = np.array([round(c.seconds * cls.sample_rate) for c in clips])
    n_items = int(items_per_clip(lengths, args, cls.input_samples * cls.crop_windows).sum())
    per_epoch = len(epoch_plan(n_items, 0, 0, World(), args.batch_size))
    return args.budget or min(args.max_steps or math.inf, args.epochs * per_epoch), args.batch_size


def finetuning_windows(options, clips, checkpoints, conditions, cls):
    """(fits, windows each fit trains on, windows each scores) of finetune.py's parsed
    `options` on a task's clips ({split: seconds of each clip}), where the model has
    `checkpoints` and the grid `conditions` test conditions: every --epochs, one window of
    each train clip and every valid window; then every test window under each condition."""
    windows = _windows(clips, cls)
    fits = (len(options.checkpoints) if options.checkpoints else checkpoints) * len(options.heads) * options.seeds
    if options.snr is not None:
        conditions = len({CLEAN, *(condition_label(snr_name(snr)) for snr in options.snr)})
    return (fits, options.epochs * len(clips["train"]),
            options.epochs * windows["valid"] + conditions * windows["test"])


def _windows(clips, cls):
    """{split: the windows extraction cuts from its clips ({split: seconds of each clip})}."""
    return {split: sum(window_count(int(s * cls.sample_rate), cls.input_samples) for s in seconds)
            for split, seconds in clips.items()}


def _clip_seconds(dataset, clip):
    return clip.seconds if clip.seconds is not None else sf.info(dataset.root / clip.path).duration


def _dataset_clips(task, own_dataset, data_root, demo, clips_per_split):
    """{split: [seconds of each clip extraction will embed]} of a task's dataset (a task of
    one's own brings its own), or None if it is not here."""
    try:
        dataset = own_dataset or load_dataset(task.dataset, data_root, demo=demo, download=False)
        if not dataset.clips:
            return None
        clips = sample_per_split(dataset.clips, clips_per_split) if clips_per_split else dataset.clips
        return {split: [_clip_seconds(dataset, c) for c in clips if c.split == split]
                for split in ("train", "valid", "test")}
    except (UserError, OSError, RuntimeError):
        return None


def estimate(jobs, models, tasks, grid, data_root, demo, device, layers=False, label_fits=1, finetuning=None):
    """Rows (stage, model, work, seconds) for the training `jobs` ((model id, subset, draw,
    step budget, options) per run), the extraction and probes of `models` on `tasks` ((Task,
    the Dataset of a task of one's own or None) each; `layers`: of each block too;
    `label_fits`: sets of train labels each probe is fitted on) and the fine-tuning steps
    `finetuning` ({step key: finetune.py's parsed options}); the names of the tasks left out;
    and the seconds of each step of reproduce.py's graph, by its key: (stage, model, training
    set or task, ...)."""
    precision = resolve_precision("auto", device)
    rows, per_step = _pretraining(jobs, models, data_root, demo, device, precision)
    # tasks on one dataset share its features (extraction copies them from a sibling task)
    dataset_clips, per_split = {}, grid.get("clips_per_split")
    for task, own_dataset in tasks:
        if task.dataset not in dataset_clips:
            dataset_clips[task.dataset] = _dataset_clips(task, own_dataset, data_root, demo, per_split)
    task_clips = {task: dataset_clips[task.dataset] for task, _ in tasks}
    missing = [task.name for task, clips in task_clips.items() if clips is None]
    present = {task: clips for task, clips in task_clips.items() if clips is not None}
    extracting = {}  # the first task on each dataset extracts its features; the others copy them
    for task in present:
        extracting.setdefault(task.dataset, task)
    conditions, kinds = len(grid["snr"]), list(probes.KINDS)
    checkpoints_of = {model: 1 + sum(1 for m, *_ in jobs if m == model) for model in models}  # untrained too
    for model in [*models, "handcrafted"]:
        checkpoints = checkpoints_of.get(model, 1)  # the hand-crafted features are one feature set
        work, seconds = _extraction(model, checkpoints, [present[t] for t in extracting.values()], conditions,
                                    device, precision)
        for task in present:
            per_step["extract", model, task.name] = seconds.pop(0) if extracting[task.dataset] is task else 0.0
        rows.append(("extract", model, work, sum(per_step["extract", model, t.name] for t in present)))
        n_inputs = handcrafted.DIM if model == "handcrafted" else model_class(model).emb_dim
        feature_sets = checkpoints * (1 + (build(model).layer_count() if layers and model != "handcrafted" else 0))
        for task, clips in present.items():
            epoch = label_fits * probe_epoch_seconds(task, len(clips["train"]) + len(clips["valid"]), n_inputs,
                                                     feature_sets * grid["seeds"], device, precision, kinds)
            per_step["probes", model, task.name] = probes.MAX_EPOCHS * epoch
        count = len(present) * feature_sets * len(kinds) * grid["seeds"] * label_fits
        rows.append(("probes", model, f"{count:,} probes, at most {probes.MAX_EPOCHS} epochs",
                     sum(per_step["probes", model, t.name] for t in present)))
    clips_of = {task.name: clips for task, clips in present.items()}
    rows += _finetuning(finetuning or {}, clips_of, checkpoints_of, conditions, device, precision, per_step)
    return rows, missing, per_step


def _finetuning(finetuning, clips_of, checkpoints, conditions, device, precision, per_step):
    """A row per model of the fine-tuning steps `finetuning` ({step key: finetune.py's parsed
    options}) on the tasks whose clips are here (`clips_of`), each step's seconds put in
    `per_step`."""
    work = {}  # per model: fits, windows trained, windows scored, seconds
    for key, options in finetuning.items():
        _, model, task, _ = key
        if task not in clips_of:
            continue
        fits, trained, scored = finetuning_windows(options, clips_of[task], checkpoints[model], conditions,
                                                   model_class(model))
        batch_size = options.batch_size or default_batch_size(device)
        per_step[key] = fits * (trained * finetune_window_seconds(model, options.unfreeze, batch_size, device,
                                                                  precision)
                                + scored * window_seconds(model, device, precision))
        totals = work.setdefault(model, [0, 0, 0, 0.0])
        for i, value in enumerate((fits, fits * trained, fits * scored, per_step[key])):
            totals[i] += value
    return [("finetune", model, f"{fits:,} fits: {trained:,} windows trained, {scored:,} scored", seconds)
            for model, (fits, trained, scored, seconds) in work.items()]


def _pretraining(jobs, models, data_root, demo, device, precision):
    """(a row per model, the seconds of each run) of the training `jobs`."""
    # the real MTAT's clips and lengths are in the split index shipped with the project
    pretraining = load_dataset("MTAT", data_root, demo=True, download=False).clips if demo else read_index()
    rows, per_run = [], {}
    for model in models:
        runs = [(subset, draw, budget, options) for m, subset, draw, budget, options in jobs if m == model]
        if not runs:
            continue
        counted = [_training_steps(model, options, select(pretraining, subset, draw))
                   for subset, draw, _, options in runs]
        steps, batch = [count for count, _ in counted], counted[0][1]
        step_seconds = train_step_seconds(model, batch, device, precision)
        for (subset, draw, budget, _), count in zip(runs, steps):
            per_run["pretrain", model, training_set_name(subset, draw, budget)] = count * step_seconds
        rows.append(("pretrain", model, f"{len(runs)} run{'s' * (len(runs) != 1)}, {sum(steps):,} steps of {batch} "
                                        f"({step_seconds:.2f} s/step)", sum(steps) * step_seconds))
    return rows, per_run


def _extraction(model, checkpoints, datasets, conditions, device, precision):
    """(what extraction does, its seconds for each of `datasets`' clips ({split: seconds of
    each clip}), every checkpoint and condition)."""
    if model == "handcrafted":  # one feature set, computed from the whole clip
        audio = [sum(c["train"] + c["valid"]) + conditions * sum(c["test"]) for c in datasets]
        ten_seconds = np.random.default_rng(0).standard_normal(handcrafted.SAMPLE_RATE * 10).astype(np.float32)
        per_second = _seconds_per_call(lambda: handcrafted.features(ten_seconds), repeats=1) / 10
        return f"{sum(audio) / 60:,.0f} minutes of audio", [a * per_second for a in audio]
    cls = model_class(model)
    windows = []  # of one checkpoint, per dataset
    for clips in datasets:
        per_split = _windows(clips, cls)
        windows.append(per_split["train"] + per_split["valid"] + conditions * per_split["test"])
    per_window = window_seconds(model, device, precision)
    return (f"{checkpoints} checkpoints x {sum(windows):,} windows ({per_window * 1e3:.1f} ms/window)",
            [checkpoints * w * per_window for w in windows])


def duration(seconds):
    """Minutes up to two hours, hours beyond."""
    return f"{seconds / 60:.1f} m" if seconds < 7200 else f"{seconds / 3600:,.1f} h"


def stage_seconds(rows):
    """{stage: its rows' seconds}, for the stages the grid has."""
    return {s: sum(r[3] for r in rows if r[0] == s) for s in STAGES if any(r[0] == s for r in rows)}


def table(rows):
    lines = [f"{'stage':<9} {'model':<18} {'work':<58} {'estimate':>10}"]
    for stage, model, work, seconds in rows:
        lines.append(f"{stage:<9} {model:<18} {work:<58} {duration(seconds):>10}")
    by_stage = stage_seconds(rows)
    lines.append(f"{'total':<9} {'':<18} {', '.join(f'{s} {duration(v)}' for s, v in by_stage.items()):<58} "
                 f"{duration(sum(by_stage.values())):>10}")
    return "\n".join(lines)
