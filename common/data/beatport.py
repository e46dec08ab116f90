"""Beatport EDM Key (key task), in its official layout under data/beatport_key/:

  audio/<name>.mp3          1,486 two-minute previews
  keys/<name>.txt           the key annotation, e.g. "D minor" (several keys: separated by |)
  meta/<name>.json          original metadata (unused here)

Only tracks with exactly one "<tonic> <major|minor>" annotation are kept, flats mapped to
sharps: 24 classes. There is no official split. The study's evaluation (mir_ref) drew a
stratified 80/10/10 split (128 test tracks); that is the default ("study"); the project's
own is a stratified 60/20/20 ("project"). A split is a function of the annotated tracks
alone, stored in the dataset folder (split_study.tsv, split.tsv) as a record; when the
annotations present change (a dataset completed later), it is drawn again and said so.
A track annotated but without its audio stays in the list, so the decoded-audio cache
names it as missing. (mir_ref's own draw used scikit-learn over mirdata's track order,
which is not reproducible here: the proportions and the stratification are.)
"""
import csv
import hashlib
import re
import sys
from pathlib import Path

from ..atomic import write_text
from .clip import Clip
from .download import Remote, extract, fetch_all

TONICS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
KEYS = tuple(f"{t} {m}" for m in ("major", "minor") for t in TONICS)
FLAT_TO_SHARP = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}
KEY_PATTERN = re.compile(r"^([A-G][#b]?)\s+(major|minor)$", re.IGNORECASE)

ZENODO = "https://zenodo.org/record/1101082/files/"
REMOTES = (
    Remote("audio.zip", ZENODO + "audio.zip?download=1", "md5", "f490ee6c23578482d6fcfa11b82636a1"),
    Remote("keys.zip", ZENODO + "keys.zip?download=1", "md5", "939abc05f36121badfac4087241ac172"),
    Remote("original_metadata.zip", ZENODO + "original_metadata.zip?download=1", "md5",
           "bb3e3ac1fe5dee7600ef2814accdf8f8"),
)


def parse_key(text):
    """'Eb minor' -> 'D# minor'; None for anything but exactly one major or minor key."""
    annotations = [a.strip() for a in text.strip().split("|") if a.strip()]
    if len(annotations) != 1:
        return None
    match = KEY_PATTERN.match(annotations[0])
    if not match:
        return None
    tonic = match.group(1)[0].upper() + match.group(1)[1:]
    return f"{FLAT_TO_SHARP.get(tonic, tonic)} {match.group(2).lower()}"


CYCLES = {"study": ("train",) * 8 + ("valid", "test"), "project": ("train", "train", "train", "valid", "test")}
SPLIT_FILES = {"study": "split_study.tsv", "project": "split.tsv"}


def stratified_split(names_by_key, splits="study"):
    """80/10/10 ("study") or 60/20/20 ("project") over each key's files in a fixed
    pseudo-random order (hash of the name).

    Walking the classes one after another and cycling through the splits' shares spreads
    even a key with a handful of files over the splits.
    """
    cycle = CYCLES[splits]
    ordered = [name for key in sorted(names_by_key)
               for name in sorted(names_by_key[key], key=lambda n: hashlib.sha1(n.encode()).hexdigest())]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(ordered)}


def annotated_keys(root):
    """{track name: its key} of every annotation file with exactly one major or minor key."""
    keys = {}
    for key_file in sorted((Path(root) / "keys").glob("*.txt")):
        key = parse_key(key_file.read_text(encoding="utf-8", errors="replace"))
        if key is not None:
            keys[key_file.stem] = key
    return keys


def split_of(root, keys, splits="study"):
    """{track name: split} for the tracks of `keys`: the recorded split while it covers exactly
    these tracks, else drawn again (and recorded)."""
    split_file = Path(root) / SPLIT_FILES[splits]
    recorded = None
    if split_file.exists():
        with open(split_file, newline="", encoding="utf-8") as f:
            recorded = {r["name"]: r["split"] for r in csv.DictReader(f, delimiter="\t")}
        if recorded.keys() == keys.keys():
            return recorded
    by_key = {}
    for name, key in keys.items():
        by_key.setdefault(key, []).append(name)
    split = stratified_split(by_key, splits)
    if recorded is not None:
        print(f"Beatport: the annotated tracks changed since {split_file} was written ({len(recorded)} -> "
              f"{len(split)}): split again", file=sys.stderr)
    write_text(split_file, "name\tsplit\n" + "".join(f"{n}\t{s}\n" for n, s in sorted(split.items())))
    return split


def read(root, splits="study"):
    keys = annotated_keys(root)
    split = split_of(root, keys, splits)
    return [Clip(name, f"audio/{name}.mp3", split[name], {"key": key}) for name, key in keys.items()]


def ensure(root):
    root = Path(root)
    if (root / "audio").is_dir() and (root / "keys").is_dir():
        return
    for archive in fetch_all(REMOTES, root, "Beatport EDM Key"):
        extract(archive, root)
