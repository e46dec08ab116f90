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


def once(fn):
    """Calls per second of one call of `fn` (for measurements that take minutes)."""
    start = time.perf_counter()
    fn()
    return 1 / (time.perf_counter() - start)


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


def extract(args):
    """Audio seconds embedded per second by extract_features.py's path vs the bare forward pass."""
    from common.extraction import embed_clips, windows
    from common.models import build
    torch.set_num_threads(2)
    dataset = load_dataset("MTAT", args.data_root, demo=True)
    encoder = build("vggish").eval()
    cache = dataset.audio(encoder.sample_rate)
    keys = [c.id for c in dataset.split("train")][:96]
    seconds = sum(len(windows(cache.clip(k), encoder.input_samples)) for k in keys) * encoder.input_seconds
    out = np.zeros((len(keys), encoder.emb_dim), np.float32)
    ours = timed(lambda: embed_clips(encoder, lambda i: cache.clip(keys[i]), len(keys), out, 16,
                                     torch.device("cpu")), min_seconds=5) * seconds
    batches = torch.from_numpy(np.concatenate([windows(cache.clip(k), encoder.input_samples) for k in keys]))

    def bare():
        with torch.inference_mode():
            for batch in batches.split(16):
                encoder.embed(batch)
    report("extract", ours, timed(bare, min_seconds=5) * seconds, "audio s/s", ">= 0.77")


def probes(args):
    """All 9 probes (3 kinds x 3 seeds) batched vs scikit-learn one after another, same features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from common.metrics import accuracy
    from common.probes import PROBES, ProbeSpec, fit, predict
    # MTAT-sized synthetic features: 14 classes in 512 dimensions, 15,000 train clips
    rng = np.random.default_rng(0)
    n, dim, classes = 17_000, 512, 14
    y = rng.integers(0, classes, n)
    x = (rng.standard_normal((classes, dim))[y] * 0.3 + rng.standard_normal((n, dim))).astype(np.float32)
    splits = {"train": np.arange(15_000), "valid": np.arange(15_000, 16_000), "test": np.arange(16_000, n)}
    specs = [ProbeSpec(kind, 0, seed) for kind in PROBES for seed in range(3)]
    scores = {}

    def ours():
        fitted = fit("instrument", specs, [x], y, splits, classes, torch.device("cpu"), epochs=20)
        outputs = np.concatenate([predict(m, sets, [x[splits["test"]]]) for m, sets, _ in fitted.values()])
        scores["ours"] = max(accuracy(y[splits["test"]], o.argmax(1)) for o in outputs)

    def reference():
        best = 0.0
        for kind in PROBES:
            for seed in range(3):
                model = (LogisticRegression(max_iter=200) if kind == "linear" else
                         MLPClassifier({"mlp1": (256,), "mlp2": (256, 128)}[kind], max_iter=20, early_stopping=True,
                                       random_state=seed))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(x[splits["train"]], y[splits["train"]])
                best = max(best, accuracy(y[splits["test"]], model.predict(x[splits["test"]])))
        scores["reference"] = best

    ours_rate, reference_rate = once(ours), once(reference)
    report("probes", ours_rate, reference_rate, "grids/s", ">= 10")
    print(json.dumps({"name": "probes_score", "ours": scores["ours"], "baseline": scores["reference"]}), flush=True)


BENCHMARKS = {"loader": loader, "frontend": frontend, "extract": extract, "probes": probes}


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
