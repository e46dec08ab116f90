import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_demo_script, save_untrained

import downstream
from common.data.demo import mtat as demo_mtat
from common.evaluation import predictions
from common.evaluation.metrics import accuracy
from common.evaluation.predictions import Predictions
from common.evaluation.probes import PROBES, ProbeSpec, fit, predict

REPO = Path(__file__).resolve().parent.parent


def synthetic_task(n=240, dim=16, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.standard_normal((classes, dim))
    features = [centres[y] + rng.standard_normal((n, dim)) * s for s in (1.0, 2.0)]
    splits = {"train": np.arange(0, 160), "valid": np.arange(160, 200), "test": np.arange(200, 240)}
    return features, y, splits


# the single-label kind fits longer before its probes stop: the slow tier
@pytest.mark.parametrize("task_kind,classes", [pytest.param("classes", 5, marks=pytest.mark.slow), ("tags", 4)])
def test_batched_probes_equal_probes_trained_one_at_a_time(task_kind, classes):
    features, y, splits = synthetic_task(classes=classes)
    targets = np.eye(classes, dtype=np.float32)[y] if task_kind == "tags" else y
    specs = [ProbeSpec(kind, k, seed) for k in range(2) for kind in PROBES for seed in range(2)]
    device = torch.device("cpu")
    together = fit(task_kind, specs, features, targets, splits, classes, device, epochs=15)
    batched = {}
    for probes in together.values():
        outputs = predict(probes, [f[splits["test"]] for f in features])
        batched.update({i: outputs[g] for g, i in enumerate(probes.members)})
    for i, spec in enumerate(specs):
        (probes,) = fit(task_kind, [spec], features, targets, splits, classes, device, epochs=15).values()
        alone = predict(probes, [f[splits["test"]] for f in features])[0]
        np.testing.assert_allclose(batched[i], alone, rtol=1e-4, atol=1e-5)


def test_a_feature_sets_probes_do_not_depend_on_the_sets_fitted_beside_it():
    """Probes seeded by their feature set's own number (downstream.py: its name's CRC-32): a
    checkpoint's numbers stay the same when another checkpoint (a step budget, a kept
    weights' set) is extracted and probed beside it."""
    features, y, splits = synthetic_task()
    device = torch.device("cpu")

    def outputs(sets, streams):
        specs = [ProbeSpec("mlp1", j, 0, streams[j]) for j in range(len(sets))]
        (probes,) = fit("classes", specs, sets, y, splits, 5, device, epochs=5).values()
        return predict(probes, [f[splits["test"]] for f in sets])
    alone = outputs([features[0]], [11])[0]
    beside = outputs([features[1], features[0]], [7, 11])[1]
    np.testing.assert_allclose(beside, alone, rtol=1e-5, atol=1e-6)


def test_bfloat16_probes_score_as_float32_probes():
    """--precision bfloat16 (auto's choice on CUDA and on CPUs with native bfloat16) trains
    the probes' products under autocast; it must not change what they learn."""
    features, y, splits = synthetic_task(dim=32)
    specs = [ProbeSpec(kind, 0, 0) for kind in ("linear", "mlp1")]
    outputs, scores = {}, {}
    for precision in (torch.float32, torch.bfloat16):
        fitted = fit("classes", specs, features[:1], y, splits, 5, torch.device("cpu"), epochs=15,
                     precision=precision)
        assert all(p.dtype == torch.float32 for probes in fitted.values() for p in probes.module.parameters())
        outputs[precision] = [predict(probes, [features[0][splits["test"]]])[0] for probes in fitted.values()]
        scores[precision] = [(o.argmax(1) == y[splits["test"]]).mean() for o in outputs[precision]]
    assert min(scores[torch.float32]) > 0.6
    np.testing.assert_allclose(scores[torch.bfloat16], scores[torch.float32], atol=0.1)
    assert not np.array_equal(outputs[torch.bfloat16][1], outputs[torch.float32][1])  # it did train in bfloat16


def run(script, *options, check=True, **dirs):
    return run_demo_script(script, *options, *[f"--{k.replace('_', '-')}={v}" for k, v in dirs.items()], check=check)


@pytest.fixture(scope="module")
def study(tmp_path_factory, data_root):
    root = tmp_path_factory.mktemp("study")
    dirs = {"features_dir": root / "features", "runs_dir": root / "runs"}
    run("tmae/train.py", "--subset", "1", "--max-steps", "2", "--batch-size", "4", runs_dir=root / "runs")
    run("extract_features.py", "--model", "tmae", "--task", "tagging", "--clips-per-split", "12", **dirs)
    for task in ("pitch", "instrument"):
        run("extract_features.py", "--model", "handcrafted", "--task", task, "--snr", "clean", "10", **dirs)
    return root


def results(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize("task,chance", [("pitch", 1 / 12), ("instrument", 1 / 14)])
def test_handcrafted_probes_learn_pitch_and_instrument(study, task, chance):
    out = run("downstream.py", "--model", "handcrafted", "--task", task, features_dir=study / "features",
              results_dir=study / "results")
    rows = results(study / "results" / "demo" / task / "handcrafted.csv")
    best = max(np.mean([float(r["value"]) for r in rows if r["probe"] == p and r["snr"] == "clean"
                        and r["metric"] == "accuracy"]) for p in PROBES)
    assert best > 4 * chance
    assert {r["snr"] for r in rows} == {"clean", "10"} and {r["metric"] for r in rows} == {"accuracy", "f1_macro"}
    assert "chosen on valid" in out.stdout


@pytest.mark.slow
def test_tagging_rows_for_every_checkpoint_and_condition_and_no_refit(study):
    target = study / "results" / "demo" / "tagging" / "tmae.csv"
    run("downstream.py", "--model", "tmae", "--task", "tagging", "--seeds", "2", "--epochs", "10",
        features_dir=study / "features",
        results_dir=study / "results")
    rows = results(target)
    assert list(rows[0]) == ["model", "checkpoint", "layer", "subset", "draw", "budget", "train_steps", "train_flops",
                             "minutes", "labels", "label_budget", "label_draw", "adaptation", "probe", "seed",
                             "split", "snr", "metric", "value"]
    assert {r["adaptation"] for r in rows} == {"probe"}
    assert {(r["checkpoint"], r["labels"], r["label_budget"]) for r in rows} == {("untrained", "12", "all"),
                                                                                ("1", "12", "all")}
    conditions = ("clean", "20", "10", "0", "deform_0", "deform_1", "deform_2")
    combos = {(r["checkpoint"], r["split"], r["snr"], r["metric"]) for r in rows}
    metrics = ("roc_auc", "pr_auc")
    assert combos == {(c, "test", s, m) for c in ("untrained", "1") for s in conditions for m in metrics} | \
        {(c, "valid", "clean", m) for c in ("untrained", "1") for m in metrics}
    assert {r["probe"] for r in rows} == set(PROBES) == {"linear", "mlp1", "mlp2", "slp", "mlp"}
    assert len(rows) == 2 * 5 * 2 * (len(conditions) + 1) * 2
    assert {r["minutes"] for r in rows if r["checkpoint"] == "1"} == {f"{10 * demo_mtat.CLIP_SECONDS / 60:.2f}"}
    assert all(0 <= float(r["value"]) <= 1 for r in rows)
    mtime = target.stat().st_mtime_ns
    again = ("downstream.py", "--model", "tmae", "--task", "tagging", "--seeds", "2", "--epochs", "10")
    out = run(*again, features_dir=study / "features", results_dir=study / "results")
    assert "is up to date with its features" in out.stdout and target.stat().st_mtime_ns == mtime

    # An interrupted extraction: one checkpoint lacks its SNR 0 features. The condition is left
    # out for every checkpoint, with a warning; once the file is back the results are fitted again.
    features = study / "features" / "demo" / "tagging" / "tmae"
    snr0 = features / "1" / "snr0.npy"
    kept = snr0.read_bytes()
    snr0.unlink()
    out = run(*again, features_dir=study / "features", results_dir=study / "results")
    assert "features 1 changed since it was fitted: fitting again" in out.stdout
    assert "warning: no snr0.npy for 1: snr0 is not evaluated for any checkpoint" in out.stdout
    assert "0" not in {r["snr"] for r in results(target)}
    snr0.write_bytes(kept)
    (features / "5").mkdir()
    (features / "5" / "meta.json").write_text((features / "1" / "meta.json").read_text())  # its clean.npy never came
    out = run(*again, features_dir=study / "features", results_dir=study / "results")
    assert "warning: 5 has no clean.npy (an interrupted extraction?): left out" in out.stdout
    assert "fitting again" in out.stdout and {r["snr"] for r in results(target)} == set(conditions)
    shutil.rmtree(features / "5")


def write_results(path, scores):
    """A results CSV with, per (probe, split), the given accuracy for every seed, and the test
    predictions that score it on 20 clips."""
    path.parent.mkdir(parents=True, exist_ok=True)
    targets, kept = np.arange(20) % 12, Predictions()
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, downstream.COLUMNS)
        writer.writeheader()
        for checkpoint, subset in (("untrained", "untrained"), ("5", "5")):
            for (probe, split), value in scores.items():
                for seed in range(2):
                    writer.writerow({"model": "vggish", "checkpoint": checkpoint, "subset": subset,
                                     "draw": "" if subset == "untrained" else 0, "train_steps": 10,
                                     "minutes": "0.00" if subset == "untrained" else "4.33", "labels": 40,
                                     "label_budget": "all", "adaptation": "probe", "probe": probe, "seed": seed,
                                     "split": split,
                                     "snr": "clean", "metric": "accuracy", "value": value})
                    if split == "test":
                        guesses = np.where(np.arange(20) < round(20 * value), targets, (targets + 1) % 12)
                        kept.add(checkpoint, probe, seed, "clean", np.eye(12, dtype=np.float16)[guesses])
    kept.save(path.with_name("vggish.predictions.npz"), np.arange(20).astype(str), targets)


@pytest.mark.slow
def test_the_chosen_probe_follows_validation_scores_even_where_test_disagrees(tmp_path):
    from common.evaluation import figures
    from reproduce import summary_table

    # linear is best on validation, mlp2 on test: every choice must be linear, shown with its test score
    scores = {("linear", "valid"): 0.9, ("linear", "test"): 0.5, ("mlp2", "valid"): 0.6, ("mlp2", "test"): 0.95}
    write_results(tmp_path / "demo" / "pitch" / "vggish.csv", scores)
    out = run("downstream.py", "--model", "vggish", "--task", "pitch", features_dir=tmp_path / "features",
              results_dir=tmp_path)
    chosen = [line.split() for line in out.stdout.splitlines() if line.startswith(("untrained", "5 "))]
    assert [(line[0], line[2], line[3]) for line in chosen] == [("untrained", "linear", "0.5000"),
                                                                ("5", "linear", "0.5000")]
    assert "vggish 5 (linear): 0.500 [" in summary_table(tmp_path / "demo", ["pitch"])
    df = figures.load(tmp_path / "demo")
    assert figures._drawn_probes(df, "pitch") == [("linear", "-")]


@pytest.mark.slow
def test_missing_features_name_the_command_that_makes_them(tmp_path):
    out = run("downstream.py", "--model", "clmr", "--task", "key", check=False, features_dir=tmp_path,
              results_dir=tmp_path / "results")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "python extract_features.py --model clmr --task key --demo" in out.stderr


def test_the_studys_mlp_is_sized_as_mir_ref_infers_it():
    from common.evaluation.probes import hidden_sizes
    assert hidden_sizes("mlp", 512, 50) == (282,)  # int(50 + 462 / 2) = 281, rounded up to even
    assert hidden_sizes("mlp", 768, 14) == (392,)  # int(14 + 754 / 2) = 391 -> 392
    assert hidden_sizes("slp", 512, 50) == () and hidden_sizes("mlp2", 512, 50) == (256, 128)


def test_mir_ref_probes_stop_on_validation_loss_and_keep_their_best_metric_epoch():
    # With labels the validation split cannot predict, the loss on it rises from the first
    # epochs: the study's probes stop after `patience` epochs, ours (on the metric) may not.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    splits = {"train": np.arange(200), "valid": np.arange(200, 300)}
    specs = [ProbeSpec("slp", 0, 0)]
    (probes,) = fit("classes", specs, [x], y, splits, 3, torch.device("cpu"), epochs=100, patience=3).values()
    outputs = predict(probes, [x[splits["valid"]]])[0]
    assert outputs.shape == (100, 3) and np.isfinite(outputs).all()


def test_extraction_then_probes_in_this_process_write_the_features_and_rows_the_study_reads(tmp_path, data_root,
                                                                                            monkeypatch, capsys):
    """extract_features.py and downstream.py as functions, on a small sample: an untrained
    tmae checkpoint and the hand-crafted features, clean and one condition."""

    import downstream
    import extract_features
    from common.evaluation import figures
    runs, features, results = tmp_path / "runs", tmp_path / "features", tmp_path / "results"
    save_untrained("tmae", runs / "demo" / "tmae" / "1" / "seed0" / "untrained.pt")
    common = ["--demo", "--data-root", str(data_root), "--task", "pitch", "--features-dir", str(features)]
    for model in ("tmae", "handcrafted"):
        monkeypatch.setattr("sys.argv", ["extract_features.py", *common, "--model", model, "--runs-dir", str(runs),
                                         "--snr", "clean", "deform_2", "--clips-per-split", "8"])
        extract_features.main()
        monkeypatch.setattr("sys.argv", ["downstream.py", *common, "--model", model, "--results-dir", str(results),
                                         "--seeds", "1", "--epochs", "3", "--probes", "linear", "slp"])
        downstream.main()
    index = (features / "demo" / "pitch" / "index.csv").read_text().splitlines()
    assert index[0] == "clip_id,label,split" and len(index) == 1 + 24
    tmae = features / "demo" / "pitch" / "tmae" / "untrained"
    assert np.load(tmae / "clean.npy").shape == (24, 256) and np.load(tmae / "deform_2.npy").shape == (8, 256)
    with open(results / "demo" / "pitch" / "tmae.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["split"], r["snr"]) for r in rows} == {("valid", "clean"), ("test", "clean"), ("test", "deform_2")}
    assert {r["probe"] for r in rows} == {"linear", "slp"} and {r["metric"] for r in rows} == {"accuracy", "f1_macro"}
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in rows)
    # the kept test predictions score exactly the CSV's test numbers
    clip_ids, targets, _, outputs = predictions.read(results / "demo" / "pitch" / "tmae.predictions.npz")
    test = [float(r["value"]) for r in rows if r["split"] == "test" and r["metric"] == "accuracy"]
    assert outputs.dtype == np.float16 and outputs.shape == (len(test), 8, 12) and len(clip_ids) == 8
    assert test == pytest.approx([accuracy(targets, o.astype(np.float32).argmax(1)) for o in outputs], abs=1e-6)
    assert "untrained" in capsys.readouterr().out  # the summary names the checkpoint
    drawn = figures.render_all(results / "demo", tmp_path / "figures")
    assert {p.name for p in drawn} >= {"metric_vs_minutes.png", "metric_vs_snr.png", "probe_size.png"}
    assert all(p.stat().st_size > 10_000 for p in drawn)


@pytest.mark.slow
def test_label_budgets_fit_probes_on_fewer_train_labels_and_leave_valid_and_test_whole(study):
    """--shots 2 and --label-fraction 0.5 with two draws: each budget and draw its own results
    (<checkpoint>+shots2, +labels0.5-draw1), scored on the same valid and test clips; the
    summary stays on the whole train split's probes."""
    out = run("downstream.py", "--model", "handcrafted", "--task", "pitch", "--seeds", "1", "--epochs", "5",
              "--shots", "2", "--label-fraction", "0.5", "--label-draws", "2", "--probes", "linear",
              features_dir=study / "features", results_dir=study / "labels")
    rows = results(study / "labels" / "demo" / "pitch" / "handcrafted.csv")
    named = {(r["checkpoint"], r["label_budget"], r["label_draw"], int(r["labels"])) for r in rows}
    index = list(csv.DictReader(open(study / "features" / "demo" / "pitch" / "index.csv")))
    train = [r["label"] for r in index if r["split"] == "train"]
    classes = {label: train.count(label) for label in set(train)}
    shots = sum(min(2, n) for n in classes.values())
    assert {(c, b, d) for c, b, d, _ in named} == {
        ("none", "all", ""), ("none+shots2", "shots2", "0"), ("none+shots2-draw1", "shots2", "1"),
        ("none+labels0.5", "labels0.5", "0"), ("none+labels0.5-draw1", "labels0.5", "1")}
    assert {n for c, _, _, n in named if "shots2" in c} == {shots}
    assert {n for c, _, _, n in named if c == "none"} == {len(train)}
    for split in ("valid", "test"):
        assert len({(r["checkpoint"], r["seed"]) for r in rows if r["split"] == split and r["snr"] == "clean"}) == 5
    kept = predictions.read(study / "labels" / "demo" / "pitch" / "handcrafted.predictions.npz")[2]
    assert set(kept["checkpoint"]) == {c for c, *_ in named}
    assert "none+" not in out.stdout.split("chosen on valid")[1]


@pytest.mark.slow
@pytest.mark.parametrize("options,message", [
    (["--label-draws", "2"], "--label-draws draws the examples of a --label-fraction below 1 or of --shots"),
    (["--label-fraction", "1.5"], "a fraction in (0, 1]"), (["--shots", "0"], "a positive integer")])
def test_bad_label_options_are_one_line(study, options, message):
    out = run("downstream.py", "--model", "handcrafted", "--task", "pitch", *options, check=False,
              features_dir=study / "features", results_dir=study / "labels-bad")
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1
