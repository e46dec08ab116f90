"""The decoded-audio cache: every clip of a dataset decoded once, then read by slicing.

Per dataset and sample rate, a folder holds
  audio.i16        all clips, mono, 16-bit PCM, back to back (memory-mapped when read)
  index.jsonl      one line per clip: {"key", "start", "end"} in samples, or
                   {"key", "path", "skipped": reason, "stat": [size, mtime_ns] or null} for a
                   file that could not be used (null: it did not exist)
  manifest.json    summary of the build: clips, seconds, and every skipped file with why
Training and extraction read random crops or whole clips from the memory map, so no
audio is decoded inside a training loop.

The index is a journal: a clip's samples are flushed before its line is written, so a
build that is interrupted resumes where it stopped, and clips added to a dataset later
are appended without decoding the others again. A skipped file is tried again once it
appears or changes (size or modification time): a dataset completed later is picked up.
16-bit samples (the precision of the sources: MTAT's MP3s, TinySOL's and Beatport's
masters) halve the disk against float32 (the full MTAT train/valid/test at 16 kHz is
about 20 GB) and convert to float32 far faster than float16 does.
"""
import fcntl
import json
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import write_json, write_text
from ..provenance import digest
from .audio import AudioError, from_pcm16, load_audio, to_pcm16

DTYPE = np.int16


def _stat(path):
    """[size, mtime_ns] of a file, None if there is none: what a skipped file is compared by."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def _changed_since_skipped(entry):
    return "skipped" in entry and _stat(entry["path"]) != entry.get("stat")


def _decode(item, sample_rate):
    key, path, expected_seconds = item
    try:
        return key, load_audio(path, sample_rate, expected_seconds), None
    except AudioError as error:
        return key, None, str(error)


@contextmanager
def _locked(directory):
    """One builder at a time (several DDP ranks may ask for the same cache at once)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_journal(directory):
    """Entries of index.jsonl whose samples are really on disk, in order."""
    entries, data_size = [], 0
    audio_file = directory / "audio.i16"
    on_disk = audio_file.stat().st_size // DTYPE().itemsize if audio_file.exists() else 0
    index_file = directory / "index.jsonl"
    if index_file.exists():
        for line in index_file.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by an interruption: everything after it is redone
            if "end" in entry:
                if entry["end"] > on_disk:
                    break
                data_size = entry["end"]
            entries.append(entry)
    return entries, data_size


def _pending(entries, items):
    """(skipped entries to try again, (key, path, seconds) still to decode) for `items`."""
    wanted = {key for key, _, _ in items}
    retried = [entry for entry in entries if entry["key"] in wanted and _changed_since_skipped(entry)]
    done = {entry["key"] for entry in entries} - {entry["key"] for entry in retried}
    return retried, [(key, str(path), sec) for key, path, sec in items if key not in done]


def build(directory, items, sample_rate, workers=None, desc="decoding audio", root=None):
    """Make sure every (key, path, expected_seconds) of `items` is in the cache at `directory`.

    Files that cannot be used are skipped, named in a warning (by their path relative to
    `root`, the dataset's folder, where given) and in manifest.json.
    Returns the open `AudioCache`. A complete cache is read without taking the lock, so a
    read-only copy of the data serves as well.
    """
    directory = Path(directory)
    if not (directory / "manifest.json").exists() or any(_pending(_read_journal(directory)[0], items)):
        with _locked(directory):
            _complete(directory, items, sample_rate, workers, desc)
    cache = AudioCache(directory)
    wanted = {key for key, _, _ in items}
    skipped = [s for s in cache.skipped if s["key"] in wanted]
    if skipped:  # said at every use, not only when they were met: a run on fewer clips is never silent
        names = ", ".join(f"{s['path'] if root is None else os.path.relpath(s['path'], root)} ({s['skipped']})"
                          for s in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        warnings.warn(f"skipped {len(skipped)} unusable audio file(s): {names}{more}; "
                      f"see {directory / 'manifest.json'}", stacklevel=2)
    return cache


def _complete(directory, items, sample_rate, workers, desc):
    """Decode what the cache lacks of `items`, under the lock."""
    entries, data_size = _read_journal(directory)
    retried, todo = _pending(entries, items)
    if retried:
        print(f"{len(retried)} audio file(s) skipped before appeared or changed since: trying them again "
              f"({', '.join(e['key'] for e in retried[:5])}{' ...' if len(retried) > 5 else ''})", file=sys.stderr)
        entries = [entry for entry in entries if entry not in retried]
    if todo:
        # Drop whatever an interrupted build left after its last complete clip.
        write_text(directory / "index.jsonl", "".join(json.dumps(entry) + "\n" for entry in entries))
        with open(directory / "audio.i16", "ab") as audio:
            audio.truncate(data_size * DTYPE().itemsize)
        paths = {key: path for key, path, _ in todo}
        workers = workers if workers is not None else (min(os.cpu_count(), 8) if len(todo) >= 64 else 0)
        decode = partial(_decode, sample_rate=sample_rate)
        with open(directory / "audio.i16", "ab") as audio, \
                open(directory / "index.jsonl", "a") as index, \
                (ProcessPoolExecutor(workers) if workers else _Inline()) as pool:
            for key, y, reason in tqdm(pool.map(decode, todo, chunksize=8), total=len(todo),
                                       desc=desc, unit="clip", leave=False):
                if reason is None:
                    audio.write(to_pcm16(y).tobytes())
                    audio.flush()
                    entry = {"key": key, "start": data_size, "end": data_size + len(y)}
                    data_size += len(y)
                else:
                    entry = {"key": key, "path": paths[key], "skipped": reason, "stat": _stat(paths[key])}
                index.write(json.dumps(entry) + "\n")
                index.flush()
                entries.append(entry)
    if todo or not (directory / "manifest.json").exists():
        _write_manifest(directory, entries, sample_rate)


class _Inline:
    """Stands in for a process pool when a build is too small to be worth one."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items, chunksize=1):
        return map(fn, items)


def _write_manifest(directory, entries, sample_rate):
    clips = [e for e in entries if "end" in e]
    write_json(directory / "manifest.json", {
        "sample_rate": sample_rate,
        "dtype": np.dtype(DTYPE).name,
        "clips": len(clips),
        "seconds": sum(e["end"] - e["start"] for e in clips) / sample_rate,
        "skipped": [{k: e[k] for k in ("key", "path", "skipped")} for e in entries if "skipped" in e],
    })


class AudioCache:
    """Read access to a built cache: whole clips and crops, as float32 numpy arrays."""

    def __init__(self, directory):
        self.directory = Path(directory)
        entries, size = _read_journal(self.directory)
        manifest = json.loads((self.directory / "manifest.json").read_text())
        self.sample_rate = manifest["sample_rate"]
        self.skipped = [e for e in entries if "skipped" in e]
        clips = [e for e in entries if "end" in e]
        self.keys = [e["key"] for e in clips]
        self._position = {key: i for i, key in enumerate(self.keys)}
        self.starts = np.array([e["start"] for e in clips], dtype=np.int64)
        self.lengths = np.array([e["end"] - e["start"] for e in clips], dtype=np.int64)
        self._audio = (np.memmap(self.directory / "audio.i16", dtype=DTYPE, mode="r", shape=(size,))
                       if size else np.zeros(0, DTYPE))

    def __len__(self):
        return len(self.keys)

    def digest(self, keys):
        """What the decoded audio of `keys` is, for provenance: where each clip lies in the cache
        (the journal only appends, so a clip decoded again lies elsewhere)."""
        return digest([[key, int(self.starts[self._position[key]]), int(self.lengths[self._position[key]])]
                       for key in keys])

    def __contains__(self, key):
        return key in self._position

    def position(self, key):
        return self._position[key]

    def seconds(self, key):
        return self.lengths[self._position[key]] / self.sample_rate

    def clip(self, key):
        i = self._position[key]
        return from_pcm16(self._audio[self.starts[i]:self.starts[i] + self.lengths[i]])

    def crop(self, key, offset, length, out=None):
        """`length` samples from `offset` as float32; zero-padded where the clip is shorter."""
        i = self._position[key]
        out = np.empty(length, dtype=np.float32) if out is None else out
        n = max(0, min(length, self.lengths[i] - offset))
        from_pcm16(self._audio[self.starts[i] + offset:self.starts[i] + offset + n], out=out[:n])
        out[n:] = 0.0
        return out

    def random_crops(self, keys, length, rng):
        """One uniformly placed crop of `length` samples per key, stacked: (len(keys), length)."""
        positions = np.fromiter((self._position[k] for k in keys), dtype=np.int64, count=len(keys))
        room = np.maximum(self.lengths[positions] - length, 0)
        return self.crops(keys, (rng.random(len(keys)) * (room + 1)).astype(np.int64), length)

    def crops(self, keys, offsets, length):
        """The crop of `length` samples at offsets[i] of keys[i], stacked: (len(keys), length)."""
        out = np.empty((len(keys), length), dtype=np.float32)
        for row, key, offset in zip(out, keys, offsets):
            self.crop(key, int(offset), length, out=row)
        return out
