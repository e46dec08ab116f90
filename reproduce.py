"""The whole study in one command: pretrain, extract, probe, draw.

    python reproduce.py                    # the real study (GPU advised): every model, subset, task
    python reproduce.py --demo             # the same on the demo data, sized for a 2-core CPU
    python reproduce.py --demo --quick     # a smaller grid, under runs/quick/, features/quick/, ...: minutes
    python reproduce.py --models vggish clmr --tasks pitch key
    python reproduce.py --demo --draws 3   # also two more draws of every limited subset
    python reproduce.py --demo --layers    # also every block of every model: probes by layer
    python reproduce.py --demo --budget steps:40          # also every subset trained for 40 steps
    python reproduce.py --demo --label-fraction 0.1 0.5   # also probes on a tenth and half of the labels
    python reproduce.py --demo --task-csv ~/moods.csv   # also a task of one's own (docs/own-data.md)
    python reproduce.py --demo --finetune all last:2      # also every encoder fine-tuned (docs/finetuning.md)
    python reproduce.py --plan             # nothing runs: the grid's work and its estimated time here
    python reproduce.py --devices cuda:0,cuda:1   # independent steps at once, one per GPU
    python reproduce.py --demo --jobs 2    # two steps at once on the CPU
    python reproduce.py --executor slurm --slurm-partition gpu   # each step a Slurm job (docs/cluster.md)

1. pretraining: <model>/train.py for every model and subset of the grid, and for each
   draw of the limited subsets (--draws; the untrained weights come with every run), and
   with --budget every subset again for a number of optimizer steps;
2. extraction: extract_features.py for every model and task, clean and noisy, plus the
   hand-crafted features (with --layers, every block's features too);
3. probes: downstream.py for every model and task, on every train label and on the grid's
   label budgets (--label-fraction, --shots); with --finetune, finetune.py for every model
   and task too, once per way of unfreezing (on the demo not AST);
4. figures: every number's bootstrap interval and the paired comparisons
   (common/evaluation/stats.py), the scaling fits of score against pretraining minutes
   (common/evaluation/scaling.py), the figures of common/evaluation/figures.py in
   figures/<data>/, a summary table with intervals, the study's four findings checked
   (common/evaluation/claims.py), and on the real data our numbers beside the study's
   published ones (common/evaluation/reference.py).
Each step is one command of those scripts, run as its own process (the command it prints
reruns it alone), after the steps whose outputs it reads (common/grid/): with several
devices, independent steps run at once (common/grid/local.py), and with --executor slurm
each is a job of the cluster (common/grid/slurm.py). A step that fails is named
with its log; the steps that need it wait for the next run, the others go on. Every step
skips what is already finished, so a stopped study resumes where it stopped (and a run
trained further since is extracted and probed again). The grids (subsets,
training budgets, SNRs, probe seeds, label budgets, clips per split, fine-tuning's settings)
are the GRIDS table below.
"""
import json
import time
from argparse import ArgumentTypeError

import finetune
from common import plan
from common.atomic import write_json
from common.cli import (
    REPO_ROOT,
    ArgumentParser,
    UserError,
    add_data_options,
    add_partial_data_option,
    check_output_dir,
    existing_file,
    folder,
    fraction,
    positive_int,
    run,
)
from common.data.dataset import load_dataset
from common.data.subsets import SUBSETS, checkpoint_order, training_set_name
from common.evaluation import claims, figures, labels, reference, scaling, stats, task_csv, tasks
from common.evaluation.noise import DEFORMATIONS
from common.evaluation.selection import best_probes, validation
from common.evaluation.unfreezing import adaptation_name, unfreeze_option
from common.grid import local, slurm
from common.grid.graph import Step, critical_path, wall_clock
from common.models.registry import STUDY_MODELS, base_name, model_argument, model_ids, train_command
from common.training.distributed import add_device_option, resolve_device
from common.training.options import step_budget

# Per grid: subsets per model ("*" for the others), training options per model, SNRs, probe
# seeds, label budgets (fractions of the train labels, shots, draws of the labelled examples),
# and (quick demo) how many clips of each split the features are extracted for. The quick demo
# trains the cheaper models on three subsets, so that their scores can be fitted as a curve
# of pretraining minutes; AST, whose extraction is most of its time, on one.
# The demo grids are sized for a 2-core CPU (AST's forward pass costs five times the
# others': docs/speed.md). On the demo the CNNs train for tens of steps only; at their
# reference learning rate (1e-3) Adam's first steps add a near rank-one change to every
# layer and the embedding collapses onto two or three directions (pitch at chance), so the
# demo grids use 1e-4.
DEMO_TRAIN = {"vggish": ["--batch-size", "16", "--lr", "1e-4"], "musicnn": ["--batch-size", "16", "--lr", "1e-4"],
              "ast": ["--batch-size", "4"], "clmr": ["--batch-size", "16"], "tmae": ["--batch-size", "32"],
              "tune": ["--batch-size", "16"], "mulap": ["--batch-size", "8"]}
DEMO_STEPS = {"vggish": 20, "musicnn": 20, "ast": 8, "clmr": 20, "tmae": 60, "tune": 20, "mulap": 20}
NO_LABEL_BUDGETS = {"fractions": [], "shots": [], "draws": 1}
# --finetune on the demo: the untrained and the largest subset's checkpoints, the slp head, one
# seed, one epoch from the probe, scored on the clean test clips, so that it adds a few minutes
# to the full demo. Tagging and pitch only: a multi-label and a single-label task (instrument
# and key train as pitch does). Not AST, whose backward pass on a CPU would take most of the
# demo's time. The demo encoders' clips differ by a few percent of their embeddings' size, and
# at finetune.py's 1e-5 two epochs of Adam moved them further than that (vggish's pitch
# accuracy 0.59 -> 0.29 on the quick demo): 1e-6 (docs/finetuning.md).
DEMO_FINETUNE = ["--heads", "slp", "--seeds", "1", "--epochs", "1", "--encoder-lr", "1e-6", "--snr", "clean"]
NOT_FINETUNED_ON_DEMO = {"models": ("ast",), "tasks": ("instrument", "key")}
GRIDS = {
    "real": {"subsets": {"*": SUBSETS}, "train": {}, "snr": ["clean", "20", "10", "0", *DEFORMATIONS], "seeds": 3,
             "labels": NO_LABEL_BUDGETS, "finetune": []},
    "real-quick": {"subsets": {"*": ("1", "10", "100")}, "train": {"*": ["--epochs", "10"]},
                   "snr": ["clean", *DEFORMATIONS], "seeds": 2, "labels": NO_LABEL_BUDGETS,
                   "finetune": ["--seeds", "2", "--epochs", "10"]},
    "demo": {"subsets": {"*": ("1", "5", "20")},
             "train": {m: [*o, "--max-steps", str(DEMO_STEPS[m])] for m, o in DEMO_TRAIN.items()},
             "snr": ["clean", "20", "10", "0", *DEFORMATIONS], "seeds": 3,
             "labels": {"fractions": [0.25], "shots": [2], "draws": 2}, "finetune": DEMO_FINETUNE},
    "demo-quick": {"subsets": {"*": ("1", "5", "20"), "ast": ("5",)},
                   "train": {m: [*o, "--max-steps", str(max(2, DEMO_STEPS[m] // 3))] for m, o in DEMO_TRAIN.items()},
                   "snr": ["clean", "0", "deform_2"], "seeds": 2, "clips_per_split": 48,
                   "labels": {"fractions": [0.25], "shots": [], "draws": 1},
                   "finetune": DEMO_FINETUNE},
}


OUTPUTS = ("runs", "features", "results", "figures")


def parse_args():
    parser = ArgumentParser(prog="python reproduce.py", description=__doc__.split("\n")[0])
    add_data_options(parser)
    add_partial_data_option(parser)
    parser.add_argument("--plan", action="store_true",
                        help="run nothing: print the grid's work per stage and its estimated time on this device "
                             "(from a few timed steps of each model), kept for the run's summary")
    parser.add_argument("--quick", action="store_true",
                        help="a smaller grid (fewer subsets, steps, SNRs, seeds; on the demo, 48 clips per split)")
    parser.add_argument("--models", nargs="+", type=model_argument(), default=list(STUDY_MODELS), metavar="MODEL",
                        help=f"model ids, of: {', '.join(model_ids())} (python -m common.models.registry; default: the "
                             f"study's five, {' '.join(STUDY_MODELS)})")
    parser.add_argument("--tasks", nargs="+", choices=tuple(tasks.TASKS), default=list(tasks.TASKS))
    parser.add_argument("--task-csv", nargs="+", type=existing_file, default=[], metavar="FILE",
                        help="also tasks of one's own: a CSV of path, label (or ';'-separated labels) and split per "
                             "audio file each (docs/own-data.md)")
    parser.add_argument("--draws", type=positive_int, default=1,
                        help="draws of every limited subset: 1 is the study's subsets alone (default); N adds "
                             "N - 1 seeded genre-balanced draws of the same sizes")
    parser.add_argument("--budget", nargs="+", type=step_budget, default=[], metavar="steps:N",
                        help="also train every model on every subset for N optimizer steps (train.py --budget), as "
                             "runs of their own (<subset>-stepsN) through extraction, probes and figures")
    parser.add_argument("--label-fraction", nargs="+", type=fraction, metavar="F",
                        help="fractions of the train labels the probes are also fitted on (downstream.py; the grid's "
                             "by default: 0.25 on the demo, none on the real data)")
    parser.add_argument("--shots", nargs="+", type=positive_int, metavar="K",
                        help="examples per class the probes are also fitted on (the grid's by default)")
    parser.add_argument("--label-draws", type=positive_int,
                        help="draws of the labelled examples of each label budget (the grid's by default)")
    parser.add_argument("--finetune", nargs="+", type=unfreeze_option, default=[], metavar="UNFREEZE",
                        help="also fine-tune every model's checkpoints on every task (finetune.py --unfreeze: all, "
                             "last:K, none), beside the probes; on the demo not AST")
    parser.add_argument("--layers", action="store_true",
                        help="also extract and probe every block of every model (extract_features.py --layers all), "
                             "drawn in figures/<data>/metric_by_layer.png; the summary stays on the embeddings")
    for name in OUTPUTS:
        parser.add_argument(f"--{name}-dir", type=folder,
                            help=f"default: {name}/ ({name}/quick/ with --quick, so a quick study never mixes with "
                                 f"the full one)")
    add_device_option(parser)
    parser.add_argument("--executor", choices=("local", "slurm"), default="local",
                        help="what runs the steps: local, this machine's devices (default), or slurm, each step a "
                             "job of the cluster this machine submits to (docs/cluster.md)")
    parser.add_argument("--devices", type=device_list, metavar="DEVICES",
                        help="run independent steps at once, one on each of these devices: cuda:0,cuda:1,... or a "
                             "number N for the first N GPUs (with --plan, the number the wall-clock time is "
                             "estimated for)")
    parser.add_argument("--jobs", type=positive_int,
                        help="run this many independent steps at once on the CPU, each with its share of the cores")
    parser.add_argument("--nproc-per-node", type=positive_int, default=1, metavar="N",
                        help="train on the full subset under torchrun with N processes, on N devices (default 1)")
    slurm.add_options(parser)
    args = parser.parse_args()
    check_executor_options(parser, args)
    names = [task_csv.task_name(path) for path in args.task_csv]
    if clashing := sorted({name for name in names if names.count(name) > 1}):
        raise UserError(f"--task-csv: a task is named after its file, and two files are named {clashing[0]}.csv "
                        f"(their features and results would share a folder): rename one")
    for name in OUTPUTS:
        if getattr(args, f"{name}_dir") is None:
            setattr(args, f"{name}_dir", REPO_ROOT / name / ("quick" if args.quick else ""))
        check_output_dir(getattr(args, f"{name}_dir"), f"--{name}-dir")
    return args


def check_executor_options(parser, args):
    """No option of one executor is given to the other, nor to --plan."""
    if args.executor == "local":
        if given := [name for name in slurm.OPTIONS if getattr(args, name) != parser.get_default(name)]:
            raise UserError(f"--{given[0].replace('_', '-')} is an option of --executor slurm")
        return
    if args.plan:
        raise UserError("--plan times the steps on this machine, whatever runs them: leave out --executor slurm "
                        "(--devices N gives the wall-clock time on N GPUs at once)")
    for name in ("devices", "jobs"):
        if getattr(args, name):
            raise UserError(f"--{name} chooses this machine's devices; with --executor slurm each job gets "
                            f"--slurm-gpus and --slurm-cpus")
    if args.slurm_gpus is None:
        args.slurm_gpus = 0 if args.device == "cpu" else 1
    if args.device.startswith("cuda") != (args.slurm_gpus > 0) and args.device != "auto":
        raise UserError(f"--device {args.device} with --slurm-gpus {args.slurm_gpus}: a job's steps run on the "
                        f"GPUs it asks for, or on its CPUs with --slurm-gpus 0")


def device_list(text):
    """--devices: devices separated by commas, or a number N for cuda:0 .. cuda:N-1."""
    if text.isdigit() and int(text) > 0:
        return [f"cuda:{k}" for k in range(int(text))]
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices or any(not (d == "cpu" or d == "cuda" or d.startswith("cuda:")) for d in devices):
        raise ArgumentTypeError(f"invalid value {text!r}: devices separated by commas (cuda:0,cuda:1) or a number")
    return devices


def training_done(run_dir, options, budget=None):
    """True if the run finished with at least the asked number of steps."""
    finished = run_dir / "finished.json"
    if not finished.exists():
        return False
    asked = budget or (options[options.index("--max-steps") + 1] if "--max-steps" in options else None)
    return asked is None or json.loads(finished.read_text())["step"] >= int(asked)


def training_runs(args, grid):
    """(model id, subset, draw, step budget or None, train.py options) of every pretraining run
    of the grid: the grid's training, then each --budget's."""
    for model in args.models:
        _, variant_options = train_command(model)
        options = variant_options + grid["train"].get(base_name(model), grid["train"].get("*", []))
        for budget in [None, *args.budget]:
            budget_options = options if budget is None else [*_without_length(options), "--budget", f"steps:{budget}"]
            for draw in range(args.draws):
                for subset in grid_subsets(grid, model):
                    if not (draw and subset == "full"):  # full is the whole train split: it has no draws
                        yield model, subset, draw, budget, budget_options


def grid_subsets(grid, model):
    """The subsets the grid pretrains `model` on, smallest first."""
    return grid["subsets"].get(base_name(model), grid["subsets"]["*"])


def _without_length(options):
    """train.py options without --epochs and --max-steps, which a --budget replaces."""
    kept, skip = [], False
    for option in options:
        if not skip and option not in ("--epochs", "--max-steps"):
            kept.append(option)
        skip = option in ("--epochs", "--max-steps")
    return kept


def task_options(args):
    """(name, the option that names it) of every task of the study: the built-in ones asked
    for, then one's own."""
    return [(task, ["--task", task]) for task in args.tasks] + \
        [(task_csv.task_name(path), ["--task-csv", path]) for path in args.task_csv]


def task_names(args):
    return [name for name, _ in task_options(args)]


def steps(args, grid):
    """Every step of the study (common/grid/graph.py), in the order one device runs them: a
    model's runs, then each task's extraction after every run of its model, then its probes
    after its features. `prepare(device)`, called as a step starts, gives its options, or None
    when its work is done already."""
    data = ["--data-root", args.data_root] + (["--demo"] if args.demo else [])
    pretraining = _pretraining_steps(args, grid, data)
    runs_of = {model: tuple(s.name for s in pretraining if s.key[1] == model) for model in args.models}
    extraction, probing = [], []
    for task, task_option in task_options(args):
        for model in args.models + ["handcrafted"]:
            extraction.append(Step(("extract", model, task), f"extract {model} features for {task}",
                                   "extract_features.py", _on_device(data, _extraction_options(args, grid, model,
                                                                                              task_option)),
                                   after=runs_of.get(model, ())))
            options = ["--features-dir", args.features_dir, "--results-dir", args.results_dir, "--model", model,
                       *task_option, "--seeds", grid["seeds"], *label_options(args, grid)]
            # downstream.py itself fits again only what its features' provenance says changed
            probing.append(Step(("probes", model, task), f"fit probes on {model} features for {task}",
                                "downstream.py", _on_device(data, options), after=(extraction[-1].name,)))
            probing += _finetuning_steps(args, grid, data, model, task, task_option, extraction[-1].name)
    return pretraining + extraction + probing


def _finetuning_steps(args, grid, data, model, task, task_option, extraction):
    """A step per --finetune for the model and task, after the extraction that lists its clips
    and checkpoints."""
    left_out = args.demo and (base_name(model) in NOT_FINETUNED_ON_DEMO["models"]
                              or task in NOT_FINETUNED_ON_DEMO["tasks"])
    if model == "handcrafted" or left_out:
        return []
    options = ["--features-dir", args.features_dir, "--results-dir", args.results_dir, "--model", model,
               *task_option, *grid["finetune"]]
    if args.demo:
        options += ["--checkpoints", "untrained", grid_subsets(grid, model)[-1]]
    return [Step(("finetune", model, task, adaptation_name(unfreeze)),
                 f"fine-tune {model} on {task} ({unfreeze})", "finetune.py",
                 _on_device(data, [*options, "--unfreeze", unfreeze]), after=(extraction,))
            for unfreeze in args.finetune]


def _pretraining_steps(args, grid, data):
    """A step per run of the grid; done when the run finished its steps, resumed when it has
    a last.pt."""
    partial = ["--partial-data"] if args.partial_data else []
    graph = []
    for model, subset, draw, budget, train_options in training_runs(args, grid):
        training_set = training_set_name(subset, draw, budget)
        run_dir = args.runs_dir / ("demo" if args.demo else "MTAT") / model / training_set / "seed0"

        def prepare(device, subset=subset, draw=draw, budget=budget, train_options=train_options, run_dir=run_dir):
            if training_done(run_dir, train_options, budget):
                return None
            resume = ["--resume"] if (run_dir / "last.pt").exists() else []
            return [*data, "--device", device, *partial, "--subset", subset, "--draw", draw, "--runs-dir",
                    args.runs_dir, *train_options, *resume]
        graph.append(Step(("pretrain", model, training_set), f"pretrain {model} on subset {training_set}",
                          train_command(model)[0], prepare, processes=args.nproc_per_node if subset == "full" else 1))
    return graph


def _extraction_options(args, grid, model, task_option):
    options = ["--partial-data"] if args.partial_data else []
    options += ["--runs-dir", args.runs_dir, "--features-dir", args.features_dir, "--model", model, *task_option,
                "--snr", *grid["snr"]]
    if "clips_per_split" in grid:
        options += ["--clips-per-split", grid["clips_per_split"]]
    if args.layers and model != "handcrafted":
        options += ["--layers", "all"]
    return options


def _on_device(data, options):
    """A step's prepare: its options, with the device it runs on."""
    return lambda device: [*data, "--device", device, *options]


def label_budgets(args, grid):
    """(fractions, shots, draws): the command line's label budgets, else the grid's."""
    fractions = args.label_fraction if args.label_fraction is not None else grid["labels"]["fractions"]
    shots = args.shots if args.shots is not None else grid["labels"]["shots"]
    return fractions, shots, args.label_draws or grid["labels"]["draws"]


def label_options(args, grid):
    """downstream.py's options for the label budgets."""
    fractions, shots, draws = label_budgets(args, grid)
    options = (["--label-fraction", *fractions] if fractions else []) + (["--shots", *shots] if shots else [])
    return options + (["--label-draws", draws] if labels.budgets(fractions, shots) and draws > 1 else [])


def label_fits(args, grid):
    """How many sets of train labels each probe is fitted on: every label, then each budget's draws."""
    fractions, shots, draws = label_budgets(args, grid)
    return 1 + len(labels.budgets(fractions, shots)) * draws


def summary_table(results_dir, task_names):
    """Per task: the best trained checkpoint, its untrained twin and the hand-crafted features,
    each with its probe kind and 95% bootstrap interval; "best" on validation scores, the
    numbers shown on test; "~" marks a number not significantly different from the best
    (paired bootstrap, Holm over the row's two comparisons)."""
    lines = [f"{'task':<11} {'metric':<15} {'best trained model (probe)':<44} {'its untrained':>24} "
             f"{'hand-crafted':>24}"]
    results = figures.load(results_dir)
    for task in task_names:
        df = results[results.task == task]
        if df.empty:
            continue
        chosen = {(m, c): p for m in set(df.model) for c, p in best_probes(df[df.model == m], task).items()}
        scores = validation(df, task).groupby(["model", "checkpoint", "probe"]).value.mean()
        trained = [k for k in chosen if k[0] != "handcrafted" and not k[1].startswith("untrained")]
        if not trained:
            continue
        best = max(trained, key=lambda k: scores[(*k, chosen[k])])
        numbers, primary = stats.TaskNumbers(results_dir / task), tasks.get(task).primary
        keys = [(*k, chosen[k], "clean") if k in chosen else None
                for k in (best, (best[0], "untrained"), ("handcrafted", "none"))]
        compared = [numbers.compare(keys[0], k, primary) if k else None for k in keys[1:]]
        p_holm = list(stats.holm([c["p"] for c in compared if c]))
        marks = [" "] + [" " if c is None or p_holm.pop(0) < stats.ALPHA else "~" for c in compared]
        cells = [_with_interval(numbers.number(k, primary) if k else None) + mark for k, mark in zip(keys, marks)]
        lines.append(f"{task:<11} {primary:<15} {f'{best[0]} {best[1]} ({keys[0][2]}): ' + cells[0]:<44} "
                     f"{cells[1]:>24} {cells[2]:>24}")
    return "\n".join(lines)


def finetuned_table(intervals, comparisons):
    """Per task, model and adaptation: each checkpoint fine-tuned (finetune.py) and probed with
    the same head on the clean test split, and their paired difference ("" when nothing was
    fine-tuned)."""
    primary = comparisons.task.map(lambda task: tasks.get(task).primary)
    rows = comparisons[(comparisons.family == "fine-tuned vs probed") & (comparisons.condition_a == "clean")
                       & (comparisons.metric == primary)]
    rows = rows[[stats.study_checkpoint(c) for c in rows.checkpoint_a]]
    if rows.empty:
        return ""
    value = intervals.set_index(["task", "model", "adaptation", "checkpoint", "probe", "condition", "metric"]).value
    lines = [f"{'task':<11} {'model':<8} {'adaptation':<15} {'checkpoint':<10} {'head':<5} {'fine-tuned':>10} "
             f"{'probed':>7}  difference [95% interval], p (Holm)"]
    for r in sorted(rows.itertuples(), key=lambda r: (r.task, r.model, r.adaptation, checkpoint_order(r.checkpoint_a))):
        tuned, probed = (value[(r.task, r.model_a, adaptation, r.checkpoint_a, r.probe_a, "clean", r.metric)]
                         for adaptation in (r.adaptation_a, r.adaptation_b))
        mark = "=" if r.equivalent else "*" if r.significant else ""
        lines.append(f"{r.task:<11} {r.model:<8} {r.adaptation:<15} {r.checkpoint_a:<10} {r.probe_a:<5} "
                     f"{tuned:>10.3f} {probed:>7.3f}  {r.difference:+.3f} [{r.low:+.3f}, {r.high:+.3f}], "
                     f"p {r.p_holm:.3f} {mark}")
    return "\n".join(lines)


def _with_interval(number):
    if number is None:
        return "-"
    low, high = number.interval()
    return f"{number.value:.3f} [{low:.3f}, {high:.3f}]"


def write_plan(args, grid, grid_name, path):
    """Estimate the grid's cost on this device, print it and keep it for the run's summary."""
    device = resolve_device(args.device)
    study_tasks = [(tasks.TASKS[name], None) for name in args.tasks] + \
        [task_csv.read(csv_file, args.data_root) for csv_file in args.task_csv]
    graph = steps(args, grid)
    finetuning = {s.key: finetune.parse_args(list(map(str, s.prepare("cpu")))) for s in graph
                  if s.stage == "finetune"}
    rows, missing, per_step = plan.estimate(list(training_runs(args, grid)), args.models, study_tasks, grid,
                                            args.data_root, args.demo, device, args.layers, label_fits(args, grid),
                                            finetuning)
    print(f"plan of the {grid_name} grid on {device} (nothing has run; timed here just now):\n{plan.table(rows)}")
    seconds = {step.name: per_step.get(step.key, 0.0) for step in graph}
    devices = len(local.slots(args.devices, args.jobs, args.device))
    elapsed, chain = plan.duration(wall_clock(graph, seconds, devices)), plan.duration(critical_path(graph, seconds))
    print(f"on {devices} device{'s' * (devices != 1)} at once: about {elapsed} of wall-clock time (the longest chain "
          f"of steps that wait for each other: {chain}; --devices N for another number)")
    if missing:
        print(f"left out: {', '.join(missing)} (the dataset is not here yet; it downloads on the first run)")
    write_json(path, {"grid": grid_name, "models": args.models, "tasks": task_names(args),
                      "draws": args.draws, "layers": args.layers, "budget": args.budget, "finetune": args.finetune,
                      "label budgets": list(label_budgets(args, grid)),
                      "device": str(device), "stages": plan.stage_seconds(rows)})
    print(f"\nkept in {path}: the run's summary will show these estimates beside its measured times")


def estimate_beside_measured(path, grid_name, grid, args, measured):
    """Lines of the stages' estimated (from --plan) and measured times, when a plan of this
    very grid was made."""
    if not path.exists():
        return ""
    saved = json.loads(path.read_text())
    keys = ("grid", "models", "tasks", "draws", "layers", "budget", "finetune", "label budgets")
    if [saved.get(k) for k in keys] != [grid_name, args.models, task_names(args), args.draws, args.layers,
                                        args.budget, args.finetune, list(label_budgets(args, grid))]:
        return ""
    lines = [f"\ntime estimated by --plan (on {saved['device']}) and measured (the steps that ran now):",
             f"  {'stage':<9} {'estimated':>9} {'measured':>9}"]
    lines += [f"  {stage:<9} {plan.duration(seconds):>9} {plan.duration(measured[stage]):>9}"
              for stage, seconds in saved["stages"].items()]
    return "\n".join(lines)


def main():
    args = parse_args()
    data_name = "demo" if args.demo else "real"
    grid_name = f"{data_name}{'-quick' if args.quick else ''}"
    grid = GRIDS[grid_name]
    if args.label_draws and not labels.budgets(*label_budgets(args, grid)[:2]):
        raise UserError("--label-draws draws the examples of a label budget, and this grid has none: add "
                        "--label-fraction or --shots")
    plan_file = args.results_dir / data_name / "plan.json"
    if args.plan:
        write_plan(args, grid, grid_name, plan_file)
        return
    started = time.time()
    graph, jobs_dir = steps(args, grid), args.runs_dir / ("demo" if args.demo else "MTAT") / "_jobs"
    if args.status:
        jobs = slurm.Jobs(graph, jobs_dir)
        print(slurm.status(jobs, jobs.queue()))
        return
    outcomes = (on_slurm if args.executor == "slurm" else on_this_machine)(args, graph, jobs_dir)
    stop_if_unfinished(graph, outcomes)
    measured = {stage: sum(outcomes[s.name].seconds for s in graph if s.stage == stage) for stage in plan.STAGES}
    conclude(args, data_name, grid_name, grid, plan_file, measured, started)


def on_this_machine(args, graph, jobs_dir):
    """Run the steps here, on --device, --devices or --jobs slots: their Outcomes."""
    device_slots = local.slots(args.devices, args.jobs, args.device)
    for device in dict.fromkeys(device_slots):
        resolve_device(device)  # a GPU this machine lacks is refused before any step starts
    if len(device_slots) > 1:
        fetch_datasets(args)
    return local.run(graph, device_slots, jobs_dir)


def on_slurm(args, graph, jobs_dir):
    """Submit what is not done and not queued already, and wait for it: the steps' Outcomes."""
    fetch_datasets(args)
    jobs = slurm.Jobs(graph, jobs_dir)
    resources = slurm.Resources(args.slurm_time, args.slurm_gpus, args.slurm_cpus, args.slurm_partition,
                                args.slurm_account, args.slurm_mem, args.sbatch)
    submitted, done = jobs.submit(resources, "cuda" if args.slurm_gpus else "cpu")
    before = len(graph) - len(submitted) - len(done)
    return slurm.wait(jobs, submitted, done, f"{len(submitted)} step{'s' * (len(submitted) != 1)} submitted, "
                      f"{len(done)} done already, {before} queued or running from before; waiting for the jobs "
                      f"(Ctrl-C stops the waiting, not the jobs; --status shows them)")


def fetch_datasets(args):
    """Fetched or rendered once, before steps that read them start together."""
    for dataset in {"MTAT", *(tasks.TASKS[name].dataset for name in args.tasks)}:
        load_dataset(dataset, args.data_root, demo=args.demo)


def stop_if_unfinished(graph, outcomes):
    """Name the steps that failed, with their logs, and those that waited for them; exit 1."""
    failed = [s for s in graph if outcomes[s.name].status == "failed"]
    waited = [s for s in graph if outcomes[s.name].status == "not run"]
    if not failed:
        return
    print(f"\n{len(failed)} step{'s' * (len(failed) != 1)} failed and {len(waited)} waited for them; the figures and "
          f"summary wait for all of them (the same command again reruns them and skips what finished):")
    for step in failed:
        outcome = outcomes[step.name]
        why = f"exit code {outcome.code}" if outcome.code is not None else outcome.why
        print(f"  failed: {step.description}: {why}, log {outcome.log}")
    for step in waited:
        print(f"  not run: {step.description} ({outcomes[step.name].why})")
    raise SystemExit(1)


def conclude(args, data_name, grid_name, grid, plan_file, measured, started):
    """Statistics, scaling fits, figures, the summary and the study's claims checked."""
    results_dir = args.results_dir / data_name
    intervals, comparisons = stats.compute(results_dir, device=resolve_device(args.device))
    fits, _ = scaling.compute(results_dir, device=resolve_device(args.device))
    paths = figures.render_all(results_dir, args.figures_dir / data_name)
    summary = summary_table(results_dir, task_names(args))
    print(f"\nfigures: {', '.join(str(p) for p in paths)}")
    print(f"\nsummary ({data_name}; chosen on the valid split, shown on the clean test split: the mean over probe "
          f"seeds [its 95% bootstrap interval over seeds and test clips]; ~ not significantly different from the best "
          f"trained; {(time.time() - started) / 60:.1f} min in all):\n{summary}"
          f"{estimate_beside_measured(plan_file, grid_name, grid, args, measured)}")
    if finetuned := finetuned_table(intervals, comparisons):
        print(f"\nfine-tuned beside probed (finetune.py; the clean test split, the mean over seeds; * a significant "
              f"difference, = equivalent within the margin; {args.figures_dir / data_name / 'finetuned_vs_probed.png'})"
              f":\n{finetuned}")
    print(f"\nevery number's interval and every paired comparison: {results_dir / 'intervals.csv'}, "
          f"{results_dir / 'comparisons.csv'} (python -m common.evaluation.stats {results_dir})")
    print(f"\nscore against pretraining minutes, fitted (python -m common.evaluation.scaling {results_dir}):"
          f"{scaling.report(fits, scaling.chosen_on_largest(results_dir))}")
    checks = claims.our_checks(results_dir, stats.MARGINS, resolve_device(args.device))
    print(f"\n{claims.report(checks, str(results_dir))}")
    if data_name == "real":
        _, rows = reference.compare(results_dir)
        print(f"\nours beside the study's published numbers (python -m common.evaluation.reference --compare "
              f"{results_dir}):\n{reference.comparison_table(rows)}")
        published = claims.verdicts(claims.study_checks(), stats.MARGINS)
        print("\n" + claims.report(published, "the study's published numbers"))


if __name__ == "__main__":
    run(main)
