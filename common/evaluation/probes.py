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
Ours took mini-batches of 64 until the speed benchmark measured 256 (benchmarks/run.py,
probes): on 15,000 train clips, equal or better test scores in 60% of the time, since at
64 clips Adam's update of the weights costs as much as the batch's products.

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

from common.evaluation.metrics import key_score_table
from common.training.distributed import autocast


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


def _losses(task_kind, outputs, targets):
    """Each probe's mean loss on its batch: (G,) from outputs (G, B, C) and targets (G, B[, C])."""
    if task_kind == "tags":
        return F.binary_cross_entropy_with_logits(outputs, targets.float(), reduction="none").mean(dim=(1, 2))
    return F.cross_entropy(outputs.transpose(1, 2), targets, reduction="none").mean(dim=1)


def fit(task_kind, specs, features, targets, splits, n_outputs, device, epochs=MAX_EPOCHS, patience=10,
        precision=torch.float32):
    """Train every probe of `specs` on a task of `task_kind` (tasks.py); {probe kind: (module,
    feature-set index per probe, probe indices in specs)}.

    features: list of K float arrays (clips, dim), already standardised; targets: (clips,)
    class indices or (clips, tags) multi-hot; splits: {"train": rows, "valid": rows}.
    """
    x = torch.as_tensor(np.stack(features), dtype=torch.float32, device=device)  # (K, clips, dim)
    y = torch.as_tensor(targets, device=device)
    train, valid = (torch.as_tensor(splits[s], device=device) for s in ("train", "valid"))
    fitted = {}
    for name, recipe in RECIPES.items():
        members = [i for i, s in enumerate(specs) if KINDS[s.kind][0] == name]
        if members:
            fitted.update(_fit(task_kind, specs, members, x, y, train, valid, n_outputs, device, epochs, patience,
                               recipe, precision))
    return fitted


def _fit(task_kind, specs, chosen, x, y, train, valid, n_outputs, device, epochs, patience, recipe, precision):
    """fit() for the probes `chosen` (indices into specs), which share one recipe, on the
    stacked features x (K, clips, dim) and targets y, on the device."""
    groups = {}
    for kind in PROBES:
        members = [i for i in chosen if specs[i].kind == kind]
        if members:
            sizes = (x.shape[2], *hidden_sizes(kind, x.shape[2], n_outputs), n_outputs)
            module = StackedMLP([_probe_seed(specs[i]) for i in members], sizes).to(device)
            sets = torch.as_tensor([specs[i].feature_set for i in members], device=device)
            orders = [torch.Generator().manual_seed(_probe_seed(specs[i]) + 1) for i in members]
            groups[kind] = dict(module=module, members=members, sets=sets, orders=orders)
    parameters = [p for g in groups.values() for p in g["module"].parameters()]
    # fused: one pass over each weight tensor per step instead of several (CPU and CUDA alike)
    optimizer = torch.optim.Adam(parameters, lr=1e-3, weight_decay=recipe.weight_decay, fused=True)
    for g in groups.values():
        n = len(g["members"])
        g.update(best=torch.full((n,), -math.inf, device=device), watched=torch.full((n,), -math.inf, device=device),
                 waited=torch.zeros(n, device=device), active=torch.ones(n, dtype=torch.bool, device=device),
                 best_state=[p.detach().clone() for p in g["module"].parameters()])
    batch_size = recipe.batch_for(len(train))
    n_batches = max(1, math.ceil(len(train) / batch_size))
    for _ in range(epochs):
        # a kind whose probes have all stopped is left out: its best weights are kept already
        live = [g for g in groups.values() if g["active"].any()]
        if not live:
            break
        for g in live:  # each probe's own shuffle of the training clips for this epoch
            g["epoch_order"] = torch.stack([torch.randperm(len(train), generator=o) for o in g["orders"]]).to(device)
        for b in range(n_batches):
            optimizer.zero_grad(set_to_none=True)  # a left-out kind has no gradient, so Adam skips it
            loss = 0.0
            with autocast(device, precision):
                for g in live:
                    rows = train[g["epoch_order"][:, b * batch_size:(b + 1) * batch_size]]  # (G, B)
                    outputs = g["module"](_rows(x, g["sets"], rows))
                    loss = loss + _losses(task_kind, outputs, y[rows]).sum()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            for g in live:
                outputs = g["module"](_rows(x, g["sets"], valid[None]))
                scores = _validation_scores(task_kind, outputs, y[valid])
                improved = g["active"] & (scores > g["best"])
                g["best"] = torch.where(improved, scores, g["best"])
                for saved, current in zip(g["best_state"], g["module"].parameters()):
                    saved[improved] = current[improved]
                # what early stopping watches, higher is better: the metric, or the negated loss
                watched = scores if recipe.stop_on == "metric" else \
                    -_losses(task_kind, outputs, y[valid][None].expand(len(outputs), *y[valid].shape))
                better = watched > g["watched"]
                g["watched"] = torch.where(better, watched, g["watched"])
                g["waited"] = torch.where(better, 0, g["waited"] + 1)
                g["active"] &= g["waited"] < patience
    with torch.no_grad():
        for g in groups.values():
            for saved, current in zip(g["best_state"], g["module"].parameters()):
                current.copy_(saved)
    return {kind: (g["module"], g["sets"], g["members"]) for kind, g in groups.items()}


def _rows(x, sets, rows):
    """x[sets[:, None], rows]: (G, B, dim) from x (K, clips, dim), sets (G,) and rows (G or 1, B),
    through index_select, which on a CPU gathers 5x faster than advanced indexing."""
    index = sets[:, None] * x.shape[1] + rows
    return x.flatten(0, 1).index_select(0, index.reshape(-1)).view(*index.shape, x.shape[2])


def _probe_seed(spec):
    return spec.seed * 1_000_003 + spec.feature_set * 101 + PROBES.index(spec.kind)


@torch.no_grad()
def predict(module, sets, features):
    """Outputs (G, clips, C) of each probe on its own feature set, with sigmoid/softmax left off."""
    x = torch.as_tensor(np.stack(features), dtype=torch.float32, device=next(module.parameters()).device)
    return module(x[sets]).cpu().numpy()
