import csv
import gzip
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from common.data import beatport, mtat, tinysol
from common.data.dataset import load_dataset
from common.data.demo import mtat as demo_mtat
from common.data.demo.synth import Score

REPO = Path(__file__).resolve().parent.parent


def test_demo_mtat_is_in_mtats_layout(data_root):
    root = data_root / "demo" / "MTAT"
    with open(root / "annotations_final.csv", newline="") as f:
        header = next(csv.reader(f, delimiter="\t"))
    assert header[0] == "clip_id" and header[-1] == "mp3_path" and len(header) == 190
    assert (root / "annotations_final.csv").read_text().startswith('"clip_id"\t"')
    dataset = load_dataset("MTAT", data_root, demo=True)
    assert {d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")} == set(mtat.AUDIO_FOLDERS)
    info = sf.info(root / dataset.clips[0].path)
    assert (info.format, info.samplerate, info.channels) == ("MP3", 16000, 1)
    vocabulary = {t for c in dataset.clips for t in c.labels["tags"]}
    assert {"guitar", "piano", "strings", "violin", "flute", "synth", "drums", "choir", "sitar", "harp",
            "fast", "slow", "loud", "quiet", "soft"} <= vocabulary <= set(mtat.TOP50)
    assert all(len(dataset.split(s)) > 0 for s in ("train", "valid", "test"))
    with gzip.open(root / mtat.INDEX_NAME, "rt") as f:
        assert f.readline().strip().split("\t") == ["clip_id", "split", "seconds", "mp3_path", "tags"]


def test_demo_tinysol_is_in_tinysols_layout_and_labels_are_right(data_root):
    root = data_root / "demo" / "TinySOL"
    with open(root / "TinySOL_metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == tinysol.HEADER
    clips = tinysol.read(root)
    assert {c.labels["instrument"] for c in clips} == set(tinysol.INSTRUMENTS)
    assert {int(r["Fold"]) for r in rows} == {0, 1, 2, 3, 4}
    pitch_classes = [c.labels["pitch"] % 12 for c in clips]
    assert all(pitch_classes.count(p) == 14 for p in range(12))  # a balanced pitch-class task
    for scheme in ("study", "project"):  # a held-out note's pitch is heard in training, at another dynamic
        for instrument in tinysol.INSTRUMENTS:
            notes = [c for c in tinysol.read(root, scheme) if c.labels["instrument"] == instrument]
            trained = {(c.labels["pitch"], c.id.split("-")[3]) for c in notes if c.split == "train"}
            for c in notes:
                if c.split != "train":
                    assert any(p == c.labels["pitch"] and dyn != c.id.split("-")[3] for p, dyn in trained)
    assert all(int(r["Pitch ID"]) == librosa.note_to_midi(r["Pitch"]) for r in rows)
    # The pitch labels are what is heard: pyin on a sample of the rendered notes.
    for clip in clips[::9]:
        y, sr = librosa.load(root / clip.path, sr=22050)
        f0, voiced, _ = librosa.pyin(y[: int(1.4 * sr)], fmin=30, fmax=4200, sr=sr, frame_length=4096)
        heard = librosa.hz_to_midi(np.nanmedian(f0[voiced]))
        assert abs(heard - clip.labels["pitch"]) < 0.5, clip.path


def test_demo_beatport_is_in_its_layout_with_24_keys(data_root):
    root = data_root / "demo" / "beatport_key"
    clips = beatport.read(root)
    assert {c.labels["key"] for c in clips} == set(beatport.KEYS)
    assert len(list((root / "keys").glob("*.txt"))) > len(clips)  # unusable annotations are dropped
    assert any(t.read_text().split()[0] in beatport.FLAT_TO_SHARP for t in (root / "keys").glob("*.txt"))
    assert (root / "split_study.tsv").exists()
    assert sf.info(root / clips[0].path).channels == 2


def test_rendering_is_deterministic():
    recipe, tags = demo_mtat._arrange(("rock",), np.random.default_rng(3))
    again, tags_again = demo_mtat._arrange(("rock",), np.random.default_rng(3))
    assert recipe == again and tags == tags_again and "rock" in tags
    np.testing.assert_array_equal(demo_mtat.render(recipe), demo_mtat.render(again))


def test_score_renders_the_asked_duration_and_level():
    score = Score()
    score.note(0, 69, 0.0, 0.5, 100)
    audio = score.render(16000, 1.0, peak=0.5)
    assert audio.shape == (16000, 2) and np.abs(audio).max() == pytest.approx(0.5)


def test_processes_rendering_at_once_take_turns_and_one_renders(tmp_path):
    """Two runs started together on a fresh data root (two train.py, torchrun's ranks): one
    renders, the other waits and finds it done; a killed renderer's scratch is cleared."""
    (tmp_path / "demo" / ".Fake.rendering-999999").mkdir(parents=True)  # left by a process killed mid-way
    code = ("import sys, time\n"
            "import common.data.demo as demo\n"
            "class Slow:\n"
            "    VERSION = 3\n"
            "    @staticmethod\n"
            "    def write(folder):\n"
            "        for i in range(5):\n"
            "            time.sleep(0.2)\n"
            "            (folder / f'{i}.txt').write_text(str(i))\n"
            "demo.MODULES = {'Fake': Slow}\n"
            "demo.ensure(sys.argv[1])\n")
    runs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    assert sum("rendering the demo Fake dataset" in out for out, _ in outs) == 1
    folder = tmp_path / "demo" / "Fake"
    assert sorted(p.name for p in folder.iterdir()) == [".demo_version", "0.txt", "1.txt", "2.txt", "3.txt", "4.txt"]
    assert (folder / ".demo_version").read_text() == "3"
    assert [p.name for p in (tmp_path / "demo").iterdir() if "rendering" in p.name] == []
