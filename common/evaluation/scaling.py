"""Score against pretraining minutes as a curve: how much data is enough.

    python -m common.evaluation.scaling results/demo        # the fits; scaling.csv and scaling_curves.csv

For each model (and each way finetune.py adapted it: the adaptation column), task, probe
kind and test condition, the test score of the task's primary
metric at each pretraining subset (the study's draw, or the draws pooled where there are
several) is fitted with a saturating power law in the minutes D of pretraining audio,

    score(D) = s_inf - b * D^(-alpha)

s_inf the score more data approaches, alpha how fast. For a fixed alpha the law is linear in
(s_inf, b), so it is fitted by least squares on a grid of alpha (ALPHAS, log-spaced): no
starting point, no iteration that may not converge, and every bootstrap resample at once.
Where the best alpha sits at the grid's lower end the data cannot tell the law from its
limit, a straight line in log D (score = a + c * log10 D), and that log-linear fit is
reported instead, said so in the `form` column; with two subsets only the log-linear line is
fitted; with one, nothing.

Uncertainty comes from the same bootstrap as every interval (stats.py: probe seeds, subset
draws and test clips, the clips paired across subsets): the fit is repeated on each resample
and each quantity gets its 95% percentile interval. A curve whose log-linear slope has an
interval that holds 0 is reported as `flat`: the subsets do not tell more data from less.

Reported per curve: s_inf and alpha (power law), the slope per tenfold minutes (log-linear),
the minutes at which the fitted curve reaches 95% of the largest subset's score, and the
smallest subset whose score is above the untrained model's interval (the same probe kind
and condition). Minutes below the smallest subset or above the largest are extrapolations;
docs/scaling.md says how to read them.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..cli import ArgumentParser, UserError, existing_dir, positive_int, run
from ..data.subsets import CHECKPOINT_NAME, checkpoint_order
from ..training.distributed import add_device_option, resolve_device
from . import stats, tasks
from .noise import condition_order
from .probes import PROBES
from .results import model_and_adaptation, source

ALPHAS = np.geomspace(0.02, 4.0, 241)
TARGET = 0.95  # of the largest subset's score
CURVE_POINTS = 40
COLUMNS = ("task", "model", "adaptation", "budget", "probe", "condition", "metric", "subsets", "form", "s_inf",
           "s_inf_low", "s_inf_high", "alpha", "alpha_low", "alpha_high", "slope_per_decade", "slope_low", "slope_high",
           "minutes_95", "minutes_95_low", "minutes_95_high", "largest_minutes", "smallest_above_untrained",
           "method")
CURVE_COLUMNS = ("task", "model", "adaptation", "budget", "probe", "condition", "minutes", "value", "low", "high")
TEXT_COLUMNS = ("task", "model", "adaptation", "budget", "probe", "condition", "form", "smallest_above_untrained")


def power_law_fits(minutes, scores):
    """Least-squares fits of s_inf - b * D^-alpha to each column of `scores` (n, B): (s_inf,
    b, alpha), each (B,), alpha the best of ALPHAS."""
    x = minutes[None, :] ** -ALPHAS[:, None]                         # (A, n)
    x_mean, y_mean = x.mean(1, keepdims=True), scores.mean(0)        # (A, 1), (B,)
    xc, yc = x - x_mean, scores - y_mean                             # (A, n), (n, B)
    slope = (xc @ yc) / (xc ** 2).sum(1, keepdims=True)              # (A, B): -b
    sse = ((yc[None] - xc[:, :, None] * slope[:, None, :]) ** 2).sum(1)  # (A, B)
    best = sse.argmin(0)
    columns = np.arange(scores.shape[1])
    b = -slope[best, columns]
    s_inf = y_mean + b * x_mean[best, 0]
    return s_inf, b, ALPHAS[best]


def log_linear_fits(minutes, scores):
    """Least-squares lines a + c * log10 D through each column of `scores` (n, B): (a, c)."""
    x = np.log10(minutes)
    xc = x - x.mean()
    c = xc @ (scores - scores.mean(0)) / (xc ** 2).sum()
    return scores.mean(0) - c * x.mean(), c


@dataclass
class Curve:
    """The fit of one model, probe kind and condition over its subsets."""
    form: str                  # power law, log-linear, flat, or one subset
    minutes: np.ndarray        # (n,) the subsets'
    fitted: np.ndarray         # (parameters, 1 + B): each on the scores, then on each resample
    quantities: dict           # name: (1 + B,) values

    def predict(self, minutes):
        """(1 + B, len(minutes)): the fitted curve on the scores, then on each resample."""
        d = np.asarray(minutes, dtype=float)[None, :]
        if self.form == "power law":
            s_inf, b, alpha = (p[:, None] for p in self.fitted)
            return s_inf - b * d ** -alpha
        a, c = (p[:, None] for p in self.fitted)
        return a + c * np.log10(d)


def fit(minutes, values, resamples):
    """The Curve through scores `values` (n,) at `minutes` (n,), with `resamples` (n, B) of
    them from the bootstrap: the first row of every parameter and quantity is the fit to the
    scores themselves."""
    minutes, scores = np.asarray(minutes, float), np.column_stack([values, resamples])
    if len(minutes) < 2:
        return Curve("one subset", minutes, np.empty((0, 1 + resamples.shape[1])), {})
    a, c = log_linear_fits(minutes, scores)
    quantities = {"slope_per_decade": c}
    low, high = stats.percentile_interval(c[1:])
    form = "flat" if low <= 0 <= high else "log-linear"
    fitted = np.stack([a, c])
    if len(minutes) >= 3:
        s_inf, b, alpha = power_law_fits(minutes, scores)
        if alpha[0] > ALPHAS[0] and form != "flat":
            form, fitted = "power law", np.stack([s_inf, b, alpha])
            quantities.update(s_inf=s_inf, alpha=alpha)
    curve = Curve(form, minutes, fitted, quantities)
    if form != "flat":
        quantities["minutes_95"] = _minutes_to_reach(curve, TARGET * scores[np.argmax(minutes)])
    return curve


def _minutes_to_reach(curve, target):
    """(1 + B,): the minutes at which each fitted curve reaches `target` (1 + B,); nan where it
    never does (a curve falling with more data, or saturating below it)."""
    if curve.form == "power law":
        s_inf, b, alpha = curve.fitted
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            reached = (b / (s_inf - target)) ** (1 / alpha)
        return np.where((b > 0) & (s_inf > target), reached, np.nan)
    a, c = curve.fitted
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # inf: beyond any minutes, left out
        return np.where(c > 0, 10 ** ((target - a) / c), np.nan)


def _interval(values):
    finite = values[1:][np.isfinite(values[1:])]
    # an interval only where nearly every resample has the quantity
    return stats.percentile_interval(finite) if len(finite) >= 0.95 * (len(values) - 1) else (np.nan, np.nan)


def subset_numbers(numbers, model, probe, condition, metric):
    """{step budget: [(minutes, subset, Number)]} of a model's trained subsets, smallest first:
    the draws' pooled number where there are several draws, else the study's draw."""
    found = {}
    for key in numbers.units:
        m, checkpoint, p, c = key
        if (m, p, c) != (model, probe, condition) or checkpoint.startswith("untrained"):
            continue
        plain = checkpoint.removesuffix(stats.POOLED)
        pooled = (model, plain + stats.POOLED, probe, condition) in numbers.units
        if not stats.study_checkpoint(plain, budgets=True) or (pooled and not checkpoint.endswith(stats.POOLED)) \
                or CHECKPOINT_NAME.fullmatch(plain)["seed"]:  # a curve of pretraining seed 0's runs
            continue
        described = numbers.described.get((model, plain), {})
        if described.get("minutes"):
            found.setdefault(stats.budgets_of(plain)[0], []).append(
                (float(described["minutes"]), described["subset"], numbers.number(key, metric)))
    return {budget: sorted(points, key=lambda p: p[0]) for budget, points in found.items()}


def smallest_above_untrained(numbers, points, model, probe, condition, metric):
    """The first subset whose score is above the high end of the untrained model's interval;
    "none" if none is, "" without an untrained model."""
    untrained = numbers.number((model, "untrained", probe, condition), metric)
    if untrained is None:
        return ""
    high = untrained.interval()[1]
    return next((subset for _, subset, number in points if number.value > high), "none")


def curve_rows(numbers, method):
    """(a scaling.csv row per model, budget, probe kind and condition; the curves' rows)."""
    metric, rows, curves = numbers.task.primary, [], []
    for model, probe, condition in sorted({(k[0], k[2], k[3]) for k in numbers.units if k[0] != "handcrafted"},
                                          key=lambda k: (k[0], PROBES.index(k[1]), condition_order(k[2]))):
        for budget, points in subset_numbers(numbers, model, probe, condition, metric).items():
            minutes = np.array([p[0] for p in points])
            curve = fit(minutes, np.array([p[2].value for p in points]), np.stack([p[2].resamples for p in points]))
            cell = {"task": numbers.task.name, **dict(zip(("model", "adaptation"), model_and_adaptation(model))),
                    "budget": budget, "probe": probe, "condition": condition}
            rows.append({**cell, "metric": metric, "subsets": len(points), "form": curve.form,
                         **_quantities(curve), "largest_minutes": minutes.max(),
                         "smallest_above_untrained": smallest_above_untrained(numbers, points, model, probe,
                                                                              condition, metric),
                         "method": method})
            if len(curve.fitted):
                curves += _curve_points(curve, cell)
    return rows, curves


def _quantities(curve):
    out = {}
    for name, column in (("s_inf", "s_inf"), ("alpha", "alpha"), ("slope_per_decade", "slope"),
                         ("minutes_95", "minutes_95")):
        values = curve.quantities.get(name)
        point, (low, high) = (np.nan, (np.nan, np.nan)) if values is None else (values[0], _interval(values))
        out.update({name: point, f"{column}_low": low, f"{column}_high": high})
    return out


def _curve_points(curve, cell):
    grid = np.geomspace(curve.minutes.min(), curve.minutes.max(), CURVE_POINTS)
    predicted = curve.predict(grid)
    low, high = stats.percentile_interval(predicted[1:], axis=0)
    return [{**cell, "minutes": m, "value": v, "low": lo, "high": hi}
            for m, v, lo, hi in zip(grid, predicted[0], low, high)]


def compute(results_dir, resamples=stats.RESAMPLES, device="cpu"):
    """(fits, curves): DataFrames of every curve under results_dir, written beside the
    results as scaling.csv and scaling_curves.csv; read back when no predictions file or
    setting changed."""
    results_dir = Path(results_dir)
    folders = stats.task_dirs(results_dir)
    if not folders:
        raise UserError(f"no test predictions under {results_dir}: downstream.py keeps them beside each results "
                        f"CSV (<model>.predictions.npz); run it")
    paths = [results_dir / "scaling.csv", results_dir / "scaling_curves.csv"]
    record = results_dir / "scaling.provenance.json"
    now = stats.provenance(folders, resamples=resamples, alphas=[ALPHAS[0], ALPHAS[-1], len(ALPHAS)], target=TARGET,
                           columns=[COLUMNS, CURVE_COLUMNS])
    if (tables := stats.read_if_current(paths, record, now, TEXT_COLUMNS)) is not None:
        return tables
    method = (f"least squares over alpha in [{ALPHAS[0]:g}, {ALPHAS[-1]:g}]; 95% percentile intervals over "
              f"{resamples} bootstrap resamples (seeds, draws, clips)")
    rows, curves = [], []
    for folder in folders:
        folder_rows, folder_curves = curve_rows(stats.TaskNumbers(folder, resamples, device), method)
        rows += folder_rows
        curves += folder_curves
    stats.write_tables(paths, (pd.DataFrame(rows, columns=COLUMNS), pd.DataFrame(curves, columns=CURVE_COLUMNS)),
                       record, now)
    return stats.read_tables(paths, TEXT_COLUMNS)


def report(fits, chosen):
    """Per task, the curve of each model's probe kind chosen on validation (its largest subset's
    choice), clean test split."""
    lines = []
    clean = fits[fits.condition == "clean"]
    for task in dict.fromkeys(clean.task):
        mine = clean[clean.task == task]
        mine = mine[[chosen.get((task, source(r.model, r.adaptation))) == r.probe for r in mine.itertuples()]]
        width = max([14, *(len(source(r.model, r.adaptation)) for r in mine.itertuples())])
        lines += [f"\n{task}: {tasks.get(task).primary} against pretraining minutes, the probe chosen on valid, "
                  f"clean test split (95% intervals)",
                  f"  {'model':<{width}} {'budget':<11} {'probe':<6} {'n':>2} {'form':<10} {'s_inf':>22} {'alpha':>19} "
                  f"{'per 10x minutes':>24} {'minutes to 95%':>26} {'beats untrained from':>20}"]
        lines += [f"  {source(r.model, r.adaptation):<{width}} {r.budget or 'epochs':<11} {r.probe:<6} {r.subsets:>2} "
                  f"{r.form:<10} "
                  f"{_cell(r.s_inf, r.s_inf_low, r.s_inf_high):>22} {_cell(r.alpha, r.alpha_low, r.alpha_high):>19} "
                  f"{_cell(r.slope_per_decade, r.slope_low, r.slope_high, '+.3f'):>24} "
                  f"{_cell(r.minutes_95, r.minutes_95_low, r.minutes_95_high, '.3g'):>26} "
                  f"{r.smallest_above_untrained or '-':>20}" for r in mine.itertuples()]
    return "\n".join(lines)


def _cell(value, low, high, spec=".3f"):
    if not np.isfinite(value):
        return "-"
    interval = f" [{low:{spec}}, {high:{spec}}]" if np.isfinite(low) else " [-]"
    return f"{value:{spec}}{interval}"


def chosen_on_largest(results_dir):
    """{(task, model): the probe kind chosen on validation for the model's largest subset}."""
    chosen, largest = stats.chosen_probes(results_dir), {}
    for (task, model, checkpoint), probe in chosen.items():
        if stats.study_checkpoint(checkpoint) and not checkpoint.startswith("untrained"):
            if (task, model) not in largest or checkpoint_order(checkpoint) > checkpoint_order(largest[task, model][0]):
                largest[task, model] = (checkpoint, probe)
    return {key: probe for key, (_, probe) in largest.items()}


def main():
    parser = ArgumentParser(prog="python -m common.evaluation.scaling", description=__doc__.split("\n")[0])
    parser.add_argument("results_dir", type=existing_dir, metavar="RESULTS_DIR",
                        help="a folder of results/<data>, e.g. results/demo")
    parser.add_argument("--resamples", type=positive_int, default=stats.RESAMPLES,
                        help="bootstrap resamples (default %(default)s)")
    add_device_option(parser)
    args = parser.parse_args()
    fits, _ = compute(args.results_dir, args.resamples, resolve_device(args.device))
    print(report(fits, chosen_on_largest(args.results_dir)))
    print(f"\nevery model, probe kind and condition: {args.results_dir / 'scaling.csv'} (the curves: "
          f"{args.results_dir / 'scaling_curves.csv'}); docs/scaling.md reads them")


if __name__ == "__main__":
    run(main)
