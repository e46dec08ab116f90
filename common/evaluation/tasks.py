"""The downstream tasks: which dataset each uses, what its label is, and how it is scored.

A task's kind says how probes learn it and how they are scored (metrics.py):
  tags      multi-label (a clip has any number of the classes): ROC-AUC and PR-AUC
  classes   single-label: accuracy and macro F1
  key       single-label over the 24 keys: accuracy and the MIREX weighted score
Labels are stored as strings in the feature index (a tag list joined by ';' for tags);
`classes` fixes the order in which probes see them.

The four built-in tasks are TASKS. A task of one's own (task_csv.py) is known by name to
the rest of the process once read, like the built-in ones (`get`), and is kept as
task.json beside its features and results so that figures and summaries read it back.
"""
import json
from dataclasses import asdict, dataclass

from ..atomic import write_json
from ..cli import UserError
from ..data.beatport import KEYS
from ..data.mtat import TOP50
from ..data.tinysol import INSTRUMENTS
from .metrics import PRIMARY

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class Task:
    name: str
    dataset: str
    classes: tuple
    kind: str
    title: str  # of its figure panels

    @property
    def multilabel(self):
        return self.kind == "tags"

    @property
    def primary(self):
        """The metric by which probes and checkpoints are chosen and figures drawn."""
        return PRIMARY[self.kind]

    def label(self, clip):
        if self.name == "tagging":
            return ";".join(clip.labels["tags"])
        if self.name == "pitch":
            return PITCH_CLASSES[clip.labels["pitch"] % 12]
        return clip.labels[self.name]  # instrument, key, a task of one's own


TASKS = {
    "tagging": Task("tagging", "MTAT", TOP50, "tags", "Tagging (MTAT)"),
    "pitch": Task("pitch", "TinySOL", PITCH_CLASSES, "classes", "Pitch class (TinySOL)"),
    "instrument": Task("instrument", "TinySOL", INSTRUMENTS, "classes", "Instrument (TinySOL)"),
    "key": Task("key", "beatport_key", KEYS, "key", "Key (Beatport)"),
}
_OWN = {}  # tasks of one's own read in this process


def get(name):
    """The task called `name`: a built-in one, or one's own read in this process."""
    return TASKS.get(name) or _OWN[name]


def add(task):
    """Make a task of one's own known by its name."""
    if task.name in TASKS:
        raise UserError(f"a task of one's own cannot be called {task.name!r}, the name of a built-in task: "
                        f"rename its CSV")
    _OWN[task.name] = task
    return task


def save(task, folder):
    write_json(folder / "task.json", asdict(task))


def read_saved(folder):
    """The task whose features or results lie in `folder`: a built-in one by the folder's
    name, else the task.json kept there (None when there is none)."""
    if folder.name in TASKS:
        return TASKS[folder.name]
    saved = folder / "task.json"
    if not saved.exists():
        return None
    fields = json.loads(saved.read_text())
    return add(Task(**{**fields, "classes": tuple(fields["classes"])}))
