"""The downstream metrics of metrics.py on many bootstrap resamples of the test clips at once.

A bootstrap resample of n test clips draws n of them with replacement; it is the same as
weighting every clip by how many times it was drawn. Each metric here takes those counts
for B resamples, weights (B, clips), and gives its value on every resample, (B,), without
building a single resample: macro ROC-AUC and average precision from one sort of each tag's
scores and cumulative sums of the weights along it (tied scores kept together as one
threshold, as scikit-learn does), accuracy, the key score and macro F1 from weighted counts
(products of the weights with 0/1 tables). The cost is a few passes over the (B, clips)
weights per tag, not B calls of a metric. With weights of one, each equals metrics.py's
value; tests/test_stats.py checks every one against scikit-learn on explicit resamples.
Weights are counts (stats.py keeps them as uint8), summed in int32 and multiplied in
float64, so every resample's value is exact.
"""
import numpy as np
import torch

from .metrics import key_score_table


def _columns(weights, columns):
    """weights[:, columns]; on a CPU through numpy's take, which gathers the columns of a
    (B, clips) array several times faster than torch's indexing."""
    if weights.device.type == "cpu":
        return torch.from_numpy(np.take(weights.numpy(), columns.numpy(), axis=1))
    return weights[:, columns]


def _cumulative(padded, columns):
    """(B, len(columns) + 1) int32: the weights of `columns` summed cumulatively after a
    leading 0 (column 0 of `padded`, the weights after a column of zeros), exact for integer
    weights."""
    first = torch.zeros(1, dtype=columns.dtype, device=columns.device)
    return torch.cumsum(_columns(padded, torch.cat([first, columns + 1])), 1, dtype=torch.int32)


def _macro(values, valid):
    """The mean over the valid tags of each resample: values, valid (B, tags)."""
    return torch.where(valid, values, 0).sum(1) / valid.sum(1).clamp(min=1)


def tag_metrics(y, scores, weights):
    """(macro ROC-AUC, macro average precision) over the tags with positive and negative clips
    in the resample. Per tag, the positives' and negatives' weights are summed along their
    sorted scores; each positive clip then reads off the negative weight scored below it
    (ROC-AUC, a tie counting half) and the weights scored at or above it (the precision at its
    threshold, which scikit-learn's average precision weights by the recall it adds)."""
    aucs, precisions, valid = [], [], []
    padded = torch.cat([torch.zeros_like(weights[:, :1]), weights], 1)
    for c in range(scores.shape[1]):
        positive = y[:, c] > 0
        pos_scores, pos_order = torch.sort(scores[positive, c], stable=True)
        neg_scores, neg_order = torch.sort(scores[~positive, c], stable=True)
        pos_cum = _cumulative(padded, torch.nonzero(positive)[:, 0][pos_order])
        neg_cum = _cumulative(padded, torch.nonzero(~positive)[:, 0][neg_order])
        n_pos, n_neg = pos_cum[:, -1:].double(), neg_cum[:, -1:].double()
        lower = torch.searchsorted(neg_scores, pos_scores, right=False)  # negatives strictly below
        upper = torch.searchsorted(neg_scores, pos_scores, right=True)
        first = torch.searchsorted(pos_scores, pos_scores, right=False)  # first positive of its tie
        below, tied = neg_cum[:, lower].double(), (neg_cum[:, upper] - neg_cum[:, lower]).double()
        w_pos = (pos_cum[:, 1:] - pos_cum[:, :-1]).double()
        pos_above = n_pos - pos_cum[:, first].double()
        precision = pos_above / (pos_above + n_neg - below).clamp(min=1e-12)
        aucs.append((w_pos * (below + tied / 2)).sum(1) / (n_pos * n_neg).clamp(min=1e-12)[:, 0])
        precisions.append((w_pos * precision).sum(1) / n_pos.clamp(min=1e-12)[:, 0])
        valid.append((n_pos[:, 0] > 0) & (n_neg[:, 0] > 0))
    valid = torch.stack(valid, 1)
    return _macro(torch.stack(aucs, 1), valid), _macro(torch.stack(precisions, 1), valid)


def _weighted_mean(per_clip, weights):
    return (weights.double() @ per_clip.double()) / weights.sum(1, dtype=torch.float64)


def accuracy(y, guesses, weights):
    return _weighted_mean((y == guesses).double(), weights)


def key_weighted_score(y, guesses, weights):
    table = torch.as_tensor(key_score_table(), device=weights.device)
    return _weighted_mean(table[y, guesses], weights)


def f1_macro(y, guesses, weights, n_classes):
    """Macro F1 over the classes that occur in the resample's labels or guesses."""
    truth = torch.nn.functional.one_hot(y, n_classes).double()
    guessed = torch.nn.functional.one_hot(guesses, n_classes).double()
    w = weights.double()
    tp, fp, fn = w @ (truth * guessed), w @ ((1 - truth) * guessed), w @ (truth * (1 - guessed))
    present = (tp + fp + fn) > 0
    return _macro(2 * tp / (2 * tp + fp + fn).clamp(min=1e-12), present)


def resampled(kind, y, outputs, weights):
    """{metric: (B,) values} of the metrics.py metrics of a task of `kind` (tags, classes,
    key), for probe outputs (clips, classes) and bootstrap weights (B, clips); numpy or
    torch inputs, on the weights' device."""
    device = weights.device
    y = torch.as_tensor(np.asarray(y), device=device)
    outputs = torch.as_tensor(np.asarray(outputs, dtype=np.float32), device=device)
    if kind == "tags":
        auc, precision = tag_metrics(y, outputs, weights)
        return {"roc_auc": auc, "pr_auc": precision}
    guesses = outputs.argmax(1)
    y = y.long()
    if kind == "key":
        return {"accuracy": accuracy(y, guesses, weights), "weighted_score": key_weighted_score(y, guesses, weights)}
    return {"accuracy": accuracy(y, guesses, weights), "f1_macro": f1_macro(y, guesses, weights, outputs.shape[1])}
