"""The one pretraining loop every model's train.py hands its objective to.

A train.py says what its model learns from (tags or not, one or two views of a clip) and
how the loss is computed (the three tagging models share `tagging_loss`, below); this
file does the rest, identically for all five models:

  data     the clips of an MTAT subset (or --audio-dir), decoded once into the cache;
           each epoch visits every clip `crops_per_clip` times in a fixed shuffled order,
           and each visit reads a random crop of the model's input length
  model    built with the seed, saved as untrained.pt before any update (the study's
           "untrained model"), wrapped in DistributedDataParallel under torchrun
  steps    Adam, ReduceLROnPlateau(0.5, patience 10) on the epoch loss, bfloat16
           autocast on CUDA and on CPUs with native bfloat16 (--precision); a non-finite
           loss stops the run before it touches the weights
  outputs  runs/<data>/<model>/<subset>/seed<k>/: config.json, untrained.pt, last.pt,
           checkpoints/step<N>.pt, log.csv, and finished.json once the run has ended

Randomness is reproducible by construction: the epoch order comes from a generator seeded
with (seed, epoch), and everything random inside step s (crop positions, dropout,
masking, augmentations) from generators seeded with (seed, rank, s). The step counter is
therefore the complete random state, and `--resume` continues exactly where it stopped.
"""
import csv
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

from common import checkpoints, distributed
from common.atomic import write_json
from common.cli import REPO_ROOT, ArgumentParser, UserError, add_data_options, positive_float, positive_int
from common.models import build, describe, model_class
from common.pretraining_data import audio_folder, mtat_subset
from common.subsets import SUBSETS

LOG_FIELDS = ("step", "epoch", "loss", "lr", "items_per_s", "data_s")


@dataclass
class Batch:
    audio: torch.Tensor          # (views * batch, samples): view v of item i is row v * batch + i
    labels: torch.Tensor | None  # (batch, tags) for the supervised models
    views: int


def tagging_loss(model, batch):
    """The objective of the three tagging models (vggish, musicnn, ast): binary cross-entropy
    on the clip's top-50 tags."""
    return F.binary_cross_entropy_with_logits(model(batch.audio), batch.labels)


def parse_args(model_name, description, defaults):
    parser = ArgumentParser(prog=f"python {model_name}/train.py", description=description)
    parser.add_argument("--subset", default="full", choices=SUBSETS,
                        help="MTAT train clips per genre, or full (default: full)")
    add_data_options(parser)
    parser.add_argument("--audio-dir", type=Path, help="pretrain on every audio file under this folder instead")
    parser.add_argument("--tags", type=Path, help="with --audio-dir: CSV (path,tags; tags separated by ';')")
    parser.add_argument("--epochs", type=positive_int, default=defaults.get("epochs", 100))
    parser.add_argument("--max-steps", type=positive_int, help="stop after this many optimizer steps in all")
    parser.add_argument("--batch-size", type=positive_int, default=defaults["batch_size"],
                        help="items per step over all processes")
    parser.add_argument("--lr", type=positive_float, default=defaults["lr"])
    parser.add_argument("--weight-decay", type=float, default=defaults["weight_decay"])
    parser.add_argument("--crops-per-clip", type=positive_int, default=defaults["crops_per_clip"],
                        help="random crops of each clip per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    distributed.add_precision_option(parser)
    parser.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "runs")
    parser.add_argument("--save-every", type=positive_int, default=500,
                        help="steps between checkpoints (last.pt and checkpoints/step<N>.pt)")
    parser.add_argument("--resume", action="store_true", help="continue the run in its folder from last.pt")
    return parser.parse_args()


def _seed_step(seed, rank, step):
    """Seed torch's generators for one step and return numpy's generator for it."""
    torch.manual_seed(hash((seed, rank, step)) & 0x7FFF_FFFF_FFFF_FFFF)
    return np.random.default_rng([seed, rank, step])


def _epoch_plan(n_clips, crops_per_clip, seed, epoch, world, batch_size):
    """This process's batches of clip indices for one epoch."""
    order = np.random.default_rng([seed, 1_000_003, epoch]).permutation(np.repeat(np.arange(n_clips), crops_per_clip))
    per_process = max(batch_size // world.size, 1)
    mine = order[world.rank::world.size]
    per_process = min(per_process, len(mine))  # tiny subsets: one batch of everything
    n_batches = len(mine) // per_process
    return [mine[i * per_process:(i + 1) * per_process] for i in range(n_batches)]


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
        return [r for r in csv.DictReader(f) if int(r["step"]) <= up_to_step]


def pretrain(model_name, objective, defaults, description, supervised, views=1):
    """Parse the command line, then train `model_name` with `objective(model, batch) -> loss`."""
    args = parse_args(model_name, description, defaults)
    world = distributed.start(args.device)
    try:
        _train(model_name, objective, args, world, supervised, views)
        # Leave together: a process tearing down its group while another still writes its
        # checkpoints can abort in gloo's background threads ("terminate called ...").
        world.barrier()
    finally:
        world.close()


def _train(model_name, objective, args, world, supervised, views):
    model_cls = model_class(model_name)
    sample_rate, input_samples = model_cls.sample_rate, model_cls.input_samples
    if args.audio_dir is not None:
        data = audio_folder(args.audio_dir, sample_rate, args.tags, supervised)
    elif args.tags is not None:
        raise UserError("--tags goes with --audio-dir")
    else:
        data = mtat_subset(args.subset, sample_rate, args.data_root, args.demo, supervised)
    run_dir = args.runs_dir / data.name / model_name / data.subset / f"seed{args.seed}"
    last = run_dir / "last.pt"
    if last.exists() and not args.resume:
        raise UserError(f"{run_dir} already holds a run: add --resume to continue it, or choose another "
                        f"--seed or --runs-dir")
    if args.resume and not last.exists():
        raise UserError(f"nothing to resume: {last} does not exist")

    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = build(model_name, **({"n_tags": len(data.tags)} if supervised else {})).to(world.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=10)
    step, epoch, batch_in_epoch, epoch_loss = 0, 0, 0, [0.0, 0]
    identity = {"model_name": model_name, "subset": data.subset, "minutes": data.minutes, "data": data.name,
                "seed": args.seed, "tags": list(data.tags) if data.tags else None}
    if args.resume:
        state = checkpoints.load(last, model_name)
        model.load_state_dict(state["model"])
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
    use_amp = distributed.resolve_precision(args.precision, world.device) == torch.bfloat16
    steps_per_epoch = len(_epoch_plan(len(data.keys), args.crops_per_clip, args.seed, 0, world, args.batch_size))
    total = min(args.max_steps or 1 << 62, args.epochs * steps_per_epoch)
    log_rows = _read_log(run_dir / "log.csv", step)
    log_file = None
    if world.is_main:
        log_file = open(run_dir / "log.csv", "w", newline="", buffering=1)  # line-buffered: tail -f works
        log = csv.DictWriter(log_file, LOG_FIELDS)
        log.writeheader()
        log.writerows(log_rows)
    bar = tqdm(total=total, initial=step, desc=f"{model_name} {data.name} {data.subset}", unit="step",
               disable=not world.is_main, dynamic_ncols=True)

    def save_state(periodic):
        if not world.is_main:
            return
        state = {**identity, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "step": step, "epoch": epoch,
                 "batch_in_epoch": batch_in_epoch, "epoch_loss": epoch_loss}
        checkpoints.save(last, state)
        if periodic:
            checkpoints.save(run_dir / "checkpoints" / f"step{step:07d}.pt", {**identity, "model": model.state_dict(),
                                                                              "step": step})
        log_file.flush()

    interrupt = _Interrupt()
    try:
        net.train()
        while step < total and epoch < args.epochs:
            plan = _epoch_plan(len(data.keys), args.crops_per_clip, args.seed, epoch, world, args.batch_size)
            while batch_in_epoch < len(plan) and step < total:
                started = time.perf_counter()
                rng = _seed_step(args.seed, world.rank, step)
                indices = plan[batch_in_epoch]
                keys = [data.keys[i] for i in indices]
                audio = np.concatenate([data.cache.random_crops(keys, input_samples, rng) for _ in range(views)])
                batch = Batch(torch.from_numpy(audio).to(world.device, non_blocking=True),
                              labels[torch.from_numpy(indices).to(world.device)] if labels is not None else None,
                              views)
                data_seconds = time.perf_counter() - started
                with torch.autocast(world.device.type, dtype=torch.bfloat16, enabled=use_amp):
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
                    save_state(periodic=True)
                if world.any(interrupt.requested):
                    save_state(periodic=False)
                    if world.is_main:
                        print(f"\ninterrupted at step {step}: {last} is saved; add --resume to continue",
                              file=sys.stderr)
                    raise SystemExit(130)
            if batch_in_epoch == len(plan):  # the epoch is complete
                scheduler.step(epoch_loss[0] / max(epoch_loss[1], 1))
                epoch, batch_in_epoch, epoch_loss = epoch + 1, 0, [0.0, 0]
        save_state(periodic=step % args.save_every != 0)
    finally:
        interrupt.restore()
        bar.close()
        if log_file:
            log_file.close()
    if world.is_main:
        write_json(run_dir / "finished.json", {"step": step, "epoch": epoch, "max_steps": args.max_steps,
                                                "epochs": args.epochs})
        print(f"trained {model_name} for {step} steps ({epoch} epochs) on {data.minutes:.1f} minutes "
              f"({len(data.keys)} clips): {run_dir}")
