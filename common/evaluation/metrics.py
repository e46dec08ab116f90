"""The downstream metrics, computed on numpy arrays of labels and probe outputs.

Tags (tagging, multi-label tasks of one's own): macro ROC-AUC and macro PR-AUC (average
precision) over the tags that have both positive and negative test clips, with ties handled
as scikit-learn does. Classes (pitch, instrument, single-label tasks of one's own):
accuracy and macro F1 over the classes that occur in the labels or the predictions. Key:
accuracy and the MIREX weighted score (fifth 0.5, relative 0.3, parallel 0.2), taken from
a 24 x 24 table that mir_eval fills once. The tests compare every one of them with
scikit-learn's or mir_eval's.
"""
from functools import lru_cache

import numpy as np
from scipy.stats import rankdata

from ..data.beatport import KEYS


def roc_auc_macro(y_true, scores):
    aucs = []
    for c in range(y_true.shape[1]):
        positives = y_true[:, c] > 0
        n_pos, n_neg = positives.sum(), (~positives).sum()
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(scores[:, c])  # average ranks for ties
        aucs.append((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs))


def average_precision_macro(y_true, scores):
    values = []
    for c in range(y_true.shape[1]):
        truth = y_true[:, c] > 0
        if truth.sum() == 0 or truth.all():
            continue
        order = np.argsort(-scores[:, c], kind="mergesort")
        s, t = scores[order, c], truth[order]
        last_of_threshold = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # tied scores form one threshold
        true_positives = np.cumsum(t)[last_of_threshold]
        precision = true_positives / (last_of_threshold + 1)
        recall = true_positives / truth.sum()
        values.append(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return float(np.mean(values))


def accuracy(y_true, y_pred):
    return float(np.mean(y_true == y_pred))


def f1_macro(y_true, y_pred):
    scores = []
    for c in np.union1d(y_true, y_pred):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp, fn = np.sum((y_pred == c) & (y_true != c)), np.sum((y_pred != c) & (y_true == c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


@lru_cache(maxsize=1)
def key_score_table():
    """table[reference, estimate]: mir_eval's weighted score between two of the 24 keys."""
    import mir_eval
    return np.array([[mir_eval.key.weighted_score(r, e) for e in KEYS] for r in KEYS])


def key_weighted_score(y_true, y_pred):
    return float(np.mean(key_score_table()[y_true, y_pred]))


def task_metrics(kind, y_true, outputs):
    """{metric: value} for probe outputs (tag scores, or class scores whose argmax is the
    guess) on a task of this kind (common/evaluation/tasks.py)."""
    if kind == "tags":
        return {"roc_auc": roc_auc_macro(y_true, outputs), "pr_auc": average_precision_macro(y_true, outputs)}
    y_pred = outputs.argmax(axis=1)
    if kind == "key":
        return {"accuracy": accuracy(y_true, y_pred), "weighted_score": key_weighted_score(y_true, y_pred)}
    return {"accuracy": accuracy(y_true, y_pred), "f1_macro": f1_macro(y_true, y_pred)}


# per kind of task: the metric by which probes and checkpoints are chosen and figures drawn
PRIMARY = {"tags": "roc_auc", "classes": "accuracy", "key": "weighted_score"}
# and every metric task_metrics gives, the primary one first
METRICS = {"tags": ("roc_auc", "pr_auc"), "classes": ("accuracy", "f1_macro"), "key": ("weighted_score", "accuracy")}
