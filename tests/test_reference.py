import csv
import gzip
import io
import subprocess
import sys
from pathlib import Path

import pytest

import downstream
from common.evaluation import reference

REPO = Path(__file__).resolve().parent.parent


def command(*options):
    return subprocess.run([sys.executable, "-m", "common.evaluation.reference", *map(str, options)], cwd=REPO,
                          capture_output=True, text=True)


def test_every_shipped_number_equals_the_source_table_under_our_names():
    source = list(csv.DictReader(io.StringIO(gzip.decompress(reference.SOURCE.read_bytes()).decode())))
    ours = reference.load()
    assert len(ours) == len(source) == 2182
    for raw, mapped in zip(source, ours):
        assert mapped["value"] == float(raw["value"])
        assert mapped["task"] == {"mtat_tagging": "tagging", "tinysol_instrument": "instrument",
                                  "beatport_key": "key"}[raw["task"]]
        assert mapped["model"] == {"vgg": "vggish", "mae": "tmae"}.get(raw["model"], raw["model"])
        assert mapped["checkpoint"] == {"0": "untrained", "na": "none"}.get(raw["subset"], raw["subset"])
        assert (mapped["probe"], mapped["condition"]) == (raw["probe"], raw["condition"])
    names = {(r["task"], r["metric"]) for r in ours}
    assert {("tagging", "roc_auc"), ("tagging", "pr_auc"), ("instrument", "accuracy"), ("instrument", "f1_macro"),
            ("key", "weighted_score")} <= names
    assert {r["support"] for r in ours if r["task"] == "instrument"} == {582}
    assert {r["support"] for r in ours if r["task"] == "key"} == {128}


@pytest.mark.slow
def test_the_table_prints_the_studys_headline_numbers():
    out = command("--task", "tagging", "--model", "vggish", "--probe", "slp", "--condition", "clean")
    assert out.returncode == 0, out.stderr
    (row,) = [line.split() for line in out.stdout.splitlines() if line.endswith(tuple("0123456789"))
              and " roc_auc " in line]
    header = out.stdout.splitlines()[1].split()
    values = dict(zip(header[5:], row[5:]))
    assert (values["untrained"], values["1"], values["full"]) == ("0.719", "0.836", "0.898")


def write_results(folder, task, model, rows):
    path = folder / task / f"{model}.csv"
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(downstream.COLUMNS)
        # rows as (model, checkpoint, layer, subset, draw, train_steps, minutes, probe, seed, split, snr, metric,
        # value), of runs trained for the study's epochs and probed with every train label
        writer.writerows([*r[:5], "", r[5], "", r[6], "", "all", "", "probe", *r[7:]] for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("data", ["demo", "real"])
def test_compare_sets_ours_beside_the_studys_and_never_invents_a_difference_on_the_demo(tmp_path, data):
    rows = [["vggish", "1", "", "1", "0", "10", "4.85", "slp", seed, split, snr, "roc_auc", value]
            for seed, value in ((0, 0.80), (1, 0.84)) for split, snr in (("valid", "clean"), ("test", "clean"),
                                                                         ("test", "0"), ("test", "deform_1"))]
    write_results(tmp_path / data, "tagging", "vggish", rows)
    out = command("--compare", tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines() if line.startswith("tagging")]
    assert [line[:8] for line in lines] == [["tagging", "vggish", "1", "slp", "clean", "roc_auc", "0.820", "0.836"],
                                            ["tagging", "vggish", "1", "slp", "deform_1", "roc_auc", "0.820", "0.685"]]
    if data == "demo":
        assert all(line[8] == "-" and " ".join(line[9:]) == "not comparable: demo data" for line in lines)
    else:
        assert [line[8] for line in lines] == ["-0.016", "+0.135"]
        assert all(line[9:] == ["-"] for line in lines)  # vggish on tagging: the study's protocol throughout


@pytest.mark.slow
def test_compare_refuses_a_folder_without_results(tmp_path):
    out = command("--compare", tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "results/real" in out.stderr
