"""Which train examples a probe learns from under a label budget (common/evaluation/labels.py)."""
import numpy as np
import pytest

from common.evaluation.labels import LabelBudget, budgets, select


def classes(n=600, k=12, seed=0):
    return np.random.default_rng(seed).integers(0, k, n)


def tags(n=1500, k=50, seed=0):
    """Multi-hot tags from common (30%) to rare (0.5%), as MTAT's top 50 are."""
    return (np.random.default_rng(seed).random((n, k)) < np.geomspace(0.3, 0.005, k)).astype(np.float32)


def test_a_fraction_keeps_every_classs_share():
    y, train = classes(), np.arange(500)
    chosen = select(y, train, LabelBudget("fraction", 0.1), 0)
    share = np.bincount(y[chosen], minlength=12) / np.bincount(y[train], minlength=12)
    assert np.all(np.abs(share - 0.1) < 0.03) and set(chosen) <= set(train)
    assert len(chosen) == 50  # the fraction of the split, exactly


def test_shots_take_k_of_every_class_or_all_a_class_has():
    y = np.concatenate([classes(), [12]])  # class 12 has one example
    chosen = select(y, np.arange(len(y)), LabelBudget("shots", 3), 0)
    assert np.bincount(y[chosen]).tolist() == [3] * 12 + [1]


@pytest.mark.parametrize("seed", range(3))
def test_iterative_stratification_keeps_each_tags_share_far_closer_than_chance(seed):
    t, train = tags(seed=seed), np.arange(1200)
    chosen = select(t, train, LabelBudget("fraction", 0.2), 0)
    positives = t[train].sum(0)
    error = np.abs(t[chosen].sum(0) / positives - 0.2)
    random = np.random.default_rng(seed).choice(train, len(chosen), replace=False)
    assert len(chosen) == pytest.approx(240, abs=10)
    assert error[positives >= 50].max() < 0.04  # a share of a handful of positives is rounding
    assert error.mean() < 0.5 * np.abs(t[random].sum(0) / positives - 0.2).mean()
    assert np.all(t[chosen].sum(0) >= 1)  # no tag left without a positive


def test_shots_give_every_tag_at_least_k_positives():
    t = tags()
    chosen = select(t, np.arange(len(t)), LabelBudget("shots", 4), 0)
    assert np.all(t[chosen].sum(0) >= np.minimum(4, t.sum(0)))
    assert len(chosen) < len(t) / 4  # and not much more than that


def test_draws_are_seeded_and_differ():
    y, train, budget = classes(), np.arange(500), LabelBudget("fraction", 0.2)
    assert np.array_equal(select(y, train, budget, 1), select(y, train, budget, 1))
    assert not np.array_equal(select(y, train, budget, 0), select(y, train, budget, 1))


def test_budgets_name_themselves_and_leave_out_the_whole_split():
    named = budgets([1.0, 0.5, 0.01], [2])
    assert [b.name for b in named] == ["labels0.01", "labels0.5", "shots2"]
