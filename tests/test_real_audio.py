"""What a researcher meets on real audio: one answer per file whatever the entry point, datasets
that follow their files, incomplete datasets, options that are honoured or refused, and the
Python API's inputs."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, save_untrained

from common.cli import UserError
from common.data.audio import AudioError, as_16_bit, load_audio
from common.data.clip import Clip
from common.data.dataset import Dataset
from common.evaluation.folder_features import embed_folder, spread
from common.models import hear
from common.models.pretrained import Pretrained, load


def script(name, *options):
    return subprocess.run([sys.executable, name, *map(str, options)], cwd=REPO, capture_output=True, text=True)


def one_line_error(out, *says):
    """Exit code 2 and one line of error (after any progress bar) that says each of `says`."""
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("error: "), out.stderr[-2000:]
    assert sum(line.startswith("error") for line in out.stderr.splitlines()) == 1
    for text in says:
        assert text in out.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_one_file_gives_one_embedding_through_extraction_the_api_audio_dir_and_hear(tmp_path, data_root):
    """A 44.1 kHz stereo MP3 through the study's extraction (decoded into the 16-bit cache),
    Pretrained.embed_file, --audio-dir and the HEAR module: equal to float tolerance, each in
    the precision it records."""
    music = tmp_path / "music"
    music.mkdir()
    tracks = sorted((data_root / "demo" / "beatport_key" / "audio").glob("*.mp3"))[:3]
    rows = ["path,label,split"]
    for track, split, label in zip(tracks, ("train", "valid", "test"), ("a", "b", "a")):
        shutil.copy(track, music / f"{split}.mp3")
        rows.append(f"{split}.mp3,{label},{split}")
    (music / "task.csv").write_text("\n".join(rows) + "\n")
    checkpoint = save_untrained("vggish", tmp_path / "runs" / "demo" / "vggish" / "1" / "seed0" / "untrained.pt")
    task = script("extract_features.py", "--model", "vggish", "--task-csv", music / "task.csv", "--demo",
                  "--snr", "clean", "--precision", "float32", "--runs-dir", tmp_path / "runs", "--features-dir",
                  tmp_path / "features", "--data-root", tmp_path / "data")
    assert task.returncode == 0, task.stderr[-2000:]
    folder = tmp_path / "features" / "demo" / "task" / "vggish" / "untrained"
    extracted = np.load(folder / "clean.npy")
    assert json.loads((folder / "meta.json").read_text())["precision"] == "torch.float32"
    own = script("extract_features.py", "--audio-dir", music, "--out", tmp_path / "own", "--checkpoint", checkpoint,
                 "--precision", "float32", "--batch-size", "3")
    assert own.returncode == 0, own.stderr[-2000:]
    assert json.loads((tmp_path / "own" / "meta.json").read_text())["precision"] == "torch.float32"
    model = load(checkpoint)
    hear_model = hear.load_model(str(checkpoint))
    for row, split in enumerate(("train", "valid", "test")):
        path = music / f"{split}.mp3"
        scene = hear.get_scene_embeddings(torch.from_numpy(load_audio(path, 16000))[None], hear_model)[0].numpy()
        for other in (model.embed_file(path), np.load(tmp_path / "own" / f"{split}.npy"), scene):
            np.testing.assert_allclose(other, extracted[row], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_beatport_tracks_added_later_are_split_in_and_extracted_with_a_message(tmp_path, data_root):
    root = tmp_path / "data" / "beatport_key"
    for folder in ("audio", "keys"):
        (root / folder).mkdir(parents=True)
    names = [p.stem for p in sorted((data_root / "demo" / "beatport_key" / "audio").glob("*.mp3"))[:10]]

    def add(some):
        for name in some:
            shutil.copy(data_root / "demo" / "beatport_key" / "audio" / f"{name}.mp3", root / "audio")
            shutil.copy(data_root / "demo" / "beatport_key" / "keys" / f"{name}.txt", root / "keys")

    def extract(*options):
        return script("extract_features.py", "--model", "handcrafted", "--task", "key", "--snr", "clean",
                      "--data-root", tmp_path / "data", "--features-dir", tmp_path / "features", *options)

    add(names[:1])
    one_line_error(extract(), "beatport_key: no usable clips in the valid or test split (0 listed in valid, 0 listed "
                              "in test", "--partial-data")
    assert extract("--partial-data").returncode == 0
    index = tmp_path / "features" / "real" / "key" / "index.csv"
    assert len(index.read_text().splitlines()) == 2
    add(names[1:])
    out = extract()
    assert out.returncode == 0, out.stderr[-2000:]
    assert "the annotated tracks changed since" in out.stderr and "(1 -> 10): split again" in out.stderr
    assert "the beatport_key clips changed (1 -> 10 usable)" in out.stdout
    assert len(index.read_text().splitlines()) == 11
    assert len(np.load(tmp_path / "features" / "real" / "key" / "handcrafted" / "none" / "clean.npy")) == 10


def _dataset(tmp_path, name, missing):
    """A dataset of 20 test clips, `missing` of whose files are not there."""
    clips = []
    for i in range(20):
        path = tmp_path / f"clip{i}.wav"
        if i >= missing:
            sf.write(path, 0.1 * np.random.default_rng(i).standard_normal(8000), 16000)
        clips.append(Clip(f"id{i}", path.name, "test", {}))
    return Dataset(name, tmp_path, clips, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("name,missing,stops", [("MTAT", 2, True), ("MTAT", 1, False), ("own", 2, False)])
def test_a_split_short_of_its_clips_stops_in_one_line_naming_it_unless_partial(tmp_path, name, missing, stops):
    """The study's datasets stop under 95% of a split's clips, and go on with --partial-data;
    a dataset of one's own goes on. Skipped files are named by path, not by clip id."""
    dataset = _dataset(tmp_path, name, missing)
    with pytest.warns(UserWarning, match="skipped .* unusable audio file.*: clip0.wav \\(missing file\\)"):
        if stops:
            with pytest.raises(UserError, match=f"{name}: {20 - missing} of the 20 clips of the test split are usable "
                                                f"\\({missing} missing file; e.g. .*clip0.wav\\).*--partial-data"):
                dataset.audio(16000)
        else:
            dataset.audio(16000)
    with pytest.warns(UserWarning):
        assert len(dataset.audio(16000, partial=True).keys) == 20 - missing


@pytest.mark.slow
def test_a_task_split_left_without_clips_stops_extraction_and_probes_naming_it(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    for i in range(3):
        sf.write(music / f"{i}.wav", 0.1 * np.random.default_rng(i).standard_normal(22050), 22050)
    (music / "broken.wav").write_text("not audio")
    (music / "task.csv").write_text("path,label,split\n0.wav,a,train\n1.wav,b,train\n2.wav,a,valid\n"
                                    "broken.wav,b,test\n")
    dirs = ("--features-dir", tmp_path / "features", "--results-dir", tmp_path / "results")

    def extract(*options):
        return script("extract_features.py", "--model", "handcrafted", "--task-csv", music / "task.csv", "--snr",
                      "clean", "--features-dir", tmp_path / "features", "--data-root", tmp_path / "data", *options)
    out = extract()
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith(
        "error: task.csv: no usable clips in the test split (1 listed in test")
    assert extract("--partial-data").returncode == 0
    one_line_error(script("downstream.py", "--model", "handcrafted", "--task-csv", music / "task.csv", *dirs),
                   "has no test clips")


def test_audio_dir_refuses_snr_and_records_its_precision(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    sf.write(music / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(16000), 16000)
    checkpoint = save_untrained("tmae", tmp_path / "untrained.pt")
    out = script("extract_features.py", "--audio-dir", music, "--out", tmp_path / "out", "--checkpoint", checkpoint,
                 "--snr", "10")
    one_line_error(out, "--snr")
    for precision in ("float32", "bfloat16"):
        embed_folder(music, tmp_path / precision, checkpoint, precision=precision)
        assert json.loads((tmp_path / precision / "meta.json").read_text())["precision"] == f"torch.{precision}"
    assert not np.array_equal(np.load(tmp_path / "float32" / "a.npy"), np.load(tmp_path / "bfloat16" / "a.npy"))


def test_audio_dir_embeds_in_batches_of_its_batch_size(tmp_path, monkeypatch):
    music = tmp_path / "music"
    music.mkdir()
    sf.write(music / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(16000 * 20), 16000)
    checkpoint = save_untrained("tmae", tmp_path / "untrained.pt")
    sizes = []
    embed = Pretrained.embed_windows
    monkeypatch.setattr(Pretrained, "embed_windows",
                        lambda self, batch, layers=False, batch_size=16: sizes.append(batch_size) or
                        embed(self, batch, layers, batch_size))
    embed_folder(music, tmp_path / "out", checkpoint, batch_size=3)
    assert sizes == [3]


def test_a_collapsed_checkpoint_gets_a_note_that_says_what_to_do(tmp_path, capsys):
    music = tmp_path / "music"
    music.mkdir()
    for i in range(3):
        sf.write(music / f"{i}.wav", 0.1 * np.random.default_rng(i).standard_normal(22050 * 3), 22050)
    embed_folder(music, tmp_path / "clmr", save_untrained("clmr", tmp_path / "clmr.pt"))
    assert "nearly one vector" in capsys.readouterr().err
    embed_folder(music, tmp_path / "vggish", save_untrained("vggish", tmp_path / "vggish.pt"))
    assert "nearly one vector" not in capsys.readouterr().err
    assert spread([[1.0, 0.0], [1.0, 0.0]]) == 0.0
    assert spread([[1.0, 0.0], [-1.0, 0.0]]) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load(save_untrained("tmae", tmp_path_factory.mktemp("api") / "untrained.pt"))


@pytest.mark.parametrize("waveform,says", [
    ((np.ones(16000) * 1000).astype(np.int16), "not int16 samples: scale them first"),
    (np.ones(16000) * 1000.0, "peaks at 1000: float audio lies in \\[-1, 1\\]"),
    (np.zeros(0, np.float32), "0 samples .* too short"),
    (np.zeros(10, np.float32), "10 samples .* too short"),
    (np.full(16000, np.nan, np.float32), "non-finite"),
    (np.zeros((2, 16000), np.float32), "fold its channels first, e.g. y.mean\\(axis=0\\)"),
])
def test_the_api_refuses_what_it_cannot_embed_in_one_line(model, waveform, says):
    with pytest.raises(UserError, match=says) as error:
        model.embed(waveform, 16000)
    assert "\n" not in str(error.value)


def test_the_api_rounds_a_waveform_to_16_bits_as_the_cache_does(model):
    y = (0.1 * np.random.default_rng(0).standard_normal(16000 * 4)).astype(np.float32)
    np.testing.assert_array_equal(model.embed(y, 16000), model.embed(as_16_bit(y), 16000))
    assert not np.array_equal(as_16_bit(y), y) and np.array_equal(as_16_bit(as_16_bit(y)), as_16_bit(y))


@pytest.mark.parametrize("path", [None, ""])
def test_hear_load_model_without_a_path_is_one_line(path):
    with pytest.raises(UserError, match="load_model needs a checkpoint") as error:
        hear.load_model() if path is None else hear.load_model(path)
    assert "\n" not in str(error.value)


def test_hear_refuses_integer_and_non_finite_audio(tmp_path):
    model = hear.load_model(str(save_untrained("tmae", tmp_path / "untrained.pt")))
    with pytest.raises(ValueError, match="float"):
        hear.get_scene_embeddings(torch.ones(1, 16000, dtype=torch.int16), model)
    with pytest.raises(ValueError, match="non-finite"):
        hear.get_scene_embeddings(torch.full((1, 16000), float("nan")), model)


def test_libsndfiles_notes_on_damaged_mp3_frames_stay_out_of_the_terminal(tmp_path, capfd):
    y = (0.3 * np.sin(np.arange(44100 * 5) * 0.05)).astype(np.float32)
    sf.write(tmp_path / "clean.mp3", y, 44100, format="MP3")
    data = (tmp_path / "clean.mp3").read_bytes()
    (tmp_path / "damaged.mp3").write_bytes(data[:len(data) // 2] + b"\x00junk" * 80 + data[len(data) // 2:])
    (tmp_path / "zeros.mp3").write_bytes(data[:4] + bytes(4000))  # a frame header, then nothing: fails twice
    capfd.readouterr()
    assert len(load_audio(tmp_path / "damaged.mp3", 16000)) == pytest.approx(80000, rel=0.01)
    with pytest.raises(AudioError, match="MP3 data that does not decode"):
        load_audio(tmp_path / "zeros.mp3", 16000)
    assert capfd.readouterr().err == ""


def test_containers_libsndfile_cannot_read_are_skipped_with_the_reason_not_passed_over(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    sf.write(music / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(22050 * 3), 22050)
    (music / "b.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    (music / "c.aac").write_bytes(b"\xff\xf1\x50\x80" + bytes(200))
    assert embed_folder(music, tmp_path / "out", None) == (1, 0, 2)
    skipped = (tmp_path / "out" / "skipped.csv").read_text()
    assert "b.m4a" in skipped and "MP4/M4A" in skipped and "c.aac" in skipped and "AAC (ADTS)" in skipped


def test_warnings_print_as_one_line_without_source(tmp_path, data_root):
    music = tmp_path / "music"
    music.mkdir()
    for i in range(4):
        sf.write(music / f"{i}.wav", 0.1 * np.random.default_rng(i).standard_normal(22050 * 2), 22050)
    (music / "broken.wav").write_text("not audio")
    (music / "task.csv").write_text("Path,Label,Split\n0.wav,a,train\n1.wav,b,TRAIN\nbroken.wav,a,train\n"
                                    "2.wav,a,valid\n3.wav,b,test\n")
    out = script("extract_features.py", "--model", "handcrafted", "--task-csv", music / "task.csv", "--snr", "clean",
                 "--features-dir", tmp_path / "features", "--data-root", tmp_path / "data")
    assert out.returncode == 0, out.stderr[-2000:]
    (warning,) = [line for line in out.stderr.splitlines() if "unusable" in line]
    assert warning.startswith("warning: skipped 1 unusable audio file(s): broken.wav (unreadable (not a known audio "
                              "container: corrupt, or not audio)); see ")
    assert "warnings.warn" not in out.stderr
