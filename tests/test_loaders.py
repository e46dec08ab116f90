import csv

import pytest

from common.data import beatport, mtat, tinysol
from common.data.dataset import load_dataset


def test_shipped_mtat_index_is_the_standard_split():
    clips = mtat.read_index()
    counts = {s: sum(c.split == s for c in clips) for s in ("train", "valid", "test")}
    assert counts == {"train": 15247, "valid": 1529, "test": 4332}
    assert all(c.labels["tags"] and set(c.labels["tags"]) <= set(mtat.TOP50) for c in clips)
    assert sum(c.seconds for c in clips if c.split == "train") / 60 == pytest.approx(7400.9, abs=0.05)
    assert not {"35644", "55753", "57881"} & {c.id for c in clips}  # the known corrupt clips
    assert len(mtat.all_tags()) == 188 and set(mtat.TOP50) <= set(mtat.all_tags())


def test_mtat_reads_official_annotations_format(tmp_path):
    tags = mtat.all_tags()
    header = ["clip_id", *tags, "mp3_path"]
    row = {t: "0" for t in tags} | {"classical": "1", "violin": "1", "baroque": "1"}
    path = "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3"
    with open(tmp_path / "annotations_final.csv", "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(header)
        writer.writerow(["2", *(row[t] for t in tags), path])
    assert mtat.read_annotations(tmp_path / "annotations_final.csv") == {"2": (path, ("classical", "violin"))}
    clips = {c.id: c for c in mtat.read(tmp_path)}
    assert clips["2"].split == "test" and clips["2"].path == path
    assert clips["2"].labels["tags"] == ("classical", "violin")  # from the CSV, top-50 only
    assert len(clips) == 21108  # clips missing from the CSV keep the index's tags


@pytest.mark.parametrize("text,key", [
    ("D minor\n", "D minor"), ("Eb minor", "D# minor"), ("Bb major", "A# major"), ("f# Minor", "F# minor"),
    ("A minor | C major", None), ("other", None), ("", None), ("C dorian", None)])
def test_beatport_keys_are_parsed_to_24_sharp_classes(text, key):
    assert beatport.parse_key(text) == key


@pytest.mark.parametrize("scheme,shares,stored", [("study", (16, 2, 2), "split_study.tsv"),
                                                   ("project", (12, 4, 4), "split.tsv")])
def test_beatport_split_is_stratified_and_stored(scheme, shares, stored, tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "keys").mkdir()
    for i in range(60):
        name = f"{1000 + i} Artist - Title {i} (Original Mix)"
        (tmp_path / "audio" / f"{name}.mp3").write_bytes(b"")
        (tmp_path / "keys" / f"{name}.txt").write_text(["A minor", "C major", "Gb major"][i % 3])
    clips = beatport.read(tmp_path, scheme)
    assert len(clips) == 60
    for key in ("A minor", "C major", "F# major"):
        splits = [c.split for c in clips if c.labels["key"] == key]
        assert tuple(splits.count(s) for s in ("train", "valid", "test")) == shares
    before = (tmp_path / stored).read_text()
    (tmp_path / "keys" / f"{1000} Artist - Title 0 (Original Mix).txt").write_text("C major")
    assert (tmp_path / stored).read_text() == before
    assert [c.split for c in beatport.read(tmp_path, scheme)] == [c.split for c in clips]


def _beatport_tracks(root, names, key="A minor"):
    for folder in ("audio", "keys"):
        (root / folder).mkdir(exist_ok=True)
    for name in names:
        (root / "audio" / f"{name}.mp3").write_bytes(b"")
        (root / "keys" / f"{name}.txt").write_text(key)


def test_beatport_split_follows_the_annotated_tracks_and_says_so(tmp_path, capsys):
    _beatport_tracks(tmp_path, [f"track {i}" for i in range(1)])
    assert [c.split for c in beatport.read(tmp_path)] == ["train"]
    _beatport_tracks(tmp_path, [f"track {i}" for i in range(1, 10)])
    (tmp_path / "keys" / "no audio.txt").write_text("C major")  # annotated, its audio missing: listed
    clips = beatport.read(tmp_path)
    assert "the annotated tracks changed since" in capsys.readouterr().err
    assert len(clips) == 11 and "no audio" in {c.id for c in clips}
    assert sorted(c.split for c in clips) == ["test"] + ["train"] * 9 + ["valid"]
    assert (tmp_path / "split_study.tsv").read_text().count("\n") == 12
    assert [c.split for c in beatport.read(tmp_path)] == [c.split for c in clips]  # the same tracks: kept
    assert capsys.readouterr().err == ""


def test_tinysol_reads_folds_and_labels(tmp_path):
    with open(tmp_path / "TinySOL_metadata.csv", "w") as f:
        f.write(",".join(tinysol.HEADER) + "\n")
        for fold in range(5):
            f.write(f"Strings/Contrabass/ordinario/Cb-ord-A{fold}-mf-2c-N.wav,{fold},Strings,Cb,Contrabass,"
                    f"ord,ordinario,A{fold},{21 + 12 * fold},mf,2,1,2.0,FALSE\n")
    clips = tinysol.read(tmp_path)
    assert [c.split for c in clips] == ["valid", "test", "train", "train", "train"]  # the study's (mir_ref's)
    assert [c.split for c in tinysol.read(tmp_path, "project")] == ["train", "train", "train", "valid", "test"]
    assert clips[2].labels == {"pitch": 45, "instrument": "Cb"}
    assert clips[2].path == "audio/Strings/Contrabass/ordinario/Cb-ord-A2-mf-2c-N.wav"


def test_unknown_dataset_is_a_user_error(tmp_path):
    from common.cli import UserError
    with pytest.raises(UserError, match="choose from MTAT, TinySOL, beatport_key"):
        load_dataset("GTZAN", tmp_path)
