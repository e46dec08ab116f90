"""A pretraining run's folder: runs/<data>/<model id>/<subset>[-draw<k>]/seed<k>/.

  config.json        every setting, the clips and their minutes, the model, versions
  untrained.pt       the weights before any update (the study's "untrained model")
  last.pt            weights, optimizer, scheduler and Progress: what --resume continues from
  checkpoints/step<N>.pt   the weights kept every --checkpoint-every epochs, as the study kept them
  log.csv            a row per step
  finished.json      once the run has ended: its optimizer steps, epochs, items seen, training
                     FLOPs and seconds

Only the main process writes; every file is written whole (common/atomic.py). The
checkpoints saved while training are written by a thread of their own (_Writer).
"""
import csv
import io
import json
import platform
import threading
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_json, write_text
from ..cli import UserError
from ..models import checkpoints
from ..models.registry import describe

LOG_FIELDS = ("step", "epoch", "loss", "lr", "items_per_s", "data_s")
# Settings a resumed run must share with the run it continues: the step counter is its
# whole random state only while the epoch plans and the optimizer stay the same.
FIXED_ON_RESUME = ("batch_size", "crops", "crops_per_clip", "lr", "weight_decay", "lr_schedule", "precision",
                   "world_size")


@dataclass
class Progress:
    """Where a run stands; with the seed, its whole random state."""
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    loss_sum: float = 0.0  # of this epoch's steps so far, for the plateau schedule
    loss_steps: int = 0
    items: int = 0         # seen in all, over every process
    seconds: float = 0.0   # spent in steps, over every start and resume

    def state(self):
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "epoch_loss": [self.loss_sum, self.loss_steps], "items": self.items, "seconds": self.seconds}

    @classmethod
    def from_state(cls, state):
        return cls(state["step"], state["epoch"], state["batch_in_epoch"], *state["epoch_loss"], state["items"],
                   state["seconds"])


def check_resumable(run_dir, args, world):
    """Refuse to resume with settings that would change the epoch plans or the optimizer."""
    config = json.loads((run_dir / "config.json").read_text())
    then = {**config["args"], "world_size": config["world_size"]}
    now = {**vars(args), "world_size": world.size}
    changed = [f"--{k.replace('_', '-')} {then.get(k)} -> {now[k]}" for k in FIXED_ON_RESUME
               if k in then and then[k] != now[k]]
    if changed:
        raise UserError(f"{run_dir} was started with other settings ({'; '.join(changed)}): resume it with the "
                        f"settings in its config.json, or start a new run (another --seed or --runs-dir)")


def restore(path, model_name, model, optimizer, scheduler):
    """Load last.pt into the model, optimizer and scheduler; its Progress."""
    state = checkpoints.load(path, model_name)
    checkpoints.load_weights(model, path, state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return Progress.from_state(state)


class RunFolder:
    """The files of one run, written by the main process (the others' calls do nothing)."""

    def __init__(self, run_dir, identity, world):
        self.dir, self.identity, self.is_main = run_dir, identity, world.is_main
        self.last = run_dir / "last.pt"
        self._saved = None  # the Progress last.pt holds, when this process knows it
        self._log_file = self._log = None
        self._writer = _Writer()

    def start(self, args, data, model, world):
        """config.json and untrained.pt, before any update."""
        if not self.is_main:
            return
        write_json(self.dir / "config.json", {
            **self.identity, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "clips": data.keys, "n_clips": len(data.keys), "model": describe(model), "world_size": world.size,
            "device": str(world.device), "versions": _versions()})
        checkpoints.save(self.dir / "untrained.pt", {**self.identity, "model": model.state_dict(), "step": 0})

    def open_log(self, progress, resumed):
        """log.csv: the rows up to the resumed step, replaced whole; then a row per step."""
        if resumed:
            self._saved = astuple(progress)
        if not self.is_main:
            return
        kept = io.StringIO()
        writer = csv.DictWriter(kept, LOG_FIELDS)
        writer.writeheader()
        writer.writerows(_read_log(self.dir / "log.csv", progress.step))
        write_text(self.dir / "log.csv", kept.getvalue())
        self._log_file = open(self.dir / "log.csv", "a", newline="", buffering=1)  # line-buffered: tail -f works
        self._log = csv.DictWriter(self._log_file, LOG_FIELDS)

    def log(self, row):
        if self.is_main:
            self._log.writerow(row)

    def save_last(self, model, optimizer, scheduler, progress):
        # last.pt carries the optimizer (about 1 GB for AST): written only when the state moved on
        if not self.is_main:
            return
        if self._saved != astuple(progress):
            self._writer.write(self.last, {**self.identity, "model": model.state_dict(),
                                           "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                           **progress.state()})
            self._saved = astuple(progress)
        self._log_file.flush()

    def keep_checkpoint(self, model, progress):
        if self.is_main:
            self._writer.write(self.dir / "checkpoints" / f"step{progress.step:07d}.pt",
                               {**self.identity, "model": model.state_dict(), "step": progress.step,
                                "epoch": progress.epoch})

    def close(self):
        """Once the checkpoints being written are on disk (a failed write raises here)."""
        try:
            self._writer.wait()
        finally:
            if self._log_file:
                self._log_file.close()

    def finish(self, progress, args):
        if self.is_main:
            write_json(self.dir / "finished.json", {
                "step": progress.step, "epoch": progress.epoch, "max_steps": args.max_steps, "epochs": args.epochs,
                "budget": args.budget, "items": progress.items, "flops": progress.step * self.identity["step_flops"],
                "seconds": round(progress.seconds, 1)})


class _Writer:
    """Writes checkpoints one at a time on a thread of its own, so that the steps go on while
    a large one is serialised and synced to disk (AST's last.pt, with Adam's moments, is
    about 1 GB: seconds of a GPU's time each). What it writes is a copy in host memory, made
    when it is handed over, as the steps change the weights in place. A write that failed
    raises at the next write or at `wait`."""

    def __init__(self):
        self._thread, self._error = None, None

    def write(self, path, payload):
        self.wait()
        self._thread = threading.Thread(target=self._save, args=(path, _on_host(payload)), name="checkpoint-writer")
        self._thread.start()

    def _save(self, path, payload):
        try:
            checkpoints.save(path, payload)
        except BaseException as error:  # raised again in the training's own thread
            self._error = error

    def wait(self):
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _on_host(state):
    """A copy of a nested state (dicts, lists, tensors, numbers) with its tensors in host memory."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _on_host(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_on_host(v) for v in state)
    return state


def _versions():
    import librosa
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "librosa": librosa.__version__}


def _read_log(path, up_to_step):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if None not in r.values() and int(r["step"]) <= up_to_step]
