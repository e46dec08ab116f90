"""TinySOL (pitch and instrument tasks), in its official layout under data/TinySOL/:

  TinySOL_metadata.csv      Path, Fold, Family, Instrument (abbr.), ..., Pitch ID (MIDI), ...
  audio/                    TinySOL.tar.gz extracted here; `Path` is relative to this folder

2,913 single notes of 14 instruments, split by the `Fold` column (about 583 notes a fold).
The study's split (mir_ref's first of the five rotations it makes of TinySOL's folds:
fold 0 validation, fold 1 test, the rest training; its reports count 582 test notes) is
the default; the project's own (folds 0-2 train, 3 valid, 4 test) is "project".
"""
import csv
from pathlib import Path

from .clip import Clip
from .download import Remote, extract, fetch_all

HEADER = ("Path,Fold,Family,Instrument (abbr.),Instrument (in full),Technique (abbr.),"
          "Technique (in full),Pitch,Pitch ID,Dynamics,Dynamics ID,Instance ID,"
          "String ID (if applicable),Needed digital retuning").split(",")
INSTRUMENTS = ("Acc", "ASax", "Bn", "BTb", "Cb", "ClBb", "Fl", "Hn", "Ob", "Tbn", "TpC", "Va", "Vc", "Vn")
FOLD_SPLITS = {"study": {0: "valid", 1: "test", 2: "train", 3: "train", 4: "train"},
               "project": {0: "train", 1: "train", 2: "train", 3: "valid", 4: "test"}}

REMOTES = (
    Remote("TinySOL.tar.gz", "https://zenodo.org/record/3685367/files/TinySOL.tar.gz?download=1",
           "md5", "36030a7fe389da86c3419e5ee48e3b7f"),
    Remote("TinySOL_metadata.csv", "https://zenodo.org/record/3685367/files/TinySOL_metadata.csv?download=1",
           "md5", "a86c9bb115f69e61f2f25872e397fc4a"),
)


def read(root, splits="study"):
    root = Path(root)
    with open(root / "TinySOL_metadata.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [Clip(Path(r["Path"]).stem, f"audio/{r['Path']}", FOLD_SPLITS[splits][int(r["Fold"])],
                 {"pitch": int(r["Pitch ID"]), "instrument": r["Instrument (abbr.)"]})
            for r in rows]


def ensure(root):
    root = Path(root)
    if (root / "TinySOL_metadata.csv").exists() and (root / "audio").is_dir():
        return
    archive, _ = fetch_all(REMOTES, root, "TinySOL")
    if not (root / "audio").is_dir():
        extract(archive, root / "audio")
