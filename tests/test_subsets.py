import subprocess
import sys
from pathlib import Path

import pytest

from common import subsets
from common.cli import UserError
from common.dataset import load_dataset
from common.mtat import read_index

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def real_clips():
    return read_index()


def test_real_subset_sizes_and_minutes(real_clips):
    rows = {s: (n, m) for s, n, m in subsets.table(real_clips)}
    assert rows["1"][0] == 10 and rows["1"][1] == pytest.approx(4.9, abs=0.05)
    assert rows["100"][0] == 1000 and rows["100"][1] == pytest.approx(485.4, abs=0.05)
    assert rows["full"] == (15247, pytest.approx(7400.9, abs=0.05))
    assert list(rows) == list(subsets.SUBSETS)


def test_subsets_are_nested_single_genre_and_deterministic(real_clips):
    previous = set()
    for n in subsets.TRACKS_PER_GENRE:
        chosen = subsets.select(real_clips, str(n))
        ids = {c.id for c in chosen}
        assert previous <= ids
        assert all(c.split == "train" for c in chosen)
        per_genre = [subsets.genre_of(c) for c in chosen]
        assert {g: per_genre.count(g) for g in subsets.GENRES} == {g: n for g in subsets.GENRES}
        previous = ids
    assert [c.id for c in subsets.select(real_clips, "5")] == [c.id for c in subsets.select(read_index(), "5")]


def test_demo_offers_the_small_subsets(data_root):
    clips = load_dataset("MTAT", data_root, demo=True).clips
    assert subsets.available(clips) == ("1", "2", "5", "10", "20", "full")
    assert len(subsets.select(clips, "20")) == 200
    with pytest.raises(UserError, match="choose from 1, 2, 5, 10, 20, full"):
        subsets.select(clips, "50")


def test_subsets_command_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "common.subsets"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[-1].split() == ["full", "15,247", "7400.9"]
    assert lines[2].split() == ["1", "10", "4.9"]


def test_bad_option_is_one_line_and_exit_code_2():
    out = subprocess.run([sys.executable, "-m", "common.subsets", "--data-rot", "x"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "--data-rot" in out.stderr
