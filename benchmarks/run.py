"""Speed measurements of SPEC section 9, one JSON object per line:
{"name", "ours", "baseline", "unit", "ratio", "target"}.

    python benchmarks/run.py                 # everything measured so far
    python benchmarks/run.py --only loader   # one of them

Runs on the demo data (rendered on first use). Timings are wall-clock on this machine:
compare ratios, not absolute numbers, between machines.
"""
import json
import os
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import librosa
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common.cli import ArgumentParser, add_data_options  # noqa: E402
from common.dataset import load_dataset  # noqa: E402
from common.melspec import LogMel  # noqa: E402


def timed(fn, min_seconds=2.0):
    """Calls of `fn` per second, repeated for at least `min_seconds` after one warm-up call."""
    fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds:
        fn()
        calls += 1
    return calls / elapsed


@contextmanager
def quiet_stderr():
    """Silence C libraries that write to file descriptor 2 directly."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def report(name, ours, baseline, unit, target):
    print(json.dumps({"name": name, "ours": round(ours, 2), "baseline": round(baseline, 2), "unit": unit,
                      "ratio": round(ours / baseline, 2), "target": target}), flush=True)


def loader(args):
    """Random 3.75 s crops from the decoded cache vs librosa.load(offset=...) per item from the MP3s."""
    dataset = load_dataset("MTAT", args.data_root, demo=True)
    cache = dataset.audio(16000)
    clips = dataset.split("train")
    rng = np.random.default_rng(0)
    length, batch = int(3.75 * 16000), 64

    def ours():
        keys = [clips[i].id for i in rng.integers(len(clips), size=batch)]
        cache.random_crops(keys, length, rng)

    def reference():
        clip = clips[rng.integers(len(clips))]
        offset = rng.random() * max(clip.seconds - 3.75, 0)
        librosa.load(dataset.root / clip.path, sr=16000, offset=offset, duration=3.75)

    with quiet_stderr():  # mpg123 reports every seek into a frame as an error on stderr
        baseline = timed(reference)
    report("loader", timed(ours) * batch, baseline, "crops/s", ">= 50")


def frontend(args):
    """Batched torch log-mel (128 bins) vs per-item librosa melspectrogram, same values."""
    torch.set_num_threads(2)
    batch = np.random.default_rng(0).standard_normal((64, int(3.75 * 16000))).astype(np.float32) * 0.1
    front_end = LogMel(16000, 512, 256, 128)
    waveforms = torch.from_numpy(batch)

    def reference_one(y):
        return librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=256,
                                                                  n_mels=128), ref=1.0, amin=1e-10, top_db=None)

    baseline = timed(lambda: reference_one(batch[0]))  # first: torch's idle threads would slow numpy
    with torch.inference_mode():
        np.testing.assert_allclose(front_end(waveforms[:2]).numpy(), np.stack([reference_one(y) for y in batch[:2]]),
                                   atol=1e-3)
        ours = timed(lambda: front_end(waveforms)) * len(batch)
    report("frontend", ours, baseline, "items/s", ">= 10")


BENCHMARKS = {"loader": loader, "frontend": frontend}


def main():
    parser = ArgumentParser(prog="python benchmarks/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append",
                        help="run only this benchmark (repeatable)")
    add_data_options(parser)
    args = parser.parse_args()
    for name in args.only or BENCHMARKS:
        BENCHMARKS[name](args)


if __name__ == "__main__":
    main()
