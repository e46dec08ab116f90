import numpy as np
import pytest
import soundfile as sf

from common.data.audio import AudioError, load_audio


def tone(freq, seconds, sr, amplitude=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt,ext,atol", [("WAV", "wav", 1e-4), ("FLAC", "flac", 1e-4), ("MP3", "mp3", 0.05)])
def test_decodes_each_format_to_the_same_signal(tmp_path, fmt, ext, atol):
    y = tone(440, 1.0, 16000)
    path = tmp_path / f"a.{ext}"
    sf.write(path, y, 16000, format=fmt)
    decoded = load_audio(path, 16000)
    assert decoded.dtype == np.float32
    assert abs(len(decoded) - len(y)) <= 1152  # an MP3 frame at most
    n = min(len(decoded), len(y))
    # compare the spectra: MP3 shifts and smears samples but keeps the tone
    assert np.argmax(np.abs(np.fft.rfft(decoded[:n]))) == np.argmax(np.abs(np.fft.rfft(y[:n])))
    if fmt != "MP3":
        np.testing.assert_allclose(decoded, y, atol=atol)


def test_stereo_is_mixed_to_mono_and_resampled(tmp_path):
    left, right = tone(440, 1.0, 44100, 0.4), tone(440, 1.0, 44100, 0.2)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 44100)
    y = load_audio(tmp_path / "s.wav", 16000)
    assert len(y) == 16000
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) == 440  # 1 s at 16 kHz: bin k is k Hz
    assert np.abs(y[1000:-1000]).max() == pytest.approx(0.3, rel=0.02)


def test_unusable_files_raise_with_the_reason(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "garbage.mp3").write_bytes(b"this is not audio at all" * 100)
    sf.write(tmp_path / "full.wav", tone(440, 1.0, 16000), 16000)
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(data[: len(data) // 2])
    sf.write(tmp_path / "short.wav", tone(440, 1.0, 16000), 16000)
    sf.write(tmp_path / "cancelling.wav", np.stack([tone(440, 1.0, 16000), -tone(440, 1.0, 16000)], axis=1), 16000)
    (tmp_path / "song.mp3").write_bytes(b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00" + bytes(4000))  # an MP4
    sf.write(tmp_path / "click.wav", tone(440, 0.05, 16000), 16000)
    expectations = {"click.wav": "too short \\(0.050 s; at least 0.1 s\\)",
                    "song.mp3": "MP4/M4A", "silent.wav": "^silent$",  # unsupported, or undecodable with ffmpeg
                    "garbage.mp3": "not a known audio container", "empty.wav": "empty",
                    "truncated.wav": "truncated", "missing.wav": "missing", "cancelling.wav": "channels .* cancel"}
    for name, reason in expectations.items():
        with pytest.raises(AudioError, match=reason):
            load_audio(tmp_path / name, 16000)
    with pytest.raises(AudioError, match="truncated"):
        load_audio(tmp_path / "short.wav", 16000, expected_seconds=29.1)
