"""The train.py command line every model shares; each model's train.py gives its defaults
(the study's configuration for that model)."""
import argparse
import sys

from ..cli import (
    REPO_ROOT,
    ArgumentParser,
    add_data_options,
    add_partial_data_option,
    existing_file,
    folder,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from ..data.subsets import SUBSETS
from ..models.melspec import FRONT_ENDS
from ..models.registry import augmentations, model_class
from . import distributed

CROPS = ("tile", "random")
LR_SCHEDULES = ("plateau", "constant")


def parse_args(model_name, description, defaults, argv=None, learns_from=None):
    """The train.py command line (or `argv`); `defaults` are the model's (the study's configuration)."""
    parser = ArgumentParser(prog=f"python {model_name}/train.py", description=description)
    model = model_class(model_name)
    if model.VARIANTS:
        parser.add_argument(f"--{model.VARIANT_OPTION}", dest="variant", default=model.DEFAULT_VARIANT,
                            choices=(model.DEFAULT_VARIANT, *model.VARIANTS),
                            help=f"{model.DEFAULT_VARIANT} (default) trains the model id {model_name}, any other "
                                 f"{model_name}-<{model.VARIANT_OPTION}> (explained in {model_name}/model.py)")
    if model.n_mels:
        parser.add_argument("--front-end", default="study", choices=FRONT_ENDS,
                            help="study: the mel spectrogram of the study's code (default); librosa: a librosa-style "
                                 f"one, for comparison (trains the model id {model_name}[-<variant>]-librosa)")
    if model.AUGMENTED:
        chain = augmentations(model_name)
        parser.add_argument("--augment", type=_transforms(chain), default=[], metavar="[-]TRANSFORM ...",
                            help=f"the augmentation chain ({', '.join(chain)}): -NAME leaves one out, NAME alone "
                                 f"keeps only those named; the model id then says what is left out "
                                 f"({model_name}-no-pitch for --augment -pitch)")
    parser.add_argument("--subset", default="full", choices=SUBSETS,
                        help="MTAT train clips per genre, or full (default: %(default)s)")
    parser.add_argument("--draw", type=non_negative_int, default=0,
                        help="0: the study's subset (default); 1, 2, ...: a seeded genre-balanced draw of the "
                             "same size")
    add_data_options(parser)
    add_partial_data_option(parser)
    parser.add_argument("--audio-dir", type=folder, help="pretrain on every audio file under this folder instead")
    parser.add_argument("--tags", type=existing_file, help="with --audio-dir: CSV (path,tags; tags separated by ';')")
    if learns_from == "captions":
        parser.add_argument("--captions", type=existing_file,
                            help="with --audio-dir: MuLaP's JSON (a list of audio_id, caption, audio_path relative "
                                 "to the folder); only the files it names are trained on")
    parser.add_argument("--epochs", type=positive_int, default=defaults["epochs"], help="default: %(default)s")
    parser.add_argument("--max-steps", type=positive_int, help="stop after this many optimizer steps in all")
    parser.add_argument("--budget", type=step_budget, metavar="steps:N",
                        help="train for N optimizer steps whatever the subset's size (as many epochs as that takes), "
                             "as a run of its own: <subset>-stepsN; the study trains every subset for --epochs")
    parser.add_argument("--batch-size", type=positive_int, default=defaults["batch_size"],
                        help="items per step over all processes (default: %(default)s)")
    parser.add_argument("--lr", type=positive_float, default=defaults["lr"], help="Adam (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=defaults["weight_decay"],
                        help="Adam's L2 penalty (default: %(default)s)")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=defaults["lr_schedule"],
                        help="plateau: halve the rate when the epoch loss stalls for 10 epochs; constant "
                             "(default: %(default)s)")
    parser.add_argument("--crops", choices=CROPS, default=defaults["crops"],
                        help="tile: every clip's consecutive segments, each once per epoch (the study's); random: "
                             "uniformly placed crops (default: %(default)s)")
    parser.add_argument("--crops-per-clip", type=positive_int, default=defaults["crops_per_clip"],
                        help="items of each clip per epoch: segments with tile, crops with random "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    distributed.add_device_option(parser)
    distributed.add_precision_option(parser)
    parser.add_argument("--runs-dir", type=folder, default=REPO_ROOT / "runs")
    parser.add_argument("--save-every", type=positive_int, default=500,
                        help="steps between saves of last.pt, what --resume continues from (default: %(default)s)")
    parser.add_argument("--checkpoint-every", type=positive_int, metavar="EPOCHS",
                        help="epochs between the weights kept as checkpoints/step<N>.pt, extracted as <subset>@<N> "
                             f"(default: {defaults['checkpoint_every']}; with --budget, a twentieth of its epochs)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in its folder from last.pt (or start it, if nothing is saved yet)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(_minus_values_attached(argv, "--augment") if model.AUGMENTED else argv)
    if model.AUGMENTED:
        args.left_out = _left_out(args.augment, augmentations(model_name), parser)
    if args.budget and (args.max_steps or args.epochs != defaults["epochs"]):
        parser.error("--budget steps:N sets how long the run trains: leave out --max-steps and --epochs")
    if args.checkpoint_every is None and not args.budget:
        args.checkpoint_every = defaults["checkpoint_every"]
    return args


def step_budget(text):
    """argparse type of --budget: steps:N -> N."""
    kind, _, steps = text.partition(":")
    if kind != "steps" or not steps.isdigit() or int(steps) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a budget: steps:N, N optimizer steps (e.g. steps:20000)")
    return int(steps)


def _transforms(chain):
    """argparse type of --augment: names of the chain, comma-separated, each with or without a minus."""
    def parse(text):
        names = [name for name in text.split(",") if name]
        for name in names:
            if name.removeprefix("-") not in chain:
                raise argparse.ArgumentTypeError(f"{name!r} is not a transform of the chain: {', '.join(chain)} "
                                                 f"(with a minus to leave one out)")
        return names
    return parse


def _left_out(names, chain, parser):
    """The transforms --augment leaves out: those given with a minus, or all but those given without."""
    minus = [n[1:] for n in names if n.startswith("-")]
    kept = [n for n in names if not n.startswith("-")]
    if minus and kept:
        parser.error(f"--augment {' '.join(names)}: either leave transforms out (-NAME) or name the ones to keep")
    return tuple(t for t in chain if (t in minus if minus else kept and t not in kept))


def _minus_values_attached(argv, option):
    """`--augment -pitch -reverb` as `--augment=-pitch,-reverb`: argparse would take a value
    that begins with a minus for an option."""
    out = []
    for token in argv:
        follows = out and (out[-1] == option or out[-1].startswith(option + "="))
        if follows and not token.startswith("--") and token.lstrip("-").isidentifier():
            out[-1] = f"{out[-1]}{'=' if out[-1] == option else ','}{token}"
        else:
            out.append(token)
    return out
