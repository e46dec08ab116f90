"""The statistics checked against known truth: synthetic test sets whose population metric is
known, null sets where no difference exists, and scikit-learn's and scipy's own answers."""
import csv
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import bootstrap, norm, rankdata
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

import downstream
from common.evaluation import claims, scaling, stats
from common.evaluation.metrics import key_weighted_score
from common.evaluation.predictions import Predictions
from common.evaluation.weighted_metrics import resampled

REPO = Path(__file__).resolve().parent.parent


def weights(n, resamples=1000, seed=0):
    return torch.as_tensor(stats.counts(np.random.default_rng(seed), n, resamples))


def tags_test_set(rng, n=400, tags=4, prevalence=0.25, separation=1.0):
    """Tag scores whose population ROC-AUC is Phi(separation / sqrt 2) for every tag."""
    y = (rng.random((n, tags)) < prevalence).astype(np.uint8)
    return y, (rng.standard_normal((n, tags)) + separation * y).astype(np.float32)


def test_weighted_metrics_equal_scikit_learn_on_the_explicit_resamples_ties_included():
    rng = np.random.default_rng(1)
    y, scores = tags_test_set(rng, n=120, tags=5)
    scores = np.round(scores, 1)  # many tied scores, within and across the classes
    classes = rng.integers(0, 6, 120)
    class_scores = rng.standard_normal((120, 6))
    drawn = rng.integers(0, 120, (4, 120))
    w = torch.as_tensor(np.stack([np.bincount(d, minlength=120) for d in drawn]), dtype=torch.float32)
    tags, single = resampled("tags", y, scores, w), resampled("classes", classes, class_scores, w)
    for b, rows in enumerate(drawn):
        yb, sb = y[rows], scores[rows]
        kept = [c for c in range(5) if 0 < yb[:, c].sum() < len(rows)]
        assert tags["roc_auc"][b] == pytest.approx(np.mean([roc_auc_score(yb[:, c], sb[:, c]) for c in kept]))
        assert tags["pr_auc"][b] == pytest.approx(np.mean([average_precision_score(yb[:, c], sb[:, c]) for c in kept]))
        guesses = class_scores[rows].argmax(1)
        assert single["accuracy"][b] == pytest.approx(accuracy_score(classes[rows], guesses))
        assert single["f1_macro"][b] == pytest.approx(f1_score(classes[rows], guesses, average="macro"))
    keys, key_scores = rng.integers(0, 24, 120), rng.standard_normal((120, 24))
    assert resampled("key", keys, key_scores, torch.ones(1, 120))["weighted_score"][0] == pytest.approx(
        key_weighted_score(keys, key_scores.argmax(1)))


@pytest.mark.slow
def test_interval_covers_the_population_roc_auc_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    truth = norm.cdf(1 / np.sqrt(2))
    covered = []
    for _ in range(300):
        y, scores = tags_test_set(rng)
        low, high = stats.percentile_interval(resampled("tags", y, scores, weights(400))["roc_auc"].numpy())
        covered.append(low <= truth <= high)
    assert 0.92 <= np.mean(covered) <= 0.98


def paired(y, a, b, w):
    """The bootstrapped Difference of two classifiers' accuracies (their guesses a and b) on labels y."""
    differences = resampled("classes", y, np.eye(2)[a], w)["accuracy"] - resampled("classes", y, np.eye(2)[b],
                                                                                     w)["accuracy"]
    return stats.Difference.bootstrapped(np.mean(a == y) - np.mean(b == y), differences.numpy())


@pytest.mark.slow
def test_paired_p_values_reject_a_true_null_5_percent_of_the_time():
    rng = np.random.default_rng(3)
    n, rejected = 200, []
    for i in range(1000):
        y = rng.integers(0, 2, n)
        a, b = [np.where(rng.random(n) < 0.7, y, 1 - y) for _ in range(2)]  # two classifiers, both 70% right
        rejected.append(paired(y, a, b, weights(n, seed=i)).two_sided_p() < 0.05)
    assert 0.03 <= np.mean(rejected) <= 0.07


def test_a_known_difference_is_found_and_its_interval_holds_it():
    rng = np.random.default_rng(4)
    n = 400
    y = rng.integers(0, 2, n)
    better, worse = np.where(rng.random(n) < 0.85, y, 1 - y), np.where(rng.random(n) < 0.70, y, 1 - y)
    d = paired(y, better, worse, weights(n))
    low, high = d.interval()
    assert d.two_sided_p() < 0.01 and low < 0.15 < high


def test_percentile_interval_matches_scipy_bootstrap_on_a_mean():
    rng = np.random.default_rng(5)
    correct = (rng.random(300) < 0.6).astype(float)
    ours = stats.percentile_interval(resampled("classes", correct.astype(int), np.eye(2)[np.ones(300, int)],
                                               weights(300, resamples=5000))["accuracy"].numpy())
    theirs = bootstrap((correct,), np.mean, n_resamples=5000, method="percentile", random_state=0).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), abs=0.01)


def test_holm_adjusts_as_the_1979_procedure_does():
    # sorted 0.01, 0.02, 0.03, 0.04 -> 4 * 0.01, 3 * 0.02, 2 * 0.03, 1 * 0.04, kept non-decreasing
    assert stats.holm([0.04, 0.01, 0.03, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_p_values_resolve_beyond_one_over_the_resamples_for_holm_over_large_families():
    resamples = np.random.default_rng(6).normal(0.2, 0.02, 1000)  # ten standard errors from 0
    d = stats.Difference.bootstrapped(0.2, resamples)
    assert d.two_sided_p() < 1e-6 and stats.holm([d.two_sided_p()] * 200)[0] < 0.05


def test_tost_calls_equivalent_only_what_lies_within_the_margin():
    assert stats.Difference(0.001, 0.002).tost_p(0.01) < 0.05  # tight and near 0
    assert stats.Difference(0.0, 0.02).tost_p(0.01) > 0.05  # near 0 but too uncertain to tell
    assert stats.Difference(0.03, 0.002).tost_p(0.01) > 0.5


def test_two_level_weights_resample_draws_then_seeds_and_sum_to_one():
    w = stats.unit_weights([3, 2], 2000, np.random.default_rng(7))
    assert w.shape == (2000, 5) and np.allclose(w.sum(1), 1)
    assert np.allclose(w.mean(0), [1 / 6] * 3 + [1 / 4] * 2, atol=0.02)


def test_hanley_mcneil_standard_error_is_close_to_a_simulation_and_errs_wide():
    rng = np.random.default_rng(8)
    scores = np.c_[rng.standard_normal((4000, 50)) + 1.5, rng.standard_normal((4000, 200))]
    ranks = rankdata(scores, axis=1)[:, :50].sum(1)
    aucs = (ranks - 50 * 51 / 2) / (50 * 200)
    se = claims.hanley_mcneil_se(norm.cdf(1.5 / np.sqrt(2)), 50, 200)
    assert np.std(aucs) <= se <= 1.25 * np.std(aucs)  # its exponential model is conservative for binormal scores


@pytest.mark.parametrize("claim, difference, verdict", [
    (1, stats.Difference(0.001, 0.002), claims.HOLDS), (1, stats.Difference(0.1, 0.01), claims.FAILS),
    (1, stats.Difference(0.005, 0.05), claims.UNDECIDED), (2, stats.Difference(0.05, 0.01), claims.HOLDS),
    (3, stats.Difference(0.0, 0.001), claims.FAILS), (4, stats.Difference(-0.2, 0.02), claims.FAILS)])
def test_claims_verdicts_follow_their_tests(claim, difference, verdict):
    check = {"claim": claim, "task": "pitch", "metric": "accuracy", "d": difference}
    assert claims.verdicts([check], stats.MARGINS)[0]["verdict"] == verdict


SEPARATION = {"untrained": 0.5, "1": 0.8, "5": 1.5, "20": 1.8, "none": 0.5}
MINUTES = {"untrained": "0.00", "1": "0.87", "5": "4.33", "20": "17.33", "none": ""}


def write_study(folder, seed, subsets=("5",), label_budgets=()):
    """A pitch task's results and predictions: vggish untrained and `subsets` (better with
    more minutes), hand-crafted, 2 seeds, clean and 0 dB; also probes on fewer labels, named
    <checkpoint>+<budget>, for each of `label_budgets`. Each probe's outputs are drawn from a
    generator of their own, so that adding some leaves the others as they were."""
    y = np.random.default_rng(seed).integers(0, 12, 60)
    kept, rows = Predictions(), []
    for model, checkpoints in (("vggish", ("untrained", *subsets)), ("handcrafted", ("none",))):
        for checkpoint, budget in [(c, b) for c in checkpoints for b in ("", *label_budgets)]:
            name = checkpoint + (f"+{budget}" if budget else "")
            described = {"model": model, "checkpoint": name, "subset": "" if checkpoint == "none" else checkpoint,
                         "draw": "0", "minutes": MINUTES[checkpoint], "labels": 10 if budget else 40,
                         "label_budget": budget or "all", "adaptation": "probe", "probe": "linear",
                         "metric": "accuracy", "value": 0.5}
            for probe_seed in range(2):
                for condition in ("clean", "0"):
                    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), probe_seed, condition == "0"])
                    outputs = rng.standard_normal((60, 12)).astype(np.float16)
                    outputs[np.arange(60), y] += SEPARATION[checkpoint]
                    kept.add(name, "linear", probe_seed, condition, outputs)
                    rows.append({**described, "seed": probe_seed, "split": "test", "snr": condition})
                rows.append({**described, "seed": probe_seed, "split": "valid", "snr": "clean"})
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{model}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, downstream.COLUMNS)
            writer.writeheader()
            writer.writerows(r for r in rows if r["model"] == model)
        mine = Predictions()
        for i in range(len(kept.outputs)):
            if kept.checkpoint[i].startswith("none") == (model == "handcrafted"):
                mine.add(kept.checkpoint[i], kept.probe[i], kept.seed[i], kept.condition[i], kept.outputs[i])
        mine.save(folder / f"{model}.predictions.npz", np.arange(60).astype(str), y)
    return y, kept


def test_stats_tables_hold_scikit_learns_numbers_and_are_computed_once(tmp_path):
    y, kept = write_study(tmp_path / "demo" / "pitch", 9)
    intervals, comparisons = stats.compute(tmp_path / "demo")
    clean = intervals[(intervals.condition == "clean") & (intervals.metric == "accuracy")]
    five = clean[clean.checkpoint == "5"]
    expected = np.mean([accuracy_score(y, kept.outputs[i].astype(np.float32).argmax(1)) for i in range(len(kept.seed))
                        if (kept.checkpoint[i], kept.condition[i]) == ("5", "clean")])
    assert five.value.iloc[0] == pytest.approx(expected) and five.low.iloc[0] < expected < five.high.iloc[0]
    assert set(comparisons.family) == {"trained vs untrained", "trained vs hand-crafted", "clean vs condition"}
    trained = comparisons[(comparisons.family == "trained vs untrained") & (comparisons.metric == "accuracy")]
    assert trained.significant.iloc[0] and trained.difference.iloc[0] > 0
    written = (tmp_path / "demo" / "intervals.csv").stat().st_mtime_ns
    stats.compute(tmp_path / "demo")
    assert (tmp_path / "demo" / "intervals.csv").stat().st_mtime_ns == written  # nothing changed: read back


@pytest.mark.slow
@pytest.mark.parametrize("options, message", [
    ([], "no test predictions under"), (["--margin", "auc=0.1"], "--margin auc=0.1: the metrics are")])
def test_stats_errors_end_in_one_line(tmp_path, options, message):
    out = subprocess.run([sys.executable, "-m", "common.evaluation.stats", str(tmp_path), *options], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and message in out.stderr


def test_label_budgets_are_compared_with_their_twins_in_families_of_their_own(tmp_path):
    """Probes on 2 shots compare with the untrained and hand-crafted features' probes on 2
    shots; adding them leaves the whole split's comparisons and their Holm correction as
    they were."""
    write_study(tmp_path / "alone" / "pitch", 3)
    write_study(tmp_path / "both" / "pitch", 3, label_budgets=("shots2",))
    alone, both = stats.compute(tmp_path / "alone")[1], stats.compute(tmp_path / "both")[1]
    shots = both[both.label_budget == "shots2"]
    assert set(zip(shots.checkpoint_a, shots.checkpoint_b)) >= {("5+shots2", "untrained+shots2"),
                                                               ("5+shots2", "none+shots2")}
    whole = both[both.label_budget == "all"].reset_index(drop=True)
    pd.testing.assert_frame_equal(whole.drop(columns="method"), alone.drop(columns="method"))


def test_scaling_fits_the_subsets_of_the_results_and_names_the_first_above_untrained(tmp_path):
    write_study(tmp_path / "demo" / "pitch", 4, subsets=("1", "5", "20"))
    fits, curves = scaling.compute(tmp_path / "demo")
    clean = fits[(fits.model == "vggish") & (fits.condition == "clean")].iloc[0]
    assert clean.subsets == 3 and clean.form in ("power law", "log-linear") and clean.slope_per_decade > 0
    assert clean.smallest_above_untrained == "5"  # subset 1's separation is too close to the untrained one's
    drawn = curves[(curves.model == "vggish") & (curves.condition == "clean")]
    assert drawn.minutes.min() == pytest.approx(0.87) and drawn.minutes.max() == pytest.approx(17.33)
    assert (drawn.low <= drawn.value).all() and (drawn.value <= drawn.high).all()


def test_the_studys_published_numbers_are_checked_with_intervals_from_their_test_sizes():
    checks = claims.verdicts(claims.study_checks(), stats.MARGINS)
    assert {c: sum(check["claim"] == c for check in checks) for c in (1, 2, 3, 4)} == {1: 55, 2: 27, 3: 112, 4: 0}
    key = [c for c in checks if c["task"] == "key" and c["claim"] == 1]
    assert key and all(c["verdict"] == claims.UNDECIDED for c in key)  # 128 test tracks resolve none of them
    instrument = {"metric": "accuracy", "value": 0.8, "support": 582}
    assert claims.published_se(instrument) == pytest.approx(np.sqrt(0.8 * 0.2 / 582))
