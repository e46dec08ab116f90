"""Decoding audio files to mono float32 at a chosen sample rate, at 16-bit resolution.

soundfile (libsndfile) reads WAV, FLAC and MP3 fast; anything it refuses goes through
librosa's audioread fallback. Every problem with a file ends in an `AudioError` whose
message is the reason, so callers can skip the file and name it in a manifest.

Decoded audio is rounded to 16 bits (`as_16_bit`), the resolution of the study's sources
(MTAT's MP3s, TinySOL's and Beatport's masters) and the one the decoded-audio cache stores.
Every entry point (extraction from the cache, the Python API, --audio-dir, the HEAR module)
hands the models audio rounded the same way, so one file gives one embedding whichever way
it came in.
"""
import os
import struct
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

# Peak below this (about -80 dBFS) counts as silence: nothing to learn from.
SILENCE_PEAK = 1e-4
# Shorter than this, audio holds nothing to describe (the models read 2.7-5.1 s windows; the
# shortest clips the probes see, TinySOL's notes, last about a second)
SHORTEST_SECONDS = 0.1
PCM16_SCALE = 32767.0


def to_pcm16(y):
    """float audio in [-1, 1] -> int16 samples (clipped beyond)."""
    return np.round(np.clip(y, -1.0, 1.0) * PCM16_SCALE).astype(np.int16)


def from_pcm16(samples, out=None):
    """int16 samples -> float32 audio (the cache's reads and `as_16_bit` share this product),
    into `out` where given."""
    return np.multiply(samples, np.float32(1 / PCM16_SCALE), out=out)


def as_16_bit(y):
    """float audio rounded to the 16-bit resolution every model input has (idempotent)."""
    return from_pcm16(to_pcm16(y))


class AudioError(Exception):
    """The file cannot be used; the message says why (unreadable, empty, truncated, silent)."""


def _wav_promised_frames(path, block_align):
    """Frames the WAV header's data chunk declares (libsndfile quietly reports only what is there)."""
    with open(path, "rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return None
        while len(header := f.read(8)) == 8:
            size = struct.unpack("<I", header[4:])[0]
            if header[:4] == b"data":
                return size // block_align
            f.seek(size + size % 2, 1)
    return None


def _mp3_stream_bytes(path):
    """(bytes of MPEG audio the stream's Xing/Info header declares, bytes the file holds after its
    ID3v2 tag), or None where there is no such header. LAME and most encoders write it; it is
    what tells a cut MP3 from a short one when the metadata gives no duration."""
    with open(path, "rb") as f:
        head = f.read(10)
        start = 0
        if head[:3] == b"ID3":  # a tag of synchsafe size, and a footer of 10 bytes when flagged
            start = 10 + (head[6] << 21 | head[7] << 14 | head[8] << 7 | head[9]) + (10 if head[5] & 0x10 else 0)
        f.seek(start)
        frame = f.read(200)
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag)
        if 0 <= at <= 40 and len(frame) >= at + 16:
            flags = int.from_bytes(frame[at + 4:at + 8], "big")
            if flags & 2:  # the byte count follows the frame count when that is present
                offset = at + 8 + (4 if flags & 1 else 0)
                return int.from_bytes(frame[offset:offset + 4], "big"), Path(path).stat().st_size - start
    return None


@contextmanager
def _quiet_decoder():
    """libsndfile's MP3 decoder (mpg123) prints notes about damaged frames it skips straight to
    the process's stderr, into any progress bar, and again when librosa's fallback tries it. A
    file that decodes is judged by load_audio's checks, one that does not by the reason it
    is skipped with, so the notes go nowhere."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _read(path):
    """Return (samples x channels float32, sample rate, frames the header promised or None)."""
    with _quiet_decoder():
        try:
            with sf.SoundFile(str(path)) as f:
                promised = None
                if f.format == "WAV":
                    bits = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64, "PCM_U8": 8}
                    if f.subtype in bits:
                        promised = _wav_promised_frames(path, f.channels * bits[f.subtype] // 8)
                elif f.format == "FLAC":
                    promised = f.frames
                return f.read(dtype="float32", always_2d=True), f.samplerate, promised
        except Exception:  # libsndfile's errors carry no common type
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # librosa warns about audioread itself
                    y, sr = librosa.load(str(path), sr=None, mono=False, dtype=np.float32)
            except Exception as error:
                raise AudioError(_why_unreadable(path, error)) from None
            return np.atleast_2d(y).T, sr, None


# The first bytes of the containers a music folder holds (libsndfile reads the first five)
SIGNATURES = ((b"RIFF", 0, "WAV"), (b"fLaC", 0, "FLAC"), (b"OggS", 0, "Ogg"), (b"ID3", 0, "MP3"),
              (b"FORM", 0, "AIFF"), (b"ftyp", 4, "MP4/M4A"), (b"\x30\x26\xb2\x75", 0, "WMA/ASF"))
LIBSNDFILE_READS = ("WAV", "FLAC", "Ogg", "MP3", "AIFF")


def _container(path):
    with open(path, "rb") as f:
        head = f.read(12)
    for magic, offset, name in SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return name
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # a frame sync with MPEG layer 0
        return "AAC (ADTS)"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MP3"
    return None


def _why_unreadable(path, fallback_error):
    """The reason a file neither libsndfile nor audioread could open, as the user can act on it."""
    container = _container(path)
    if container is None:
        return "unreadable (not a known audio container: corrupt, or not audio)"
    if container in LIBSNDFILE_READS:  # libsndfile's own message for these says "does not exist": misleading
        return f"unreadable ({container} data that does not decode: corrupt or cut)"
    if type(fallback_error).__name__ == "NoBackendError":
        return (f"unsupported container ({container}: libsndfile does not read it, and no audioread backend "
                f"such as ffmpeg is installed to decode it)")
    return f"unreadable ({container} data that does not decode: {type(fallback_error).__name__}: {fallback_error})"


def resample(y, orig_sr, target_sr):
    if orig_sr == target_sr:
        return y
    return librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")


def load_audio(path, sample_rate, expected_seconds=None):
    """Decode `path` to a mono float32 array at `sample_rate`.

    `expected_seconds`, when the metadata knows the clip's length, lets a truncated
    file be told apart from a short one.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError("missing file")
    if not path.is_file():  # a FIFO or a device would block the reader forever
        raise AudioError("not a regular file")
    if path.stat().st_size == 0:
        raise AudioError("empty (0 bytes)")
    try:
        data, sr, promised = _read(path)
        stream = _mp3_stream_bytes(path) if _container(path) == "MP3" else None
    except OSError as error:  # no permission to read it, an I/O error of the disk
        raise AudioError(f"unreadable ({error.strerror or error})") from None
    if data.size == 0:
        raise AudioError("empty (no samples)")
    if stream and stream[1] < stream[0]:
        raise AudioError(f"truncated ({stream[1]} of the {stream[0]} bytes its MP3 header declares)")
    if promised is not None and len(data) < promised:
        raise AudioError(f"truncated ({len(data)} of {promised} frames)")
    if expected_seconds and len(data) / sr < 0.9 * expected_seconds:
        raise AudioError(f"truncated ({len(data) / sr:.2f} s of {expected_seconds:.2f} s)")
    if not np.isfinite(data).all():
        raise AudioError("corrupt (non-finite samples)")
    if len(data) < SHORTEST_SECONDS * sr:
        raise AudioError(f"too short ({len(data) / sr:.3f} s; at least {SHORTEST_SECONDS} s)")
    y = data.mean(axis=1)
    if np.abs(y).max() < SILENCE_PEAK:
        if np.abs(data).max() >= SILENCE_PEAK:
            raise AudioError("silent once its channels are averaged to mono (they cancel: one is the other inverted)")
        raise AudioError("silent")
    return as_16_bit(resample(y, sr, sample_rate))
