"""Probes fitted on frozen features, every probe of a run at once.

Five kinds of probe, ReLU between layers:
  linear, mlp1, mlp2   this project's: no hidden layer, one of 256, two of 256 and 128
  slp, mlp             the study's (mir_ref's classifier): no hidden layer, and one hidden
                       layer halfway between the input and output sizes (mir_ref's "infer")
Each kind trains by its recipe (RECIPES): ours is Adam 1e-3 with weight decay 1e-5 in
mini-batches of 256 clips (fewer on a small training split, so that an epoch is at least 8
updates), stopped once the validation metric has not improved for 10 epochs; mir_ref's is
Adam 1e-3 with an L2 penalty of 1e-5 on every weight and bias in the loss (the same as
Adam's weight decay 2e-5), mini-batches of 1,083 clips, stopped once the validation loss
has not improved for 10 epochs. Either way at most 100 epochs, and each probe keeps the
weights of its best validation-metric epoch (mir_ref's ModelCheckpoint(save_best_only)).
Ours uses mini-batches of 256 rather than 64: on 15,000 train clips the speed benchmark
(benchmarks/run.py, probes) measured equal or better test scores in 60% of the time, since
at 64 clips Adam's update of the weights costs as much as the batch's products.

Probes of one kind, over K feature sets (checkpoints) and S seeds, are stacked along a
leading "probe" axis and trained together with batched matrix products, so the whole grid
costs little more than one probe. Stacking changes nothing for a single probe: each
probe's initial weights and mini-batch order come from its own seeded generators, Adam
and weight decay act element-wise, and the summed loss gives every probe its own gradient.
With precision bfloat16 (downstream.py --precision: auto takes it where the hardware has
it) the training products run under autocast; validation and predictions stay float32.
"""
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..training.distributed import autocast
from .metrics import key_score_table


@dataclass(frozen=True)
class Recipe:
    batch_size: int    # clips per mini-batch
    min_updates: int   # on a small train split, smaller batches (down to 8 clips) for this many updates an epoch
    weight_decay: float
    stop_on: str       # "metric" or "loss": what early stopping watches on the validation split

    def batch_for(self, n_train):
        return int(np.clip(n_train // self.min_updates, 8, self.batch_size)) if self.min_updates else self.batch_size


MAX_EPOCHS = 100  # downstream.py's default --epochs
RECIPES = {"ours": Recipe(256, 8, 1e-5, "metric"), "mir_ref": Recipe(1083, 0, 2e-5, "loss")}
KINDS = {"linear": ("ours", ()), "mlp1": ("ours", (256,)), "mlp2": ("ours", (256, 128)),
         "slp": ("mir_ref", ()), "mlp": ("mir_ref", "halfway")}
PROBES = tuple(KINDS)
STUDY_PROBES = ("slp", "mlp")


def hidden_sizes(kind, n_inputs, n_outputs):
    """The hidden layer widths of a kind of probe on n_inputs features and n_outputs classes."""
    hidden = KINDS[kind][1]
    if hidden == "halfway":  # mir_ref: n_outputs + (n_inputs - n_outputs) / 2, rounded up to even
        width = int(n_outputs + (n_inputs - n_outputs) / 2)
        return (width + width % 2,)
    return hidden


@dataclass
class ProbeSpec:
    kind: str
    feature_set: int  # index of the feature set (checkpoint) it is fitted on
    seed: int
    # the feature set's own number in the probe's generators (downstream.py: its name's
    # CRC-32), so that its initial weights and batch order do not depend on which other sets
    # are fitted beside it, nor on their order
    stream: int = 0


class StackedMLP(torch.nn.Module):
    """G independent MLPs of one shape: x (G, batch, in) -> (G, batch, out)."""

    def __init__(self, seeds, sizes):
        super().__init__()
        self.weights, self.biases = torch.nn.ParameterList(), torch.nn.ParameterList()
        per_probe = []
        for seed in seeds:  # PyTorch's nn.Linear initialisation, drawn from the probe's own generator
            generator = torch.Generator().manual_seed(seed)
            layers = []
            for n_in, n_out in zip(sizes, sizes[1:]):
                bound = 1 / math.sqrt(n_in)
                layers.append(((torch.rand(n_in, n_out, generator=generator) * 2 - 1) * bound,
                               (torch.rand(1, n_out, generator=generator) * 2 - 1) * bound))
            per_probe.append(layers)
        for layer in range(len(sizes) - 1):
            self.weights.append(torch.stack([p[layer][0] for p in per_probe]))
            self.biases.append(torch.stack([p[layer][1] for p in per_probe]))

    def forward(self, x):
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < len(self.weights) - 1:
                x = torch.relu(x)
        return x


def _validation_scores(task_kind, outputs, targets):
    """The validation metric of every probe: (G,) from outputs (G, N, C) on a task of `task_kind`."""
    if task_kind == "tags":  # macro ROC-AUC from ranks (ties are rare enough to ignore here)
        ranks = outputs.argsort(dim=1).argsort(dim=1).double() + 1
        positives = targets.double()[None]
        n_pos, n_neg = positives.sum(1), (1 - positives).sum(1)
        auc = ((ranks * positives).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        valid = (n_pos > 0) & (n_neg > 0)
        return torch.where(valid, auc, 0).sum(1) / valid.sum(1).clamp(min=1)
    guesses = outputs.argmax(dim=2)
    if task_kind == "key":
        table = torch.as_tensor(key_score_table(), device=outputs.device)
        return table[targets[None].expand_as(guesses), guesses].mean(1)
    return (guesses == targets[None]).double().mean(1)


def losses(task_kind, outputs, targets):
    """Each probe's mean loss on its batch: (G,) from outputs (G, B, C) and targets (G, B[, C])."""
    if task_kind == "tags":
        return F.binary_cross_entropy_with_logits(outputs, targets.float(), reduction="none").mean(dim=(1, 2))
    return F.cross_entropy(outputs.transpose(1, 2), targets, reduction="none").mean(dim=1)


@dataclass
class FittedProbes:
    """The fitted probes of one kind, stacked: probe g reads feature set `sets[g]` and is
    specs[members[g]]."""
    module: StackedMLP
    sets: torch.Tensor
    members: list


@dataclass
class _Training:
    """The probes of one kind as they train, each with its own early-stopping state."""
    probes: FittedProbes
    orders: list             # a generator per probe for its shuffle of the training clips
    best: torch.Tensor       # each probe's best validation metric so far
    best_state: list         # the parameters at that epoch, stacked like the module's
    watched: torch.Tensor    # the best value of what early stopping watches, higher is better
    waited: torch.Tensor     # epochs since it improved
    active: torch.Tensor     # probes still training
    epoch_order: torch.Tensor | None = None  # (probes, train clips): this epoch's shuffles


@dataclass
class _Data:
    """The stacked features x (K, clips, dim), targets y and split rows, on the device."""
    task_kind: str
    x: torch.Tensor
    y: torch.Tensor
    train: torch.Tensor
    valid: torch.Tensor


def fit(task_kind, specs, features, targets, splits, n_outputs, device, epochs=MAX_EPOCHS, patience=10,
        precision=torch.float32):
    """Train every probe of `specs` on a task of `task_kind` (tasks.py); {probe kind: FittedProbes}.

    features: list of K float arrays (clips, dim), already standardised; targets: (clips,)
    class indices or (clips, tags) multi-hot; splits: {"train": rows, "valid": rows}.
    """
    data = _Data(task_kind, torch.as_tensor(np.stack(features), dtype=torch.float32, device=device),
                 torch.as_tensor(targets, device=device),
                 *(torch.as_tensor(splits[s], device=device) for s in ("train", "valid")))
    fitted = {}
    for name, recipe in RECIPES.items():
        chosen = [i for i, s in enumerate(specs) if KINDS[s.kind][0] == name]
        if chosen:
            kinds = _start(data, specs, chosen, n_outputs, device)
            _train(data, kinds, recipe, epochs, patience, precision)
            fitted.update({kind: training.probes for kind, training in kinds.items()})
    return fitted


def _start(data, specs, chosen, n_outputs, device):
    """{kind: _Training} for the probes `chosen` (indices into specs), each kind stacked."""
    kinds = {}
    for kind in PROBES:
        members = [i for i in chosen if specs[i].kind == kind]
        if not members:
            continue
        n_inputs, n = data.x.shape[2], len(members)
        module = StackedMLP([_probe_seed(specs[i]) for i in members],
                            (n_inputs, *hidden_sizes(kind, n_inputs, n_outputs), n_outputs)).to(device)
        sets = torch.as_tensor([specs[i].feature_set for i in members], device=device)
        kinds[kind] = _Training(
            FittedProbes(module, sets, members),
            orders=[torch.Generator().manual_seed(_probe_seed(specs[i]) + 1) for i in members],
            best=torch.full((n,), -math.inf, device=device),
            best_state=[p.detach().clone() for p in module.parameters()],
            watched=torch.full((n,), -math.inf, device=device), waited=torch.zeros(n, device=device),
            active=torch.ones(n, dtype=torch.bool, device=device))
    return kinds


def _train(data, kinds, recipe, epochs, patience, precision):
    """Up to `epochs` epochs of every probe that has not stopped; each ends with its best weights."""
    parameters = [p for t in kinds.values() for p in t.probes.module.parameters()]
    # fused: one pass over each weight tensor per step instead of several (CPU and CUDA alike)
    optimizer = torch.optim.Adam(parameters, lr=1e-3, weight_decay=recipe.weight_decay, fused=True)
    batch_size = recipe.batch_for(len(data.train))
    for _ in range(epochs):
        # a kind whose probes have all stopped is left out: its best weights are kept already
        live = [t for t in kinds.values() if t.active.any()]
        if not live:
            break
        _train_epoch(data, live, optimizer, batch_size, precision)
        with torch.no_grad():
            for training in live:
                _validate(data, training, recipe, patience)
    with torch.no_grad():
        for training in kinds.values():
            for saved, current in zip(training.best_state, training.probes.module.parameters()):
                current.copy_(saved)


def _train_epoch(data, live, optimizer, batch_size, precision):
    """One epoch of mini-batches; each probe draws its own shuffle of the training clips."""
    for t in live:
        t.epoch_order = torch.stack([torch.randperm(len(data.train), generator=o) for o in t.orders]).to(
            data.x.device)
    for b in range(max(1, math.ceil(len(data.train) / batch_size))):
        optimizer.zero_grad(set_to_none=True)  # a left-out kind has no gradient, so Adam skips it
        loss = 0.0
        with autocast(data.x.device, precision):
            for t in live:
                rows = data.train[t.epoch_order[:, b * batch_size:(b + 1) * batch_size]]  # (G, B)
                outputs = t.probes.module(_rows(data.x, t.probes.sets, rows))
                loss = loss + losses(data.task_kind, outputs, data.y[rows]).sum()
        loss.backward()
        optimizer.step()


def _validate(data, t, recipe, patience):
    """Keep each probe's best weights by the validation metric; stop those whose watched value
    (the metric, or the negated loss) has not improved for `patience` epochs."""
    outputs = t.probes.module(_rows(data.x, t.probes.sets, data.valid[None]))
    y_valid = data.y[data.valid]
    scores = _validation_scores(data.task_kind, outputs, y_valid)
    improved = t.active & (scores > t.best)
    t.best = torch.where(improved, scores, t.best)
    for saved, current in zip(t.best_state, t.probes.module.parameters()):
        saved[improved] = current[improved]
    watched = scores if recipe.stop_on == "metric" else \
        -losses(data.task_kind, outputs, y_valid[None].expand(len(outputs), *y_valid.shape))
    better = watched > t.watched
    t.watched = torch.where(better, watched, t.watched)
    t.waited = torch.where(better, 0, t.waited + 1)
    t.active &= t.waited < patience


def _rows(x, sets, rows):
    """x[sets[:, None], rows]: (G, B, dim) from x (K, clips, dim), sets (G,) and rows (G or 1, B),
    through index_select, which on a CPU gathers 5x faster than advanced indexing."""
    index = sets[:, None] * x.shape[1] + rows
    return x.flatten(0, 1).index_select(0, index.reshape(-1)).view(*index.shape, x.shape[2])


def _probe_seed(spec):
    return spec.seed * 1_000_003 + spec.stream * 101 + PROBES.index(spec.kind)


@torch.no_grad()
def predict(probes, features):
    """Outputs (G, clips, C) of each FittedProbes probe on its own feature set, with
    sigmoid/softmax left off."""
    x = torch.as_tensor(np.stack(features), dtype=torch.float32, device=next(probes.module.parameters()).device)
    return probes.module(x[probes.sets]).cpu().numpy()
