"""The registry of the study's models: the one way to find a model's code from its name.

Each model lives in its own top-level folder (`vggish/model.py`, ...). They are loaded by
file path rather than imported as packages: a package named `ast` would shadow Python's
standard-library module `ast`, so the `ast/` folder must never become one. Each is loaded
as the library's `study_models.<name>.<file>` (common.study_models.vggish.model in a
checkout; installed with pip, limited_data_music.study_models.vggish.model, a real
package), which is why a model file imports the library three levels up:
`from ...models.encoder import AudioEncoder`.

A model id names one configuration, and is what runs/, features/ and the results CSVs are
keyed by: `<model>[-<variant>][-no-<augmentation>...][-librosa]`. The variants are a model's
`VARIANTS` (class attributes its code or table reading changes: `musicnn-table` is MusiCNN at
the study table's 12.0 M parameters, `clmr-regional` CLMR under another contrastive
strategy, `tune-plus` TUNe+), picked by one option of its train.py (`VARIANT_OPTION`:
--variant, --strategy, --size); `-no-pitch` leaves a transform out of the augmentation
chain of a model trained with CLMR's (clmr/augment.py; train.py --augment -pitch);
`-librosa` swaps a mel model's study front end for the librosa one
(common/models/melspec.py). The bare name is the study's code (for TUNe, the paper's TUNe).
STUDY_MODELS are the study's five; TUNe (tune/) and MuLaP (mulap/) come from neighbouring
papers.

    python -m common.models.registry --json     # every id: params, emb_dim, input_seconds, sample_rate, n_mels
"""
import argparse
import importlib.util
import json
import sys
from pathlib import Path

from ..cli import REPO_ROOT, ArgumentParser, UserError, run

CLASSES = {"vggish": "VGGish", "musicnn": "MusiCNN", "ast": "AST", "clmr": "CLMR", "tmae": "TMAE", "tune": "TUNe",
           "mulap": "MuLaP"}
MODELS = tuple(CLASSES)
STUDY_MODELS = MODELS[:5]  # the study's five; reproduce.py runs these unless told otherwise
LIBROSA = "librosa"
LIBRARY = __package__.split(".")[0]  # common in a checkout, limited_data_music installed
# In a checkout the model folders lie beside common/; installed with pip, in the package's study_models/
MODELS_ROOT = REPO_ROOT if (REPO_ROOT / "vggish" / "model.py").exists() else \
    Path(__file__).parent.parent / "study_models"
_variant_classes = {}


def model_file(name, file):
    """A file of a model's folder (model, train, augment) as a module of this package, so its
    relative imports reach the library, in a checkout and installed alike."""
    module_name = f"{LIBRARY}.study_models.{name}.{file}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, MODELS_ROOT / name / f"{file}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def _base_class(name):
    return getattr(model_file(name, "model"), CLASSES[name])


def train_script(name):
    """A model's train.py as a module: its DEFAULTS and objective (the script's main does not run)."""
    return model_file(name, "train")


# Each paradigm's objective, by its function's name in a train.py: what the batches carry
# besides audio (the training loop's `learns_from`) and how many views of an item it compares.
OBJECTIVES = {"tagging_loss": ("tags", 1), "contrastive_loss": (None, 2), "masked_patch_loss": (None, 1),
              "language_loss": ("captions", 1)}


def pretraining_objective(name):
    """(objective, learns_from, views): the loss a model's train.py hands the training loop,
    what it learns from besides audio (tags, captions or nothing) and how many views of an
    item it compares."""
    script = train_script(name)
    objective = next(getattr(script, f) for f in OBJECTIVES if hasattr(script, f))
    return (objective, *OBJECTIVES[objective.__name__])


def augmentations(name):
    """The transforms of the augmentation chain a model's objective applies, in order (CLMR's,
    for the models trained as CLMR is); () for the others."""
    return tuple(model_file("clmr", "augment").CHAIN) if _base_class(name).AUGMENTED else ()


def parse_id(model_id_):
    """`musicnn-table-librosa` -> ("musicnn", "table", "librosa", ()), `clmr-same-segment-no-pitch`
    -> ("clmr", "same-segment", "study", ("pitch",)); a bare name stands for the model's
    DEFAULT_VARIANT, the study's front end and the whole augmentation chain."""
    name, _, rest = model_id_.partition("-")
    if name not in CLASSES:
        raise UserError(f"unknown model {model_id_!r}: choose from {', '.join(model_ids())}")
    cls = _base_class(name)
    front_end = "study"
    if cls.n_mels and (rest == LIBROSA or rest.endswith("-" + LIBROSA)):
        front_end, rest = LIBROSA, rest[: -len(LIBROSA)].rstrip("-")
    rest, *left_out = rest.split("-no-") if not rest.startswith("no-") else ["", *rest[3:].split("-no-")]
    chain = augmentations(name)
    if (rest and rest not in cls.VARIANTS) or any(t not in chain for t in left_out) or \
            left_out != sorted(set(left_out), key=chain.index):
        raise UserError(f"unknown model {model_id_!r}: choose from {', '.join(model_ids())}"
                        + (f" (with -no-<t> for t of {', '.join(chain)}, in that order)" if chain else ""))
    return name, rest or cls.DEFAULT_VARIANT, front_end, tuple(left_out)


def model_id(name, variant=None, front_end="study", left_out=()):
    """The id of a model's variant (None or its DEFAULT_VARIANT: the bare model), its
    augmentations left out and its front end."""
    bare = variant in (None, _base_class(name).DEFAULT_VARIANT)
    chain = augmentations(name)
    return name + ("" if bare else f"-{variant}") + "".join(f"-no-{t}" for t in sorted(left_out, key=chain.index)) \
        + (f"-{front_end}" if front_end != "study" else "")


def model_ids():
    """Every id: each model's default, its variants, and the librosa front end of each mel model."""
    ids = []
    for name in MODELS:
        cls = _base_class(name)
        for variant in (None, *cls.VARIANTS):
            ids += [model_id(name, variant, f) for f in ("study", LIBROSA)[: 2 if cls.n_mels else 1]]
    return tuple(ids)


def model_class(model_id_):
    """The class of a model id: the model's own class with its variant's and front end's attributes."""
    if model_id_ not in _variant_classes:
        name, variant, front_end, left_out = parse_id(model_id_)
        cls = _base_class(name)
        attributes = {**cls.VARIANTS.get(variant, {}), "name": model_id_, "front_end_recipe": front_end,
                      "left_out": left_out}
        _variant_classes[model_id_] = type(cls.__name__, (cls,), attributes) if model_id_ != name else cls
    return _variant_classes[model_id_]


def model_argument(*others):
    """argparse type of a --model option: a model id, or one of `others` (handcrafted)."""
    def parse(text):
        if text not in others:
            try:
                model_class(text)
            except UserError as error:
                raise argparse.ArgumentTypeError(f"{error}{''.join(f', {o}' for o in others)}") from None
        return text
    return parse


def base_name(model_id_):
    return model_id_.split("-")[0]


def train_command(model_id_):
    """The train.py and its options that train this id."""
    name, variant, front_end, left_out = parse_id(model_id_)
    cls = _base_class(name)
    return f"{name}/train.py", ([f"--{cls.VARIANT_OPTION}", variant] if variant != cls.DEFAULT_VARIANT else []) + \
        (["--front-end", front_end] if front_end != "study" else []) + \
        (["--augment", *(f"-{t}" for t in left_out)] if left_out else [])


def sort_key(model_id_):
    """Ids in the study's model order, each model's code first."""
    return MODELS.index(base_name(model_id_)), model_id_ != base_name(model_id_), model_id_


def build(model_id_, **kwargs):
    return model_class(model_id_)(**kwargs)


def build_for(model_id_, tags=None, vocabulary=None):
    """The model as trained on these tags (a head of that size) or captions of this vocabulary
    (word embeddings of that size): what a checkpoint records as `tags` and `vocabulary`."""
    return build(model_id_, **({"n_tags": len(tags)} if tags else {}),
                 **({"vocabulary": tuple(vocabulary)} if vocabulary else {}))


def describe(model):
    """`params` counts everything trained; `embedding_params` leaves out the heads only
    pretraining uses (what papers such as CLMR's and TUNe's count)."""
    params = sum(p.numel() for p in model.parameters())
    heads = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] in model.HEADS)
    return {"name": model.name, "params": params, "embedding_params": params - heads, "emb_dim": model.emb_dim,
            "input_seconds": round(model.input_seconds, 4), "input_samples": model.input_samples,
            "sample_rate": model.sample_rate, "n_mels": model.n_mels}


def main():
    parser = ArgumentParser(prog="python -m common.models.registry", description="The study's models, measured.")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args()
    rows = [describe(build(i)) for i in model_ids()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'name':<22} {'params':>8} {'w/o heads':>9} {'emb_dim':>7} {'input s':>8} {'samples':>8} {'rate':>6} "
          f"{'n_mels':>6}")
    for r in rows:
        print(f"{r['name']:<22} {r['params'] / 1e6:>7.2f}M {r['embedding_params'] / 1e6:>8.2f}M {r['emb_dim']:>7} "
              f"{r['input_seconds']:>8.4f} {r['input_samples']:>8} {r['sample_rate']:>6} {str(r['n_mels'] or '-'):>6}")


if __name__ == "__main__":
    run(main)
