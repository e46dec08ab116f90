"""Every test number with its confidence interval, and paired tests of the study's comparisons.

    python -m common.evaluation.stats results/demo             # the tables; intervals.csv and comparisons.csv
    python -m common.evaluation.stats results/demo --margin roc_auc=0.005 --resamples 2000

Reads the test predictions downstream.py keeps (predictions.py) and resamples them:
- A number of the results (a model's checkpoint, probe kind and test condition, the mean over
  probe seeds, and over subset draws for a pooled row) gets a 95% percentile bootstrap
  interval. Each resample draws the subset draws with replacement, then the probe seeds
  within each draw, then the test clips (stratified: the same clips for every number of a
  task), and computes the metric on that resample (weighted_metrics.py: vectorised, B
  resamples at once).
- A comparison of two numbers on the same test clips uses the same clip resamples for both
  (a paired bootstrap): the difference with its 95% percentile interval and a two-sided
  p-value from the normal approximation with the bootstrap's standard error (Difference).
  Holm's step-down correction is applied within each family: one kind of comparison, for
  one model on one task and metric (and one step budget and label budget, where there are
  runs of train.py --budget or probes on fewer labels).
- Where the question is "comparable", the two one-sided tests (Schuirmann's TOST) against a
  margin per metric (MARGINS; --margin to change one): equivalent when both one-sided
  p-values are below 5%, its p-value the larger of the two.
  "No significant difference" alone is never read as "the same".
The families: trained against its untrained twin, against the hand-crafted features,
against the next larger subset; each probe kind against the larger one of its recipe (slp
against mlp, linear against mlp1, mlp1 against mlp2); clean against each test condition.

Writes <results>/intervals.csv and <results>/comparisons.csv (with stats.provenance.json:
they are computed again only when a predictions file or a setting changed). docs/statistics.md
explains the methods and their references.
"""
import hashlib
import json
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm

from ..atomic import write_json, write_text
from ..cli import ArgumentParser, UserError, existing_dir, positive_int, run
from ..data.subsets import CHECKPOINT_NAME, checkpoint_order
from ..training.distributed import add_device_option, resolve_device
from . import predictions, results, tasks
from .labels import WHOLE_SPLIT
from .metrics import METRICS
from .noise import CLEAN, DEFORMATIONS, condition_order
from .probes import PROBES
from .selection import best_probes
from .weighted_metrics import resampled

RESAMPLES = 1000
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
MARGINS = {"roc_auc": 0.01, "pr_auc": 0.02, "accuracy": 0.02, "f1_macro": 0.02, "weighted_score": 0.02}
SEED = 0
LARGER_PROBE = {"slp": "mlp", "linear": "mlp1", "mlp1": "mlp2"}
FAMILIES = ("trained vs untrained", "trained vs hand-crafted", "subset vs next larger", "probe vs larger probe",
            "clean vs condition", "fine-tuned vs probed")
METHOD = (f"percentile bootstrap, {CONFIDENCE:.0%}: subset draws, then probe seeds, then test clips; "
          f"{{resamples}} resamples")
DESCRIBED = ("layer", "subset", "draw", "budget", "train_steps", "train_flops", "minutes", "labels", "label_budget",
             "label_draw")  # the results' columns that say what a checkpoint's number was made from
INTERVAL_COLUMNS = ("task", "model", "adaptation", "checkpoint", *DESCRIBED, "probe", "condition", "metric", "value",
                    "low", "high", "seeds", "draws", "clips", "method")
COMPARISON_COLUMNS = ("task", "family", "model", "adaptation", "budget", "label_budget", "model_a", "adaptation_a",
                      "checkpoint_a", "probe_a", "condition_a", "model_b", "adaptation_b", "checkpoint_b", "probe_b",
                      "condition_b", "metric", "difference", "low", "high", "p", "p_holm", "significant", "margin",
                      "p_tost", "equivalent", "method")
POOLED = " (draws)"  # the name of a limited subset's number pooled over its draws: "5 (draws)"


def counts(rng, n, resamples):
    """(resamples, n): how often each of n items is drawn in each bootstrap resample (uint8
    where they fit, which halves the memory the metrics read)."""
    drawn = rng.integers(0, n, (resamples, n)) + n * np.arange(resamples)[:, None]
    times = np.bincount(drawn.ravel(), minlength=resamples * n).reshape(resamples, n)
    return times.astype(np.uint8 if times.max() < 256 else np.int32)


def percentile_interval(values, confidence=CONFIDENCE, axis=None):
    """(low, high) of `values`, or of each of its slices along `axis`."""
    return tuple(np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2], axis=axis))


@dataclass
class Difference:
    """A difference between two numbers, taken as normal around its value with standard error
    `se`: from its bootstrap resamples (then `resamples` gives the percentile interval), or
    from a formula. P-values from the normal tail resolve values below 1 / resamples, which
    Holm's correction over a family of dozens of tests needs."""
    value: float
    se: float
    resamples: np.ndarray | None = None

    @classmethod
    def bootstrapped(cls, value, resamples):
        return cls(value, float(np.std(resamples, ddof=1)), resamples)

    def _z(self, x):
        return (x - self.value) / max(self.se, 1e-12)

    def p_above(self, x):
        """The p-value against "the difference is at most x"."""
        return float(norm.cdf(self._z(x)))

    def p_below(self, x):
        """The p-value against "the difference is at least x"."""
        return float(norm.sf(self._z(x)))

    def two_sided_p(self):
        """The p-value of "no difference"."""
        return min(1.0, 2 * min(self.p_above(0), self.p_below(0)))

    def tost_p(self, margin):
        """Schuirmann's two one-sided tests of |difference| < margin: the larger one-sided p-value."""
        return max(self.p_above(-margin), self.p_below(margin))

    def interval(self):
        if self.resamples is not None:
            return percentile_interval(self.resamples)
        half = norm.ppf(1 - ALPHA / 2) * self.se
        return self.value - half, self.value + half


def holm(p_values):
    """Holm's (1979) step-down adjusted p-values, in the given order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]).clip(max=1.0)
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def unit_weights(draws, resamples, rng):
    """(resamples, units): each unit's weight in the mean of a two-level bootstrap resample,
    `draws` a list of the units' counts per draw (e.g. [3, 3] for two draws of three seeds):
    the draws resampled, then the seeds within each draw."""
    per_draw = counts(rng, len(draws), resamples) / len(draws)
    return np.concatenate([per_draw[:, [d]] * counts(rng, n, resamples) / n for d, n in enumerate(draws)], 1)


@dataclass
class Number:
    """One number of the results over its resamples."""
    key: tuple                  # (model, checkpoint, probe, condition)
    value: float                # the mean over draws of the mean over seeds, on every test clip
    resamples: np.ndarray       # (B,)
    seeds: int
    draws: int

    def interval(self):
        return percentile_interval(self.resamples)


def pooled_name(checkpoint):
    """A checkpoint's name with its draws (of the subset, of the labelled examples) left out:
    the name of the draws' pooled number."""
    match = CHECKPOINT_NAME.fullmatch(checkpoint)
    if not match:
        return checkpoint
    for group in ("label_draw", "draw"):  # right to left, so that each start is still where it was
        if match[group]:
            checkpoint = checkpoint[:match.start(group) - len("-draw")] + checkpoint[match.end(group):]
    return checkpoint


class TaskNumbers:
    """Every number of one task's results, each with its bootstrap resamples: the clip
    resamples are drawn once per task, so any two numbers are paired."""

    def __init__(self, task_dir, resamples=RESAMPLES, device="cpu"):
        self.task = tasks.read_saved(task_dir)
        self.resamples, self.device = resamples, device
        self.rows, self.outputs, self.targets, self.clip_ids = {}, {}, None, None
        self._values, self._numbers = {}, {}
        files = sorted(task_dir.glob(f"*{predictions.SUFFIX}"))
        for path in files:
            self._read(path)
        self.described = _described(task_dir, [predictions.model_of(path) for path in files])

    def _read(self, path):
        clip_ids, targets, rows, outputs = predictions.read(path)
        if self.clip_ids is None:
            self.clip_ids, self.targets = clip_ids, targets
            resamples = counts(np.random.default_rng(SEED), len(clip_ids), self.resamples)
            # row 0 weighs every clip once: the number itself, computed in the same pass as its resamples
            every_clip = np.ones((1, len(clip_ids)), dtype=resamples.dtype)
            self.weights = torch.as_tensor(np.concatenate([every_clip, resamples]), device=self.device)
        elif not np.array_equal(clip_ids, self.clip_ids):
            raise UserError(f"{path} was scored on other test clips than the task's other models: run downstream.py "
                            f"for it again")
        model = predictions.model_of(path)
        for r, key in enumerate(zip(rows["checkpoint"], rows["probe"], rows["condition"], rows["seed"].tolist())):
            self.rows[(model, *key)] = r
        self.outputs[model] = outputs

    def values(self, row, metric):
        """(the metric on every test clip, (B,) on each clip resample) of one probe's outputs,
        row = (model, checkpoint, probe, condition, seed); computed when first asked for."""
        if row not in self._values:
            outputs = self.outputs[row[0]][self.rows[row]]
            values = resampled(self.task.kind, self.targets, outputs, self.weights)
            self._values[row] = {m: (float(v[0]), v[1:].cpu().numpy()) for m, v in values.items()}
        return self._values[row][metric]

    @property
    def metrics(self):
        return METRICS[self.task.kind]

    @cached_property
    def units(self):
        """{(model, checkpoint, probe, condition): {checkpoint of a draw: [probe seeds]}}; a
        limited subset with several draws also under its pooled name, "<subset> (draws)"."""
        units, pooled = {}, {}
        for model, checkpoint, probe, condition, seed in self.rows:
            units.setdefault((model, checkpoint, probe, condition), {checkpoint: []})[checkpoint].append(seed)
            pooled.setdefault((model, pooled_name(checkpoint) + POOLED, probe, condition), {}).setdefault(
                checkpoint, []).append(seed)
        return {**units, **{key: draws for key, draws in pooled.items() if len(draws) > 1}}

    def number(self, key, metric):
        """The Number of (model, checkpoint, probe, condition) in `metric`, or None if absent."""
        if key not in self.units:
            return None
        if (key, metric) not in self._numbers:
            model, _, probe, condition = key
            draws = self.units[key]
            cells = [[(model, c, probe, condition, s) for s in seeds] for c, seeds in draws.items()]
            rng = np.random.default_rng(zlib.crc32(repr((key, metric)).encode()))
            weights = unit_weights([len(seeds) for seeds in cells], self.resamples, rng)
            values = [[self.values(cell, metric) for cell in seeds] for seeds in cells]
            resamples = np.stack([on_resamples for seeds in values for _, on_resamples in seeds], 1)
            value = float(np.mean([np.mean([point for point, _ in seeds]) for seeds in values]))
            self._numbers[(key, metric)] = Number(key, value, (weights * resamples).sum(1),
                                                  max(map(len, cells)), len(cells))
        return self._numbers[(key, metric)]

    def difference(self, a, b, metric):
        """The Difference of Number a minus Number b (paired on clips), or None when either is absent."""
        x, y = self.number(a, metric), self.number(b, metric)
        return None if x is None or y is None else Difference.bootstrapped(x.value - y.value,
                                                                            x.resamples - y.resamples)

    def compare(self, a, b, metric, margins=MARGINS):
        """{difference, low, high, p, margin, p_tost} of Number a minus Number b, or None."""
        d = self.difference(a, b, metric)
        if d is None:
            return None
        low, high = d.interval()
        return {"difference": d.value, "low": low, "high": high, "p": d.two_sided_p(), "margin": margins[metric],
                "p_tost": d.tost_p(margins[metric])}


def _described(task_dir, models):
    """{(model, checkpoint): what its number was made from (DESCRIBED)} from the results CSVs."""
    described = {}
    for model in models:
        frame = pd.read_csv(task_dir / f"{model}.csv", dtype=str, keep_default_na=False)
        for row in frame.drop_duplicates("checkpoint").to_dict("records"):
            described[(model, row["checkpoint"])] = {column: row[column] for column in DESCRIBED}
    return described


def _embedding_last_weights(checkpoint):
    return "#" not in checkpoint and "@" not in checkpoint


def study_checkpoint(checkpoint, budgets=False):
    """The embedding of a run's last weights in the study's draw, probed with every train label:
    not a layer, not weights kept along the way, not another draw of the subset, not the
    draws' pooled number, not a label budget; trained for the study's epochs, or also for a
    budget of steps (5-steps20000) with `budgets`."""
    return _embedding_last_weights(checkpoint) and "-draw" not in checkpoint and not checkpoint.endswith(POOLED) \
        and (budgets or "-steps" not in checkpoint) and "+" not in checkpoint


def _seed_suffix(checkpoint):
    match = CHECKPOINT_NAME.fullmatch(checkpoint.removesuffix(POOLED))
    return f"-seed{match['seed']}" if match and match["seed"] else ""


def _label_suffix(checkpoint):
    """What a checkpoint's name says of the labels its probes learned from: "+shots2-draw1", or ""."""
    match = CHECKPOINT_NAME.fullmatch(checkpoint.removesuffix(POOLED))
    return checkpoint.removesuffix(POOLED)[match.start("labels") - 1:] if match and match["labels"] else ""


def twin(keys, checkpoint, base):
    """The number to compare a checkpoint's with: `base` ("untrained", or "none" for the
    hand-crafted features) with the same seed and probes on the same labels, pooled over
    label draws where the checkpoint's is and the twin has them."""
    name = base + (_seed_suffix(checkpoint) if base == "untrained" else "") + _label_suffix(checkpoint)
    if not checkpoint.endswith(POOLED):
        return name
    return pooled_name(name) + POOLED if pooled_name(name) + POOLED in keys else pooled_name(name)


def pairs(numbers):
    """(family, model, a, b) of every comparison the task's numbers allow: a and b keys of
    (model, checkpoint, probe, condition), the difference read as a minus b."""
    keys = set(numbers.units)
    names = {k[1] for k in keys}
    for model, checkpoint, probe, condition in sorted(keys):
        key = (model, checkpoint, probe, condition)
        if not _embedding_last_weights(checkpoint):
            continue
        if condition != CLEAN:
            yield "clean vs condition", model, (model, checkpoint, probe, CLEAN), key
        elif model != "handcrafted":
            if not results.is_probed(model):
                yield "fine-tuned vs probed", model, key, (results.model_and_adaptation(model)[0], *key[1:])
            if not checkpoint.startswith("untrained"):
                yield "trained vs untrained", model, key, (model, twin(names, checkpoint, "untrained"), probe, CLEAN)
            yield "trained vs hand-crafted", model, key, ("handcrafted", twin(names, checkpoint, "none"), probe, CLEAN)
            if probe in LARGER_PROBE:
                yield "probe vs larger probe", model, (model, checkpoint, LARGER_PROBE[probe], CLEAN), key
    for model in sorted({k[0] for k in keys} - {"handcrafted"}):
        for probe in sorted({k[2] for k in keys if k[0] == model}):
            trained = sorted({k[1] for k in keys if k[0] == model and k[2] == probe and k[3] == CLEAN
                              and study_checkpoint(k[1]) and not k[1].startswith("untrained")}, key=checkpoint_order)
            for smaller, larger in zip(trained, trained[1:]):
                if _seed_suffix(smaller) == _seed_suffix(larger):
                    yield ("subset vs next larger", model, (model, larger, probe, CLEAN),
                           (model, smaller, probe, CLEAN))


def interval_rows(numbers, method):
    rows = []
    for key in sorted(numbers.units, key=lambda k: (k[0], checkpoint_order(k[1].removesuffix(POOLED)),
                                                     k[1], PROBES.index(k[2]), condition_order(k[3]))):
        name, checkpoint, probe, condition = key
        described = numbers.described.get((name, checkpoint.removesuffix(POOLED)), {})
        model, adaptation = results.model_and_adaptation(name)
        for metric in numbers.metrics:
            number = numbers.number(key, metric)
            low, high = number.interval()
            rows.append({"task": numbers.task.name, "model": model, "adaptation": adaptation, "checkpoint": checkpoint,
                         **described,
                         **({"draw": "all"} if checkpoint.endswith(POOLED) else {}), "probe": probe,
                         "condition": condition, "metric": metric, "value": number.value, "low": low, "high": high,
                         "seeds": number.seeds, "draws": number.draws, "clips": len(numbers.clip_ids),
                         "method": method})
    return rows


def budgets_of(checkpoint):
    """(step budget, label budget) in a checkpoint's name: ("", "all") for the study's training
    probed with every train label; ("steps200", "shots2") for 1-steps200+shots2-draw1."""
    match = CHECKPOINT_NAME.fullmatch(checkpoint.removesuffix(POOLED))
    if not match:
        return "", WHOLE_SPLIT
    return f"steps{match['budget']}" if match["budget"] else "", match["labels"] or WHOLE_SPLIT


def comparison_rows(numbers, margins, method):
    """Every comparison of pairs(), Holm-adjusted within (family, model, metric, step budget,
    label budget): a study's family is not made more conservative by the runs and label
    budgets added beside it."""
    rows = []
    for family, model, a, b in pairs(numbers):
        for metric in numbers.metrics:
            compared = numbers.compare(a, b, metric, margins)
            if compared is not None:
                budget, label_budget = budgets_of(a[1])
                rows.append({"task": numbers.task.name, "family": family,
                             **dict(zip(("model", "adaptation"), results.model_and_adaptation(model))),
                             "budget": budget, "label_budget": label_budget,
                             **{f"{field}_{side}": value for side, key in (("a", a), ("b", b))
                                for field, value in zip(("model", "adaptation", "checkpoint", "probe", "condition"),
                                                        (*results.model_and_adaptation(key[0]), *key[1:]))},
                             "metric": metric, **compared, "method": method})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["p_holm"] = frame.groupby(["family", "model", "adaptation", "metric", "budget", "label_budget"]).p.transform(
        holm)
    frame["significant"] = frame.p_holm < ALPHA
    frame["equivalent"] = frame.p_tost < ALPHA
    return frame


def task_dirs(results_dir):
    """The task folders under results_dir that hold test predictions."""
    return [folder for folder in sorted(Path(results_dir).iterdir())
            if folder.is_dir() and tasks.read_saved(folder) and any(folder.glob(f"*{predictions.SUFFIX}"))]


def provenance(folders, **settings):
    """What tables computed from these folders' predictions depend on: each file's checksum,
    the bootstrap's seed and confidence, and `settings`."""
    files = {str(path.relative_to(folder.parent)): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
             for folder in folders for path in sorted(folder.glob(f"*{predictions.SUFFIX}"))}
    # as JSON reads it back (tuples as lists), so that a record compares equal to it
    return json.loads(json.dumps({"predictions": files, **settings, "seed": SEED, "confidence": CONFIDENCE}))


def read_if_current(paths, record, provenance_now, text_columns):
    """The tables at `paths` (read by read_tables) if `record` says they were computed from
    what `provenance_now` describes, else None."""
    if all(p.exists() for p in paths) and record.exists() and json.loads(record.read_text()) == provenance_now:
        return read_tables(paths, text_columns)
    return None


def write_tables(paths, tables, record, provenance_now):
    """Each table to its path, then the record of what they were computed from."""
    for path, table in zip(paths, tables):
        write_text(path, table.to_csv(index=False, float_format="%.6g"))
    write_json(record, provenance_now)


def compute(results_dir, resamples=RESAMPLES, margins=MARGINS, device="cpu"):
    """(intervals, comparisons): DataFrames of every number and comparison under results_dir,
    written beside the results; read back when no predictions file or setting changed."""
    results_dir = Path(results_dir)
    folders = task_dirs(results_dir)
    if not folders:
        raise UserError(f"no test predictions under {results_dir}: downstream.py keeps them beside each results "
                        f"CSV (<model>.predictions.npz); run it")
    paths = [results_dir / "intervals.csv", results_dir / "comparisons.csv"]
    record = results_dir / "stats.provenance.json"
    now = provenance(folders, resamples=resamples, margins=margins, columns=[INTERVAL_COLUMNS, COMPARISON_COLUMNS])
    if (tables := read_if_current(paths, record, now, TEXT_COLUMNS)) is not None:
        return tables
    method = METHOD.format(resamples=resamples)
    intervals, comparisons = [], []
    for folder in folders:
        numbers = TaskNumbers(folder, resamples, device)
        intervals += interval_rows(numbers, method)
        comparisons.append(comparison_rows(numbers, margins, method))
    tables = (pd.DataFrame(intervals, columns=INTERVAL_COLUMNS),
              pd.concat(comparisons, ignore_index=True).reindex(columns=COMPARISON_COLUMNS))
    write_tables(paths, tables, record, now)
    return read_tables(paths, TEXT_COLUMNS)


TEXT_COLUMNS = ("adaptation", "adaptation_a", "adaptation_b", "checkpoint", *DESCRIBED, "checkpoint_a", "checkpoint_b",
                "condition", "condition_a", "condition_b")


def read_tables(paths, text_columns):
    """The tables at `paths`: their `text_columns` as text ("" where empty), the others as numbers."""
    frames = [pd.read_csv(p, dtype=dict.fromkeys(text_columns, str)) for p in paths]
    return tuple(f.fillna({c: "" for c in text_columns if c in f.columns}) for f in frames)


def chosen_probes(results_dir):
    """{(task, model, checkpoint): the probe kind with the best validation score}."""
    chosen = {}
    for folder in task_dirs(results_dir):
        for path in sorted(folder.glob("*.csv")):
            rows = pd.read_csv(path, dtype={"checkpoint": str, "snr": str})
            chosen.update({(folder.name, path.stem, c): p for c, p in best_probes(rows, folder.name).items()})
    return chosen


def condition_text(condition):
    """'clean', '0 dB', 'deform_1'."""
    return condition if condition == CLEAN or condition in DEFORMATIONS else f"{condition} dB"


def _mark(row):
    """'=' equivalent within the margin (TOST), '*' a significant difference (Holm), '' neither."""
    return "=" if row.equivalent else "*" if row.significant else ""


def report(results_dir, intervals, comparisons):
    """The tables python -m common.evaluation.stats prints: per task, each checkpoint's number
    with the probe kind chosen on validation, then the comparisons among those numbers."""
    chosen, lines = chosen_probes(results_dir), []
    for task in dict.fromkeys(intervals.task):
        primary = tasks.get(task).primary
        mine = intervals[(intervals.task == task) & (intervals.metric == primary) & (intervals.condition == CLEAN)]
        shown = mine[[chosen.get((task, results.source(r.model, r.adaptation), r.checkpoint.removesuffix(POOLED)))
                      == r.probe
                      and _embedding_last_weights(r.checkpoint) and r.label_budget == WHOLE_SPLIT
                      for r in mine.itertuples()]]
        if shown.empty:
            continue
        width = max([14, *(len(results.source(r.model, r.adaptation)) for r in shown.itertuples())])
        lines += [f"\n{task}: {primary} on the clean test split with its 95% interval "
                  f"({shown.method.iloc[0]}; {shown.clips.iloc[0]} clips), the probe chosen on valid",
                  f"  {'model':<{width}} {'checkpoint':<16} {'probe':<7} {'seeds':>5} {'value':>7}  interval"]
        lines += [f"  {results.source(r.model, r.adaptation):<{width}} {r.checkpoint:<16} {r.probe:<7} {r.seeds:>5} "
                  f"{r.value:>7.3f}  [{r.low:.3f}, {r.high:.3f}]" for r in shown.itertuples()]
        lines += _comparison_lines(comparisons[(comparisons.task == task) & (comparisons.metric == primary)], chosen)
    return "\n".join(lines)


def _comparison_lines(compared, chosen):
    if compared.empty:
        return []
    shown = compared[[chosen.get((r.task, results.source(r.model_a, r.adaptation_a),
                                  r.checkpoint_a.removesuffix(POOLED))) in (r.probe_a, r.probe_b)
                      and r.label_budget == WHOLE_SPLIT for r in compared.itertuples()]]
    lines = [f"  comparisons: a - b with its 95% interval, p Holm-adjusted within each family and model; "
             f"* significant, = equivalent within +/- {compared.margin.iloc[0]:g} (TOST); "
             f"{int(compared.significant.sum())} of {len(compared)} significant, {int(compared.equivalent.sum())} "
             f"equivalent (comparisons.csv holds them all)"]
    for r in shown.itertuples():
        a = f"{r.checkpoint_a} {r.probe_a} {condition_text(r.condition_a)}"
        model_b = results.source(r.model_b, r.adaptation_b)
        b = f"{'' if (r.model_b, r.adaptation_b) == (r.model_a, r.adaptation_a) else model_b + ' '}{r.checkpoint_b} " \
            f"{r.probe_b} {condition_text(r.condition_b)}"
        lines.append(f"  {r.family:<24} {results.source(r.model, r.adaptation):<10} {a:<26} - {b:<30} "
                     f"{r.difference:>+7.3f} [{r.low:+.3f}, {r.high:+.3f}]  p {r.p_holm:.3f} {_mark(r)}")
    return lines


def parse_margins(items):
    margins = dict(MARGINS)
    for item in items:
        metric, _, value = item.partition("=")
        if metric not in MARGINS:
            raise UserError(f"--margin {item}: the metrics are {', '.join(MARGINS)} (METRIC=VALUE)")
        try:
            margins[metric] = float(value)
        except ValueError:
            raise UserError(f"--margin {item}: {value!r} is not a number (METRIC=VALUE)") from None
        if not margins[metric] > 0:
            raise UserError(f"--margin {item}: a margin is a positive difference")
    return margins


def main():
    parser = ArgumentParser(prog="python -m common.evaluation.stats", description=__doc__.split("\n")[0])
    parser.add_argument("results_dir", type=existing_dir, metavar="RESULTS_DIR",
                        help="a folder of results/<data>, e.g. results/demo")
    parser.add_argument("--resamples", type=positive_int, default=RESAMPLES,
                        help="bootstrap resamples (default %(default)s)")
    parser.add_argument("--margin", nargs="+", default=[], metavar="METRIC=VALUE",
                        help="equivalence margins, e.g. roc_auc=0.005 (defaults: "
                             + ", ".join(f"{m} {v:g}" for m, v in MARGINS.items()) + ")")
    add_device_option(parser)
    args = parser.parse_args()
    margins = parse_margins(args.margin)
    intervals, comparisons = compute(args.results_dir, args.resamples, margins, resolve_device(args.device))
    print(report(args.results_dir, intervals, comparisons))
    print(f"\nall {len(intervals)} numbers: {args.results_dir / 'intervals.csv'}; all {len(comparisons)} "
          f"comparisons: {args.results_dir / 'comparisons.csv'}")


if __name__ == "__main__":
    run(main)
