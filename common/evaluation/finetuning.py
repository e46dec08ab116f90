"""Fine-tuning an encoder with a probe's head on a task, from the clips' audio.

The encoder's embedding of a window is standardised with the train split's statistics of
the clip embeddings its features hold (as downstream.py standardises them for the probes)
and fed to a head of a probe's kind (probes.py: slp, mlp, ...). Training items are the
windows extract_features.py cuts (extraction.py), each labelled with its clip's label: an
epoch is one window of each train clip, drawn anew every epoch, so that an epoch is the
clips, as a probe's is, and a long clip does not weigh more than a short one. A clip's
output is the mean of its windows' outputs, as a clip's embedding is the mean of its
windows'. The parts --unfreeze names train with the encoder's learning rate, the head
with the head's (Recipe); gradients are clipped to a norm of 1. Each epoch ends with the
valid split's primary metric: the weights of the best epoch are kept, with its valid
outputs, and training stops once it has not improved for `patience` epochs.

A fit's progress is saved after every epoch (its trained weights, the optimizer, the best
weights so far and their valid outputs): a fit killed and run again continues from its last epoch and ends with
the very weights of a fit never stopped. Under torchrun the batches are shared among the
processes (DistributedDataParallel); every process scores the valid split, and the
processes agree on the mean score, so that all of them stop together.
"""
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..atomic import write_serialised
from ..training.distributed import autocast, to_device
from .extraction import embed_clips, window_count
from .metrics import task_metrics
from .probes import losses

ENCODER_LR = 1e-5  # MusicFM's fine-tuning on MTAT: Adam at 1e-5 for the whole encoder
HEAD_LR = 1e-3     # the probes' Adam (mir_ref)
CLIP_NORM = 1.0    # MusicFM's gradient clipping


@dataclass(frozen=True)
class Recipe:
    epochs: int
    patience: int
    batch_size: int        # windows per optimizer step, over every process
    encoder_lr: float
    head_lr: float
    weight_decay: float    # the head's, its probe kind's (probes.RECIPES)


class Adapted(torch.nn.Module):
    """encoder -> standardised embedding -> head: a window's outputs (sigmoid/softmax left off).
    `embed` and `input_samples` make it an encoder to extraction.embed_clips, which then
    averages its outputs over each clip's windows."""

    def __init__(self, encoder, mean, std, head):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.input_samples = encoder.input_samples

    def forward(self, x):
        z = (self.encoder.embed(x).float() - self.mean) / self.std
        return self.head(z[None])[0]

    def embed(self, x):
        return self(x)


def standardisation(train_features):
    """(mean, deviation) the head's input is standardised with: the train clips' embedding
    statistics, as downstream.py's (deviation + 1e-8), except for dimensions constant over
    the train clips (half of CLMR's 512 are, ReLUs that never fire), which take the median
    deviation instead: divided by 1e-8, the first step that woke one would send the head an
    input of millions. A probe sees those dimensions as 0 either way."""
    mean, std = train_features.mean(0), train_features.std(0)
    moving = std[std > 0]
    return mean, np.where(std > 0, std + 1e-8, np.median(moving) if len(moving) else 1.0)


class ClipWindows:
    """Every window of some clips (the decoded-audio cache's), in clip order: the training items."""

    def __init__(self, cache, clip_ids, length):
        self.cache, self.clip_ids, self.length = cache, list(clip_ids), length
        self.counts = np.array([window_count(int(cache.lengths[cache.position(c)]), length) for c in self.clip_ids])
        self.owner = np.repeat(np.arange(len(self.clip_ids)), self.counts)  # each window's clip
        self.index = np.concatenate([np.arange(n) for n in self.counts])   # its place in the clip
        self.first = np.cumsum(self.counts) - self.counts                  # each clip's first window

    def __len__(self):
        return len(self.owner)

    def one_per_clip(self, generator):
        """An epoch's items: one window of each clip, drawn with `generator`, in a shuffled order."""
        drawn = (torch.rand(len(self.counts), generator=generator, dtype=torch.float64).numpy()
                 * self.counts).astype(np.int64)
        return (self.first + drawn)[torch.randperm(len(self.counts), generator=generator).numpy()]

    def read(self, items):
        """(len(items), length) float32 windows, as extraction.windows cuts them (a clip shorter
        than one window zero-padded), read from the cache without decoding the whole clips."""
        items = np.asarray(items)
        return self.cache.crops([self.clip_ids[o] for o in self.owner[items]], self.index[items] * self.length,
                                self.length)


@dataclass
class Progress:
    """What a fit has done: saved after every epoch, so that a killed fit continues."""
    epoch: int = 0
    best: float = -math.inf
    waited: int = 0
    best_state: dict | None = None
    best_outputs: object = None  # what valid() returned beside the best epoch's score


def trained_names(adapted, unfrozen):
    """The state_dict keys of what trains: the head's, and the unfrozen modules' parameters and
    buffers (BatchNorm statistics)."""
    trained = {id(m) for m in unfrozen.trained} | {id(m) for m in adapted.head.modules()}
    return {f"{prefix}.{name}" if prefix else name for prefix, module in adapted.named_modules()
            if id(module) in trained for name, _ in [*module.named_parameters(recurse=False),
                                                     *module.named_buffers(recurse=False)]}


def snapshot(adapted, names):
    return {k: v.detach().clone() for k, v in adapted.state_dict().items() if k in names}


def fit(adapted, unfrozen, items, targets, valid, recipe, seed, state_path, world, precision, bar=None):
    """Train `adapted` on the windows `items` (ClipWindows, targets per clip) and leave it with
    its best epoch's weights; `valid(adapted)` scores an epoch: (its score, its outputs to keep
    when it is the best). Progress goes to `state_path` (process 0 writes it) and is read back
    from there when a fit continues."""
    names = trained_names(adapted, unfrozen)
    groups = [{"params": list(adapted.head.parameters()), "lr": recipe.head_lr,
               "weight_decay": recipe.weight_decay}]
    if unfrozen.trained:
        groups.append({"params": unfrozen.parameters(), "lr": recipe.encoder_lr, "weight_decay": 0.0})
    optimizer = torch.optim.Adam(groups)
    progress = _restore(state_path, adapted, optimizer) if state_path.exists() else Progress()
    trainer = adapted if world.size == 1 else torch.nn.parallel.DistributedDataParallel(adapted)
    if bar is not None:
        bar.update(progress.epoch)  # a fit that continues shows the epochs it did before
    while progress.epoch < recipe.epochs and progress.waited < recipe.patience:
        torch.manual_seed(seed * 100_003 + progress.epoch)  # dropout's draws, the same when a fit continues
        unfrozen.set_modes(True)
        adapted.head.train()
        _epoch(trainer, optimizer, items, targets, recipe, seed, progress.epoch, world, precision)
        unfrozen.set_modes(False)
        adapted.head.eval()
        score, outputs = valid(adapted)
        score = world.mean(score)
        if score > progress.best:
            progress.best, progress.waited = score, 0
            progress.best_state, progress.best_outputs = snapshot(adapted, names), outputs
        else:
            progress.waited += 1
        progress.epoch += 1
        if world.is_main:
            _save(state_path, adapted, optimizer, progress, names)
        if bar is not None:
            bar.update()
            bar.set_postfix(valid=f"{score:.4f}", best=f"{progress.best:.4f}")
    adapted.load_state_dict(progress.best_state, strict=False)
    return progress


def _epoch(trainer, optimizer, items, targets, recipe, seed, epoch, world, precision):
    """One window of every training clip, in the fit's draw for this epoch; each process takes
    its share of every batch."""
    order = items.one_per_clip(torch.Generator().manual_seed(seed * 100_003 + epoch))
    device = next(trainer.parameters()).device
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    for start in range(0, len(order), recipe.batch_size):
        batch = order[start:start + recipe.batch_size]
        if len(batch) < world.size:
            break  # a last batch too small to share: left for the next epoch's shuffle
        mine = np.array_split(batch, world.size)[world.rank]
        x = to_device(torch.from_numpy(items.read(mine)), device)
        y = to_device(torch.as_tensor(targets[items.owner[mine]]), device)
        with autocast(device, precision):
            outputs = trainer(x)
        loss = losses(_task_kind(targets), outputs.float()[None], y[None])[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, CLIP_NORM)
        optimizer.step()


def _task_kind(targets):
    """The loss the targets take: multi-hot tags, or class indices."""
    return "tags" if targets.ndim == 2 else "classes"


def _save(path, adapted, optimizer, progress, names):
    write_serialised(path, lambda f: torch.save({"trained": snapshot(adapted, names),
                                                 "optimizer": optimizer.state_dict(), "epoch": progress.epoch,
                                                 "best": progress.best, "waited": progress.waited,
                                                 "best_state": progress.best_state,
                                                 "best_outputs": progress.best_outputs}, f))


def _restore(path, adapted, optimizer):
    state = torch.load(path, map_location=next(adapted.parameters()).device, weights_only=True)
    adapted.load_state_dict(state["trained"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    return Progress(state["epoch"], state["best"], state["waited"], state["best_state"], state["best_outputs"])


def clip_outputs(adapted, audio_of, n_clips, n_outputs, batch_size, device, precision):
    """(n_clips, n_outputs): each clip's mean window output, in eval mode."""
    out = np.zeros((n_clips, n_outputs), dtype=np.float32)
    embed_clips(adapted, audio_of, n_clips, out, batch_size, device, precision)
    return out


def valid_score(task, targets):
    """The primary metric of outputs on the valid clips, whose targets are `targets`."""
    return lambda outputs: task_metrics(task.kind, targets, outputs)[task.primary]
