"""Scaling fits (common/evaluation/scaling.py) against curves of known parameters."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.evaluation import scaling, stats

REPO = Path(__file__).resolve().parent.parent
MINUTES = np.array([4.9, 9.7, 24.3, 48.6, 97.1, 242.8, 485.6, 7407.0])  # the real MTAT subsets'


def power_law(minutes, s_inf=0.9, b=0.3, alpha=0.5):
    return s_inf - b * minutes ** -alpha


def noisy(curve, rng, noise=0.003, resamples=400):
    """Scores of a curve with noise, and resamples around them as the bootstrap gives them."""
    values = curve + rng.normal(0, noise, len(curve))
    return values, values[:, None] + rng.normal(0, noise, (len(curve), resamples))


@pytest.mark.parametrize("seed", range(3))
def test_known_power_law_parameters_are_recovered_within_their_intervals(seed):
    rng = np.random.default_rng(seed)
    fit = scaling.fit(MINUTES, *noisy(power_law(MINUTES), rng))
    assert fit.form == "power law"
    for name, truth, tolerance in (("s_inf", 0.9, 0.01), ("alpha", 0.5, 0.1)):
        values = fit.quantities[name]
        low, high = stats.percentile_interval(values[1:])
        assert abs(values[0] - truth) < tolerance and low <= truth <= high, (name, values[0], low, high)


def test_minutes_to_95_percent_inverts_the_fitted_law():
    """On an exact power law the fit is the law, and the minutes at which it reaches 95% of
    the largest subset's score are the law's own: ((b / (s_inf - target)) ^ (1 / alpha))."""
    curve = power_law(MINUTES, 0.8, 0.4, 0.7)
    fit = scaling.fit(MINUTES, curve, np.repeat(curve[:, None], 5, 1) + 1e-6 * np.arange(5))
    target = 0.95 * curve[-1]
    assert fit.quantities["minutes_95"][0] == pytest.approx((0.4 / (0.8 - target)) ** (1 / 0.7), rel=0.05)
    np.testing.assert_allclose(fit.predict(MINUTES)[0], curve, atol=2e-3)


def test_a_flat_curve_is_reported_as_flat():
    rng = np.random.default_rng(0)
    fit = scaling.fit(MINUTES, *noisy(np.full(len(MINUTES), 0.7), rng, noise=0.01))
    assert fit.form == "flat" and "minutes_95" not in fit.quantities and "s_inf" not in fit.quantities


def test_a_straight_line_in_log_minutes_is_fitted_as_one_and_said_so():
    """A score that grows by the same amount every tenfold minutes has no plateau: the power
    law's best exponent sits at the grid's lower end, and the log-linear fit is reported."""
    rng = np.random.default_rng(1)
    fit = scaling.fit(MINUTES, *noisy(0.5 + 0.05 * np.log10(MINUTES), rng))
    assert fit.form == "log-linear"
    assert fit.quantities["slope_per_decade"][0] == pytest.approx(0.05, abs=0.005)


def test_one_subset_gives_no_curve_and_two_give_a_line():
    rng = np.random.default_rng(2)
    assert scaling.fit(MINUTES[:1], *noisy(power_law(MINUTES[:1]), rng)).form == "one subset"
    assert scaling.fit(MINUTES[:2], *noisy(power_law(MINUTES[:2]), rng)).form == "log-linear"


def test_power_law_fits_every_resample_as_one_least_squares_fit():
    """The grid fit over alpha, vectorised over resamples, finds for each column what a fit of
    that column alone finds."""
    rng = np.random.default_rng(3)
    scores = np.stack([power_law(MINUTES, 0.9, 0.3, a) for a in (0.2, 0.5, 1.5)], 1) + rng.normal(0, 1e-4, (8, 3))
    s_inf, b, alpha = scaling.power_law_fits(MINUTES, scores)
    for column in range(3):
        alone = scaling.power_law_fits(MINUTES, scores[:, [column]])
        assert (s_inf[column], b[column], alpha[column]) == pytest.approx([v[0] for v in alone])
    assert alpha == pytest.approx([0.2, 0.5, 1.5], rel=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("options, message", [([], "no test predictions under"),
                                              (["--resamples", "0"], "must be a positive integer")])
def test_scaling_errors_end_in_one_line(tmp_path, options, message):
    out = subprocess.run([sys.executable, "-m", "common.evaluation.scaling", str(tmp_path), *options], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and message in out.stderr
