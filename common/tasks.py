"""The downstream tasks: which dataset each uses and what its label is.

Labels are stored as strings in the feature index (a tag list joined by ';' for
tagging); `classes` fixes the order in which probes see them.
"""
from dataclasses import dataclass

from common.beatport import KEYS
from common.mtat import TOP50
from common.tinysol import INSTRUMENTS

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class Task:
    name: str
    dataset: str
    classes: tuple
    multilabel: bool

    def label(self, clip):
        if self.name == "tagging":
            return ";".join(clip.labels["tags"])
        if self.name == "pitch":
            return PITCH_CLASSES[clip.labels["pitch"] % 12]
        return clip.labels[self.name]  # instrument, key


TASKS = {
    "tagging": Task("tagging", "MTAT", TOP50, multilabel=True),
    "pitch": Task("pitch", "TinySOL", PITCH_CLASSES, multilabel=False),
    "instrument": Task("instrument", "TinySOL", INSTRUMENTS, multilabel=False),
    "key": Task("key", "beatport_key", KEYS, multilabel=False),
}
