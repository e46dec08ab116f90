import json

import numpy as np
import pytest
import soundfile as sf

from common.data import audio_cache
from common.data.audio import load_audio


@pytest.fixture
def folder_of_clips(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for i, seconds in enumerate((1.0, 0.5, 2.0, 0.25)):
        y = (0.3 * rng.standard_normal(int(seconds * 22050))).astype(np.float32)
        sf.write(tmp_path / f"c{i}.wav", y, 22050)
        items.append((f"c{i}", tmp_path / f"c{i}.wav", None))
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 16000)
    (tmp_path / "broken.mp3").write_bytes(b"\x00" * 999)
    items += [("silent", tmp_path / "silent.wav", None), ("broken", tmp_path / "broken.mp3", None),
              ("gone", tmp_path / "gone.wav", None)]
    return items


def test_cache_holds_each_clip_as_decoded(tmp_path, folder_of_clips):
    with pytest.warns(UserWarning, match="skipped 3 unusable"):
        cache = audio_cache.build(tmp_path / "cache", folder_of_clips, 16000)
    assert cache.keys == ["c0", "c1", "c2", "c3"]
    for key, path, _ in folder_of_clips[:4]:
        reference = load_audio(path, 16000)
        np.testing.assert_allclose(cache.clip(key), reference, atol=1e-4)  # 16-bit storage
        np.testing.assert_allclose(cache.crop(key, 100, 500), reference[100:600], atol=1e-4)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["clips"] == 4
    reasons = {s["key"]: s["skipped"] for s in manifest["skipped"]}
    assert set(reasons) == {"silent", "broken", "gone"}
    assert reasons["silent"] == "silent" and reasons["gone"] == "missing file"
    assert manifest["seconds"] == pytest.approx(3.75, abs=1e-3)


def test_random_crops_have_the_asked_length_and_pad_short_clips(tmp_path, folder_of_clips):
    with pytest.warns(UserWarning):
        cache = audio_cache.build(tmp_path / "cache", folder_of_clips, 16000)
    rng = np.random.default_rng(1)
    crops = cache.random_crops(["c0", "c3", "c2"], 8000, rng)
    assert crops.shape == (3, 8000) and crops.dtype == np.float32
    assert np.all(crops[1, 4000:] == 0)  # c3 is 0.25 s = 4,000 samples
    np.testing.assert_array_equal(crops[1, :4000], cache.clip("c3"))
    # every crop is a contiguous slice of its clip
    full = cache.clip("c2")
    offset = int(np.argmin([np.abs(full[o:o + 8000] - crops[2]).sum() for o in range(len(full) - 8000 + 1)]))
    np.testing.assert_array_equal(full[offset:offset + 8000], crops[2])


def test_interrupted_build_resumes_without_decoding_again(tmp_path, folder_of_clips, monkeypatch):
    good = folder_of_clips[:4]
    with pytest.warns(UserWarning):
        complete = audio_cache.build(tmp_path / "complete", folder_of_clips, 16000)
    audio_cache.build(tmp_path / "cache", good[:2], 16000)
    # An interruption mid-clip: half a clip of samples written, its index line cut.
    with open(tmp_path / "cache" / "audio.i16", "ab") as f:
        f.write(b"\x01\x02" * 777)
    with open(tmp_path / "cache" / "index.jsonl", "a") as f:
        f.write('{"key": "c2", "sta')
    decoded = []
    real_decode = audio_cache._decode
    monkeypatch.setattr(audio_cache, "_decode", lambda item, sample_rate: decoded.append(item[0])
                        or real_decode(item, sample_rate))
    with pytest.warns(UserWarning):
        resumed = audio_cache.build(tmp_path / "cache", folder_of_clips, 16000, workers=0)
    assert decoded == ["c2", "c3", "silent", "broken", "gone"]
    assert resumed.keys == complete.keys
    for key in complete.keys:
        np.testing.assert_array_equal(resumed.clip(key), complete.clip(key))
    decoded.clear()
    audio_cache.build(tmp_path / "cache", folder_of_clips, 16000, workers=0)
    assert decoded == []  # nothing left to do, skipped files included


def test_a_complete_cache_in_a_read_only_folder_is_read_without_its_lock(tmp_path, folder_of_clips):
    good = folder_of_clips[:4]
    built = audio_cache.build(tmp_path / "cache", good, 16000, workers=0)
    (tmp_path / "cache" / "lock").unlink()
    for path in (tmp_path / "cache", tmp_path):
        path.chmod(0o555)
    try:
        again = audio_cache.build(tmp_path / "cache", good, 16000, workers=0)  # root ignores modes: still no lock
    finally:
        for path in (tmp_path, tmp_path / "cache"):
            path.chmod(0o755)
    assert again.keys == built.keys and not (tmp_path / "cache" / "lock").exists()
