"""Probes fitted on frozen features, every probe of a run at once.

A run fits, for K feature sets (checkpoints) and S seeds, three kinds of probe: `linear`,
`mlp1` (one hidden layer of 256) and `mlp2` (hidden 256 and 128), ReLU between layers.
Probes of one kind are stacked along a leading "probe" axis and trained together with
batched matrix products, so the whole grid costs little more than one probe. Stacking
changes nothing for a single probe: each probe's initial weights and mini-batch order come
from its own seeded generators, Adam and weight decay act element-wise, and the summed loss
gives every probe its own gradient. Training is Adam 1e-3 (weight decay 1e-5) for up to
100 epochs with early stopping (patience 10) on the validation metric, in mini-batches of
64 clips (fewer on a small training split, so that an epoch is at least 8 updates); each
probe keeps the weights of its best validation epoch and stops improving once its
patience runs out.
"""
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from common.metrics import key_score_table

HIDDEN = {"linear": (), "mlp1": (256,), "mlp2": (256, 128)}
PROBES = tuple(HIDDEN)


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


def _validation_scores(task, outputs, targets):
    """The validation metric of every probe: (G,) from outputs (G, N, C)."""
    if task == "tagging":  # macro ROC-AUC from ranks (ties are rare enough to ignore here)
        ranks = outputs.argsort(dim=1).argsort(dim=1).double() + 1
        positives = targets.double()[None]
        n_pos, n_neg = positives.sum(1), (1 - positives).sum(1)
        auc = ((ranks * positives).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        valid = (n_pos > 0) & (n_neg > 0)
        return torch.where(valid, auc, 0).sum(1) / valid.sum(1).clamp(min=1)
    guesses = outputs.argmax(dim=2)
    if task == "key":
        table = torch.as_tensor(key_score_table(), device=outputs.device)
        return table[targets[None].expand_as(guesses), guesses].mean(1)
    return (guesses == targets[None]).double().mean(1)


def _loss(task, outputs, targets):
    """Sum over probes of each probe's mean loss on its batch; targets (G, B[, C])."""
    if task == "tagging":
        return F.binary_cross_entropy_with_logits(outputs, targets.float(), reduction="none").mean(dim=(1, 2)).sum()
    return F.cross_entropy(outputs.transpose(1, 2), targets, reduction="none").mean(dim=1).sum()


def fit(task, specs, features, targets, splits, n_outputs, device, epochs=100, patience=10, batch_size=None):
    """Train every probe of `specs`; {kind: (module, feature-set index per probe, probe indices in specs)}.

    features: list of K float arrays (clips, dim), already standardised; targets: (clips,)
    class indices or (clips, tags) multi-hot; splits: {"train": rows, "valid": rows}.
    """
    x = torch.as_tensor(np.stack(features), dtype=torch.float32, device=device)  # (K, clips, dim)
    y = torch.as_tensor(targets, device=device)
    train, valid = (torch.as_tensor(splits[s], device=device) for s in ("train", "valid"))
    groups = {}
    for kind in PROBES:
        members = [i for i, s in enumerate(specs) if s.kind == kind]
        if members:
            sizes = (x.shape[2], *HIDDEN[kind], n_outputs)
            module = StackedMLP([_probe_seed(specs[i]) for i in members], sizes).to(device)
            sets = torch.as_tensor([specs[i].feature_set for i in members], device=device)
            orders = [torch.Generator().manual_seed(_probe_seed(specs[i]) + 1) for i in members]
            groups[kind] = dict(module=module, members=members, sets=sets, orders=orders)
    parameters = [p for g in groups.values() for p in g["module"].parameters()]
    optimizer = torch.optim.Adam(parameters, lr=1e-3, weight_decay=1e-5)
    for g in groups.values():
        n = len(g["members"])
        g.update(best=torch.full((n,), -math.inf, device=device), waited=torch.zeros(n, device=device),
                 active=torch.ones(n, dtype=torch.bool, device=device),
                 best_state=[p.detach().clone() for p in g["module"].parameters()])
    batch_size = batch_size or int(np.clip(len(train) // 8, 8, 64))  # small splits still get 8 updates an epoch
    n_batches = max(1, math.ceil(len(train) / batch_size))
    for _ in range(epochs):
        if not any(g["active"].any() for g in groups.values()):
            break
        for g in groups.values():  # each probe's own shuffle of the training clips for this epoch
            g["epoch_order"] = torch.stack([torch.randperm(len(train), generator=o) for o in g["orders"]]).to(device)
        for b in range(n_batches):
            optimizer.zero_grad(set_to_none=True)
            loss = 0.0
            for g in groups.values():
                rows = train[g["epoch_order"][:, b * batch_size:(b + 1) * batch_size]]  # (G, B)
                outputs = g["module"](x[g["sets"][:, None], rows])
                loss = loss + _loss(task, outputs, y[rows])
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            for g in groups.values():
                scores = _validation_scores(task, g["module"](x[g["sets"][:, None], valid[None]]), y[valid])
                improved = g["active"] & (scores > g["best"])
                g["best"] = torch.where(improved, scores, g["best"])
                g["waited"] = torch.where(improved, 0, g["waited"] + 1)
                g["active"] &= g["waited"] < patience
                for saved, current in zip(g["best_state"], g["module"].parameters()):
                    saved[improved] = current[improved]
    with torch.no_grad():
        for g in groups.values():
            for saved, current in zip(g["best_state"], g["module"].parameters()):
                current.copy_(saved)
    return {kind: (g["module"], g["sets"], g["members"]) for kind, g in groups.items()}


def _probe_seed(spec):
    return spec.seed * 1_000_003 + spec.feature_set * 101 + PROBES.index(spec.kind)


@torch.no_grad()
def predict(module, sets, features):
    """Outputs (G, clips, C) of each probe on its own feature set, with sigmoid/softmax left off."""
    x = torch.as_tensor(np.stack(features), dtype=torch.float32, device=next(module.parameters()).device)
    return module(x[sets]).cpu().numpy()
