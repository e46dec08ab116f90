"""Speed measurements of the project's hot paths against a baseline, one JSON object per line:
{"name", "ours", "baseline", "unit", "ratio", "target", "limit", "of_limit"}.

    python benchmarks/run.py                 # everything measured so far
    python benchmarks/run.py --quick         # the same rows, shorter and smaller: about two minutes
    python benchmarks/run.py --only loader   # one of them
    python benchmarks/run.py --device cuda   # every row on a GPU (the baselines stay on the CPU)

Runs on the demo data (rendered on first use). Timings are wall-clock on this machine:
compare ratios, not absolute numbers, between machines. `limit` is what this machine can do
for that kind of work, measured in the same run on the same device: for arithmetic, a large
matrix product in the dtype the work runs in (FLOP/s); for the loader, a large memory copy
on the host (bytes/s).
`of_limit` is the fraction of it reached, the work counted by torch's FlopCounterMode
(matrix products and convolutions; FFTs and element-wise work are not counted, so it is a
lower bound) or as the bytes read and written.
"""
import contextlib
import functools
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
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common.cli import ArgumentParser, add_data_options, run  # noqa: E402
from common.data.dataset import load_dataset  # noqa: E402
from common.models.melspec import MelSpectrogram  # noqa: E402
from common.training.distributed import (  # noqa: E402
    add_device_option,
    autocast,
    resolve_device,
    resolve_precision,
    synchronize,
    to_device,
)

QUICK = False  # --quick: every measurement shorter
DEVICE = torch.device("cpu")  # --device: where every row's own work runs


def finished(fn):
    """`fn` that returns once the device has done what it queued (a GPU runs behind the host)."""
    def call():
        fn()
        synchronize(DEVICE)
    return call


def timed(fn, min_seconds=2.0):
    """Calls of `fn` per second, repeated for at least `min_seconds` (a tenth with --quick) after
    one warm-up call."""
    min_seconds = min_seconds / 10 if QUICK else min_seconds
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


@functools.cache
def matmul_peak(dtype=torch.float32, size=2048):
    """FLOP/s of a large matrix product in `dtype` on --device: the arithmetic limit."""
    size = size * 4 if DEVICE.type == "cuda" else size
    a, b = (torch.randn(size, size, device=DEVICE).to(dtype) for _ in range(2))
    return timed(finished(lambda: a @ b), min_seconds=3.0) * 2 * size ** 3


@functools.cache
def copy_bandwidth(megabytes=256):
    """Bytes/s read and written by a large memory copy: the limit of work that only moves data."""
    source = np.ones(megabytes << 18, np.float32)
    target = np.empty_like(source)
    return timed(lambda: np.copyto(target, source), min_seconds=3.0) * 2 * source.nbytes


def flops(fn):
    """Floating-point operations of one call of `fn`, as torch's FlopCounterMode counts them."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def compute_limit(flop_per_s, dtype=torch.float32):
    return flop_per_s, matmul_peak(dtype), f"GFLOP/s of a {str(dtype)[6:]} matmul"


def memory_limit(bytes_per_s):
    return bytes_per_s, copy_bandwidth(), "GB/s of a memory copy"


def report(name, ours, baseline, unit, target, limit, **more):
    """One row; `limit` is (what the work reached, the machine's limit for it, its name), in one
    unit; `more`, what else the row measured."""
    reached, most, kind = limit
    print(json.dumps({"name": name, "ours": round(ours, 2), "baseline": round(baseline, 2), "unit": unit,
                      "ratio": round(ours / baseline, 2), "target": target,
                      "limit": f"{most / 1e9:.1f} {kind}", "of_limit": round(reached / most, 3), **more}), flush=True)


def loader(args):
    """Random 3.75 s crops from the decoded cache, on --device, vs librosa.load(offset=...) per
    item from the MP3s."""
    dataset = load_dataset("MTAT", args.data_root, demo=True)
    cache = dataset.audio(16000)
    clips = dataset.split("train")
    rng = np.random.default_rng(0)
    length, batch = int(3.75 * 16000), 64

    def ours():
        keys = [clips[i].id for i in rng.integers(len(clips), size=batch)]
        to_device(torch.from_numpy(cache.random_crops(keys, length, rng)), DEVICE)

    def reference():
        clip = clips[rng.integers(len(clips))]
        offset = rng.random() * max(clip.seconds - 3.75, 0)
        librosa.load(dataset.root / clip.path, sr=16000, offset=offset, duration=3.75)

    with quiet_stderr():  # mpg123 reports every seek into a frame as an error on stderr
        baseline = timed(reference)
    crops_per_s = timed(finished(ours)) * batch
    moved = length * (np.dtype(np.int16).itemsize + np.dtype(np.float32).itemsize)  # 16-bit read, float32 written
    report("loader", crops_per_s, baseline, "crops/s", ">= 50", memory_limit(crops_per_s * moved))


def frontend(args):
    """Batched torch log-mel (128 bins, the librosa recipe) on --device vs per-item librosa
    melspectrogram, same values."""
    torch.set_num_threads(2)
    batch = np.random.default_rng(0).standard_normal((64, int(3.75 * 16000))).astype(np.float32) * 0.1
    front_end = MelSpectrogram(16000, 512, 256, 128, htk=False, filter_norm="slaney", pad_mode="constant").to(DEVICE)
    waveforms = torch.from_numpy(batch).to(DEVICE)

    def reference_one(y):
        return librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=256,
                                                                  n_mels=128), ref=1.0, amin=1e-10, top_db=None)

    baseline = timed(lambda: reference_one(batch[0]))  # first: torch's idle threads would slow numpy
    with torch.inference_mode():
        np.testing.assert_allclose(front_end(waveforms[:2]).cpu().numpy(),
                                   np.stack([reference_one(y) for y in batch[:2]]), atol=1e-3)
        ours = timed(finished(lambda: front_end(waveforms))) * len(batch)
        work = flops(lambda: front_end(waveforms)) / len(batch)
    report("frontend", ours, baseline, "items/s", ">= 10", compute_limit(ours * work))


def extract(args):
    """Audio seconds embedded per second by extract_features.py's path vs the bare forward pass,
    for VGGish and for AST (the study's costliest extraction), at the precision --precision
    auto takes on --device, in its batches."""
    from common.evaluation.extraction import default_batch_size, embed_clips, windows
    from common.models.registry import build
    torch.set_num_threads(2)
    dataset = load_dataset("MTAT", args.data_root, demo=True)
    device, batch_size = DEVICE, default_batch_size(DEVICE)
    precision = resolve_precision("auto", device)
    for model, n_clips in (("vggish", 24 if QUICK else 96), ("ast", 4 if QUICK else 16)):
        encoder = build(model).eval().to(device)
        cache = dataset.audio(encoder.sample_rate)
        keys = [c.id for c in dataset.split("train")][:n_clips]
        seconds = sum(len(windows(cache.clip(k), encoder.input_samples)) for k in keys) * encoder.input_seconds
        out = np.zeros((len(keys), encoder.emb_dim), np.float32)
        ours = timed(lambda: embed_clips(encoder, lambda i: cache.clip(keys[i]), len(keys), out, batch_size, device,
                                         precision), min_seconds=5) * seconds
        batches = torch.from_numpy(np.concatenate([windows(cache.clip(k), encoder.input_samples)
                                                   for k in keys])).to(device)

        def bare():
            with torch.inference_mode(), autocast(device, precision):
                for batch in batches.split(batch_size):
                    encoder.embed(batch)
        with torch.inference_mode():
            first = batches[:batch_size]
            work = flops(lambda: encoder.embed(first)) / (len(first) * encoder.input_seconds)
        report("extract", ours, timed(finished(bare), min_seconds=5) * seconds, "audio s/s", ">= 0.77",
               compute_limit(ours * work, precision), model=model)


def probes(args):
    """All 15 probes (5 kinds x 3 seeds) batched vs scikit-learn one after another (logistic
    regression for the kinds without a hidden layer, MLPClassifier of the same sizes for the
    others), same features; the score is the probes' mean test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from common.evaluation.metrics import accuracy
    from common.evaluation.probes import PROBES, ProbeSpec, fit, hidden_sizes, predict

    # MTAT-sized synthetic features, standardised as downstream.py does: 14 classes in 512
    # dimensions, 15,000 train clips, overlapping enough that a probe scores about 0.6
    rng = np.random.default_rng(0)
    n, dim, classes = (3_400 if QUICK else 17_000), 512, 14
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((classes, dim))[y] * 0.1 + rng.standard_normal((n, dim))
    train, valid = n * 15 // 17, n * 16 // 17
    x = ((x - x[:train].mean(0)) / x[:train].std(0)).astype(np.float32)
    splits = {"train": np.arange(train), "valid": np.arange(train, valid), "test": np.arange(valid, n)}
    specs = [ProbeSpec(kind, 0, seed) for kind in PROBES for seed in range(3)]
    epochs = 5 if QUICK else 20
    scores = {}

    def ours():
        fitted = fit("classes", specs, [x], y, splits, classes, DEVICE, epochs=epochs)
        outputs = np.concatenate([predict(probes, [x[splits["test"]]]) for probes in fitted.values()])
        scores["ours"] = np.mean([accuracy(y[splits["test"]], o.argmax(1)) for o in outputs])

    def reference():
        accuracies = []
        for kind in PROBES:
            for seed in range(3):
                hidden = hidden_sizes(kind, dim, classes)
                model = (LogisticRegression(max_iter=200) if not hidden else
                         MLPClassifier(hidden, max_iter=epochs, early_stopping=True, random_state=seed))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(x[splits["train"]], y[splits["train"]])
                accuracies.append(accuracy(y[splits["test"]], model.predict(x[splits["test"]])))
        scores["reference"] = np.mean(accuracies)

    ours_rate, reference_rate = once(ours), once(reference)
    report("probes", ours_rate * 60, reference_rate * 60, "grids/min", ">= 3", compute_limit(ours_rate * flops(ours)),
           score=round(scores["ours"], 4), baseline_score=round(scores["reference"], 4))


def bootstrap(args):
    """Macro ROC-AUC of MTAT's test split (4,332 clips x 50 tags) on 1,000 bootstrap resamples:
    weighted_metrics.py's vectorised resamples (which give the average precision too) vs
    scikit-learn's roc_auc_score on each explicit resample in turn (timed on fewer of them);
    `real_grid_tagging_minutes` multiplies ours out to every tagging probe of the real grid
    (5 models x 9 checkpoints + the hand-crafted features, x 5 kinds x 3 seeds x 7 conditions)."""
    from sklearn.metrics import roc_auc_score

    from common.evaluation.stats import counts
    from common.evaluation.weighted_metrics import tag_metrics

    rng = np.random.default_rng(0)
    n, tags, resamples = 4332, 50, 1000
    y = rng.random((n, tags)) < np.linspace(0.01, 0.2, tags)  # MTAT's top-50 tags run from about 1% to 20%
    scores = (rng.standard_normal((n, tags)) + y).astype(np.float16).astype(np.float32)
    weights = torch.as_tensor(counts(rng, n, resamples))
    drawn = rng.integers(0, n, (20 if QUICK else 100, n))

    def ours():
        tag_metrics(torch.as_tensor(y, device=DEVICE), torch.as_tensor(scores, device=DEVICE), weights.to(DEVICE))

    def reference():
        for rows in drawn:
            kept = y[rows].any(0) & ~y[rows].all(0)
            roc_auc_score(y[rows][:, kept], scores[rows][:, kept], average="macro")

    ours_rate, reference_rate = once(finished(ours)) * resamples, once(reference) * len(drawn)
    moved = tags * n * (1 + 1 + 4)  # per resample and tag: a uint8 weight read and written, summed into int32
    probes_of_real_grid = (5 * 9 + 1) * 5 * 3 * 7
    report("bootstrap", ours_rate, reference_rate, "resamples/s", ">= 300", memory_limit(ours_rate * moved),
           real_grid_tagging_minutes=round(probes_of_real_grid * resamples / ours_rate / 60, 1))


def train(args):
    """Optimizer steps per second of each train.py (crops read from the decoded cache) vs a
    reference-style loop (a DataLoader that decodes every item's crop from its MP3), with the
    same model, objective, batch and precision; and the share of a train.py step spent
    waiting for data (from its log.csv)."""
    from common.data.subsets import select
    from common.models.registry import MODELS, STUDY_MODELS
    torch.set_num_threads(2)
    dataset = load_dataset("MTAT", args.data_root, demo=True)
    clips = select(dataset.split("train"), "5")
    precision = resolve_precision("auto", DEVICE)
    for name in STUDY_MODELS if QUICK else MODELS:
        batch_size, steps = ((2, 2) if name == "ast" else (4, 2)) if QUICK else ((4, 4) if name == "ast" else (8, 6))
        step_seconds, waiting = _train_py_step(name, args.data_root, batch_size, steps)
        reference_seconds, flop = _reference_step(name, dataset, clips, batch_size, steps, precision)
        report(f"train_{name}", 1 / step_seconds, 1 / reference_seconds, "steps/s", ">= 3",
               compute_limit(flop / step_seconds, precision), data_wait=round(float(waiting), 4),
               data_wait_target="< 0.05")


def _train_py_step(name, data_root, batch_size, steps):
    """(seconds a step of the model's train.py takes, the share of it spent waiting for data),
    from its log.csv, the first step (a warm-up, timed apart) left out."""
    import csv
    import subprocess
    import tempfile
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as runs:
        subprocess.run([sys.executable, str(repo / name / "train.py"), "--demo", "--data-root", str(data_root),
                        "--subset", "5", "--max-steps", str(steps), "--batch-size", str(batch_size),
                        "--runs-dir", runs, "--device", str(DEVICE)], check=True, capture_output=True)
        with open(Path(runs) / "demo" / name / "5" / "seed0" / "log.csv", newline="") as f:
            rows = list(csv.DictReader(f))[1:]
    step_seconds = np.mean([batch_size / float(r["items_per_s"]) for r in rows])
    return step_seconds, np.mean([float(r["data_s"]) for r in rows]) / step_seconds


def _reference_step(name, dataset, clips, batch_size, steps, precision):
    """(seconds a step takes in the reference repositories' way: a DataLoader decoding each
    item's crop from its MP3, the warm-up step left out; the FLOP of one step)."""
    from torch.utils.data import DataLoader

    from common.data import captions
    from common.data.mtat import TOP50
    from common.models.registry import build_for, model_class, pretraining_objective
    from common.training.epochs import Batch
    objective, learns_from, views = pretraining_objective(name)
    cls = model_class(name)
    torch.manual_seed(0)
    texts = [captions.from_tags(c.labels["tags"], c.id) for c in clips]
    model = build_for(name, TOP50 if learns_from == "tags" else None,
                      captions.vocabulary(texts) if learns_from == "captions" else None).train().to(DEVICE)
    seconds, samples = cls.input_seconds * cls.crop_windows, cls.input_samples * cls.crop_windows
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    class DecodingDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(clips)

        def __getitem__(self, i):
            crops = []
            for _ in range(views):
                offset = np.random.random() * max(clips[i].seconds - seconds, 0)
                y, _ = librosa.load(dataset.root / clips[i].path, sr=cls.sample_rate, offset=offset, duration=seconds)
                crops.append(np.pad(y, (0, samples - len(y))))
            labels = np.array([t in clips[i].labels["tags"] for t in TOP50], np.float32)
            return np.stack(crops), labels, i

    loader = DataLoader(DecodingDataset(), batch_size=batch_size, shuffle=True, num_workers=1, drop_last=True)
    times, counter = [], FlopCounterMode(display=False)
    with quiet_stderr():
        batches = iter(loader)
        for step in range(steps):
            started = time.perf_counter()
            audio, labels, items = next(batches)
            batch = Batch(audio.transpose(0, 1).reshape(-1, audio.shape[-1]).to(DEVICE), labels.to(DEVICE), views,
                          [texts[i] for i in items])
            with counter if step == 0 else contextlib.nullcontext():  # the warm-up step, not timed, is counted
                with autocast(DEVICE, precision):
                    loss = objective(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            optimizer.step()
            float(loss)  # the reference loops read the loss every step
            times.append(time.perf_counter() - started)
    return np.mean(times[1:]), counter.get_total_flops()


BENCHMARKS = {"loader": loader, "frontend": frontend, "extract": extract, "probes": probes, "bootstrap": bootstrap,
              "train": train}


def main():
    parser = ArgumentParser(prog="python benchmarks/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append",
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="every row, from shorter timings on less data (about two minutes on 2 CPU cores)")
    add_data_options(parser)
    add_device_option(parser)
    args = parser.parse_args()
    global QUICK, DEVICE
    QUICK, DEVICE = args.quick, resolve_device(args.device)
    for name in args.only or BENCHMARKS:
        BENCHMARKS[name](args)


if __name__ == "__main__":
    run(main)
