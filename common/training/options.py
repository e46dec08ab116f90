"""The train.py command line every model shares; each model's train.py gives its defaults
(the study's configuration for that model)."""
from common.cli import (
    REPO_ROOT,
    ArgumentParser,
    add_data_options,
    existing_file,
    folder,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from common.data.subsets import SUBSETS
from common.models.melspec import FRONT_ENDS
from common.models.registry import model_class
from common.training import distributed

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
    parser.add_argument("--subset", default="full", choices=SUBSETS,
                        help="MTAT train clips per genre, or full (default: %(default)s)")
    parser.add_argument("--draw", type=non_negative_int, default=0,
                        help="0: the study's subset (default); 1, 2, ...: a seeded genre-balanced draw of the "
                             "same size")
    add_data_options(parser)
    parser.add_argument("--audio-dir", type=folder, help="pretrain on every audio file under this folder instead")
    parser.add_argument("--tags", type=existing_file, help="with --audio-dir: CSV (path,tags; tags separated by ';')")
    if learns_from == "captions":
        parser.add_argument("--captions", type=existing_file,
                            help="with --audio-dir: MuLaP's JSON (a list of audio_id, caption, audio_path relative "
                                 "to the folder); only the files it names are trained on")
    parser.add_argument("--epochs", type=positive_int, default=defaults["epochs"], help="default: %(default)s")
    parser.add_argument("--max-steps", type=positive_int, help="stop after this many optimizer steps in all")
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
    parser.add_argument("--checkpoint-every", type=positive_int, default=defaults["checkpoint_every"],
                        metavar="EPOCHS", help="epochs between the weights kept as checkpoints/step<N>.pt, "
                                               "extracted as <subset>@<N> (default: %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in its folder from last.pt (or start it, if nothing is saved yet)")
    return parser.parse_args(argv)
