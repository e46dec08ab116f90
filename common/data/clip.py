"""One audio file of a dataset, with its split and labels: what every loader lists."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Clip:
    id: str                  # unique within the dataset (MTAT clip id, TinySOL path stem, ...)
    path: str                # audio file, relative to the dataset folder
    split: str               # train | valid | test
    labels: dict = field(hash=False)  # e.g. {"tags": (...)} or {"pitch": 45, "instrument": "Cb"}
    seconds: float | None = None      # duration the metadata promises, when it knows it
