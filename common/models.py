"""The registry of the study's models: the one way to find a model's code from its name.

Each model lives in its own top-level folder (`vggish/model.py`, ...). They are loaded by
file path rather than imported as packages: a package named `ast` would shadow Python's
standard-library module `ast`, so the `ast/` folder must never become one.

    python -m common.models --json     # name, params, emb_dim, input_seconds, sample_rate, n_mels
"""
import importlib.util
import json
import sys

from common.cli import REPO_ROOT, ArgumentParser, UserError, run

CLASSES = {"vggish": "VGGish", "musicnn": "MusiCNN", "ast": "AST", "clmr": "CLMR", "tmae": "TMAE"}
MODELS = tuple(CLASSES)


def model_class(name):
    if name not in CLASSES:
        raise UserError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    module_name = f"study_models.{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, REPO_ROOT / name / "model.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return getattr(sys.modules[module_name], CLASSES[name])


def build(name, **kwargs):
    return model_class(name)(**kwargs)


def describe(model):
    return {"name": model.name, "params": sum(p.numel() for p in model.parameters()), "emb_dim": model.emb_dim,
            "input_seconds": round(model.input_seconds, 4), "sample_rate": model.sample_rate,
            "n_mels": model.n_mels}


def main():
    parser = ArgumentParser(prog="python -m common.models", description="The study's models, measured.")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args()
    rows = [describe(build(name)) for name in MODELS]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'name':<8} {'params':>8} {'emb_dim':>7} {'input s':>8} {'rate':>6} {'n_mels':>6}")
    for r in rows:
        print(f"{r['name']:<8} {r['params'] / 1e6:>7.2f}M {r['emb_dim']:>7} {r['input_seconds']:>8.2f} "
              f"{r['sample_rate']:>6} {str(r['n_mels'] or '-'):>6}")


if __name__ == "__main__":
    run(main)
