"""Downstream tasks of one's own, from a CSV (--task-csv): read, refused, run through."""
import csv
import json
import os
import re
import shutil

import pytest
from conftest import run_demo_script, save_untrained

from common.cli import UserError
from common.data.dataset import load_dataset
from common.evaluation import figures, task_csv


def write_csv(path, rows, header=("path", "label", "split")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def mtat_rows(data_root, folder, n_per_split=(24, 8, 8), tags=("rock", "guitar", "classical")):
    """Demo MTAT clips with their tags among `tags` (';'-joined), paths relative to `folder`."""
    clips = load_dataset("MTAT", data_root, demo=True).clips
    rows = []
    for split, n in zip(("train", "valid", "test"), n_per_split):
        chosen = [c for c in clips if c.split == split][:n]
        rows += [(os.path.relpath(data_root / "demo" / "MTAT" / c.path, folder),
                  ";".join(t for t in c.labels["tags"] if t in tags), split) for c in chosen]
    return rows


def tinysol_rows(data_root, n_per_split=(12, 6, 6)):
    """Demo TinySOL notes labelled by instrument family (the folder under audio/), absolute
    paths, spread over the families."""
    clips = load_dataset("TinySOL", data_root, demo=True).clips
    rows = []
    for split, n in zip(("train", "valid", "test"), n_per_split):
        in_split = [c for c in clips if c.split == split]
        chosen = in_split[::len(in_split) // n][:n]
        rows += [(str(data_root / "demo" / "TinySOL" / c.path), c.path.split("/")[1], split) for c in chosen]
    return rows


@pytest.mark.slow
def test_a_task_of_ones_own_runs_through_extraction_probes_and_figures(tmp_path, data_root):
    """A multi-label task (tags detected from ';' in a `label` column; relative paths; a model's
    checkpoint) and a single-label one (a file whose name holds a comma; hand-crafted
    features) go through extract_features.py, downstream.py and the figures as the built-in
    tasks do, each scored by its kind."""
    own = tmp_path / "own"
    own.mkdir()
    moods = write_csv(own / "moods.csv", mtat_rows(data_root, own))
    family_rows = tinysol_rows(data_root)
    shutil.copy(family_rows[0][0], own / "note, first.wav")
    family_rows[0] = ("note, first.wav", *family_rows[0][1:])
    family = write_csv(own / "family.csv", family_rows)
    runs, features, results = tmp_path / "runs", tmp_path / "features", tmp_path / "results"
    save_untrained("vggish", runs / "demo" / "vggish" / "1" / "seed0" / "untrained.pt")
    dirs = ["--features-dir", features, "--data-root", tmp_path / "data"]  # the decoded audio's cache, in tmp_path
    run_demo_script("extract_features.py", "--model", "vggish", "--task-csv", moods, "--snr", "clean", "0",
                    "--runs-dir", runs, *dirs)
    run_demo_script("extract_features.py", "--model", "handcrafted", "--task-csv", family, "--snr", "clean", "0",
                    *dirs)

    with open(features / "demo" / "family" / "index.csv", newline="") as f:
        index = list(csv.DictReader(f))
    assert [(r["clip_id"], r["label"], r["split"]) for r in index] == [tuple(r) for r in family_rows]
    assert json.loads((features / "demo" / "moods" / "task.json").read_text())["kind"] == "tags"
    assert len(list((tmp_path / "data" / ".cache" / "task-csv").iterdir())) == 2  # a cache per CSV
    assert sorted(p.name for p in own.iterdir()) == ["family.csv", "moods.csv", "note, first.wav"]  # nothing written

    probes = ["--probes", "linear", "slp", "--seeds", "2", "--epochs", "5", "--results-dir", results, *dirs]
    out = run_demo_script("downstream.py", "--model", "vggish", "--task-csv", moods, *probes)
    assert "roc_auc on test" in out.stdout
    out = run_demo_script("downstream.py", "--model", "handcrafted", "--task-csv", family, *probes)
    assert "accuracy on test" in out.stdout
    metrics = {}
    for path in sorted((results / "demo").glob("*/*.csv")):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        metrics[path.parent.name, path.stem] = {(r["split"], r["snr"], r["metric"]) for r in rows}
    for task, model, names in (("moods", "vggish", ("roc_auc", "pr_auc")),
                               ("family", "handcrafted", ("accuracy", "f1_macro"))):
        assert metrics[task, model] == {(split, "clean", m) for split in ("valid", "test") for m in names} | \
            {("test", "0", m) for m in names}

    paths = figures.render_all(results / "demo", tmp_path / "figures")
    assert {p.name for p in paths} == {"metric_vs_minutes.png", "metric_vs_snr.png", "probe_size.png"}
    df = figures.load(results / "demo")
    assert set(df.task) == {"moods", "family"} and set(df[df.task == "moods"].metric) == {"roc_auc"}
    assert figures._tasks(df) == ["family", "moods"]


def test_a_task_csv_that_is_not_a_task_is_refused_naming_what_is_wrong(tmp_path, data_root):
    rows = tinysol_rows(data_root, (2, 2, 2))
    good = write_csv(tmp_path / "family.csv", rows)
    task, dataset = task_csv.read(good)
    assert (task.kind, task.primary, task.dataset) == ("classes", "accuracy", "family.csv")
    assert len(dataset.clips) == 6 and dataset.clips[0].labels == {"family": rows[0][1]}
    declared, _ = task_csv.read(write_csv(tmp_path / "declared.csv", rows, ("path", "labels", "split")))
    assert (declared.kind, declared.primary) == ("tags", "roc_auc")

    cases = {
        "no test rows": (rows[:4], "has no test rows"),
        "a split that is none": (rows[:5] + [(rows[5][0], rows[5][1], "testing")], "line 7: 'testing'"),
        "a file that is not there": (rows[:5] + [("gone.wav", "Winds", "test")], "1 path(s) with no file"),
        "a file twice": (rows + [rows[0]], "names a file more than once"),
        "a row without a label": (rows[:5] + [(rows[5][0], "", "test")], "needs a label on every row"),
    }
    for bad_rows, message in cases.values():
        with pytest.raises(UserError, match=re.escape(message)):
            task_csv.read(write_csv(tmp_path / "bad.csv", bad_rows))
    with pytest.raises(UserError, match="columns path, label"):
        task_csv.read(write_csv(tmp_path / "bad.csv", rows, ("file", "label", "split")))
    with pytest.raises(UserError, match="name of a built-in task"):
        task_csv.read(write_csv(tmp_path / "pitch.csv", rows))



@pytest.mark.slow
def test_a_command_given_a_task_csv_that_is_not_a_task_ends_in_one_line(tmp_path, data_root):
    missing_split = write_csv(tmp_path / "bad.csv", tinysol_rows(data_root, (2, 2, 2))[:4])
    out = run_demo_script("downstream.py", "--model", "handcrafted", "--task-csv", missing_split, "--features-dir",
                          tmp_path / "features", check=False)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "no test rows" in out.stderr


def test_reproduce_extracts_and_probes_a_task_of_ones_own_beside_the_built_in_ones(tmp_path, data_root,
                                                                                   monkeypatch):
    import reproduce
    moods = write_csv(tmp_path / "moods.csv", mtat_rows(data_root, tmp_path, (2, 2, 2)))
    monkeypatch.setattr("sys.argv", ["reproduce.py", "--demo", "--quick", "--models", "vggish", "--tasks", "pitch",
                                     "--task-csv", str(moods), "--runs-dir", str(tmp_path / "runs")])
    args = reproduce.parse_args()
    steps = {step.description: step.prepare for step in reproduce.steps(args, reproduce.GRIDS["demo-quick"])}
    for description in ("extract vggish features for moods", "fit probes on handcrafted features for moods"):
        options = steps[description]("cpu")
        assert options[options.index("--task-csv") + 1] == moods and "--task" not in options
    assert [name for name, _ in reproduce.task_options(args)] == ["pitch", "moods"]


@pytest.mark.slow
def test_reproduce_refuses_two_task_csvs_of_one_name(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "moods.csv").write_text("path,label,split\n")
    out = run_demo_script("reproduce.py", "--plan", "--task-csv", tmp_path / "a" / "moods.csv",
                          tmp_path / "b" / "moods.csv", check=False)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "two files are named moods.csv" in out.stderr
