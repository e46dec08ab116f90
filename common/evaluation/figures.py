"""The study's figures, drawn from the tidy results CSVs (results/<data>/<task>/<model>.csv).

Shared by notebooks/results.ipynb and reproduce.py, so both draw exactly the same plots:
  1. metric against pretraining minutes (log axis), a column of panels per task and a row
     per test condition (clean, then each of the study's deformations present), a line per
     model through the study's subsets (draw 0) with their intervals as error bars, the
     interval pooled over subset draws (where there are several) as a shaded band, the
     untrained model as its own hollow marker at the left, the hand-crafted features as a
     horizontal line with its interval as a band, and on the real data the study's
     published numbers as faint crosses; as in the study, the single-layer probe solid and
     the MLP dotted;
  2. metric against SNR (clean, 20, 10, 0 dB) for each model's largest pretraining subset;
  3. the effect of probe kind (linear, mlp1, mlp2, slp, mlp) for each model's largest subset;
  4. (when runs kept weights along the way and they were extracted, e.g. 5@all) metric
     against pretraining step, a line per model and subset ending at its last step;
  5. (when layers were extracted) metric against the block a feature set was read from;
  6. (when the checkpoints record their FLOPs) metric against pretraining FLOPs, a line per
     model and step budget (the study's epochs, train.py --budget) through its subsets;
  7. (when probes were fitted on fewer labels) metric against pretraining minutes, a panel
     per model and task, a line per label budget;
  8. (when encoders were fine-tuned: finetune.py) metric against pretraining minutes,
     fine-tuned and probed, a panel per task (finetuned_vs_probed.png).
Figure 1 draws the scaling fits (scaling.py) through each model's subsets with their bands.
Every point is the task's primary metric on the test split, the mean over probe seeds, with
its 95% bootstrap interval (stats.py: probe seeds, subset draws and test clips resampled)
as error bars or a band, named in each figure. Where one probe kind stands for a model
(figures 2 and 4, and figure 1 when the study's probes were not fitted), it is the kind
with the best validation score (common/evaluation/selection.py): no choice is ever made on
test scores. `probes=[...]` draws chosen kinds instead.
"""
import functools
from pathlib import Path

import matplotlib
import matplotlib.patches
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..data.subsets import checkpoint_order  # noqa: E402
from ..models.registry import MODELS, base_name, model_ids, sort_key  # noqa: E402
from . import scaling, stats, tasks  # noqa: E402
from .labels import WHOLE_SPLIT  # noqa: E402
from .noise import DEFORMATIONS  # noqa: E402
from .probes import PROBES, STUDY_PROBES  # noqa: E402
from .results import PROBED  # noqa: E402
from .selection import best_probe  # noqa: E402

METRIC_NAMES = {"roc_auc": "ROC-AUC", "accuracy": "accuracy", "weighted_score": "MIREX weighted score"}


CONDITION_TITLES = {name: f"{name}: {'noise' if kind == 'noise' else 'gain'} {amount:g} dB"
                    for name, (kind, amount) in DEFORMATIONS.items()}
STYLES = {"slp": "-", "mlp": ":"}


def load(results_dir, layers=False, label_budgets=False, adaptations=False):
    """Every results CSV under results_dir as one frame (valid and test rows), keeping only
    each task's primary metric; the feature sets of single layers (extract_features.py
    --layers), the probes trained on fewer labels (downstream.py --label-fraction, --shots)
    and the encoders fine-tuned on the task (finetune.py) only when asked for: every other
    figure and summary reads a model's embedding probed with every train label. Tasks of
    one's own are read from the task.json beside their results."""
    frames = []
    for folder in sorted(p for p in Path(results_dir).glob("*") if p.is_dir()):
        task = tasks.read_saved(folder)
        for path in sorted(folder.glob("*.csv")) if task else []:
            rows = pd.read_csv(path, dtype={"checkpoint": str, "subset": str, "snr": str, "budget": str,
                                            "label_budget": str}).fillna({"budget": ""})
            frames.append(rows[rows.metric == task.primary].assign(task=folder.name))
    if not frames:
        raise FileNotFoundError(f"no results CSVs under {results_dir}")
    df = pd.concat(frames, ignore_index=True)
    df = df if layers else df[df.layer.isna()]
    df = df if adaptations else probed(df)
    return df if label_budgets else whole_labels(df)


def probed(frame):
    """The rows of probes on frozen features (downstream.py's), not of fine-tuned encoders."""
    return frame[frame.adaptation == PROBED]


def whole_labels(frame):
    """The rows of probes trained on every labelled train example (not --label-fraction, --shots)."""
    return frame[frame.label_budget == WHOLE_SPLIT]


def _tasks(df):
    """The tasks in `df`: the built-in ones in the study's order, then one's own."""
    return [t for t in tasks.TASKS if t in set(df.task)] + sorted(set(df.task) - set(tasks.TASKS))


def _panels(task_names):
    """A figure with a panel per task, side by side: (figure, [(axes, task), ...])."""
    fig, axes = plt.subplots(1, len(task_names), figsize=(4.2 * len(task_names), 3.6), squeeze=False)
    return fig, list(zip(axes[0], task_names))


def _colour(model):
    """A model's tab10 colour; its variants and other front ends the lighter shade of it."""
    if model == "handcrafted":
        return "black"
    return plt.get_cmap("tab20").colors[2 * MODELS.index(base_name(model)) + (model != base_name(model))]


def _marker(model):
    """A circle for a model's own id; its variants and front ends (which share a shade) each a
    marker of their own."""
    ids = [i for i in model_ids() if base_name(i) == base_name(model)]
    return "o" if model not in ids[1:] else "sD^vP*X<>"[(ids.index(model) - 1) % 9]


def _models(rows, handcrafted=False):
    """The model ids in `rows`, in the study's order (and handcrafted last, when asked)."""
    present = set(rows.model)
    hand = ["handcrafted"] if handcrafted and "handcrafted" in present else []
    return sorted(present - {"handcrafted"}, key=sort_key) + hand


def _label(ax, title, xlabel, task):
    ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(METRIC_NAMES[tasks.get(task).primary])
    ax.grid(alpha=0.3)


def intervals(results_dir, adaptations=False):
    """Every number's 95% bootstrap interval (stats.py, computed when its predictions changed),
    the tasks' primary metric only, minutes and step as numbers; the fine-tuned encoders'
    (finetune.py) only when asked for."""
    table = stats.compute(results_dir)[0]
    table = table if adaptations else probed(table)
    table = table[table.metric == table.task.map(lambda t: tasks.get(t).primary)]
    return table.assign(**{column: pd.to_numeric(table[column], errors="coerce")
                           for column in ("minutes", "train_steps", "train_flops", "labels")})


def _cells(ci, task, model, probe, condition="clean"):
    """The numbers of one model, probe kind and test condition: its embedding's, of each run's
    last weights unless asked for."""
    return ci[(ci.task == task) & (ci.model == model) & (ci.probe == probe) & (ci.condition == condition)]


def _errors(cells):
    """matplotlib's yerr: the distances from each value down to its interval's low end and up to its high end."""
    return np.array([cells.value - cells.low, cells.high - cells.value]).clip(min=0)


def _embeddings(cells):
    """The numbers of each run's last weights (not e.g. 5@1000) of its embedding (not a layer),
    trained for the study's epochs (not --budget) and probed with every train label."""
    return cells[~cells.checkpoint.str.contains("[@#+]") & (cells.budget == "")]


def _drawn_probes(rows, task, probes=None):
    """(kind, line style) of the probes a figure draws for one model: `probes` if given, else
    the study's slp (solid) and mlp (dotted) where they were fitted, else the kind with the
    best validation score."""
    if probes:
        return [(p, STYLES.get(p, "-")) for p in probes if p in set(rows.probe)]
    study = [p for p in STUDY_PROBES if p in set(rows.probe)]
    return [(p, STYLES[p]) for p in study] if study else [(best_probe(rows, task), "-")]


@functools.cache
def _study_tables():
    """The study's published numbers and the minutes of its subsets, read once per process
    (about 2 s; the minutes figure asks for them per task, model, probe and condition)."""
    from ..data import subsets
    from ..data.mtat import read_index
    from . import reference
    return reference.load(), {subset: m for subset, _, m in subsets.table(read_index())}


def study_points(task, model, probe="slp", condition="clean"):
    """The study's published numbers for a task, model, probe and condition, as (minutes,
    value) of its subsets plus its untrained value (common/evaluation/reference.py)."""
    published, minutes = _study_tables()
    rows = [r for r in published if (r["task"], r["model"], r["probe"], r["condition"], r["metric"])
            == (task, model, probe, condition, tasks.get(task).primary)]
    trained = sorted((minutes[r["checkpoint"]], r["value"]) for r in rows if r["checkpoint"] in minutes)
    untrained = [r["value"] for r in rows if r["checkpoint"] == "untrained"]
    return trained, untrained


INTERVAL_LEGEND = "error bars: 95% bootstrap interval"


def _fitted_curve(ax, curves, task, model, probe, condition, style, band):
    """The scaling fit (scaling.py) of a model's subsets, with its 95% band if `band`, if it
    has one; whether it was drawn."""
    mine = curves[(curves.task == task) & (curves.model == model) & (curves.probe == probe)
                  & (curves.condition == condition) & (curves.budget == "")]
    if mine.empty:
        return False
    ax.plot(mine.minutes, mine.value, ls=style, color=_colour(model), lw=1.2)
    if band:
        ax.fill_between(mine.minutes, mine.low, mine.high, color=_colour(model), alpha=0.1, lw=0)
    return True


def _minutes_panel(ax, df, ci, curves, task, condition, probes, with_study):
    """One panel of figure 1: a task under one test condition."""
    rows = df[df.task == task]
    cells = _embeddings(ci[ci.task == task])
    trained_minutes = cells[(cells.model != "handcrafted") & (cells.minutes > 0)].minutes.dropna()
    left = trained_minutes.min() / 3 if len(trained_minutes) else 0.1
    for model in _models(rows):
        for number, (probe, style) in enumerate(_drawn_probes(rows[rows.model == model], task, probes)):
            mine = _embeddings(_cells(ci, task, model, probe, condition))
            trained = mine[(mine.draw == "0") & ~mine.checkpoint.str.contains("-seed")].sort_values("minutes")
            trained = trained[trained.subset != "untrained"]
            # one band per model (its first probe's): two overlapping bands per model hide the points
            fitted = _fitted_curve(ax, curves, task, model, probe, condition, style, band=number == 0)
            ax.errorbar(trained.minutes, trained.value, yerr=_errors(trained), marker=_marker(model), ms=4,
                        capsize=2, ls="" if fitted else style, color=_colour(model),
                        label=model if number == 0 else None)
            pooled = mine[mine.draw == "all"].sort_values("minutes")
            if len(pooled):
                ax.fill_between(pooled.minutes, pooled.low, pooled.high, color=_colour(model), alpha=0.15, lw=0)
            untrained = mine[mine.checkpoint == "untrained"]
            if len(untrained):
                ax.errorbar([left], untrained.value, yerr=_errors(untrained), marker=_marker(model), mfc="white",
                            ms=6, capsize=2, color=_colour(model))
            if with_study and probe in STUDY_PROBES and model == base_name(model):  # the study's code
                study, study_untrained = study_points(task, model, probe, condition)
                ax.plot([m for m, _ in study] + [left] * len(study_untrained),
                        [v for _, v in study] + study_untrained, "x" if probe == "slp" else "+", ms=5,
                        alpha=0.45, color=_colour(model))
    hand = rows[rows.model == "handcrafted"]
    if len(hand):
        number = _cells(ci, task, "handcrafted", best_probe(hand, task), condition)
        ax.axhline(number.value.iloc[0], color="black", ls="--", lw=1, label="hand-crafted")
        ax.axhspan(number.low.iloc[0], number.high.iloc[0], color="black", alpha=0.08)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # labelled minor ticks overlap
    _label(ax, tasks.get(task).title + ("" if condition == "clean" else f"\n{CONDITION_TITLES[condition]}"),
           "pretraining minutes (hollow: untrained)", task)


def minutes_figure(df, ci, curves=None, probes=None, with_study=False):
    """Figure 1 from the results `df` (figures.load) and their intervals `ci` (intervals()),
    with the scaling fits' `curves` (scaling.compute) where given; `with_study` (results on
    the real data) adds the study's published numbers as faint crosses for the probes drawn
    that it has (slp, mlp)."""
    curves = pd.DataFrame(columns=scaling.CURVE_COLUMNS) if curves is None else curves
    task_names = _tasks(df)
    conditions = ["clean"] + [c for c in DEFORMATIONS if c in set(df.snr)]
    fig, axes = plt.subplots(len(conditions), len(task_names), squeeze=False,
                             figsize=(4.2 * len(task_names), 3.6 * len(conditions)))
    for row, condition in enumerate(conditions):
        for ax, task in zip(axes[row], task_names):
            _minutes_panel(ax, df, ci, curves, task, condition, probes, with_study)
    drawn = {p for t in task_names for p, _ in _drawn_probes(df[df.task == t], t, probes)}
    handles, labels = axes[0][0].get_legend_handles_labels()
    for probe in [p for p in STYLES if p in drawn]:
        handles.append(matplotlib.lines.Line2D([], [], color="grey", ls=STYLES[probe]))
        labels.append(f"{probe} probe")
    handles.append(matplotlib.patches.Patch(color="grey", alpha=0.3))
    labels.append("error bars, bands: 95% bootstrap intervals (seeds, draws, clips)")
    if not curves.empty:
        handles.append(matplotlib.lines.Line2D([], [], color="grey"))
        labels.append("curves: fits of s_inf - b D^-alpha (scaling.py); band: the solid one's 95%")
    if with_study:
        handles.append(matplotlib.lines.Line2D([], [], color="grey", marker="x", ls="", alpha=0.45))
        labels.append("the study's numbers")
    axes[0][0].legend(handles, labels, fontsize=7)
    fig.tight_layout()
    return fig


def _largest(cells):
    """The numbers of the study's checkpoint (draw 0, last weights, embedding) with the most
    pretraining minutes (the untrained one if nothing else)."""
    cells = _embeddings(cells)
    cells = cells[cells.draw.isin(["0", ""])]
    return cells[cells.checkpoint == cells.sort_values("minutes", na_position="first").checkpoint.iloc[-1]]


def _legend(ax, title=INTERVAL_LEGEND, fontsize=7):
    """The panel's legend, its title naming what the error bars are."""
    ax.legend(fontsize=fontsize, title=title, title_fontsize=fontsize)


def snr_figure(df, ci):
    fig, panels = _panels(_tasks(df))
    for ax, task in panels:
        rows = df[df.task == task]
        levels = sorted({s for s in rows.snr if s != "clean" and s not in DEFORMATIONS}, key=float) + ["clean"]
        for model in _models(rows, handcrafted=True):
            probe = best_probe(rows[rows.model == model], task)
            mine = ci[(ci.task == task) & (ci.model == model) & (ci.probe == probe)]
            mine = _largest(mine).set_index("condition").reindex(levels)
            ax.errorbar(range(len(levels)), mine.value, yerr=np.nan_to_num(_errors(mine)), marker=_marker(model), ms=4,
                        capsize=2, color=_colour(model), ls="--" if model == "handcrafted" else "-",
                        label=f"{model} ({mine.checkpoint.dropna().iloc[0]}, {probe})")
        ax.set_xticks(range(len(levels)), [s if s == "clean" else f"{s} dB" for s in levels])
        _label(ax, tasks.get(task).title, "signal-to-noise ratio", task)
        _legend(ax)
    fig.tight_layout()
    return fig


def probe_figure(df, ci):
    fig, panels = _panels(_tasks(df))
    for ax, task in panels:
        rows = ci[(ci.task == task) & (ci.condition == "clean")]
        models = _models(rows, handcrafted=True)
        kinds = [p for p in PROBES if p in set(rows.probe)]
        width = 0.8 / len(kinds)
        for i, probe in enumerate(kinds):
            cells = pd.concat([_largest(rows[rows.model == model]) for model in models])
            cells = cells[cells.probe == probe].set_index("model").reindex(models)
            ax.bar(np.arange(len(models)) + (i - (len(kinds) - 1) / 2) * width, cells.value, width,
                   yerr=np.nan_to_num(_errors(cells)), capsize=2, label=probe)
        ax.set_xticks(range(len(models)), models, rotation=30)
        _label(ax, tasks.get(task).title, None, task)
    _legend(panels[0][0], f"probe ({INTERVAL_LEGEND})")
    fig.tight_layout()
    return fig


def steps_figure(df, ci):
    """Metric against pretraining step for every run whose kept weights were extracted."""
    fig, panels = _panels(_tasks(df))
    for ax, task in panels:
        rows = df[(df.task == task) & (df.model != "handcrafted")]
        for model in _models(rows):
            mine = _cells(ci, task, model, best_probe(rows[rows.model == model], task))
            mine = mine[~mine.checkpoint.str.contains("#")]
            runs = mine.checkpoint.str.split("@").str[0]
            for run in sorted(set(runs[mine.checkpoint.str.contains("@")])):
                seed = run.partition("-seed")[2]
                start = mine[mine.checkpoint == ("untrained-seed" + seed if seed else "untrained")]
                points = pd.concat([start, mine[runs == run]]).sort_values("train_steps")
                ax.errorbar(points.train_steps, points.value, yerr=_errors(points), marker=_marker(model), ms=3,
                            capsize=2, color=_colour(model), label=f"{model} {run}")
        _label(ax, tasks.get(task).title, "pretraining step", task)
        _legend(ax)
    fig.tight_layout()
    return fig


def has_steps(df):
    return bool(df.checkpoint.str.contains("@").any())


def layers_figure(df, ci):
    """Metric against the block a feature set was read from, per model and checkpoint whose
    layers were extracted; the last point of each line is the model's embedding."""
    fig, panels = _panels(_tasks(df[df.layer.notna()]))
    for ax, task in panels:
        rows = df[(df.task == task) & (df.model != "handcrafted")]
        for model in _models(rows):
            mine = _cells(ci, task, model, best_probe(rows[rows.model == model], task))
            mine = mine[~mine.checkpoint.str.contains("@") & (mine.draw != "all")]
            base = mine.checkpoint.str.split("#").str[0]
            for run in sorted(set(base[mine.layer != ""]), key=checkpoint_order):
                points = mine[base == run]
                layer = pd.to_numeric(points.layer, errors="coerce")
                points = points.assign(position=layer.fillna(layer.max() + 1)).sort_values("position")
                ax.errorbar(points.position, points.value, yerr=_errors(points), marker=_marker(model), ms=3,
                            capsize=2, color=_colour(model), ls="--" if run.startswith("untrained") else "-",
                            label=f"{model} {run}")
        _label(ax, tasks.get(task).title, "block (the last point: the embedding)", task)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        _legend(ax)
    fig.tight_layout()
    return fig


def has_layers(df):
    return bool(df.layer.notna().any())


def labels_figure(df, ci):
    """Metric against pretraining minutes, a panel per model (rows) and task (columns), a line
    per label budget (downstream.py --label-fraction, --shots), the hand-crafted features under
    the same budget as a dashed line of its colour: the probe kind with the best validation
    score on the whole train split's labels, its numbers pooled over the draws of labelled
    examples where there are several."""
    task_names, models = _tasks(df), _models(df)
    fig, axes = plt.subplots(len(models), len(task_names), squeeze=False,
                             figsize=(4.2 * len(task_names), 3.2 * len(models)))
    for row, model in enumerate(models):
        for ax, task in zip(axes[row], task_names):
            rows = whole_labels(df[(df.task == task) & (df.model == model)])
            if rows.empty:
                ax.set_visible(False)
                continue
            probe = best_probe(rows, task)
            _label_budget_lines(ax, _cells(ci, task, model, probe), model)
            hand = whole_labels(df[(df.task == task) & (df.model == "handcrafted")])
            if len(hand):
                _label_budget_lines(ax, _cells(ci, task, "handcrafted", best_probe(hand, task)), "handcrafted")
            _label(ax, f"{tasks.get(task).title}: {model} ({probe})", "pretraining minutes (untrained at 0)", task)
            ax.set_xscale("symlog", linthresh=1)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            _legend(ax, f"train labels ({INTERVAL_LEGEND})")
    fig.tight_layout()
    return fig


def _label_budget_lines(ax, cells, model):
    """A line per label budget through the model's checkpoints (pooled over label draws where
    there are several), in the order of the budgets' labelled examples."""
    cells = cells[~cells.checkpoint.str.contains("[@#]") & (cells.budget == "")]
    budgets = sorted(set(cells.label_budget), key=lambda b: -cells[cells.label_budget == b].labels.max())
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.85, max(len(budgets), 1)))
    for colour, budget in zip(colours, budgets):
        points = _pooled_over_draws(cells[cells.label_budget == budget]).sort_values("minutes")
        if model == "handcrafted":
            ax.axhline(points.value.iloc[0], color=colour, ls="--", lw=1)
        else:
            ax.errorbar(points.minutes.fillna(0), points.value, yerr=_errors(points), marker=_marker(model), ms=4,
                        capsize=2, color=colour, label=f"{budget} ({int(points.labels.max())})")


def _pooled_over_draws(cells):
    """A number per checkpoint: pooled over its draws (of the subset, of the labelled examples)
    where it has several, else its first draw's."""
    pooled = cells[cells.checkpoint.str.endswith(stats.POOLED)]
    first = cells[cells.label_draw.isin(["", "0"]) & cells.draw.isin(["0", ""])]
    first = first[~first.checkpoint.map(stats.pooled_name).isin(pooled.checkpoint.str.removesuffix(stats.POOLED))]
    return pd.concat([pooled, first])


def has_label_budgets(df):
    return bool((df.label_budget != WHOLE_SPLIT).any())


def compute_figure(df, ci):
    """Metric against the FLOPs of pretraining, a line per model and step budget through its
    subsets (the study's epochs: more data, more steps; --budget steps:N: the same steps for
    every subset), the untrained model at the left."""
    fig, panels = _panels(_tasks(df))
    for ax, task in panels:
        rows = whole_labels(df[(df.task == task) & (df.model != "handcrafted")])
        for model in _models(rows):
            mine = _cells(ci, task, model, best_probe(rows[rows.model == model], task))
            mine = mine[~mine.checkpoint.str.contains("[@#+]") & mine.draw.isin(["0", ""]) & (mine.train_flops > 0)]
            for budget, line in mine.groupby("budget"):
                line = line.sort_values("minutes")
                ax.errorbar(line.train_flops, line.value, yerr=_errors(line), marker=_marker(model), ms=4, capsize=2,
                            color=_colour(model), ls="-" if budget == "" else "--",
                            label=f"{model} {budget or 'epochs'}")
        ax.set_xscale("log")
        _label(ax, tasks.get(task).title, "pretraining FLOPs", task)
        _legend(ax)
    fig.tight_layout()
    return fig


ADAPTATION_STYLES = {PROBED: "-", "finetune-all": "--", "finetune-none": ":"}  # finetune-lastK: "-."


def adaptation_figure(ci):
    """Figure 8: the score of each model fine-tuned (finetune.py, dashed; --unfreeze last:K
    dash-dot, none dotted) and probed (solid) against pretraining minutes, a panel per task
    some model was fine-tuned on, clean test split, the head or probe kind slp where it was
    fitted (else the first of both)."""
    clean = _embeddings(ci[ci.condition == "clean"])
    clean = clean[(clean.model != "handcrafted") & ~clean.checkpoint.str.contains("-seed")
                  & clean.draw.isin(["0", ""])]
    fig, panels = _panels(_tasks(clean[clean.adaptation != PROBED]))  # the tasks fine-tuned on
    for ax, task in panels:
        cells = clean[clean.task == task]
        cells = cells[cells.model.isin(set(cells[cells.adaptation != PROBED].model))]  # the models fine-tuned
        left = cells[cells.minutes > 0].minutes.min() / 3 if (cells.minutes > 0).any() else 0.1
        for (model, adaptation), mine in cells.groupby(["model", "adaptation"], sort=False):
            probe = "slp" if "slp" in set(mine.probe) else sorted(set(mine.probe))[0]
            mine = mine[mine.probe == probe].sort_values("minutes")
            trained, untrained = mine[mine.subset != "untrained"], mine[mine.subset == "untrained"]
            style = ADAPTATION_STYLES.get(adaptation, "-.")
            ax.errorbar(trained.minutes, trained.value, yerr=_errors(trained), marker=_marker(model), ms=4,
                        capsize=2, ls=style, color=_colour(model), label=f"{model} {adaptation} ({probe})")
            if len(untrained):
                ax.errorbar([left], untrained.value, yerr=_errors(untrained), marker=_marker(model), mfc="white",
                            ms=6, capsize=2, color=_colour(model))
        ax.set_xscale("log")
        _label(ax, tasks.get(task).title, "pretraining minutes (hollow: untrained)", task)
        _legend(ax)
    fig.tight_layout()
    return fig


def has_adaptations(ci):
    return bool((ci.adaptation != PROBED).any())


def has_flops(ci):
    return bool((ci.train_flops > 0).any())


FIGURES = {"metric_vs_minutes": minutes_figure, "metric_vs_snr": snr_figure, "probe_size": probe_figure,
           "metric_vs_steps": steps_figure, "metric_by_layer": layers_figure, "metric_vs_compute": compute_figure,
           "metric_by_labels": labels_figure}


def render_all(results_dir, figures_dir):
    """Draw the figures from results_dir and save them as PNG in figures_dir; return the paths.
    The training-time figure is drawn only when kept weights along the way were probed, the
    layers figure only when layers were, the labels figure only when probes were fitted on
    fewer labels, the compute figure when the checkpoints record their FLOPs."""
    every, adapted = load(results_dir, layers=True, label_budgets=True), intervals(results_dir, adaptations=True)
    all_intervals = probed(adapted)
    ci = whole_labels(all_intervals)
    curves = probed(scaling.compute(results_dir)[1])
    df = whole_labels(every[every.layer.isna()])
    Path(figures_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    skip = {"metric_vs_steps": not has_steps(df), "metric_by_layer": not has_layers(every),
            "metric_by_labels": not has_label_budgets(every), "metric_vs_compute": not has_flops(ci)}
    for name, draw in FIGURES.items():
        if skip.get(name):
            continue
        if name == "metric_vs_minutes":
            fig = draw(df, ci, curves, with_study=Path(results_dir).name == "real")
        elif name == "metric_by_labels":
            fig = draw(every[every.layer.isna()], all_intervals)
        else:
            fig = draw(whole_labels(every) if name == "metric_by_layer" else df, ci)
        paths.append(_save(fig, Path(figures_dir) / f"{name}.png"))
    if has_adaptations(adapted):
        paths.append(_save(adaptation_figure(whole_labels(adapted)), Path(figures_dir) / "finetuned_vs_probed.png"))
    return paths


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
