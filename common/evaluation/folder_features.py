"""A folder of one's own audio to embeddings: `extract_features.py --audio-dir DIR --out DIR2`.

Every audio file under DIR (WAV, FLAC, MP3, OGG, OPUS, AIFF; M4A, AAC, WMA where ffmpeg
decodes them; nested folders too) becomes one .npy under DIR2 at the same relative path, its
suffix replaced (a/song.mp3 -> DIR2/a/song.npy): the clip embedding (emb_dim,) of a
checkpoint (common/models/pretrained.py: decoded, windowed and averaged as extract_features.py
makes a task's features, so the same file gives the same features at the same precision), or
the hand-crafted features (130,). With `per_window`, the .npy holds every window's embedding
(windows, emb_dim) and a `<name>.seconds.npy` beside it their start times. Each file is
written atomically and an existing one is kept, so a stopped run resumes; DIR2/meta.json
records the weights and settings (the precision among them), and another checkpoint or
setting is refused rather than mixed into the same folder. A file that cannot be decoded is
skipped, named with its reason, and listed in DIR2/skipped.csv (tried again next time). Where
the embeddings of the files are nearly one vector (untrained CLMR's, or CLMR's after few
steps: a large part common to every input), a note says so and what to do.
"""
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import write_json, write_serialised, write_text
from ..cli import UserError
from ..data.audio import AudioError, load_audio
from ..data.pretraining_data import AUDIO_FORMATS, audio_files
from ..models.pretrained import Pretrained
from . import handcrafted
from .extraction import BFLOAT16_CHECK_CLIPS, checked_precision, windows

# Embeddings whose differences are under this share of their size are, to the eye, one vector
COLLAPSED_SPREAD = 0.01


def embed_folder(folder, out, source=None, per_window=False, device="cpu", precision="float32", batch_size=16):
    """Embed every audio file under `folder` into `out` with the checkpoint at `source` (None:
    the hand-crafted features) at `precision` (float32, bfloat16, or auto as extract_features.py
    chooses it); returns (written, kept, skipped) counts."""
    folder, out = Path(folder).resolve(), Path(out).resolve()
    if source is None and per_window:
        raise UserError("--per-window: the hand-crafted features describe a whole file (leave --per-window out)")
    if out == folder or folder in out.parents:
        raise UserError(f"--out {out} lies inside --audio-dir {folder}: choose a folder outside it (the audio "
                        f"folder is read, never written)")
    files = audio_files(folder)
    if not files:
        raise UserError(f"no audio files ({AUDIO_FORMATS}) under {folder}")
    targets = _targets(folder, out, files)
    model = None if source is None else Pretrained(source, device)  # the checkpoint is read once
    if model is not None:
        model.precision = _precision(model, files, precision)
    settings = ({"model": "handcrafted", "weights": "handcrafted", "per_window": False} if model is None else
                {"model": model.model_id, "weights": model.save_id, "checkpoint": str(source),
                 "per_window": per_window, "precision": str(model.precision)})
    recorded = out / "meta.json"
    if recorded.exists() and json.loads(recorded.read_text()) != settings:
        raise UserError(f"{out} holds embeddings made with other weights or settings ({recorded}): choose "
                        f"another --out, or empty it")
    write_json(recorded, settings)
    sample_rate = handcrafted.SAMPLE_RATE if model is None else model.sample_rate
    made, kept, skipped = [], 0, []
    for path in tqdm(files, desc=f"{settings['model']} {folder.name}", unit="file", leave=False):
        target = targets[path]
        if target.exists():
            kept += 1
            continue
        try:
            y = load_audio(path, sample_rate)
        except AudioError as error:
            skipped.append((str(path.relative_to(folder)), str(error)))
            continue
        if model is None:
            embedding = handcrafted.features(y, sample_rate)
        elif per_window:
            embedding, starts = model.embed(y, sample_rate, per_window=True, batch_size=batch_size)
            # the start times first: a .npy without its .seconds.npy is never left behind
            write_serialised(target.with_suffix(".seconds.npy"), lambda file, s=starts: np.save(file, s))
        else:
            embedding = model.embed(y, sample_rate, batch_size=batch_size)
        write_serialised(target, lambda file, e=embedding: np.save(file, e.astype(np.float32)))
        made.append(embedding.mean(axis=0) if per_window else embedding)
    _write_skipped(out, skipped)
    if model is not None:
        _note_if_collapsed(made)
    return len(made), kept, len(skipped)


def _targets(folder, out, files):
    """{audio file: its .npy under `out`}; two files that would share one are refused."""
    targets = {f: out / f.relative_to(folder).with_suffix(".npy") for f in files}
    seen = {}
    for f, target in targets.items():
        if target in seen:
            raise UserError(f"{seen[target].relative_to(folder)} and {f.relative_to(folder)} would both be "
                            f"{target.relative_to(out)}: rename one")
        seen[target] = f
    return targets


def _precision(model, files, requested):
    """The precision the folder is embedded in: --precision auto decides from the first window of
    the first files that decode, as extract_features.py does from a task's first clips."""
    def first_windows():
        first = []
        for path in files:
            if len(first) == BFLOAT16_CHECK_CLIPS:
                break
            try:
                first.append(windows(load_audio(path, model.sample_rate), model.encoder.input_samples)[0])
            except AudioError:
                continue
        return first
    precision, why = checked_precision(requested, model.encoder, first_windows, model.device)
    if why:
        print(f"{model.model_id}: {why}")
    return precision


def _write_skipped(out, skipped):
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["path", "reason"])
    writer.writerows(skipped)
    write_text(out / "skipped.csv", table.getvalue())
    for name, reason in skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)


def spread(embeddings):
    """How far apart clip embeddings (n, dim) lie against how large they are: the root mean
    square distance from their mean over the root mean square norm."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    centred = embeddings - embeddings.mean(axis=0)
    return float(np.sqrt((centred ** 2).sum(1).mean() / max((embeddings ** 2).sum(1).mean(), 1e-30)))


def _note_if_collapsed(embeddings):
    if len(embeddings) < 2 or (share := spread(embeddings)) >= COLLAPSED_SPREAD:
        return
    print(f"note: these {len(embeddings)} embeddings are nearly one vector (they differ by {share:.2%} of their "
          f"size): this checkpoint gives every input a large common part, as CLMR does untrained or after few "
          f"steps. The differences are still there: subtract the embeddings' mean, or standardise them as the "
          f"probes do, before comparing them (e.g. by cosine)", file=sys.stderr)
