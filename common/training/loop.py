"""The one pretraining loop every model's train.py hands its objective to.

A train.py says what its model learns from (tags, captions or the audio alone; one or two
views of a clip) and how the loss is computed (the three tagging models share
`tagging_loss`, below); this file does the rest, identically for every model:

  data     the clips of an MTAT subset and draw (or --audio-dir), decoded once into the
           cache, with their tags or captions when the model learns from them; what an
           epoch visits and a step reads is epochs.py
  model    built with the seed, saved as untrained.pt before any update (the study's
           "untrained model"), wrapped in DistributedDataParallel under torchrun, with
           BatchNorm over the global batch (global_batch.py)
  steps    Adam, ReduceLROnPlateau(0.5, patience 10) on the epoch loss (or a constant
           rate, as CLMR's code has), bfloat16 autocast on CUDA and on CPUs with native
           bfloat16 (--precision). Nothing in a step waits for the GPU: the batch goes
           over from pinned memory, and the host reads the losses every READ_EVERY
           steps, before every save and at every epoch's end, so it reads the next batch
           while the GPU computes. A non-finite loss stops the run at that read, before
           any file holds weights it touched
  budget   the study's --epochs, or with --budget steps:N as many epochs as N optimizer
           steps take (a run of its own, <subset>-stepsN, so that subsets can be compared at
           equal compute); every checkpoint records the FLOPs of one step (flops.py)
  outputs  the run's folder (run_folder.py): config.json, untrained.pt, last.pt (every
           --save-every steps: what --resume continues from), the weights kept every
           --checkpoint-every epochs, log.csv, and finished.json once the run has ended

Randomness is reproducible by construction: the epoch order comes from a generator seeded
with (seed, epoch), and everything random inside step s (crop positions, dropout,
masking, augmentations) from generators seeded with (seed, rank, s). The step counter is
therefore the complete random state, and `--resume` continues exactly where it stopped.
"""
import math
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..cli import UserError, check_output_dir
from ..data.captions import vocabulary
from ..data.pretraining_data import audio_folder, mtat_subset
from ..data.subsets import training_set_name
from ..models.registry import build_for, model_class, model_id
from . import distributed
from .epochs import Batch, epoch_items, epoch_plan, read_crops, seed_step
from .flops import step_flops
from .global_batch import sync_batchnorm
from .options import parse_args
from .run_folder import Progress, RunFolder, check_resumable, restore

# Steps between two reads of the losses by the host. Each read waits for the GPU to finish
# every step queued so far; between reads it runs on while the host prepares the next batch.
# A process also reads after its first step, so that its warm-up (kernels chosen, memory
# allocated) is timed apart in log.csv.
READ_EVERY = 25


def tagging_loss(model, batch):
    """The objective of the three tagging models (vggish, musicnn, ast): binary cross-entropy
    on the clip's top-50 tags."""
    return F.binary_cross_entropy_with_logits(model(batch.audio), batch.labels)


def pretrain(model_name, objective, defaults, description, learns_from=None, views=1):
    """Parse the command line, then train `model_name` with `objective(model, batch) -> loss`.
    `learns_from`: what the batches carry besides audio: "tags", "captions" or nothing (None)."""
    args = parse_args(model_name, description, defaults, learns_from=learns_from)
    model_name = model_id(model_name, getattr(args, "variant", None), getattr(args, "front_end", "study"),
                          getattr(args, "left_out", ()))
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
    # data: the clips of an MTAT subset and draw, or of --audio-dir, decoded once into the cache
    data = _training_data(args, model_cls.sample_rate, learns_from)
    run = RunFolder(_run_dir(args, data, model_name, world), _identity(model_name, data, args), world)
    # model: the seed's initial weights, the same in every process
    torch.manual_seed(args.seed)
    model = build_for(model_name, run.identity["tags"], run.identity["vocabulary"]).to(world.device)
    if world.size > 1:  # BatchNorm over the global batch (before the optimizer sees the parameters)
        model = sync_batchnorm(model, world.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=10)
    steps = _Steps(model, objective, optimizer, scheduler, args, world, data, views, run)
    # budget: the epochs --budget takes; the FLOPs of a step, recorded in every checkpoint
    steps_per_epoch = len(steps.plan(0))
    _apply_budget(args, steps_per_epoch)
    run.identity["step_flops"] = steps.flops()
    # start: where last.pt stopped, or step 0 with config.json and untrained.pt written
    if args.resume:
        progress = restore(run.last, model_name, model, optimizer, scheduler)
    else:
        progress = Progress()
        run.start(args, data, model, world)
    world.barrier()
    # steps: an epoch plan after another, until --epochs, --max-steps or --budget
    steps.run(progress)
    run.finish(progress, args)
    if world.is_main:
        print(f"trained {model_name} for {progress.step} steps ({progress.step / steps_per_epoch:.3g} epochs, "
              f"{progress.step * run.identity['step_flops']:.3g} FLOPs) on {data.minutes:.1f} "
              f"minutes ({len(data.keys)} clips, {args.crops} crops): {run.dir}")


def _apply_budget(args, steps_per_epoch):
    """With --budget steps:N, the epochs N steps take, and weights kept about twenty times
    along the way unless --checkpoint-every says otherwise."""
    if args.budget:
        args.max_steps, args.epochs = args.budget, math.ceil(args.budget / steps_per_epoch)
        args.checkpoint_every = args.checkpoint_every or max(1, args.epochs // 20)


def _training_data(args, sample_rate, learns_from):
    """The PretrainingData the command line names: a folder of one's own, or an MTAT subset."""
    captions = getattr(args, "captions", None)
    if args.audio_dir is not None:
        if args.draw:
            raise UserError("--draw picks clips of an MTAT subset: it does not go with --audio-dir")
        return audio_folder(args.audio_dir, sample_rate, args.data_root, args.tags, learns_from, captions,
                            args.partial_data)
    if args.tags is not None or captions is not None:
        raise UserError(f"--{'tags' if args.tags else 'captions'} goes with --audio-dir")
    return mtat_subset(args.subset, args.draw, sample_rate, args.data_root, args.demo, learns_from,
                       args.partial_data)


def _run_dir(args, data, model_name, world):
    """The run's folder; a run already there is refused unless resumed. --resume with nothing
    saved yet starts the run, so a job script can always pass it."""
    run_dir = args.runs_dir / data.name / model_name / training_set_name(data.subset, data.draw, args.budget) / \
        f"seed{args.seed}"
    saved = (run_dir / "last.pt").exists()
    if saved and not args.resume:
        raise UserError(f"{run_dir} already holds a run: add --resume to continue it, or choose another "
                        f"--seed or --runs-dir")
    if args.resume and not saved:
        if world.is_main:
            print(f"nothing saved yet in {run_dir}: starting from step 0", file=sys.stderr)
        args.resume = False
    if args.resume:
        check_resumable(run_dir, args, world)
    return run_dir


def _identity(model_name, data, args):
    """What every checkpoint of the run says of itself."""
    return {"model_name": model_name, "subset": data.subset, "draw": data.draw, "budget": args.budget,
            "minutes": data.minutes, "data": data.name, "seed": args.seed,
            "tags": list(data.tags) if data.tags else None,
            "vocabulary": list(vocabulary(data.captions)) if data.captions else None}


class _Steps:
    """The optimizer steps of a run, from wherever its Progress stands."""

    def __init__(self, model, objective, optimizer, scheduler, args, world, data, views, run):
        self.model, self.objective, self.optimizer, self.scheduler = model, objective, optimizer, scheduler
        self.net = DistributedDataParallel(model) if world.size > 1 else model
        self.args, self.world, self.data, self.views, self.run_folder = args, world, data, views, run
        model_cls = model_class(run.identity["model_name"])
        self.share_crop = model_cls.views_share_crop
        self.crop_samples = model_cls.input_samples * model_cls.crop_windows
        self.precision = distributed.resolve_precision(args.precision, world.device)
        self.item_clips, self.item_segments = epoch_items(data, args, self.crop_samples)

    def plan(self, epoch):
        return epoch_plan(len(self.item_clips), self.args.seed, epoch, self.world, self.args.batch_size)

    def flops(self):
        """The FLOPs of one optimizer step over every process, on a batch of the first epoch."""
        batch = self.batch(self.plan(0)[0], np.random.default_rng(self.args.seed))
        return step_flops(self.model, self.objective, batch, self.world, self.precision)

    def run(self, progress):
        args, folder = self.args, self.run_folder
        total = min(args.max_steps or 1 << 62, args.epochs * len(self.plan(0)))
        folder.open_log(progress, resumed=args.resume)
        self.bar = tqdm(total=total, initial=progress.step, unit="step", disable=not self.world.is_main,
                        desc=f"{folder.identity['model_name']} {self.data.name} {folder.dir.parent.name}",
                        dynamic_ncols=True)
        interrupt = _Interrupt()
        self.started_reading()
        warm_up = progress.step + 1
        try:
            while progress.step < total and progress.epoch < args.epochs:
                plan = self.plan(progress.epoch)
                while progress.batch_in_epoch < len(plan) and progress.step < total:
                    self.step(plan[progress.batch_in_epoch], progress)
                    if progress.step % args.save_every == 0:
                        self.save(progress)
                    elif progress.step % READ_EVERY == 0 or progress.step == warm_up:
                        self.read_losses(progress)
                    if self.interrupted(interrupt, progress):
                        self.stop(progress)
                if progress.batch_in_epoch >= len(plan):
                    self.end_epoch(progress)
            self.save(progress)
        finally:
            interrupt.restore()
            self.bar.close()
            folder.close()

    def batch(self, items, rng):
        """The batch of these items: their crops (each view its own, or one shared) and labels."""
        clips = self.item_clips[items]
        crops = [read_crops(self.data, clips, self.item_segments[items], self.args.crops, self.crop_samples, rng)
                 for _ in range(1 if self.share_crop else self.views)]
        audio = np.concatenate(crops * self.views if self.share_crop else crops)
        labels = self._to_device(self.data.labels[clips]) if self.data.labels is not None else None
        captions = [self.data.captions[i] for i in clips] if self.data.captions else None
        return Batch(self._to_device(audio), labels, self.views, captions)

    def _to_device(self, array):
        return distributed.to_device(torch.from_numpy(np.ascontiguousarray(array)), self.world.device)

    def step(self, items, progress):
        """One optimizer step, queued on the device; its loss stays there until read_losses."""
        started = time.perf_counter()
        batch = self.batch(items, seed_step(self.args.seed, self.world.rank, progress.step))
        data_seconds = time.perf_counter() - started
        with distributed.autocast(self.world.device, self.precision):
            loss = self.objective(self.net, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        progress.step, progress.batch_in_epoch = progress.step + 1, progress.batch_in_epoch + 1
        progress.items += len(items) * self.world.size
        self.unread.append({"step": progress.step, "epoch": progress.epoch, "loss": self.world.average(loss.detach()),
                            "lr": f"{self.optimizer.param_groups[0]['lr']:.3g}", "data_s": f"{data_seconds:.4f}"})
        self.unread_items += len(batch.audio) // self.views * self.world.size
        self.bar.update()

    def read_losses(self, progress):
        """The host reads the losses of the steps queued since the last read (one wait for the
        device) and logs them; items/s is over those steps, the time the device took for them.
        A non-finite loss stops the run here, before any save."""
        if not self.unread:
            return
        losses = torch.stack([row["loss"] for row in self.unread]).tolist()
        seconds = time.perf_counter() - self.read_at
        items_per_s = self.unread_items / seconds
        for row, loss in zip(self.unread, losses):
            if not math.isfinite(loss):
                raise UserError(f"the loss became {loss} at step {row['step']}: stopped before any checkpoint held "
                                f"the weights it updated; the last good checkpoint is {self.run_folder.last} "
                                f"(try a lower --lr)")
            self.run_folder.log({**row, "loss": f"{loss:.6f}", "items_per_s": f"{items_per_s:.2f}"})
            progress.loss_sum, progress.loss_steps = progress.loss_sum + loss, progress.loss_steps + 1  # in step order
        progress.seconds += seconds
        self.bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=self.unread[-1]["lr"], epoch=progress.epoch)
        self.started_reading()

    def started_reading(self):
        self.unread, self.unread_items, self.read_at = [], 0, time.perf_counter()

    def interrupted(self, interrupt, progress):
        """Ctrl-C, seen by every process at the same step: under torchrun they agree at the reads."""
        if self.world.size == 1:
            return interrupt.requested
        return progress.step % READ_EVERY == 0 and self.world.any(interrupt.requested)

    def end_epoch(self, progress):
        """The plateau schedule sees the epoch's mean loss; every --checkpoint-every epochs the
        weights are kept, before last.pt: a run killed between the two still has them."""
        self.read_losses(progress)
        if self.args.lr_schedule == "plateau":
            self.scheduler.step(progress.loss_sum / max(progress.loss_steps, 1))
        progress.epoch, progress.batch_in_epoch, progress.loss_sum, progress.loss_steps = progress.epoch + 1, 0, 0.0, 0
        if progress.epoch % self.args.checkpoint_every == 0:
            self.run_folder.keep_checkpoint(self.model, progress)
            self.save(progress)

    def save(self, progress):
        self.read_losses(progress)
        self.run_folder.save_last(self.model, self.optimizer, self.scheduler, progress)
        self.read_at = time.perf_counter()  # items/s counts the steps, not the saves

    def stop(self, progress):
        """Ctrl-C: last.pt saved between two steps, then exit 130."""
        self.save(progress)
        if self.world.is_main:
            print(f"\ninterrupted at step {progress.step}: {self.run_folder.last} is saved; add --resume to "
                  f"continue", file=sys.stderr)
        raise SystemExit(130)


class _Interrupt:
    """Turns Ctrl-C into a flag checked between steps, so a checkpoint is never cut in half."""

    def __init__(self):
        self.requested = False
        self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, *_):
        self.requested = True

    def restore(self):
        signal.signal(signal.SIGINT, self.previous)
