"""A downstream task of one's own, from a CSV: `--task-csv FILE` of extract_features.py,
downstream.py and reproduce.py.

The CSV has a header and a row per audio file:
    path,label,split      single-label: accuracy and macro F1, as pitch and instrument
    path,labels,split     multi-label, labels separated by ';': ROC-AUC and PR-AUC, as tagging
A `label` column whose values hold ';' is read as multi-label too (detected; `labels`
declares it). Paths are relative to the CSV's folder, or absolute; split is train, valid
or test; the header and the split are read in any case (Path,Label,Split), and each split
needs at least one file. The task is named after the file (moods.csv: moods), and its
features and results go where a built-in task's would (features/<data>/moods/,
results/<data>/moods/), with the task kept beside them as task.json for the figures. The
audio files are read, never written: they are decoded once into a cache under
<data-root>/.cache/task-csv/, one per CSV.
"""
import csv
import re
from pathlib import Path

from ..cli import DEFAULT_DATA_ROOT, UserError
from ..data.clip import Clip
from ..data.dataset import SPLITS, Dataset
from ..provenance import digest
from . import tasks

SHOWN = 5  # a refusal names this many of the rows it is about


def task_name(path):
    """The name of the task a CSV defines, which names its features' and results' folders."""
    return Path(path).stem


def read(path, data_root=None):
    """(the Task, its Dataset) of the CSV at `path`; refuses, in one line, a file that is not a
    task: a missing column or split, an unknown split, a path with no file, a repeated path."""
    path = Path(path).resolve()
    name = task_name(path)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UserError(f"{path}: a task is named after its CSV, so the file name may hold letters, digits, "
                        f"'_', '.' and '-' only")
    rows, label_column = _read_rows(path)
    _check_files(path, rows)
    multilabel, texts, classes = _labels(path, rows, label_column)
    task = tasks.add(tasks.Task(name, path.name, tuple(classes), "tags" if multilabel else "classes",
                                f"{name} ({'multi-label' if multilabel else 'single-label'}, own CSV)"))
    clips = [Clip(r["path"], r["path"], r["split"], {name: text}) for r, text in zip(rows, texts)]
    cache = Path(data_root or DEFAULT_DATA_ROOT) / ".cache" / "task-csv" / f"{name}-{digest(str(path))[:8]}"
    return task, Dataset(task.dataset, path.parent, clips, cache_dir=cache)


def _read_rows(path):
    """(the rows, stripped, with their split in lower case; the label column's name), every
    split present."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # utf-8-sig: spreadsheets' byte-order mark
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path} is not a UTF-8 CSV file: {error}") from None
    label_column = "labels" if "labels" in columns else "label"
    if not rows or not {"path", label_column, "split"} <= set(columns):
        raise UserError(f"{path} needs a header with the columns path, label (or labels) and split, and a row per "
                        f"audio file; it has {', '.join(columns) or 'no rows'}")
    rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None} for row in rows]
    for row in rows:
        row["split"] = row["split"].lower()
    wrong = [f"line {i + 2}: {r['split']!r}" for i, r in enumerate(rows) if r["split"] not in SPLITS]
    if wrong:
        raise UserError(f"{path}: split must be train, valid or test ({_some(wrong)})")
    lacking = [s for s in SPLITS if not any(r["split"] == s for r in rows)]
    if lacking:
        raise UserError(f"{path} has no {' or '.join(lacking)} rows: every split (train, valid, test) needs at least "
                        f"one file")
    return rows, label_column


def _check_files(path, rows):
    """Every row's file exists, and none is named twice (relative to the CSV's folder)."""
    folder = path.parent
    missing = [r["path"] for r in rows if not (folder / r["path"]).is_file()]
    if missing:
        raise UserError(f"{path}: {len(missing)} path(s) with no file (relative to {folder}): {_some(missing)}")
    seen, repeated = set(), []
    for r in rows:
        key = str((folder / r["path"]).resolve())
        repeated += [r["path"]] if key in seen else []
        seen.add(key)
    if repeated:
        raise UserError(f"{path} names a file more than once: {_some(repeated)}")


def _labels(path, rows, label_column):
    """(whether the task is multi-label, each row's label text, the sorted classes); a class
    no train file has is named in a warning."""
    multilabel = label_column == "labels" or any(";" in r[label_column] for r in rows)
    if multilabel:
        labels = [sorted({t.strip() for t in r[label_column].split(";") if t.strip()}) for r in rows]
        classes = sorted({t for tags in labels for t in tags})
        texts = [";".join(tags) for tags in labels]
    else:
        texts = [r[label_column] for r in rows]
        unlabelled = [f"line {i + 2}" for i, text in enumerate(texts) if not text]
        if unlabelled:
            raise UserError(f"{path}: a single-label task needs a label on every row ({_some(unlabelled)})")
        classes = sorted(set(texts))
    if len(classes) < 2:
        raise UserError(f"{path} has {len(classes)} label(s): a task needs at least two")
    untrained = sorted(set(classes) - {t for text, r in zip(texts, rows) if r["split"] == "train"
                                       for t in (text.split(";") if multilabel else [text])})
    if untrained:
        print(f"warning: {path.name}: no train file has {_some(untrained)}: the probes cannot learn "
              f"{'them' if len(untrained) > 1 else 'it'}")
    return multilabel, texts, classes


def _some(items):
    return ", ".join(map(str, items[:SHOWN])) + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
