"""The one pretraining loop every model's train.py hands its objective to.

A train.py says what its model learns from (tags or not, one or two views of a clip) and
how the loss is computed (the three tagging models share `tagging_loss`, below); this
file does the rest, identically for every model:

  data     the clips of an MTAT subset and draw (or --audio-dir), decoded once into the
           cache, with their tags or captions when the model learns from them; an epoch
           visits `crops_per_clip` items of every clip, in a shuffled order: with --crops
           tile (the study's way) the clip's consecutive segments of the model's input
           length (the last one zero-padded), with --crops random as many uniformly placed
           crops (epoch_items); a multi-view objective sees each item
           through crops of its own or through one shared crop, as the model says
           (views_share_crop, crop_windows: CLMR's strategies)
  model    built with the seed, saved as untrained.pt before any update (the study's
           "untrained model"), wrapped in DistributedDataParallel under torchrun, with
           BatchNorm over the global batch (common/training/global_batch.py)
  steps    Adam, ReduceLROnPlateau(0.5, patience 10) on the epoch loss (or a constant
           rate, as CLMR's code has), bfloat16 autocast on CUDA and on CPUs with native
           bfloat16 (--precision); a non-finite loss stops the run before it touches
           the weights
  outputs  runs/<data>/<model id>/<subset>[-draw<k>]/seed<k>/: config.json, untrained.pt,
           last.pt (every --save-every steps: what --resume continues from),
           checkpoints/step<N>.pt (kept every --checkpoint-every epochs, as the study
           kept its weights), log.csv, and finished.json once the run has ended

Randomness is reproducible by construction: the epoch order comes from a generator seeded
with (seed, epoch), and everything random inside step s (crop positions, dropout,
masking, augmentations) from generators seeded with (seed, rank, s). The step counter is
therefore the complete random state, and `--resume` continues exactly where it stopped.
"""
import csv
import io
import json
import platform
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from common.atomic import write_json, write_text
from common.cli import (REPO_ROOT, ArgumentParser, UserError, add_data_options, check_output_dir, existing_file, folder,
                        non_negative_float, non_negative_int, positive_float, positive_int)
from common.data.captions import vocabulary
from common.data.pretraining_data import audio_folder, mtat_subset
from common.data.subsets import SUBSETS, training_set_name
from common.models import checkpoints
from common.models.melspec import FRONT_ENDS
from common.models.registry import build_for, describe, model_class, model_id
from common.training import distributed
from common.training.global_batch import sync_batchnorm

LOG_FIELDS = ("step", "epoch", "loss", "lr", "items_per_s", "data_s")


@dataclass
class Batch:
    audio: torch.Tensor          # (views * batch, samples): view v of item i is row v * batch + i
    labels: torch.Tensor | None  # (batch, tags) for the supervised models
    views: int
    captions: list | None = None  # a caption per item, for the language-supervised model


def tagging_loss(model, batch):
    """The objective of the three tagging models (vggish, musicnn, ast): binary cross-entropy
    on the clip's top-50 tags."""
    return F.binary_cross_entropy_with_logits(model(batch.audio), batch.labels)


CROPS = ("tile", "random")
LR_SCHEDULES = ("plateau", "constant")
# Settings a resumed run must share with the run it continues: the step counter is its
# whole random state only while the epoch plans and the optimizer stay the same.
FIXED_ON_RESUME = ("batch_size", "crops", "crops_per_clip", "lr", "weight_decay", "lr_schedule", "precision",
                   "world_size")


def parse_args(model_name, description, defaults, argv=None, learns_from=None):
    """The train.py command line (or `argv`); `defaults` are the model's (the study's configuration)."""
    parser = ArgumentParser(prog=f"python {model_name}/train.py", description=description)
    model = model_class(model_name)
    if model.VARIANTS:
        parser.add_argument(f"--{model.VARIANT_OPTION}", dest="variant", default=model.DEFAULT_VARIANT,
                            choices=(model.DEFAULT_VARIANT, *model.VARIANTS),
                            help=f"{model.DEFAULT_VARIANT} (default) trains the model id {model_name}, any other "
                                 f"{model_name}-<{model.VARIANT_OPTION}> (explained in {model_name}/model.py)")
    if model.n_mels:
        parser.add_argument("--front-end", default="study", choices=FRONT_ENDS,
                            help="study: the mel spectrogram of the study's code (default); librosa: the project's "
                                 f"first one, for comparison (trains the model id {model_name}[-<variant>]-librosa)")
    parser.add_argument("--subset", default="full", choices=SUBSETS,
                        help="MTAT train clips per genre, or full (default: %(default)s)")
    parser.add_argument("--draw", type=non_negative_int, default=0,
                        help="0: the study's subset (default); 1, 2, ...: a seeded genre-balanced draw of the "
                             "same size")
    add_data_options(parser)
    parser.add_argument("--audio-dir", type=folder, help="pretrain on every audio file under this folder instead")
    parser.add_argument("--tags", type=existing_file, help="with --audio-dir: CSV (path,tags; tags separated by ';')")
    if learns_from == "captions":
        parser.add_argument("--captions", type=existing_file,
                            help="with --audio-dir: MuLaP's JSON (a list of audio_id, caption, audio_path relative "
                                 "to the folder); only the files it names are trained on")
    parser.add_argument("--epochs", type=positive_int, default=defaults["epochs"], help="default: %(default)s")
    parser.add_argument("--max-steps", type=positive_int, help="stop after this many optimizer steps in all")
    parser.add_argument("--batch-size", type=positive_int, default=defaults["batch_size"],
                        help="items per step over all processes (default: %(default)s)")
    parser.add_argument("--lr", type=positive_float, default=defaults["lr"], help="Adam (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=defaults["weight_decay"],
                        help="Adam's L2 penalty (default: %(default)s)")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=defaults["lr_schedule"],
                        help="plateau: halve the rate when the epoch loss stalls for 10 epochs; constant "
                             "(default: %(default)s)")
    parser.add_argument("--crops", choices=CROPS, default=defaults["crops"],
                        help="tile: every clip's consecutive segments, each once per epoch (the study's); random: "
                             "uniformly placed crops (default: %(default)s)")
    parser.add_argument("--crops-per-clip", type=positive_int, default=defaults["crops_per_clip"],
                        help="items of each clip per epoch: segments with tile, crops with random "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    distributed.add_device_option(parser)
    distributed.add_precision_option(parser)
    parser.add_argument("--runs-dir", type=folder, default=REPO_ROOT / "runs")
    parser.add_argument("--save-every", type=positive_int, default=500,
                        help="steps between saves of last.pt, what --resume continues from (default: %(default)s)")
    parser.add_argument("--checkpoint-every", type=positive_int, default=defaults["checkpoint_every"],
                        metavar="EPOCHS", help="epochs between the weights kept as checkpoints/step<N>.pt, "
                                               "extracted as <subset>@<N> (default: %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in its folder from last.pt (or start it, if nothing is saved yet)")
    return parser.parse_args(argv)


def _seed_step(seed, rank, step):
    """Seed torch's generators for one step and return numpy's generator for it."""
    torch.manual_seed(hash((seed, rank, step)) & 0x7FFF_FFFF_FFFF_FFFF)
    return np.random.default_rng([seed, rank, step])


def items_per_clip(lengths, args, crop_samples):
    """How many items each clip (of `lengths` samples) gives an epoch. With tile crops, clip c
    gives its first `crops_per_clip` consecutive segments of the crop length, but only those at
    least half audio (the study's last, zero-padded segments of 29-second MTAT clips are
    68-89% audio; a short clip of the demo or of --audio-dir gives fewer, and always one);
    with random crops, `crops_per_clip` items whose offsets are drawn when read."""
    if args.crops == "random":
        return np.full(len(lengths), args.crops_per_clip)
    return np.clip((lengths + crop_samples // 2) // crop_samples, 1, args.crops_per_clip)


def epoch_items(data, args, crop_samples):
    """What one epoch visits: (clip index, segment index) arrays, an entry per item."""
    lengths = np.array([data.cache.lengths[data.cache.position(k)] for k in data.keys])
    per_clip = items_per_clip(lengths, args, crop_samples)
    clips = np.repeat(np.arange(len(data.keys)), per_clip)
    segments = np.concatenate([np.arange(n) for n in per_clip])
    return clips, segments


def epoch_plan(n_items, seed, epoch, world, batch_size):
    """This process's batches of item indices for one epoch, which visits every item once.
    Each step's `batch_size` items are shared out among the processes; a last, smaller step is
    kept unless it would leave a process fewer than two items (BatchNorm cannot train on
    one), in which case its items join the step before."""
    order = np.random.default_rng([seed, 1_000_003, epoch]).permutation(n_items)
    per_step = max(batch_size // world.size, 1) * world.size
    starts = list(range(0, n_items, per_step))
    if len(starts) > 1 and n_items - starts[-1] < 2 * world.size:
        starts.pop()
    return [order[a:b][world.rank::world.size] for a, b in zip(starts, starts[1:] + [n_items])]


def read_crops(data, clips, segments, crops, input_samples, rng):
    """The audio of one batch's items: (len(clips), input_samples)."""
    keys = [data.keys[i] for i in clips]
    if crops == "tile":
        return data.cache.crops(keys, segments * input_samples, input_samples)
    return data.cache.random_crops(keys, input_samples, rng)


def _check_resumable(run_dir, args, world):
    """Refuse to resume with settings that would change the epoch plans or the optimizer."""
    config = json.loads((run_dir / "config.json").read_text())
    then = {**config["args"], "world_size": config["world_size"]}
    now = {**vars(args), "world_size": world.size}
    changed = [f"--{k.replace('_', '-')} {then.get(k)} -> {now[k]}" for k in FIXED_ON_RESUME
               if k in then and then[k] != now[k]]
    if changed:
        raise UserError(f"{run_dir} was started with other settings ({'; '.join(changed)}): resume it with the "
                        f"settings in its config.json, or start a new run (another --seed or --runs-dir)")


class _Interrupt:
    """Turns Ctrl-C into a flag checked between steps, so a checkpoint is never cut in half."""

    def __init__(self):
        self.requested = False
        self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, *_):
        self.requested = True

    def restore(self):
        signal.signal(signal.SIGINT, self.previous)


def _versions():
    import librosa
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "librosa": librosa.__version__}


def _read_log(path, up_to_step):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if None not in r.values() and int(r["step"]) <= up_to_step]


def pretrain(model_name, objective, defaults, description, learns_from=None, views=1):
    """Parse the command line, then train `model_name` with `objective(model, batch) -> loss`.
    `learns_from`: what the batches carry besides audio: "tags", "captions" or nothing (None)."""
    args = parse_args(model_name, description, defaults, learns_from=learns_from)
    model_name = model_id(model_name, getattr(args, "variant", None), getattr(args, "front_end", "study"))
    check_output_dir(args.runs_dir, "--runs-dir")
    world = distributed.start(args.device)
    try:
        _train(model_name, objective, args, world, learns_from, views)
        # Leave together: a process tearing down its group while another still writes its
        # checkpoints can abort in gloo's background threads ("terminate called ...").
        world.barrier()
    finally:
        world.close()


def _train(model_name, objective, args, world, learns_from, views):
    model_cls = model_class(model_name)
    sample_rate, crop_samples = model_cls.sample_rate, model_cls.input_samples * model_cls.crop_windows
    if args.audio_dir is not None:
        if args.draw:
            raise UserError("--draw picks clips of an MTAT subset: it does not go with --audio-dir")
        data = audio_folder(args.audio_dir, sample_rate, args.data_root, args.tags, learns_from,
                            getattr(args, "captions", None))
    elif args.tags is not None or getattr(args, "captions", None) is not None:
        raise UserError(f"--{'tags' if args.tags else 'captions'} goes with --audio-dir")
    else:
        data = mtat_subset(args.subset, args.draw, sample_rate, args.data_root, args.demo, learns_from)
    name = training_set_name(data.subset, data.draw)
    run_dir = args.runs_dir / data.name / model_name / name / f"seed{args.seed}"
    last = run_dir / "last.pt"
    if last.exists() and not args.resume:
        raise UserError(f"{run_dir} already holds a run: add --resume to continue it, or choose another "
                        f"--seed or --runs-dir")
    if args.resume and not last.exists():
        # killed before its first save (or never started): --resume starts it, so a job script
        # can always pass --resume
        if world.is_main:
            print(f"nothing saved yet in {run_dir}: starting from step 0", file=sys.stderr)
        args.resume = False
    if args.resume:
        _check_resumable(run_dir, args, world)

    identity = {"model_name": model_name, "subset": data.subset, "draw": data.draw, "minutes": data.minutes,
                "data": data.name, "seed": args.seed, "tags": list(data.tags) if data.tags else None,
                "vocabulary": list(vocabulary(data.captions)) if data.captions else None}
    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = build_for(model_name, identity["tags"], identity["vocabulary"]).to(world.device)
    if world.size > 1:  # BatchNorm over the global batch (before the optimizer sees the parameters)
        model = sync_batchnorm(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=10)
    step, epoch, batch_in_epoch, epoch_loss = 0, 0, 0, [0.0, 0]
    if args.resume:
        state = checkpoints.load(last, model_name)
        checkpoints.load_weights(model, last, state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, batch_in_epoch, epoch_loss = (state["step"], state["epoch"], state["batch_in_epoch"],
                                                   list(state["epoch_loss"]))
    elif world.is_main:
        write_json(run_dir / "config.json", {
            **identity, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "clips": data.keys, "n_clips": len(data.keys), "model": describe(model), "world_size": world.size,
            "device": str(world.device), "versions": _versions()})
        checkpoints.save(run_dir / "untrained.pt", {**identity, "model": model.state_dict(), "step": 0})
    world.barrier()

    net = DistributedDataParallel(model) if world.size > 1 else model
    labels = torch.from_numpy(data.labels).to(world.device) if data.labels is not None else None
    precision = distributed.resolve_precision(args.precision, world.device)
    item_clips, item_segments = epoch_items(data, args, crop_samples)
    n_items = len(item_clips)
    steps_per_epoch = len(epoch_plan(n_items, args.seed, 0, world, args.batch_size))
    total = min(args.max_steps or 1 << 62, args.epochs * steps_per_epoch)
    log_file = None
    if world.is_main:  # the rows up to the resumed step, replaced whole; then a row per step
        kept = io.StringIO()
        log = csv.DictWriter(kept, LOG_FIELDS)
        log.writeheader()
        log.writerows(_read_log(run_dir / "log.csv", step))
        write_text(run_dir / "log.csv", kept.getvalue())
        log_file = open(run_dir / "log.csv", "a", newline="", buffering=1)  # line-buffered: tail -f works
        log = csv.DictWriter(log_file, LOG_FIELDS)
    bar = tqdm(total=total, initial=step, desc=f"{model_name} {data.name} {name}", unit="step",
               disable=not world.is_main, dynamic_ncols=True)

    saved = (step, epoch, batch_in_epoch) if args.resume else None  # the state last.pt holds

    def save_last():
        # last.pt carries the optimizer (about 1 GB for AST): written only when the state moved on
        nonlocal saved
        if world.is_main and saved != (step, epoch, batch_in_epoch):
            checkpoints.save(last, {**identity, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                    "scheduler": scheduler.state_dict(), "step": step, "epoch": epoch,
                                    "batch_in_epoch": batch_in_epoch, "epoch_loss": epoch_loss})
            saved = (step, epoch, batch_in_epoch)
        if world.is_main:
            log_file.flush()

    def keep_checkpoint():
        if world.is_main:
            checkpoints.save(run_dir / "checkpoints" / f"step{step:07d}.pt",
                             {**identity, "model": model.state_dict(), "step": step, "epoch": epoch})

    interrupt = _Interrupt()
    try:
        net.train()
        while step < total and epoch < args.epochs:
            plan = epoch_plan(n_items, args.seed, epoch, world, args.batch_size)
            while batch_in_epoch < len(plan) and step < total:
                started = time.perf_counter()
                rng = _seed_step(args.seed, world.rank, step)
                items = plan[batch_in_epoch]
                clips = item_clips[items]
                # the views of an item: each its own crop of the clip, or all the same crop
                crops = [read_crops(data, clips, item_segments[items], args.crops, crop_samples, rng)
                         for _ in range(1 if model_cls.views_share_crop else views)]
                audio = np.concatenate(crops * views if model_cls.views_share_crop else crops)
                batch = Batch(torch.from_numpy(audio).to(world.device, non_blocking=True),
                              labels[torch.from_numpy(clips).to(world.device)] if labels is not None else None,
                              views, [data.captions[i] for i in clips] if data.captions else None)
                data_seconds = time.perf_counter() - started
                with distributed.autocast(world.device, precision):
                    loss = objective(net, batch)
                mean_loss = world.mean(loss.detach())
                if not np.isfinite(mean_loss):
                    raise UserError(f"the loss became {mean_loss} at step {step + 1}: stopped before updating the "
                                    f"weights; the last good checkpoint is {last} (try a lower --lr)")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step, batch_in_epoch = step + 1, batch_in_epoch + 1
                epoch_loss = [epoch_loss[0] + mean_loss, epoch_loss[1] + 1]
                seconds = time.perf_counter() - started
                lr = optimizer.param_groups[0]["lr"]
                if world.is_main:
                    log.writerow({"step": step, "epoch": epoch, "loss": f"{mean_loss:.6f}", "lr": f"{lr:.3g}",
                                  "items_per_s": f"{len(audio) // views * world.size / seconds:.2f}",
                                  "data_s": f"{data_seconds:.4f}"})
                    bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2g}", epoch=epoch)
                    bar.update()
                if step % args.save_every == 0:
                    save_last()
                if world.any(interrupt.requested):
                    save_last()
                    if world.is_main:
                        print(f"\ninterrupted at step {step}: {last} is saved; add --resume to continue",
                              file=sys.stderr)
                    raise SystemExit(130)
            if batch_in_epoch >= len(plan):  # the epoch is complete
                if args.lr_schedule == "plateau":
                    scheduler.step(epoch_loss[0] / max(epoch_loss[1], 1))
                epoch, batch_in_epoch, epoch_loss = epoch + 1, 0, [0.0, 0]
                if epoch % args.checkpoint_every == 0:
                    keep_checkpoint()  # before last.pt: a run killed between the two still has it
                    save_last()
        save_last()
    finally:
        interrupt.restore()
        bar.close()
        if log_file:
            log_file.close()
    if world.is_main:
        write_json(run_dir / "finished.json", {"step": step, "epoch": epoch, "max_steps": args.max_steps,
                                                "epochs": args.epochs})
        print(f"trained {model_name} for {step} steps ({epoch} epochs) on {data.minutes:.1f} minutes "
              f"({len(data.keys)} clips, {args.crops} crops): {run_dir}")
