import csv
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_demo_script

from common.cli import UserError
from common.data import audio_cache, captions
from common.data.dataset import load_dataset
from common.data.demo import mtat as demo_mtat
from common.models import checkpoints
from common.models.registry import MODELS, model_class, pretraining_objective, train_script
from common.training import loop as training
from common.training.distributed import World
from common.training.epochs import epoch_items, epoch_plan, read_crops

REPO = Path(__file__).resolve().parent.parent


def train(model, runs, *extra, env=None, check=True):
    return run_demo_script(f"{model}/train.py", "--runs-dir", runs, *extra, env=env, check=check)


def weights(path):
    return checkpoints.load(path)["model"]


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_each_train_py_writes_the_results_layout(model, tmp_path, data_root):
    # One item per clip: an epoch is 5 steps of 2, and the weights of every epoch are kept.
    train(model, tmp_path, "--subset", "1", "--max-steps", "5", "--batch-size", "2", "--crops-per-clip", "1",
          "--checkpoint-every", "1")
    run = tmp_path / "demo" / model / "1" / "seed0"
    config = json.loads((run / "config.json").read_text())
    assert config["n_clips"] == 10 and config["minutes"] == pytest.approx(10 * demo_mtat.CLIP_SECONDS / 60, abs=1e-3)
    assert config["args"]["batch_size"] == 2 and config["model"]["name"] == model and config["draw"] == 0
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert set(rows[0]) == {"step", "epoch", "loss", "lr", "items_per_s", "data_s"}
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["step"] == 5 and last["epoch"] == 1 and {"optimizer", "scheduler", "model"} <= set(last)
    untrained, trained = weights(run / "untrained.pt"), weights(run / "last.pt")
    assert any(not torch.equal(untrained[k], trained[k]) for k in untrained)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step0000005.pt"]
    kept = torch.load(run / "checkpoints" / "step0000005.pt", weights_only=True)
    assert kept["epoch"] == 1 and kept["subset"] == "1"


def segment_cache(tmp_path, seconds):
    """A decoded-audio cache of noise clips of the given lengths at 16 kHz."""
    rng = np.random.default_rng(0)
    items = []
    for i, length in enumerate(seconds):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, rng.uniform(-0.5, 0.5, int(length * 16000)).astype(np.float32), 16000)
        items.append((f"clip{i}", path, None))
    return audio_cache.build(tmp_path / "cache", items, 16000)


def test_tile_crops_visit_each_segment_of_each_clip_once_per_epoch(tmp_path):
    cache = segment_cache(tmp_path, [29.1, 29.1, 10.0, 5.2, 1.0])
    data = SimpleNamespace(keys=list(cache.keys), cache=cache)
    length = model_class("vggish").input_samples
    args = SimpleNamespace(crops="tile", crops_per_clip=8)
    clips, segments = epoch_items(data, args, length)
    # the study's 8 segments of a 29 s clip; fewer of shorter clips: those at least half audio, at least one
    assert np.bincount(clips).tolist() == [8, 8, 3, 1, 1]
    for epoch, batch_size in ((0, 4), (1, 5), (2, 64)):
        plan = epoch_plan(len(clips), 0, epoch, World(), batch_size)
        assert all(len(batch) >= 2 for batch in plan)
        visited = np.concatenate(plan)
        assert sorted(visited) == list(range(len(clips)))  # each item exactly once
        for batch in plan:
            audio = read_crops(data, clips[batch], segments[batch], "tile", length, None)
            for row, c, k in zip(audio, clips[batch], segments[batch]):
                expected = cache.clip(data.keys[c])[k * length:(k + 1) * length]
                np.testing.assert_array_equal(row[:len(expected)], expected)
                assert not row[len(expected):].any()  # the last segment is zero-padded
    orders = [np.concatenate(epoch_plan(len(clips), 0, e, World(), 4)) for e in (0, 1)]
    assert not np.array_equal(*orders)  # shuffled anew each epoch


def test_processes_share_every_step_and_together_visit_each_item_once():
    for n_items, batch_size in ((21, 8), (20, 6), (9, 4)):
        plans = [epoch_plan(n_items, 3, 0, World(rank=r, size=2), batch_size) for r in range(2)]
        assert len(plans[0]) == len(plans[1])  # every process takes every step
        assert sorted(np.concatenate(plans[0] + plans[1])) == list(range(n_items))
        assert all(len(b) >= 2 for plan in plans for b in plan)


@pytest.mark.slow
def test_torchrun_ddp_with_gloo_writes_one_run(tmp_path, data_root):
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "clmr/train.py", "--demo", "--runs-dir", str(tmp_path), "--subset", "1",
                          "--batch-size", "4", "--max-steps", "2", "--device", "cpu"],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = list(tmp_path.rglob("last.pt"))
    assert len(runs) == 1
    config = json.loads((runs[0].parent / "config.json").read_text())
    assert config["world_size"] == 2
    assert torch.load(runs[0], weights_only=True)["step"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("model", ["clmr", "vggish"])
def test_two_processes_train_on_the_loss_and_gradients_of_one(model, tmp_path):
    """clmr's NT-Xent compares clips across the batch, and both models have BatchNorm: under
    torchrun both must be computed over the global batch (common/training/global_batch.py)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def step(*launcher, local=False):
        out = tmp_path / f"{len(launcher)}{'-local' * local}.pt"
        run = subprocess.run([sys.executable, *launcher, "tests/scripts/global_batch_step.py", model, str(out),
                              *["per-process"] * local], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        return torch.load(out, weights_only=True)

    torchrun = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")
    one, two, local = step(), step(*torchrun), step(*torchrun, local=True)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-6)
    scale = max(g.abs().max() for g in one["grads"].values())
    for name, grad in one["grads"].items():  # float64: a difference here is no rounding
        assert (two["grads"][name] - grad).abs().max() <= 1e-6 * max(grad.abs().max(), 1e-3 * scale), name
    for name, statistic in one["running"].items():
        torch.testing.assert_close(two["running"][name], statistic, rtol=1e-9, atol=1e-12)
    # what naive DDP would train instead: per-process negatives and BatchNorm statistics
    assert abs(local["loss"] - one["loss"]) > 1e-3 * abs(one["loss"]) or \
        max((local["grads"][k] - g).abs().max() / g.abs().max() for k, g in one["grads"].items()) > 1e-2


@pytest.mark.slow
def test_audio_dir_pretraining_for_self_supervised_models(tmp_path):
    rng = np.random.default_rng(0)
    for i, sub in enumerate(["a", "a/b", "c"]):
        (tmp_path / "music" / sub).mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "music" / sub / f"x{i}.wav", 0.2 * rng.standard_normal(44100 * 5), 44100)
    sf.write(tmp_path / "music" / "a" / "y.flac", 0.2 * rng.standard_normal(16000 * 6), 16000)
    out = subprocess.run([sys.executable, "clmr/train.py", "--audio-dir", str(tmp_path / "music"), "--runs-dir",
                          str(tmp_path / "runs"), "--data-root", str(tmp_path / "data"), "--max-steps", "1",
                          "--batch-size", "4"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    config = json.loads((tmp_path / "runs" / "audio-music" / "clmr" / "all" / "seed0" / "config.json").read_text())
    assert config["n_clips"] == 4 and config["minutes"] == pytest.approx((15 + 6) / 60, abs=1e-3)
    out = subprocess.run([sys.executable, "vggish/train.py", "--audio-dir", str(tmp_path / "music")],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "--tags" in out.stderr


@pytest.mark.slow
def test_mulap_learns_from_a_mulap_format_captions_file_and_refuses_a_malformed_one(tmp_path):
    """MuLaP's own format (ilaria-manco/mulap's example dataset_train.json): only the files it
    names are trained on, the vocabulary is their captions' words; a malformed file, or a
    folder without captions, is refused in one line."""
    rng = np.random.default_rng(0)
    (tmp_path / "music" / "a").mkdir(parents=True)
    for path in ("a/x.wav", "y.wav", "z.wav"):
        sf.write(tmp_path / "music" / path, 0.2 * rng.standard_normal(16000 * 4), 16000)
    pairs = [{"audio_id": 1, "caption": "First caption that describes this amazing track!", "audio_path": "a/x.wav"},
             {"audio_id": 2, "caption": "A slow piano piece", "audio_path": "y.wav"}]
    (tmp_path / "train.json").write_text(json.dumps(pairs))

    def train(*options):
        return subprocess.run([sys.executable, "mulap/train.py", "--audio-dir", str(tmp_path / "music"),
                               "--runs-dir", str(tmp_path / "runs"), "--data-root", str(tmp_path / "data"),
                               "--max-steps", "1", "--batch-size", "2", *options],
                              cwd=REPO, capture_output=True, text=True)
    out = train("--captions", str(tmp_path / "train.json"))
    assert out.returncode == 0, out.stderr[-2000:]
    run = tmp_path / "runs" / "audio-music" / "mulap" / "all" / "seed0"
    assert json.loads((run / "config.json").read_text())["clips"] == ["a/x.wav", "y.wav"]
    assert torch.load(run / "untrained.pt", weights_only=True)["vocabulary"] == [
        *captions.SPECIAL, "a", "amazing", "caption", "describes", "first", "piano", "piece", "slow", "that", "this",
        "track"]
    for malformed in ('{"audio_id": 1}', '[{"audio_id": 1, "caption": "", "audio_path": "y.wav"}]',
                      '[{"audio_id": 1, "caption": "a", "audio_path": "gone.wav"}]', "[{"):
        (tmp_path / "bad.json").write_text(malformed)
        out = train("--captions", str(tmp_path / "bad.json"), "--seed", "1")
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
        assert "bad.json" in out.stderr
    out = train("--seed", "1")
    assert out.returncode == 2 and "--captions" in out.stderr


@pytest.mark.slow
def test_skipped_audio_is_named_at_every_run_and_tried_again_once_it_changes(tmp_path):
    """A FIFO named like audio is skipped and named, not waited on; the cache lies under the data
    root, not in the user's folder; every run says what it skips; once the file is replaced by
    real audio, the next run decodes it and trains on it."""
    rng = np.random.default_rng(0)
    (tmp_path / "music").mkdir()
    for i in range(2):
        sf.write(tmp_path / "music" / f"x{i}.wav", 0.2 * rng.standard_normal(16000 * 6), 16000)
    os.mkfifo(tmp_path / "music" / "pipe.wav")  # opening it for reading would block forever

    def train_once(seed):
        out = subprocess.run([sys.executable, "tmae/train.py", "--audio-dir", str(tmp_path / "music"), "--runs-dir",
                              str(tmp_path / "runs"), "--data-root", str(tmp_path / "data"), "--max-steps", "1",
                              "--batch-size", "2", "--seed", str(seed)],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        config = tmp_path / "runs" / "audio-music" / "tmae" / "all" / f"seed{seed}" / "config.json"
        return out.stderr, json.loads(config.read_text())["n_clips"]

    for seed in (0, 1):  # the second run meets the skip in the cache, and says so again
        stderr, n_clips = train_once(seed)
        assert "skipped 1 unusable audio file(s): pipe.wav (not a regular file)" in stderr and n_clips == 2
    assert not (tmp_path / "music" / ".cache").exists()
    manifest, = (tmp_path / "data" / ".cache" / "audio-dirs").glob("music-*/sr16000/manifest.json")
    assert [s["skipped"] for s in json.loads(manifest.read_text())["skipped"]] == ["not a regular file"]

    (tmp_path / "music" / "pipe.wav").unlink()
    sf.write(tmp_path / "music" / "pipe.wav", 0.2 * rng.standard_normal(16000 * 6), 16000)
    stderr, n_clips = train_once(2)
    assert "1 audio file(s) skipped before appeared or changed since: trying them again (pipe.wav)" in stderr
    assert "unusable" not in stderr and n_clips == 3
    assert json.loads(manifest.read_text())["skipped"] == []


@pytest.mark.slow
def test_a_subset_the_demo_lacks_is_one_line_naming_those_it_has(tmp_path, data_root):
    out = train("musicnn", tmp_path, "--subset", "50", check=False)
    assert out.returncode == 2 and "choose from 1, 2, 5, 10, 20, full" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


@pytest.mark.slow
def test_missing_data_without_network_is_one_line(tmp_path):
    proxy = "http://127.0.0.1:9"  # the discard port: nothing listens, every download is refused
    out = subprocess.run([sys.executable, "vggish/train.py", "--data-root", str(tmp_path), "--subset", "1"],
                         cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "http_proxy": proxy, "https_proxy": proxy})
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "--demo" in out.stderr and "mp3.zip.001" in out.stderr


def test_non_finite_loss_stops_before_touching_the_weights(tmp_path, data_root, monkeypatch):
    options = ["train.py", "--demo", "--subset", "1", "--batch-size", "2", "--runs-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", options + ["--max-steps", "2"])
    defaults = {"epochs": 1000, "batch_size": 2, "lr": 1e-3, "weight_decay": 0.0, "lr_schedule": "plateau",
                "crops": "tile", "crops_per_clip": 1, "checkpoint_every": 50}
    training.pretrain("tmae", lambda model, batch: model(batch.audio)[0].float().pow(2).mean(), defaults, "test")
    run = tmp_path / "demo" / "tmae" / "1" / "seed0"
    before = weights(run / "last.pt")
    monkeypatch.setattr(sys, "argv", options + ["--max-steps", "4", "--resume"])
    with pytest.raises(UserError, match="loss became nan at step 3"):
        training.pretrain("tmae", lambda model, batch: model(batch.audio)[0].sum() * float("nan"), defaults, "test")
    after = weights(run / "last.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_ast_train_help_runs_from_the_repository_root():
    out = subprocess.run([sys.executable, "ast/train.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "--subset" in out.stdout


@pytest.mark.parametrize("model,epochs,batch,every,crops", [
    ("vggish", 1000, 64, 50, "--crops-per-clip CROPS_PER_CLIP items of each clip per epoch: segments with tile, "
                             "crops with random (default: 8)"),
    ("musicnn", 1000, 50, 50, "(default: 10)"), ("ast", 150, 24, 10, "(default: 6)"), ("clmr", 1000, 10, 50, None)])
def test_help_shows_the_studys_budgets(model, epochs, batch, every, crops, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")
    monkeypatch.setattr(sys, "argv", [f"{model}/train.py", "--help"])
    with pytest.raises(SystemExit):
        runpy.run_path(str(REPO / model / "train.py"), run_name="__main__")
    text = " ".join(capsys.readouterr().out.split())
    assert f"--epochs EPOCHS default: {epochs}" in text and f"(default: {batch})" in text
    assert f"extracted as <subset>@<N> (default: {every}; with --budget" in text
    assert crops is None or crops in text
    assert ("(default: tile)" in text) == (model != "clmr")


@pytest.mark.slow
def test_a_draw_trains_on_other_clips_of_the_same_size(tmp_path, data_root):
    train("tmae", tmp_path, "--subset", "2", "--draw", "1", "--max-steps", "1", "--batch-size", "2")
    train("tmae", tmp_path, "--subset", "2", "--max-steps", "1", "--batch-size", "2")
    study, drawn = (json.loads((tmp_path / "demo" / "tmae" / name / "seed0" / "config.json").read_text())
                    for name in ("2", "2-draw1"))
    assert drawn["draw"] == 1 and drawn["n_clips"] == study["n_clips"] == 20
    assert drawn["minutes"] == pytest.approx(study["minutes"]) and set(drawn["clips"]) != set(study["clips"])
    assert torch.load(tmp_path / "demo" / "tmae" / "2-draw1" / "seed0" / "last.pt", weights_only=True)["draw"] == 1
    out = train("tmae", tmp_path, "--subset", "full", "--draw", "1", check=False)
    assert out.returncode == 2 and "full is the whole train split" in out.stderr


@pytest.mark.parametrize("strategy,samples,shared", [  # CLMR's own in the fast tier, the others in the slow one
    ("different-segments", 59049, False), pytest.param("same-segment", 59049, True, marks=pytest.mark.slow),
    pytest.param("regional", 3 * 59049, True, marks=pytest.mark.slow)])
def test_each_contrastive_strategy_sees_an_item_through_its_own_crops(strategy, samples, shared, tmp_path,
                                                                      monkeypatch):
    """CLMR's views are two crops of the clip; same-segment and regional augment one crop twice,
    regional a crop of three windows."""
    from clmr.train import DEFAULTS
    seen = []

    def record(model, batch):
        seen.append(batch.audio.clone())
        return model(batch.audio).pow(2).mean()
    monkeypatch.setattr(sys, "argv", ["clmr/train.py", "--demo", "--subset", "1", "--batch-size", "2", "--max-steps",
                                      "1", "--strategy", strategy, "--runs-dir", str(tmp_path)])
    training.pretrain("clmr", record, DEFAULTS, "test", views=2)
    _, audio = seen  # the batch of the FLOP count (flops.py), then the step's
    assert audio.shape == (4, samples)
    assert torch.equal(audio[:2], audio[2:]) == shared
    model_id = "clmr" if strategy == "different-segments" else f"clmr-{strategy}"
    assert (tmp_path / "demo" / model_id / "1" / "seed0" / "last.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("model,options", [("tune", []), ("clmr-regional", ["--strategy", "regional"]),
                                           ("mulap", [])])
def test_the_new_paradigms_resume_exactly_and_their_checkpoints_extract_and_probe(model, options, tmp_path,
                                                                                  data_root, monkeypatch):
    """TUNe, a contrastive strategy and MuLaP (captions made from the subset's tags)."""
    name = model.split("-")[0]
    objective, learns_from, views = pretraining_objective(name)
    straight, halves, features, results = (tmp_path / d for d in ("straight", "halves", "features", "results"))

    def train(runs, steps, *resume):  # in this process, as extraction and probes below: a launch costs seconds
        monkeypatch.setattr(sys, "argv", ["train.py", "--demo", "--subset", "1", "--batch-size", "2", *options,
                                          "--max-steps", str(steps), "--runs-dir", str(runs), *resume])
        training.pretrain(name, objective, train_script(name).DEFAULTS, "test", learns_from, views)
    train(straight, 2)
    train(halves, 1)
    train(halves, 2, "--resume")
    run = Path("demo") / model / "1" / "seed0"
    config = json.loads((straight / run / "config.json").read_text())
    assert config["model"]["name"] == model
    if model == "mulap":  # its words are those of its clips' captions, each made from the clip's own tags
        clips = {c.id: c for c in load_dataset("MTAT", data_root, demo=True).clips}
        texts = [captions.from_tags(clips[k].labels["tags"], k) for k in config["clips"]]
        assert torch.load(straight / run / "untrained.pt", weights_only=True)["vocabulary"] == \
            list(captions.vocabulary(texts))
    for name in ("untrained.pt", "last.pt"):
        a, b = torch.load(straight / run / name, weights_only=True), torch.load(halves / run / name, weights_only=True)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name
    import downstream
    import extract_features
    data = ["--demo", "--data-root", str(data_root), "--model", model, "--task", "pitch"]
    monkeypatch.setattr(sys, "argv", ["extract_features.py", *data, "--snr", "clean", "--checkpoints", "untrained",
                                      "1", "--clips-per-split", "6", "--runs-dir", str(straight), "--features-dir",
                                      str(features)])
    extract_features.main()
    assert np.load(features / "demo" / "pitch" / model / "1" / "clean.npy").shape == (18, model_class(model).emb_dim)
    monkeypatch.setattr(sys, "argv", ["downstream.py", *data, "--seeds", "1", "--epochs", "2", "--features-dir",
                                      str(features), "--results-dir", str(results)])
    downstream.main()
    with open(results / "demo" / "pitch" / f"{model}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["model"] for r in rows} == {model} and {r["checkpoint"] for r in rows} >= {"untrained", "1"}


def test_a_run_resumed_in_this_process_equals_a_straight_one(tmp_path, data_root, monkeypatch):
    """The training loop as a function: 4 steps in one go against 2, then --resume to 4; the
    weights, the kept checkpoints and the log are the same."""
    objective, learns_from, views = pretraining_objective("tmae")

    def train(runs, steps, *resume):
        monkeypatch.setattr(sys, "argv", ["train.py", "--demo", "--data-root", str(data_root), "--subset", "1",
                                          "--batch-size", "4", "--checkpoint-every", "1", "--max-steps", str(steps),
                                          "--runs-dir", str(runs), *resume])
        training.pretrain("tmae", objective, train_script("tmae").DEFAULTS, "test", learns_from, views)
    train(tmp_path / "straight", 4)
    train(tmp_path / "halves", 2)
    train(tmp_path / "halves", 4, "--resume")
    run = Path("demo") / "tmae" / "1" / "seed0"
    straight, halves = tmp_path / "straight" / run, tmp_path / "halves" / run
    kept = sorted(p.name for p in (straight / "checkpoints").iterdir())
    assert kept == sorted(p.name for p in (halves / "checkpoints").iterdir()) and kept
    for name in ("untrained.pt", "last.pt", *(f"checkpoints/{k}" for k in kept)):
        a, b = weights(straight / name), weights(halves / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    columns = ("step", "epoch", "loss", "lr")
    logs = [[tuple(r[c] for c in columns) for r in csv.DictReader((d / "log.csv").read_text().splitlines())]
            for d in (straight, halves)]
    assert logs[0] == logs[1] and len(logs[0]) == 4
    assert json.loads((halves / "finished.json").read_text())["step"] == 4


def test_the_plan_counts_the_steps_train_py_takes(tmp_path, data_root, monkeypatch):
    """reproduce.py --plan counts a run's optimizer steps from the metadata alone: as many as
    the training loop then takes (subset 1's ten clips at batch 4: three steps an epoch, of 4, 4
    and 2 clips)."""
    from common import plan
    from common.data.subsets import select
    options = ["--subset", "1", "--batch-size", "4", "--epochs", "2"]
    clips = select(load_dataset("MTAT", data_root, demo=True).clips, "1", 0)
    planned, batch = plan._training_steps("tmae", options, clips)
    objective, learns_from, views = pretraining_objective("tmae")
    monkeypatch.setattr(sys, "argv", ["train.py", "--demo", "--data-root", str(data_root), *options,
                                      "--runs-dir", str(tmp_path)])
    training.pretrain("tmae", objective, train_script("tmae").DEFAULTS, "test", learns_from, views)
    finished = json.loads((tmp_path / "demo" / "tmae" / "1" / "seed0" / "finished.json").read_text())
    assert (planned, batch) == (finished["step"], 4) == (6, 4) and finished["epoch"] == 2


def test_a_step_budget_trains_a_run_of_its_own_for_exactly_its_steps(tmp_path, data_root, monkeypatch, capsys):
    """--budget steps:4 on subset 1 (three steps an epoch at batch 4): a run named 1-steps4
    that takes 4 steps over 2 epochs (1.33 epochs' worth, as it says), keeps the weights of
    each epoch, and records the items it saw and its FLOPs (the steps times one step's)."""
    objective, learns_from, views = pretraining_objective("tmae")
    monkeypatch.setattr(sys, "argv", ["train.py", "--demo", "--data-root", str(data_root), "--subset", "1",
                                      "--batch-size", "4", "--budget", "steps:4", "--runs-dir", str(tmp_path)])
    training.pretrain("tmae", objective, train_script("tmae").DEFAULTS, "test", learns_from, views)
    assert "trained tmae for 4 steps (1.33 epochs, " in capsys.readouterr().out
    run = tmp_path / "demo" / "tmae" / "1-steps4" / "seed0"
    finished = json.loads((run / "finished.json").read_text())
    last = checkpoints.load(run / "last.pt")
    assert (finished["step"], finished["epoch"], finished["epochs"], finished["items"]) == (4, 1, 2, 4 + 4 + 2 + 4)
    assert last["budget"] == 4 and last["step_flops"] > 0 and finished["flops"] == 4 * last["step_flops"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step0000003.pt"]


def test_step_flops_count_the_products_of_the_forward_and_backward_pass():
    """A linear layer on a batch of 4: 2 * 4 * 10 * 5 FLOPs forward and as many for its weights'
    gradient (its input needs none); the model's own parameters are left without gradients."""
    from common.training.epochs import Batch
    from common.training.flops import step_flops
    layer = torch.nn.Linear(10, 5)
    flops = step_flops(layer, lambda model, batch: model(batch.audio).square().sum(),
                       Batch(torch.randn(4, 10), None, 1), World(), torch.float32)
    assert flops == 2 * (2 * 4 * 10 * 5) and all(p.grad is None for p in layer.parameters())


@pytest.mark.parametrize("options,message", [
    (["--budget", "steps:4", "--max-steps", "2"], "leave out --max-steps and --epochs"),
    (["--budget", "4"], "is not a budget: steps:N"),
    (["--augment", "-pitch", "gain"], "either leave transforms out"),
    (["--augment", "-tempo"], "is not a transform of the chain")])
def test_bad_budget_and_augment_options_are_one_line(options, message, capsys):
    from common.training.options import parse_args
    with pytest.raises(SystemExit) as stop:
        parse_args("clmr", "", train_script("clmr").DEFAULTS, argv=options)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_augment_names_what_it_leaves_out_and_its_model_id_trains_it_again():
    from common.models.registry import model_id, train_command
    from common.training.options import parse_args
    args = parse_args("clmr", "", train_script("clmr").DEFAULTS, argv=["--augment", "-reverb", "-pitch"])
    assert args.left_out == ("pitch", "reverb")
    assert model_id("clmr", None, "study", args.left_out) == "clmr-no-pitch-no-reverb"
    assert train_command("clmr-no-pitch-no-reverb") == ("clmr/train.py", ["--augment", "-pitch", "-reverb"])
    kept = parse_args("tune", "", train_script("clmr").DEFAULTS, argv=["--augment", "polarity", "gain"])
    assert kept.left_out == ("noise", "filter", "delay", "pitch", "reverb")
    assert model_class("clmr-regional-no-pitch").left_out == ("pitch",) and model_class("clmr").left_out == ()
