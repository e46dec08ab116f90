"""Fewer labelled examples: which train clips a probe learns from under a label budget.

downstream.py --label-fraction F and --shots K fit every probe again on part of the train
split's labelled examples; the validation split (early stopping, the choice of probe kind)
and the test split stay whole, and the features are standardised with the whole train
split's statistics (its audio is there; only its labels are scarce). Two kinds of budget:
  fraction F   that fraction of the train examples (at least one), stratified: for a
               single-label task each class keeps its share, rounded so that the total is
               the fraction (a class with a share below one example may get none); for
               tags, iterative stratification (Sechidis, Tsoumakas and Vlahavas 2011) into
               the subset and the rest: the rarest tag first, each of its examples to the
               side that still wants most of that tag, so every tag keeps about its share
               (the subset's size is then the fraction within a few examples)
  shots K      K examples of every class (all of a class that has fewer); for tags, examples
               taken rarest tag first until every tag has at least K positives in the subset
Each draw of the examples (--label-draws) is its own seeded choice, the same for every
checkpoint and probe, so checkpoints are compared on the same labelled clips.
"""
from dataclasses import dataclass

import numpy as np

WHOLE_SPLIT = "all"  # the label_budget of probes trained on every labelled train example


@dataclass(frozen=True)
class LabelBudget:
    kind: str      # "fraction" or "shots"
    amount: float  # the fraction, or K

    @property
    def name(self):
        """How results name it after the checkpoint: 5+labels0.1, 5+shots2."""
        return f"labels{self.amount:g}" if self.kind == "fraction" else f"shots{int(self.amount)}"

    def suffix(self, draw):
        """What results add to a checkpoint's name for this budget's draw: +shots2, +shots2-draw1."""
        return f"+{self.name}" + (f"-draw{draw}" if draw else "")

    @property
    def text(self):
        return f"{self.amount:g} of the labels" if self.kind == "fraction" else f"{int(self.amount)} shots"


def budgets(fractions, shots):
    """The budgets of --label-fraction and --shots; a fraction of 1 is the whole split, which
    every run fits anyway."""
    return [LabelBudget("fraction", f) for f in sorted(set(fractions)) if f < 1] + \
        [LabelBudget("shots", k) for k in sorted(set(shots))]


def select(targets, train_rows, budget, draw):
    """The sorted rows of `train_rows` a probe learns from under `budget` in draw `draw`:
    targets are class indices (clips,) or multi-hot tags (clips, tags)."""
    rng = np.random.default_rng([draw, 7_919, budget.kind == "shots", int(budget.amount * 1e6)])
    rows = rng.permutation(train_rows)
    labels = targets[rows]
    if labels.ndim == 1:
        chosen = _per_class(labels, budget, rng)
    elif budget.kind == "fraction":
        chosen = _iterative_stratification(labels > 0, max(1, round(budget.amount * len(rows))))
    else:
        chosen = _shots_per_tag(labels > 0, int(budget.amount))
    return np.sort(rows[chosen])


def _per_class(labels, budget, rng):
    """Indices of a class-stratified choice: K of each class, or each class's share of the
    fraction's total, the shares' remainders rounded up for the largest first (Hamilton's
    method, ties in the draw's order), so that the total is the fraction of the split."""
    present, counts = np.unique(labels, return_counts=True)
    if budget.kind == "shots":
        taken = np.minimum(counts, int(budget.amount))
    else:
        quotas = budget.amount * counts
        taken = np.floor(quotas).astype(int)
        short = max(1, round(budget.amount * len(labels))) - taken.sum()
        largest_first = np.lexsort((rng.random(len(counts)), taken - quotas))  # ties in the draw's order
        taken[largest_first[:short]] += 1
    return np.concatenate([np.flatnonzero(labels == c)[:n] for c, n in zip(present, taken)])


def _iterative_stratification(tags, size):
    """Indices of about `size` rows of the (shuffled) multi-hot `tags`, split from the rest as
    Sechidis et al.'s iterative stratification splits two folds: the rarest tag among the rows
    left first, each of its rows to the side that still wants most of that tag (then most
    rows), each side wanting its share of every tag."""
    wanted = np.stack([tags.sum(0) * size / len(tags), tags.sum(0) * (len(tags) - size) / len(tags)])
    room = np.array([size, len(tags) - size], dtype=float)
    side = np.full(len(tags), -1)
    while (left := tags[side < 0].sum(0)).any():
        rarest = np.flatnonzero(left)[np.argmin(left[left > 0])]
        for row in np.flatnonzero(tags[:, rarest] & (side < 0)):
            best = np.flatnonzero(wanted[:, rarest] == wanted[:, rarest].max())
            side[row] = best[np.argmax(room[best])]
            wanted[side[row]] -= tags[row]
            room[side[row]] -= 1
    untagged = np.flatnonzero(side < 0)  # rows without a tag fill the subset's remaining room
    side[untagged[:max(int(room[0]), 0)]] = 0
    return np.flatnonzero(side == 0)


def _shots_per_tag(tags, shots):
    """Indices of rows of the (shuffled) multi-hot `tags` that give every tag at least `shots`
    positives (all it has, if fewer), rarest tag first."""
    taken = np.zeros(len(tags), dtype=bool)
    for tag in np.argsort(tags.sum(0), kind="stable"):
        short = shots - tags[taken, tag].sum()
        if short > 0:
            rows = np.flatnonzero(tags[:, tag] & ~taken)[:short]
            taken[rows] = True
    return np.flatnonzero(taken)
