import mir_eval
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

from common.data.beatport import KEYS
from common.evaluation import metrics


@pytest.fixture
def tagging():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 12)) < 0.2).astype(int)
    y[:, 3] = 0  # a tag absent from the test set is left out, as scikit-learn would refuse it
    scores = y * rng.random((200, 12)) + rng.random((200, 12))
    scores[:50, 5] = 0.5  # ties
    return y, np.round(scores, 2)  # more ties


def test_tagging_metrics_match_scikit_learn(tagging):
    y, scores = tagging
    kept = [c for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)]
    assert metrics.roc_auc_macro(y, scores) == pytest.approx(
        roc_auc_score(y[:, kept], scores[:, kept], average="macro"))
    assert metrics.average_precision_macro(y, scores) == pytest.approx(
        average_precision_score(y[:, kept], scores[:, kept], average="macro"))


def test_classification_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 14, 300), rng.integers(0, 13, 300)
    y_pred[:120] = y_true[:120]
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))
    assert metrics.f1_macro(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_key_score_matches_mir_eval():
    rng = np.random.default_rng(2)
    y_true, y_pred = rng.integers(0, 24, 500), rng.integers(0, 24, 500)
    y_pred[:100] = y_true[:100]
    expected = np.mean([mir_eval.key.weighted_score(KEYS[t], KEYS[p]) for t, p in zip(y_true, y_pred)])
    assert metrics.key_weighted_score(y_true, y_pred) == pytest.approx(expected)
    assert metrics.key_score_table()[KEYS.index("C major"), KEYS.index("G major")] == 0.5
    assert metrics.key_score_table()[KEYS.index("C major"), KEYS.index("A minor")] == 0.3
