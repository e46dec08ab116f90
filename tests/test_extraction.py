import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_demo_script, save_untrained

from common.evaluation import figures
from common.evaluation.extraction import bfloat16_keeps_differences, embed_clips, windows
from common.evaluation.noise import add_noise
from common.models.registry import build

REPO = Path(__file__).resolve().parent.parent


def test_windows_drop_the_partial_tail_and_pad_short_clips():
    y = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(windows(y, 4), [[0, 1, 2, 3], [4, 5, 6, 7]])
    np.testing.assert_array_equal(windows(y[:3], 4), [[0, 1, 2, 0]])
    assert windows(y, 5).shape == (2, 5)


class MeanEncoder(torch.nn.Module):
    """Embeds a window as (its mean, its first sample): averaging is easy to check."""
    input_samples, emb_dim = 4, 2

    def embed(self, x):
        return torch.stack([x.mean(dim=1), x[:, 0]], dim=1)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_clip_embedding_is_the_mean_over_its_windows_whatever_the_batching(batch_size):
    clips = [np.arange(10, dtype=np.float32), np.ones(3, np.float32), np.arange(16, dtype=np.float32) * 2]
    out = np.zeros((3, 2), np.float32)
    embed_clips(MeanEncoder(), lambda i: clips[i], 3, out, batch_size, torch.device("cpu"), torch.float32)
    expected = [[(1.5 + 5.5) / 2, (0 + 4) / 2], [0.75, 1.0], [np.mean([3, 11, 19, 27]), np.mean([0, 8, 16, 24])]]
    np.testing.assert_allclose(out, expected)


def test_bfloat16_is_refused_where_it_erases_the_differences_between_clips():
    # Untrained CLMR's embeddings differ between clips by far less than bfloat16 resolves;
    # TMAE's survive it. (Harmonic tones at four pitches stand in for audio.)
    torch.manual_seed(0)
    for name, faithful in (("clmr", False), ("tmae", True)):
        encoder = build(name).eval()
        t = np.arange(encoder.input_samples) / encoder.sample_rate
        batch = np.stack([0.3 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(4 * np.pi * f * t)
                          for f in (110, 220, 330, 440)]).astype(np.float32)
        assert bfloat16_keeps_differences(encoder, batch, torch.device("cpu")) == faithful, name


@pytest.mark.parametrize("snr", [20.0, 10.0, 0.0, -5.0])
def test_noise_is_added_at_the_asked_snr_and_seeded_per_clip(snr):
    y = np.sin(np.arange(160_000) / 7).astype(np.float32) * 0.3
    noisy = add_noise(y, snr, "clip-1")
    measured = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean((noisy - y).astype(np.float64) ** 2))
    assert measured == pytest.approx(snr, abs=0.05)
    np.testing.assert_array_equal(noisy, add_noise(y, snr, "clip-1"))
    assert not np.array_equal(noisy, add_noise(y, snr, "clip-2"))


def extract(*options, features, runs, check=True):
    return run_demo_script("extract_features.py", "--features-dir", features, "--runs-dir", runs, *options,
                           check=check)


@pytest.fixture(scope="module")
def tmae_runs(tmp_path_factory, data_root):
    runs = tmp_path_factory.mktemp("runs")
    out = subprocess.run([sys.executable, "tmae/train.py", "--demo", "--subset", "1", "--max-steps", "2",
                          "--batch-size", "4", "--runs-dir", str(runs)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return runs


@pytest.mark.slow
def test_features_for_every_checkpoint_and_snr_then_resume(tmp_path, tmae_runs):
    features = tmp_path / "features"
    options = ("--model", "tmae", "--task", "instrument", "--clips-per-split", "8")
    extract(*options, features=features, runs=tmae_runs)
    task_dir = features / "demo" / "instrument"
    index = task_dir.joinpath("index.csv").read_text().splitlines()
    n_clips, n_test = len(index) - 1, sum(line.endswith(",test") for line in index)
    for checkpoint in ("untrained", "1"):
        assert np.load(task_dir / "tmae" / checkpoint / "clean.npy").shape == (n_clips, 256)
        for snr in ("snr20", "snr10", "snr0"):
            assert np.load(task_dir / "tmae" / checkpoint / f"{snr}.npy").shape == (n_test, 256)
    trained, untrained = (np.load(task_dir / "tmae" / c / "clean.npy") for c in ("1", "untrained"))
    assert not np.allclose(trained, untrained)
    assert not np.allclose(np.load(task_dir / "tmae" / "1" / "snr0.npy"), trained[[
        i for i, line in enumerate(index[1:]) if line.endswith(",test")]])

    # An interrupted run: one file missing. Only it is made again, with the same numbers.
    kept = task_dir / "tmae" / "1" / "snr10.npy"
    kept_mtime = kept.stat().st_mtime_ns
    redone = task_dir / "tmae" / "1" / "snr0.npy"
    before = np.load(redone)
    redone.unlink()
    out = extract(*options, features=features, runs=tmae_runs)
    assert "tmae untrained: done already" in out.stdout
    assert kept.stat().st_mtime_ns == kept_mtime
    np.testing.assert_array_equal(np.load(redone), before)  # deterministic, noise included


@pytest.mark.slow
def test_features_are_made_again_whenever_their_weights_change_and_copied_only_when_equal(tmp_path, tmae_runs):
    """Pitch and instrument share TinySOL's clips: features of one serve the other only when made
    from the same save of the weights (a resumed run, or a run trained again to the same step
    with another learning rate, are other saves)."""
    runs, features = tmp_path / "runs", tmp_path / "features"
    shutil.copytree(tmae_runs, runs)
    clean = {task: features / "demo" / task / "tmae" / "1" / "clean.npy" for task in ("pitch", "instrument")}
    options = ("--model", "tmae", "--snr", "clean", "--clips-per-split", "8")
    for task in clean:
        out = extract(*options, "--task", task, features=features, runs=runs)
    assert "tmae 1 clean: copied from a task on the same clips" in out.stdout
    at_step_2 = np.load(clean["pitch"])

    def train(*options):
        out = subprocess.run([sys.executable, "tmae/train.py", "--demo", "--subset", "1", "--max-steps", "3",
                              "--batch-size", "4", "--runs-dir", str(runs), *options], cwd=REPO, capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr[-2000:]

    train("--resume")
    for task in ("pitch", "instrument"):
        out = extract(*options, "--task", task, features=features, runs=runs)
        assert "tmae 1: weights changed since its features were extracted: extracting again" in out.stdout
        assert "tmae untrained: done already" in out.stdout
    assert "copied from a task on the same clips" in out.stdout  # pitch's are of this save now
    fresh = tmp_path / "fresh"
    extract(*options, "--task", "pitch", "--checkpoints", "1", features=fresh, runs=runs)
    for task in clean:
        np.testing.assert_array_equal(np.load(clean[task]), np.load(fresh / "demo" / "pitch" / "tmae" / "1" /
                                                                    "clean.npy"))
        assert json.loads((clean[task].parent / "meta.json").read_text())["step"] == 3
    assert not np.allclose(np.load(clean["pitch"]), at_step_2)

    at_step_3 = np.load(clean["pitch"])
    shutil.rmtree(runs / "demo" / "tmae" / "1")
    train("--lr", "1e-3")  # the same subset and step count, other weights
    out = extract(*options, "--task", "pitch", features=features, runs=runs)
    assert "tmae 1: weights changed since its features were extracted: extracting again" in out.stdout
    assert not np.allclose(np.load(clean["pitch"]), at_step_3)


@pytest.mark.slow
def test_handcrafted_needs_no_runs_and_checkpoints_narrow(tmp_path, tmae_runs):
    extract("--model", "handcrafted", "--task", "pitch", "--snr", "clean", "--clips-per-split", "8", features=tmp_path,
            runs=tmp_path / "none")
    features = np.load(tmp_path / "demo" / "pitch" / "handcrafted" / "none" / "clean.npy")
    assert features.shape[1] == 130 and np.isfinite(features).all()
    extract("--model", "tmae", "--task", "pitch", "--checkpoints", "1", "--snr", "clean", "--clips-per-split", "8",
            features=tmp_path, runs=tmae_runs)
    assert sorted(p.name for p in (tmp_path / "demo" / "pitch" / "tmae").iterdir()) == ["1"]


@pytest.mark.slow
def test_error_lines(tmp_path, tmae_runs):
    def error(*options, runs=tmae_runs):
        out = extract(*options, features=tmp_path, runs=runs, check=False)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        return out.stderr

    assert "python vggish/train.py --demo --subset 1" in error("--model", "vggish", "--task", "pitch")
    assert "choose from untrained, 1" in error("--model", "tmae", "--task", "pitch", "--checkpoints", "5")
    for option in (["--batch-size", "64"], ["--precision", "bfloat16"]):
        refused = error("--model", "handcrafted", "--task", "pitch", *option)
        assert "--batch-size and --precision do not apply" in refused
    foreign = tmp_path / "runs"
    shutil.copytree(tmae_runs / "demo" / "tmae", foreign / "demo" / "clmr")
    assert "checkpoint of tmae, not of clmr" in error("--model", "clmr", "--task", "pitch", runs=foreign)


@pytest.mark.slow
def test_weights_that_do_not_fit_are_refused_in_one_line(tmp_path, tmae_runs):
    runs = tmp_path / "runs"
    shutil.copytree(tmae_runs, runs)
    last = runs / "demo" / "tmae" / "1" / "seed0" / "last.pt"
    state = torch.load(last, weights_only=True)
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(3)
    torch.save(state, last)
    out = extract("--model", "tmae", "--task", "pitch", "--snr", "clean", features=tmp_path, runs=runs, check=False)
    assert out.returncode == 2 and "its weights do not fit the model" in out.stderr, out.stderr[-500:]


def test_index_fields_with_quotes_and_commas_read_back_as_written():
    from extract_features import _csv
    values = ['plain', 'a,b', 'say "hi"', 'both, "x"']
    line = ",".join(_csv(v) for v in values)
    assert next(csv.reader([line])) == values


@pytest.mark.slow
def test_draws_and_kept_weights_flow_through_extraction_probes_and_figures(tmp_path, data_root):
    from common.evaluation import figures
    runs, features, results = tmp_path / "runs", tmp_path / "features", tmp_path / "results"
    for draw in ("0", "1"):  # epochs of 5 steps (one item per clip), weights kept after each
        run_demo_script("tmae/train.py", "--subset", "1", "--draw", draw, "--max-steps", "10", "--batch-size", "2",
                        "--crops-per-clip", "1", "--checkpoint-every", "1", "--runs-dir", runs)
    extract("--model", "tmae", "--task", "pitch", "--snr", "clean", "--clips-per-split", "12", "--checkpoints",
            "untrained", "1", "1-draw1", "1@all", features=features, runs=runs)
    made = features / "demo" / "pitch" / "tmae"
    assert sorted(p.name for p in made.iterdir()) == ["1", "1-draw1", "1@10", "1@5", "untrained"]
    meta = {p.name: json.loads((p / "meta.json").read_text()) for p in made.iterdir()}
    assert (meta["1@5"]["step"], meta["1@5"]["draw"], meta["1-draw1"]["draw"], meta["untrained"]["draw"]) == (5, 0, 1,
                                                                                                            None)
    # the weights kept at the last epoch's end are the run's last weights
    np.testing.assert_array_equal(np.load(made / "1@10" / "clean.npy"), np.load(made / "1" / "clean.npy"))
    assert not np.array_equal(np.load(made / "1@5" / "clean.npy"), np.load(made / "1" / "clean.npy"))
    out = extract("--model", "tmae", "--task", "pitch", "--checkpoints", "1@7", features=features, runs=runs,
                  check=False)
    assert out.returncode == 2 and "kept along the way: 1@5, 1@10, 1-draw1@5, 1-draw1@10" in out.stderr

    run_demo_script("downstream.py", "--model", "tmae", "--task", "pitch", "--seeds", "1", "--epochs", "5",
                    "--features-dir", features, "--results-dir", results)
    with open(results / "demo" / "pitch" / "tmae.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    described = {(r["checkpoint"], r["subset"], r["draw"], r["train_steps"]) for r in rows}
    assert described == {("untrained", "untrained", "", "0"), ("1", "1", "0", "10"), ("1@5", "1", "0", "5"),
                         ("1@10", "1", "0", "10"), ("1-draw1", "1", "1", "10")}
    paths = figures.render_all(results / "demo", tmp_path / "figures")
    assert sorted(p.name for p in paths) == ["metric_vs_compute.png", "metric_vs_minutes.png", "metric_vs_snr.png",
                                             "metric_vs_steps.png", "probe_size.png"]


def test_the_studys_deformations_are_noise_at_15_and_0_db_and_a_gain_of_minus_12_db():
    from common.evaluation.noise import apply_condition, condition_order
    y = (np.sin(np.arange(160_000) / 7) * 0.3).astype(np.float32)
    np.testing.assert_array_equal(apply_condition(y, "deform_2", "c"), y * np.float32(10 ** (-12 / 20)))
    np.testing.assert_array_equal(apply_condition(y, "deform_1", "c"), add_noise(y, 0.0, "c"))
    noisy = apply_condition(y, "deform_0", "c")
    measured = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean((noisy - y).astype(np.float64) ** 2))
    assert measured == pytest.approx(15, abs=0.05)
    assert sorted(["deform_0", "0", "clean", "20", "deform_2"], key=condition_order) == [
        "clean", "20", "0", "deform_0", "deform_2"]


def test_a_condition_of_the_same_audio_as_one_extracted_is_copied_not_embedded_again(tmp_path, data_root,
                                                                                     monkeypatch, capsys):
    """deform_1 is the 0 dB noise: its features are the 0 dB file's, copied."""
    import extract_features
    monkeypatch.setattr(sys, "argv", ["extract_features.py", "--model", "handcrafted", "--task", "pitch", "--demo",
                                      "--data-root", str(data_root), "--features-dir", str(tmp_path), "--snr", "0",
                                      "deform_1", "--clips-per-split", "2"])
    extract_features.main()
    folder = tmp_path / "demo" / "pitch" / "handcrafted" / "none"
    assert "deform_1: the same audio as a condition extracted already: copied" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(folder / "deform_1.npy"), np.load(folder / "snr0.npy"))


@pytest.mark.slow
def test_model_variants_and_front_ends_train_extract_and_probe_as_models_of_their_own(tmp_path, data_root):
    """musicnn itself is trained and extracted by the other tests; its table variant and the
    librosa front end go the same way under their own ids."""
    from common.evaluation import figures
    runs, features, results = tmp_path / "runs", tmp_path / "features", tmp_path / "results"
    ids = {"musicnn-table": ["--variant", "table"], "musicnn-librosa": ["--front-end", "librosa"]}
    for options in ids.values():
        run_demo_script("musicnn/train.py", "--subset", "1", "--max-steps", "1", "--batch-size", "2",
                        "--crops-per-clip", "1", "--runs-dir", runs, *options)
    assert sorted(p.name for p in (runs / "demo").iterdir()) == sorted(ids)
    params = {i: json.loads((runs / "demo" / i / "1" / "seed0" / "config.json").read_text())["model"]["params"]
              for i in ids}
    assert params == {"musicnn-table": 11_999_889, "musicnn-librosa": 808_451}  # musicnn: 808,449
    extract("--model", "musicnn-table", "--task", "pitch", "--snr", "clean", "--checkpoints", "untrained", "1",
            "--clips-per-split", "6", features=features, runs=runs)
    assert np.load(features / "demo" / "pitch" / "musicnn-table" / "1" / "clean.npy").shape == (18, 200)
    run_demo_script("downstream.py", "--model", "musicnn-table", "--task", "pitch", "--seeds", "1", "--epochs", "2",
                    "--features-dir", features, "--results-dir", results)
    with open(results / "demo" / "pitch" / "musicnn-table.csv", newline="") as f:
        assert {r["model"] for r in csv.DictReader(f)} == {"musicnn-table"}
    assert figures.render_all(results / "demo", tmp_path / "figures")
    out = extract("--model", "musicnn-wide", "--task", "pitch", features=features, runs=runs, check=False)
    assert out.returncode == 2 and "unknown model 'musicnn-wide'" in out.stderr


@pytest.mark.slow
def test_a_completed_dataset_is_picked_up_and_its_features_made_again(tmp_path, data_root):
    """A TinySOL note missing at first (a partly unpacked download) is skipped and named; once
    it is there, the next extraction decodes it, rewrites the index and extracts again. Files
    are written with the umask's permissions."""
    shutil.copytree(data_root / "demo", tmp_path / "data" / "demo", ignore=shutil.ignore_patterns(".cache"))
    note = next((tmp_path / "data" / "demo" / "TinySOL" / "audio").rglob("*.wav"))
    note.rename(tmp_path / "away.wav")
    options = ("--model", "handcrafted", "--task", "pitch", "--snr", "clean", "--data-root", tmp_path / "data")
    previous = os.umask(0o022)
    try:
        out = extract(*options, features=tmp_path / "features", runs=tmp_path / "runs")
        relative = note.relative_to(tmp_path / "data" / "demo" / "TinySOL")
        assert f"skipped 1 unusable audio file(s): {relative} (missing file)" in out.stderr
        clean = tmp_path / "features" / "demo" / "pitch" / "handcrafted" / "none" / "clean.npy"
        rows = len(np.load(clean))
        (tmp_path / "away.wav").rename(note)
        out = extract(*options, features=tmp_path / "features", runs=tmp_path / "runs")
    finally:
        os.umask(previous)
    assert f"trying them again ({note.stem})" in out.stderr and "unusable" not in out.stderr
    assert f"the TinySOL clips changed ({rows} -> {rows + 1} usable)" in out.stdout
    assert "handcrafted none: audio, clips changed since its features were extracted: extracting again" in out.stdout
    assert len(np.load(clean)) == rows + 1
    assert oct(clean.stat().st_mode & 0o777) == oct(0o644)


@pytest.mark.slow
def test_every_layer_becomes_a_feature_set_that_probes_and_the_layers_figure_read(tmp_path):
    """extract_features.py --layers all: one feature set per VGGish block from one forward pass,
    beside the embedding (the same numbers as without --layers); downstream.py probes each
    (their widths differ); the layers figure draws them; every other figure and the
    summary keep to the embeddings."""
    runs, features, results = tmp_path / "runs", tmp_path / "features", tmp_path / "results"
    save_untrained("vggish", runs / "demo" / "vggish" / "1" / "seed0" / "untrained.pt")
    common = ["--model", "vggish", "--task", "pitch", "--clips-per-split", "6", "--runs-dir", runs]
    run_demo_script("extract_features.py", *common, "--snr", "clean", "--features-dir", tmp_path / "plain")
    run_demo_script("extract_features.py", *common, "--snr", "clean", "0", "--layers", "all", "--features-dir",
                    features)
    model_dir = features / "demo" / "pitch" / "vggish"
    widths = {"untrained": 512, **{f"untrained#layer{k}": w for k, w in
                                   enumerate((128, 128, 256, 256, 256, 256, 512), start=1)}}
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(widths)
    for name, width in widths.items():
        assert np.load(model_dir / name / "clean.npy").shape == (18, width)
        assert np.load(model_dir / name / "snr0.npy").shape == (6, width)
    assert json.loads((model_dir / "untrained#layer3" / "meta.json").read_text())["layer"] == 3
    np.testing.assert_allclose(np.load(model_dir / "untrained" / "clean.npy"),
                               np.load(tmp_path / "plain" / "demo" / "pitch" / "vggish" / "untrained" / "clean.npy"),
                               rtol=1e-5, atol=1e-6)
    out = run_demo_script("extract_features.py", *common, "--layers", "8", "--features-dir", features, check=False)
    assert out.returncode == 2 and "vggish has 7 layers" in out.stderr

    run_demo_script("downstream.py", "--model", "vggish", "--task", "pitch", "--probes", "linear", "--seeds", "1",
                    "--epochs", "2", "--features-dir", features, "--results-dir", results)
    with open(results / "demo" / "pitch" / "vggish.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["checkpoint"], r["layer"]) for r in rows} == \
        {("untrained", "")} | {(f"untrained#layer{k}", str(k)) for k in range(1, 8)}
    paths = figures.render_all(results / "demo", tmp_path / "figures")
    assert tmp_path / "figures" / "metric_by_layer.png" in paths
    assert set(figures.load(results / "demo").checkpoint) == {"untrained"}


@pytest.mark.slow
def test_a_folder_of_own_audio_embeds_to_a_npy_per_file_resumably_naming_bad_files(tmp_path, data_root):
    """extract_features.py --audio-dir: nested MP3s of the demo and a 44.1 kHz FLAC become .npy
    files of the same relative names, equal to the Python API's embeddings; a broken file is
    skipped and named; a second run keeps what is there; per window with start times;
    hand-crafted features too; another checkpoint into the same folder is refused."""
    import soundfile as sf

    from common.models.pretrained import load
    music = tmp_path / "music"
    (music / "a" / "b").mkdir(parents=True)
    mp3s = sorted((data_root / "demo" / "MTAT").rglob("*.mp3"))[:2]
    shutil.copy(mp3s[0], music / "a" / "one.mp3")
    shutil.copy(mp3s[1], music / "a" / "b" / "two.mp3")
    sf.write(music / "three.flac", np.random.default_rng(0).standard_normal(44100 * 8) * 0.1, 44100)
    (music / "a" / "broken.wav").write_text("not audio")
    checkpoint = save_untrained("vggish", tmp_path / "untrained.pt")

    def embed(out, *options):
        return subprocess.run([sys.executable, "extract_features.py", "--audio-dir", str(music), "--out",
                               str(tmp_path / out), *map(str, options)], cwd=REPO, capture_output=True, text=True)
    first = embed("vggish", "--checkpoint", checkpoint)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "skipped a/broken.wav: unreadable" in first.stderr and "3 file(s) embedded" in first.stdout
    model = load(checkpoint)
    for name in ("a/one", "a/b/two", "three"):
        stored = np.load(tmp_path / "vggish" / f"{name}.npy")
        source = next(music.glob(f"{name}.*"))
        np.testing.assert_allclose(stored, model.embed_file(source), rtol=1e-5, atol=1e-6)
    assert "a/broken.wav" in (tmp_path / "vggish" / "skipped.csv").read_text()
    mtime = (tmp_path / "vggish" / "three.npy").stat().st_mtime_ns
    again = embed("vggish", "--checkpoint", checkpoint)
    assert "0 file(s) embedded, 3 already there, 1 skipped" in again.stdout
    assert (tmp_path / "vggish" / "three.npy").stat().st_mtime_ns == mtime
    refused = embed("vggish", "--checkpoint", checkpoint, "--per-window")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "other weights" in refused.stderr

    assert embed("windows", "--checkpoint", checkpoint, "--per-window").returncode == 0
    frames, starts = np.load(tmp_path / "windows" / "three.npy"), np.load(tmp_path / "windows" / "three.seconds.npy")
    assert frames.shape == (2, 512) and starts.tolist() == pytest.approx([0.0, 59049 / 16000])  # 8 s: two 3.69 s
    assert embed("hand", "--model", "handcrafted").returncode == 0
    assert np.load(tmp_path / "hand" / "a" / "b" / "two.npy").shape == (130,)


def test_a_folder_embeds_in_this_process_to_the_python_apis_embeddings(tmp_path, data_root):
    """common/evaluation/folder_features.py as a function: nested files to .npy files of the
    same relative names, equal to the Python API's; a broken file skipped and listed; a second
    run keeps what is there."""
    from common.evaluation.folder_features import embed_folder
    from common.models.pretrained import load
    music = tmp_path / "music"
    (music / "a").mkdir(parents=True)
    mp3s = sorted((data_root / "demo" / "MTAT").rglob("*.mp3"))[:2]
    shutil.copy(mp3s[0], music / "one.mp3")
    shutil.copy(mp3s[1], music / "a" / "two.mp3")
    (music / "a" / "broken.wav").write_text("not audio")
    checkpoint = save_untrained("tmae", tmp_path / "untrained.pt")
    assert embed_folder(music, tmp_path / "out", checkpoint) == (2, 0, 1)
    model = load(checkpoint)
    for name in ("one", "a/two"):
        np.testing.assert_allclose(np.load(tmp_path / "out" / f"{name}.npy"),
                                   model.embed_file(next(music.glob(f"{name}.mp3"))), rtol=1e-5, atol=1e-6)
    assert "a/broken.wav" in (tmp_path / "out" / "skipped.csv").read_text()
    assert embed_folder(music, tmp_path / "out", checkpoint) == (0, 2, 1)
