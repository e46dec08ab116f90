import subprocess
import sys
from pathlib import Path

import pytest

from common.cli import UserError
from common.data import subsets
from common.data.dataset import load_dataset
from common.data.mtat import read_index

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


def study_lists():
    rows = (REPO / "tests" / "data" / "study_subsets.tsv").read_text().splitlines()
    return {subset: ids.split() for subset, ids in (r.split("\t") for r in rows if not r.startswith("#"))}


def test_subsets_are_the_studys_published_lists(real_clips):
    lists = study_lists()
    assert list(lists) == [str(n) for n in subsets.TRACKS_PER_GENRE]
    for subset, ids in lists.items():
        assert [c.id for c in subsets.select(real_clips, subset)] == ids


def assert_nested_and_balanced(clips, draw):
    previous = set()
    for n in subsets.TRACKS_PER_GENRE:
        chosen = subsets.select(clips, str(n), draw)
        ids = {c.id for c in chosen}
        assert previous <= ids
        assert all(c.split == "train" for c in chosen)
        per_genre = [subsets.genre_of(c) for c in chosen]
        assert {g: per_genre.count(g) for g in subsets.GENRES} == {g: n for g in subsets.GENRES}
        previous = ids


@pytest.mark.parametrize("draw", [0, 1, 2])
def test_subsets_and_draws_are_nested_single_genre_and_deterministic(real_clips, draw):
    assert_nested_and_balanced(real_clips, draw)
    assert [c.id for c in subsets.select(real_clips, "5", draw)] == [c.id for c in subsets.select(read_index(), "5",
                                                                                                   draw)]


def test_draws_are_other_clips_of_the_same_size_and_minutes(real_clips):
    for n in ("1", "10", "100"):
        study, one, two = ({c.id for c in subsets.select(real_clips, n, d)} for d in (0, 1, 2))
        assert len(study) == len(one) == len(two) == 10 * int(n)
        assert len(study & one) < len(study) / 2 and one != two
        assert subsets.minutes(subsets.select(real_clips, n, 1)) == pytest.approx(
            subsets.minutes(subsets.select(real_clips, n)), rel=0.01)
    with pytest.raises(UserError, match="full is the whole train split"):
        subsets.select(real_clips, "full", 1)


@pytest.mark.slow
def test_list_prints_the_clip_ids_of_a_subset():
    def listed(*options):
        out = subprocess.run([sys.executable, "-m", "common.data.subsets", "--list", *options], cwd=REPO,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()
    assert listed("1") == ["29", "40", "49", "101", "133", "299", "310", "399", "530", "1264"]
    assert listed("20") == study_lists()["20"]
    other = listed("20", "--draw", "3")
    assert len(other) == 200 and other != listed("20")


@pytest.mark.slow
def test_demo_offers_the_small_subsets(data_root):
    clips = load_dataset("MTAT", data_root, demo=True).clips
    assert subsets.available(clips) == ("1", "2", "5", "10", "20", "full")
    assert len(subsets.select(clips, "20")) == 200
    assert subsets.select(clips, "5", 1) != subsets.select(clips, "5")
    out = subprocess.run([sys.executable, "-m", "common.data.subsets", "--demo", "--data-root", str(data_root),
                          "--list", "1"], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.split() == [c.id for c in subsets.select(clips, "1")]
    with pytest.raises(UserError, match="choose from 1, 2, 5, 10, 20, full"):
        subsets.select(clips, "50")


@pytest.mark.slow
def test_subsets_command_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "common.data.subsets"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[-1].split() == ["full", "15,247", "7400.9"]
    assert lines[2].split() == ["1", "10", "4.9"]
