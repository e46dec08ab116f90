"""Every probe's outputs on every test clip, kept beside the results they were scored from.

downstream.py writes results/<data>/<task>/<model>.predictions.npz next to <model>.csv: the
test clips' ids and labels once, and per (checkpoint, probe, seed, condition) the probe's
raw outputs on each test clip (tag scores, or class scores whose argmax is the guess;
sigmoid and softmax left off) as float16. The CSV's test numbers are computed from these
very float16 outputs, so the statistics (stats.py) resample exactly what the CSV reports.
It is a plain NumPy archive:

    clip_ids     (clips,)              str
    targets      (clips,) class index, or (clips, tags) 0/1
    outputs      (rows, clips, classes) float16
    checkpoint, probe, condition (rows,) str; seed (rows,) int
"""
from dataclasses import dataclass, field

import numpy as np

from ..atomic import atomic_path
from ..data.subsets import checkpoint_order
from .noise import condition_order
from .probes import PROBES

KEYS = ("checkpoint", "probe", "seed", "condition")


@dataclass
class Predictions:
    """The test outputs of a model's probes, a row per (checkpoint, probe, seed, condition)."""
    checkpoint: list = field(default_factory=list)
    probe: list = field(default_factory=list)
    seed: list = field(default_factory=list)
    condition: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    def add(self, checkpoint, probe, seed, condition, outputs):
        for key, value in zip(KEYS, (checkpoint, probe, seed, condition)):
            getattr(self, key).append(value)
        self.outputs.append(outputs)

    def extend(self, other):
        for key in (*KEYS, "outputs"):
            getattr(self, key).extend(getattr(other, key))

    def save(self, path, clip_ids, targets):
        """Write them atomically, rows in the results CSV's order."""
        order = sorted(range(len(self.outputs)), key=lambda i: (
            checkpoint_order(self.checkpoint[i]), PROBES.index(self.probe[i]), self.seed[i],
            condition_order(self.condition[i])))
        arrays = {key: np.array([getattr(self, key)[i] for i in order]) for key in KEYS}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, clip_ids=np.asarray(clip_ids, dtype=str),
                     targets=targets.astype(np.uint8 if targets.ndim == 2 else np.int16),
                     outputs=np.stack([self.outputs[i] for i in order]).astype(np.float16), **arrays)


def read(path):
    """(clip_ids, targets, rows: {key: (rows,) array}, outputs (rows, clips, classes) float16)."""
    with np.load(path) as archive:
        return (archive["clip_ids"], archive["targets"], {key: archive[key] for key in KEYS}, archive["outputs"])


SUFFIX = ".predictions.npz"


def path_for(results_csv):
    return results_csv.with_name(results_csv.stem + SUFFIX)


def model_of(path):
    return path.name[:-len(SUFFIX)]
