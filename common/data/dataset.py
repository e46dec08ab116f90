"""What every dataset loader returns: a list of clips (clip.py) with splits and labels, and audio.

One loader per dataset (mtat.py, tinysol.py, beatport.py beside this file) reads the
dataset's official on-disk layout; the embedded demo datasets are written in the same
layouts, so the same loader serves both. `load_dataset` is the one entry point.
"""
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..cli import DEFAULT_DATA_ROOT, UserError
from . import audio_cache, beatport, mtat, tinysol
from . import demo as demo_data

SPLITS = ("train", "valid", "test")
DATASETS = ("MTAT", "TinySOL", "beatport_key")
# How TinySOL and Beatport are split into train/valid/test (MTAT has its one standard split):
# "study" as the study's evaluation (mir_ref) split them, "project" by the project's own rule.
SPLIT_SCHEMES = ("study", "project")
# A split of one of the study's datasets with fewer of its clips usable than this is an
# incomplete dataset (a folder missing, an archive half extracted), not a few bad files:
# MTAT's known corrupt clips are already left out of its split.
COMPLETE_SHARE = 0.95


@dataclass
class Dataset:
    name: str
    root: Path
    clips: list
    demo: bool = False
    cache_dir: Path | None = None  # the decoded-audio caches; default: <root>/.cache

    def split(self, name):
        return [c for c in self.clips if c.split == name]

    def audio(self, sample_rate, clips=None, workers=None, partial=False):
        """The decoded-audio cache of `clips` (default: all) at `sample_rate`, built on first use.
        A split of one of the study's datasets with under COMPLETE_SHARE of its clips usable
        stops here unless `partial` (the scripts' --partial-data)."""
        clips = self.clips if clips is None else clips
        items = [(c.id, self.root / c.path, c.seconds) for c in clips]
        cache = audio_cache.build((self.cache_dir or self.root / ".cache") / f"sr{sample_rate}", items, sample_rate,
                                  workers=workers, desc=f"decoding {self.name} at {sample_rate} Hz", root=self.root)
        if self.name in DATASETS and not partial:
            self._check_complete(cache, clips)
        return cache

    def _check_complete(self, cache, clips):
        skipped = {s["key"]: s for s in cache.skipped}
        for split in SPLITS:
            listed = [c for c in clips if c.split == split]
            lost = [skipped[c.id] for c in listed if c.id not in cache]
            if len(listed) - len(lost) < COMPLETE_SHARE * len(listed):
                reasons = Counter(entry["skipped"] for entry in lost)
                why = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
                raise UserError(f"{self.name}: {len(listed) - len(lost)} of the {len(listed)} clips of the {split} "
                                f"split are usable ({why}; e.g. {lost[0]['path']}): complete the dataset (see "
                                f"{cache.directory / 'manifest.json'}), or pass --partial-data to go on with the "
                                f"clips there are")


def dataset_root(name, data_root=None, demo=False):
    data_root = Path(data_root) if data_root is not None else DEFAULT_DATA_ROOT
    return data_root / "demo" / name if demo else data_root / name


def load_dataset(name, data_root=None, demo=False, download=True, splits="study"):
    """The dataset `name` from `data_root` (its demo twin with `demo`), fetched or rendered if
    missing, split by the scheme `splits` (SPLIT_SCHEMES)."""
    loaders = {"MTAT": mtat, "TinySOL": tinysol, "beatport_key": beatport}
    if name not in loaders:
        raise UserError(f"unknown dataset {name!r}: choose from {', '.join(DATASETS)}")
    root = dataset_root(name, data_root, demo)
    if demo:
        demo_data.ensure(Path(data_root) if data_root is not None else DEFAULT_DATA_ROOT)
    elif download:
        loaders[name].ensure(root)
    clips = loaders[name].read(root) if name == "MTAT" else loaders[name].read(root, splits)
    return Dataset(name, root, clips, demo=demo)
