"""Checkpoint files: written atomically, read with `torch.load(weights_only=True)`.

weights_only refuses to unpickle anything but tensors and plain containers, so a
tampered or foreign file raises a clear error instead of running code. Every checkpoint
names its model, so one model's weights are never loaded into another, and carries a
`save_id` drawn anew at every save: what the features made from it record (a run deleted
and trained again to the same step is another save, so its features are made again).
"""
import pickle
import uuid
import warnings
import zipfile

import torch

from ..atomic import write_serialised
from ..cli import UserError
from ..data.subsets import checkpoint_order
from .registry import train_command


def save(path, payload):
    write_serialised(path, lambda file: torch.save({**payload, "save_id": uuid.uuid4().hex}, file))


def load(path, model_name=None, map_location="cpu"):
    """The checkpoint's dict; `model_name`, when given, must match the one it was saved for."""
    if not path.exists():
        raise UserError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise UserError(f"{path} is not a readable checkpoint of this project (not the zip archive torch.save "
                        f"writes, or a truncated one)")
    try:
        with warnings.catch_warnings():  # torch's notes on foreign pickles would only confuse here
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's message suggests weights_only=False, which would run whatever the file holds
        raise UserError(f"{path} is not a readable checkpoint of this project (it holds objects other than "
                        f"tensors and plain containers, which are never loaded)") from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path} is not a readable checkpoint of this project ({reason})") from None
    if not isinstance(payload, dict) or "model_name" not in payload or "model" not in payload:
        raise UserError(f"{path} is not a checkpoint of this project (no model name or weights)")
    if model_name is not None and payload["model_name"] != model_name:
        raise UserError(f"{path} is a checkpoint of {payload['model_name']}, not of {model_name}")
    return payload


def load_weights(module, path, weights):
    """Load a checkpoint's weights into `module`; weights that do not fit it are a UserError."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as error:
        raise UserError(f"{path}: its weights do not fit the model ({str(error).strip().splitlines()[0]})") from None


def find(model, runs_dir, runs_data, wanted):
    """{name: path} of the model's checkpoints: untrained, then each trained subset (and draw and
    seed) at its last step; and, when `wanted` names them, the weights a run kept along the way:
    <name>@<step>, or <name>@all for every one of them."""
    root = runs_dir / runs_data / model
    found, kept = {}, {}
    runs = {run_dir: "" if run_dir.name == "seed0" else f"-{run_dir.name}" for run_dir in root.glob("*/seed*")}
    for run_dir in sorted(runs, key=lambda run_dir: checkpoint_order(run_dir.parent.name + runs[run_dir])):
        suffix = runs[run_dir]
        name = f"{run_dir.parent.name}{suffix}"
        if (run_dir / "untrained.pt").exists():
            found.setdefault(f"untrained{suffix}", run_dir / "untrained.pt")
        if (run_dir / "last.pt").exists():
            found[name] = run_dir / "last.pt"
        for path in sorted((run_dir / "checkpoints").glob("step*.pt")):
            kept[f"{name}@{int(path.stem[4:])}"] = path
    if not found:
        demo = " --demo" if runs_data == "demo" else ""
        script, options = train_command(model)
        raise UserError(f"no checkpoints of {model} under {root}: pretrain one first, e.g. "
                        f"python {' '.join([script, *options])}{demo} --subset 1")
    if not wanted:
        return found
    chosen, missing = {}, []
    for name in wanted:
        if name.endswith("@all"):
            along = {k: v for k, v in kept.items() if k.rsplit("@", 1)[0] == name[:-4]}
            chosen.update(along)
            missing += [] if along else [name]
        elif name in found or name in kept:
            chosen[name] = found.get(name) or kept[name]
        else:
            missing.append(name)
    if missing:
        also = f"; kept along the way: {', '.join(kept)} (or <name>@all)" if kept else ""
        raise UserError(f"no checkpoint {', '.join(missing)} of {model} under {root}: "
                        f"choose from {', '.join(found)}{also}")
    return chosen
