import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_demo_script

from common.demo import mtat as demo_mtat
from common.probes import PROBES, ProbeSpec, fit, predict

REPO = Path(__file__).resolve().parent.parent


def synthetic_task(n=240, dim=16, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.standard_normal((classes, dim))
    features = [centres[y] + rng.standard_normal((n, dim)) * s for s in (1.0, 2.0)]
    splits = {"train": np.arange(0, 160), "valid": np.arange(160, 200), "test": np.arange(200, 240)}
    return features, y, splits


@pytest.mark.parametrize("task,classes", [("pitch", 5), ("tagging", 4)])
def test_batched_probes_equal_probes_trained_one_at_a_time(task, classes):
    features, y, splits = synthetic_task(classes=classes)
    targets = np.eye(classes, dtype=np.float32)[y] if task == "tagging" else y
    specs = [ProbeSpec(kind, k, seed) for k in range(2) for kind in PROBES for seed in range(2)]
    device = torch.device("cpu")
    together = fit(task, specs, features, targets, splits, classes, device, epochs=15)
    batched = {}
    for module, sets, members in together.values():
        outputs = predict(module, sets, [f[splits["test"]] for f in features])
        batched.update({i: outputs[g] for g, i in enumerate(members)})
    for i, spec in enumerate(specs):
        ((module, sets, _),) = fit(task, [spec], features, targets, splits, classes, device, epochs=15).values()
        alone = predict(module, sets, [f[splits["test"]] for f in features])[0]
        np.testing.assert_allclose(batched[i], alone, rtol=1e-4, atol=1e-5)


def run(script, *options, check=True, **dirs):
    return run_demo_script(script, *options, *[f"--{k.replace('_', '-')}={v}" for k, v in dirs.items()], check=check)


@pytest.fixture(scope="module")
def study(tmp_path_factory, data_root):
    root = tmp_path_factory.mktemp("study")
    dirs = {"features_dir": root / "features", "runs_dir": root / "runs"}
    run("tmae/train.py", "--subset", "1", "--max-steps", "2", "--batch-size", "4", runs_dir=root / "runs")
    run("extract_features.py", "--model", "tmae", "--task", "tagging", **dirs)
    for task in ("pitch", "instrument"):
        run("extract_features.py", "--model", "handcrafted", "--task", task, "--snr", "clean", "10", **dirs)
    return root


def results(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("task,chance", [("pitch", 1 / 12), ("instrument", 1 / 14)])
def test_handcrafted_probes_learn_pitch_and_instrument(study, task, chance):
    out = run("downstream.py", "--model", "handcrafted", "--task", task, features_dir=study / "features",
              results_dir=study / "results")
    rows = results(study / "results" / "demo" / task / "handcrafted.csv")
    best = max(np.mean([float(r["value"]) for r in rows if r["probe"] == p and r["snr"] == "clean"
                        and r["metric"] == "accuracy"]) for p in PROBES)
    assert best > 4 * chance
    assert {r["snr"] for r in rows} == {"clean", "10"} and {r["metric"] for r in rows} == {"accuracy", "f1_macro"}
    assert "best probe" in out.stdout


def test_tagging_rows_for_every_checkpoint_and_snr_and_no_refit(study):
    target = study / "results" / "demo" / "tagging" / "tmae.csv"
    run("downstream.py", "--model", "tmae", "--task", "tagging", "--seeds", "2", features_dir=study / "features",
        results_dir=study / "results")
    rows = results(target)
    assert list(rows[0]) == ["model", "checkpoint", "subset", "draw", "step", "minutes", "probe", "seed", "snr",
                             "metric", "value"]
    combos = {(r["checkpoint"], r["snr"], r["metric"]) for r in rows}
    assert combos == {(c, s, m) for c in ("untrained", "1") for s in ("clean", "20", "10", "0")
                      for m in ("roc_auc", "pr_auc")}
    assert len(rows) == 2 * 3 * 2 * 4 * 2
    assert {r["minutes"] for r in rows if r["checkpoint"] == "1"} == {f"{10 * demo_mtat.CLIP_SECONDS / 60:.2f}"}
    assert all(0 <= float(r["value"]) <= 1 for r in rows)
    mtime = target.stat().st_mtime_ns
    out = run("downstream.py", "--model", "tmae", "--task", "tagging", features_dir=study / "features",
              results_dir=study / "results")
    assert "exists" in out.stdout and target.stat().st_mtime_ns == mtime


def test_missing_features_name_the_command_that_makes_them(tmp_path):
    out = run("downstream.py", "--model", "clmr", "--task", "key", check=False, features_dir=tmp_path,
              results_dir=tmp_path / "results")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "python extract_features.py --model clmr --task key --demo" in out.stderr
