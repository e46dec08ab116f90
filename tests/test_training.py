import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_demo_script

from common import checkpoints
from common.cli import UserError
from common.demo import mtat as demo_mtat
from common.models import MODELS

REPO = Path(__file__).resolve().parent.parent


def train(model, runs, *extra, env=None, check=True):
    return run_demo_script(f"{model}/train.py", "--runs-dir", runs, *extra, env=env, check=check)


def weights(path):
    return checkpoints.load(path)["model"]


@pytest.mark.parametrize("model", MODELS)
def test_each_train_py_writes_the_results_layout(model, tmp_path, data_root):
    train(model, tmp_path, "--subset", "1", "--max-steps", "3", "--batch-size", "2")
    run = tmp_path / "demo" / model / "1" / "seed0"
    config = json.loads((run / "config.json").read_text())
    assert config["n_clips"] == 10 and config["minutes"] == pytest.approx(10 * demo_mtat.CLIP_SECONDS / 60, abs=1e-3)
    assert config["args"]["batch_size"] == 2 and config["model"]["name"] == model
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {"step", "epoch", "loss", "lr", "items_per_s", "data_s"}
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["step"] == 3 and {"optimizer", "scheduler", "model"} <= set(last)
    untrained, trained = weights(run / "untrained.pt"), weights(run / "last.pt")
    assert any(not torch.equal(untrained[k], trained[k]) for k in untrained)
    assert (run / "checkpoints" / "step0000003.pt").exists()


def test_resume_continues_exactly(tmp_path, data_root):
    options = ["--subset", "1", "--batch-size", "4", "--crops-per-clip", "1", "--save-every", "2"]
    train("vggish", tmp_path / "straight", *options, "--max-steps", "8")
    train("vggish", tmp_path / "stopped", *options, "--max-steps", "4")
    train("vggish", tmp_path / "stopped", *options, "--max-steps", "8", "--resume")
    straight = tmp_path / "straight" / "demo" / "vggish" / "1" / "seed0"
    resumed = tmp_path / "stopped" / "demo" / "vggish" / "1" / "seed0"
    a, b = weights(straight / "last.pt"), weights(resumed / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # 8 steps = 4 epochs: the scheduler ran too
    assert (straight / "log.csv").read_text().count("\n") == (resumed / "log.csv").read_text().count("\n") == 9


def test_interrupted_run_saves_and_resumes(tmp_path, data_root):
    options = ["--subset", "1", "--batch-size", "2", "--max-steps", "200"]
    process = subprocess.Popen([sys.executable, "tmae/train.py", "--demo", "--runs-dir", str(tmp_path), *options],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "demo" / "tmae" / "1" / "seed0"
    deadline = time.time() + 120
    while not (run / "log.csv").exists() or (run / "log.csv").read_text().count("\n") < 3:
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "--resume" in err
    stopped_at = torch.load(run / "last.pt", weights_only=True)["step"]
    assert stopped_at >= 2
    with open(run / "log.csv") as f:
        assert int(list(csv.DictReader(f))[-1]["step"]) == stopped_at


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


def test_audio_dir_pretraining_for_self_supervised_models(tmp_path):
    rng = np.random.default_rng(0)
    for i, sub in enumerate(["a", "a/b", "c"]):
        (tmp_path / "music" / sub).mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "music" / sub / f"x{i}.wav", 0.2 * rng.standard_normal(44100 * 5), 44100)
    sf.write(tmp_path / "music" / "a" / "y.flac", 0.2 * rng.standard_normal(16000 * 6), 16000)
    out = subprocess.run([sys.executable, "clmr/train.py", "--audio-dir", str(tmp_path / "music"), "--runs-dir",
                          str(tmp_path / "runs"), "--max-steps", "1", "--batch-size", "4"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    config = json.loads((tmp_path / "runs" / "audio-music" / "clmr" / "all" / "seed0" / "config.json").read_text())
    assert config["n_clips"] == 4 and config["minutes"] == pytest.approx((15 + 6) / 60, abs=1e-3)
    out = subprocess.run([sys.executable, "vggish/train.py", "--audio-dir", str(tmp_path / "music")],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "--tags" in out.stderr


@pytest.mark.parametrize("options,message", [
    (["--subset", "7"], "invalid choice: '7'"),
    (["--max-steps", "-3"], "must be a positive integer"),
    (["--subset", "50"], "choose from 1, 2, 5, 10, 20, full"),
])
def test_bad_options_end_in_one_line_and_exit_code_2(options, message, tmp_path, data_root):
    out = train("musicnn", tmp_path, *options, check=False)
    assert out.returncode == 2 and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_missing_data_without_network_is_one_line(tmp_path):
    proxy = "http://127.0.0.1:9"  # the discard port: nothing listens, every download is refused
    out = subprocess.run([sys.executable, "vggish/train.py", "--data-root", str(tmp_path), "--subset", "1"],
                         cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "http_proxy": proxy, "https_proxy": proxy})
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "--demo" in out.stderr and "mp3.zip.001" in out.stderr


def test_checkpoints_refuse_other_models_and_tampered_files(tmp_path):
    from common.models import build
    checkpoints.save(tmp_path / "v.pt", {"model_name": "vggish", "model": build("vggish").state_dict()})
    with pytest.raises(UserError, match="checkpoint of vggish, not of musicnn"):
        checkpoints.load(tmp_path / "v.pt", "musicnn")

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"model_name": "vggish", "model": Payload()}))
    with pytest.raises(UserError, match="not a readable checkpoint"):
        checkpoints.load(tmp_path / "evil.pt", "vggish")
    assert not (tmp_path / "pwned").exists()


def test_non_finite_loss_stops_before_touching_the_weights(tmp_path, data_root, monkeypatch):
    from common import training
    options = ["train.py", "--demo", "--subset", "1", "--batch-size", "2", "--runs-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", options + ["--max-steps", "2"])
    training.pretrain("tmae", lambda model, batch: model(batch.audio)[0].float().pow(2).mean(), {
        "batch_size": 2, "lr": 1e-3, "weight_decay": 0.0, "crops_per_clip": 1}, "test", supervised=False)
    run = tmp_path / "demo" / "tmae" / "1" / "seed0"
    before = weights(run / "last.pt")
    monkeypatch.setattr(sys, "argv", options + ["--max-steps", "4", "--resume"])
    with pytest.raises(UserError, match="loss became nan at step 3"):
        training.pretrain("tmae", lambda model, batch: model(batch.audio)[0].sum() * float("nan"), {
            "batch_size": 2, "lr": 1e-3, "weight_decay": 0.0, "crops_per_clip": 1}, "test", supervised=False)
    after = weights(run / "last.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_ast_train_help_runs_from_the_repository_root():
    out = subprocess.run([sys.executable, "ast/train.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "--subset" in out.stdout
