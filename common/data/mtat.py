"""MagnaTagATune (pretraining and the tagging task), in its official layout under data/MTAT/:

  annotations_final.csv     tab-separated, quoted: clip_id, the 188 tags (0/1), mp3_path
  0/ .. 9/ a/ .. f/         the clips, from mp3.zip.001-003 concatenated and unzipped

The split (Lee et al. 2017 / Won et al. 2020: 15,247 train, 1,529 valid, 4,332 test clips,
each with at least one top-50 tag) ships with the project in resources/mtat_index.tsv.gz,
so no split file is downloaded. A dataset folder may carry its own mtat_index.tsv.gz in
the same format (the demo does).
"""
import csv
import gzip
import sys
from pathlib import Path

from .clip import Clip
from .download import Remote, concatenate, extract, fetch_all

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
INDEX_NAME = "mtat_index.tsv.gz"

# The standard top-50 tags, most frequent first.
TOP50 = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "pop", "no vocal", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "female voice", "metal", "choral",
)

BASE_URL = "https://mirg.city.ac.uk/datasets/magnatagatune/"
REMOTES = (
    Remote("mp3.zip.001", BASE_URL + "mp3.zip.001", "sha256",
           "f857fe185968773058cc71662c2ef5d8f2d4b7338e3c122cfd52f82dcb9760b9"),
    Remote("mp3.zip.002", BASE_URL + "mp3.zip.002", "sha256",
           "fc2e1ec441755556ed1398b1808f1b08b6034372f8bc27394510c0c58cdb52ce"),
    Remote("mp3.zip.003", BASE_URL + "mp3.zip.003", "sha256",
           "83a689824c17e82f6eb81cdbc4e4ca239a4cfc1fb41f1a5c80b861caec90450f"),
    Remote("annotations_final.csv", BASE_URL + "annotations_final.csv", "sha256",
           "99b94e95825d4fa576386a5367b9c96e0ec636e9f9c240aceb492f4728f68c3c"),
)
AUDIO_FOLDERS = tuple("0123456789abcdef")


def _top50_order(tags):
    return tuple(sorted(tags, key=TOP50.index))


def all_tags():
    """The 188 tag names of annotations_final.csv."""
    return (RESOURCES / "mtat_tags.txt").read_text().split("\n")[:-1]


def read_index(path=RESOURCES / INDEX_NAME):
    """Clips of the split index alone (no audio, no annotations file needed)."""
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [Clip(r["clip_id"], r["mp3_path"], r["split"],
                 {"tags": _top50_order(t for t in r["tags"].split(",") if t)}, float(r["seconds"]))
            for r in rows]


def read_annotations(path):
    """{clip_id: (mp3_path, top-50 tags in TOP50 order)} from an annotations_final.csv."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quotechar='"')
        header = next(reader)
        columns = sorted(((i, name) for i, name in enumerate(header) if name in TOP50),
                         key=lambda column: TOP50.index(column[1]))
        path_column = header.index("mp3_path")
        return {row[0]: (row[path_column], tuple(name for i, name in columns if row[i] == "1"))
                for row in reader if row}


def read(root):
    """Every clip of the split, with paths and top-50 tags from the dataset's annotations_final.csv."""
    root = Path(root)
    index = root / INDEX_NAME if (root / INDEX_NAME).exists() else RESOURCES / INDEX_NAME
    annotations = read_annotations(root / "annotations_final.csv")
    clips = []
    for clip in read_index(index):
        path, tags = annotations.get(clip.id, (clip.path, clip.labels["tags"]))
        clips.append(Clip(clip.id, path, clip.split, {"tags": tags}, clip.seconds))
    return clips


def ensure(root):
    """Download and extract MTAT into `root` unless it is already there. Where some of its audio
    folders are there, nothing is downloaded: the clips of the missing folders count as missing
    (and a split short of them stops extraction and pretraining, common/data/dataset.py)."""
    root = Path(root)
    present = [d for d in AUDIO_FOLDERS if (root / d).is_dir()]
    if present and not (root / "annotations_final.csv").exists():
        fetch_all(REMOTES[3:], root, "MagnaTagATune")
    if present:
        missing = [d for d in AUDIO_FOLDERS if d not in present]
        if missing:
            print(f"MagnaTagATune: the audio folder(s) {', '.join(missing)} of the 16 are missing under {root}: their "
                  f"clips count as missing", file=sys.stderr)
        return
    files = fetch_all(REMOTES, root, "MagnaTagATune")
    archive = concatenate(files[:3], root / "mp3.zip")
    extract(archive, root)
    archive.unlink()
