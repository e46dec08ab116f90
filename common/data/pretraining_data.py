"""What a model is pretrained on: the clips of an MTAT subset, or a folder of the user's audio.

Either way the result is a list of clip keys, the decoded-audio cache they are read from,
and what the model learns from besides the audio (`learns_from`): for the tagging models
a multi-hot tag matrix ("tags"), for the language-supervised one a caption per clip
("captions": made from the clip's tags, or read from a MuLaP-format file; common/data/captions.py).
"""
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cli import UserError
from ..provenance import digest
from . import captions as caption_files
from . import subsets
from .clip import Clip
from .dataset import Dataset, load_dataset
from .mtat import TOP50

# libsndfile reads WAV, FLAC, MP3, Ogg (Vorbis, Opus) and AIFF; M4A, AAC and WMA need an
# audioread backend (ffmpeg), and where none decodes them they are skipped with the reason,
# not passed over without a word
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".aif", ".aiff", ".opus", ".m4a", ".aac", ".wma"}
AUDIO_FORMATS = "WAV, FLAC, MP3, OGG, AIFF, OPUS, M4A, AAC, WMA"


@dataclass
class PretrainingData:
    name: str                 # "MTAT", "demo" or "audio-<folder>": the <data> of runs/<data>/...
    subset: str
    draw: int                 # 0: the study's subset; k >= 1: another draw of the same size (subsets.py)
    keys: list
    cache: object             # AudioCache
    minutes: float
    tags: tuple | None        # tag vocabulary, for the supervised models
    labels: np.ndarray | None  # (clips, tags) multi-hot float32, rows in `keys` order
    captions: list | None     # a caption per clip, in `keys` order


def _multi_hot(clips, vocabulary):
    index = {t: i for i, t in enumerate(vocabulary)}
    labels = np.zeros((len(clips), len(vocabulary)), dtype=np.float32)
    for row, clip in enumerate(clips):
        labels[row, [index[t] for t in clip.labels["tags"] if t in index]] = 1.0
    return labels


def _finish(name, subset, draw, dataset, clips, sample_rate, vocabulary, captions=None, partial=False):
    """`captions`: {clip id: caption}; made from each clip's tags when None and asked for (an
    empty dict). `partial`: go on with a dataset the decoded clips show incomplete."""
    cache = dataset.audio(sample_rate, clips=clips, partial=partial)
    usable = [c for c in clips if c.id in cache]
    if not usable:
        raise UserError(f"none of the {len(clips)} clips of {dataset.root} could be decoded "
                        f"(see {cache.directory / 'manifest.json'})")
    minutes = float(sum(cache.seconds(c.id) for c in usable) / 60)
    labels = _multi_hot(usable, vocabulary) if vocabulary else None
    texts = None if captions is None else [captions.get(c.id) or caption_files.from_tags(c.labels["tags"], c.id)
                                           for c in usable]
    return PretrainingData(name, subset, draw, [c.id for c in usable], cache, minutes, vocabulary, labels, texts)


def mtat_subset(subset, draw, sample_rate, data_root, demo, learns_from, partial=False):
    dataset = load_dataset("MTAT", data_root, demo=demo)
    clips = subsets.select(dataset.clips, subset, draw)
    return _finish("demo" if demo else "MTAT", subset, draw, dataset, clips, sample_rate,
                   TOP50 if learns_from == "tags" else None, {} if learns_from == "captions" else None, partial)


def audio_files(folder):
    """Every audio file under `folder`, nested folders too, in sorted order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def audio_folder(folder, sample_rate, data_root, tags_file=None, learns_from=None, captions_file=None,
                 partial=False):
    """Every audio file under `folder` (nested folders too); tags from `tags_file` (CSV: path,tags),
    captions from `captions_file` (MuLaP's format: only the files it names). Its decoded-audio
    cache goes under the project's data root, keyed by the folder's path: a user's music folder
    is read, never written."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise UserError(f"--audio-dir {folder} is not a folder")
    supervised = learns_from == "tags"
    if learns_from == "captions" and tags_file is None and captions_file is None:
        raise UserError("this model learns from captions: give --captions FILE (MuLaP's JSON format) or --tags "
                        "FILE (CSV with columns path,tags: captions made from the tags) with --audio-dir")
    if supervised and tags_file is None:
        raise UserError("this model learns from tags: give --tags FILE (CSV with columns path,tags; tags "
                        "separated by ';') with --audio-dir, or pretrain clmr or tmae, which need none")
    tags = {}
    if tags_file is not None:
        with open(tags_file, newline="", encoding="utf-8") as f:
            tags = {r["path"]: tuple(t.strip() for t in r["tags"].split(";") if t.strip())
                    for r in csv.DictReader(f)}
    files = audio_files(folder)
    clips = [Clip(str(p.relative_to(folder)), str(p.relative_to(folder)), "train",
                  {"tags": tags.get(str(p.relative_to(folder)), ())}) for p in files]
    captions = caption_files.read_mulap(captions_file) if captions_file is not None else None
    if captions is not None:
        missing = sorted(set(captions) - {c.id for c in clips})
        if missing:
            raise UserError(f"--captions {captions_file} names {len(missing)} file(s) not under {folder}, "
                            f"such as {missing[0]}")
        clips = [c for c in clips if c.id in captions]
    if supervised:
        clips = [c for c in clips if c.labels["tags"]]
    if not clips:
        raise UserError(f"no usable audio files ({AUDIO_FORMATS}) under {folder}"
                        + (" with tags in --tags" if supervised else ""))
    vocabulary = tuple(sorted({t for c in clips for t in c.labels["tags"]})) if supervised else None
    cache_dir = Path(data_root) / ".cache" / "audio-dirs" / f"{folder.name}-{digest(str(folder))[:8]}"
    return _finish(f"audio-{folder.name}", "all", 0, Dataset(folder.name, folder, clips, cache_dir=cache_dir), clips,
                   sample_rate, vocabulary, (captions or {}) if learns_from == "captions" else None, partial)
