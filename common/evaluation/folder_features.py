"""A folder of one's own audio to embeddings: `extract_features.py --audio-dir DIR --out DIR2`.

Every audio file under DIR (WAV, FLAC, MP3, OGG, AIFF; nested folders too) becomes one .npy
under DIR2 at the same relative path, its suffix replaced: the clip embedding (emb_dim,)
of a checkpoint (common/models/pretrained.py: the mean of the model's windows, as the study's
features are made), or the hand-crafted features (130,). With `per_window`, the .npy holds
every window's embedding (windows, emb_dim) and a `<name>.seconds.npy` beside it their
start times. Each file is written atomically and an existing one is kept, so a stopped run
resumes; DIR2/meta.json records the weights and settings, and another checkpoint or
setting is refused rather than mixed into the same folder. A file that cannot be decoded
is skipped, named with its reason, and listed in DIR2/skipped.csv (tried again next time).
"""
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.atomic import write_json, write_serialised, write_text
from common.cli import UserError
from common.data.audio import AudioError, load_audio
from common.data.pretraining_data import audio_files
from common.evaluation import handcrafted
from common.models.pretrained import Pretrained


def embed_folder(folder, out, source=None, per_window=False, device="cpu"):
    """Embed every audio file under `folder` into `out` with the checkpoint at `source` (None:
    the hand-crafted features); returns (written, kept, skipped) counts."""
    folder, out = Path(folder).resolve(), Path(out).resolve()
    if source is None and per_window:
        raise UserError("--per-window: the hand-crafted features describe a whole file (leave --per-window out)")
    if out == folder or folder in out.parents:
        raise UserError(f"--out {out} lies inside --audio-dir {folder}: choose a folder outside it (the audio "
                        f"folder is read, never written)")
    files = audio_files(folder)
    if not files:
        raise UserError(f"no audio files (WAV, FLAC, MP3, OGG, AIFF) under {folder}")
    targets = {f: out / f.relative_to(folder).with_suffix(".npy") for f in files}
    seen = {}
    for f, target in targets.items():
        if target in seen:
            raise UserError(f"{seen[target].relative_to(folder)} and {f.relative_to(folder)} would both be "
                            f"{target.relative_to(out)}: rename one")
        seen[target] = f
    model = None if source is None else Pretrained(source, device)  # the checkpoint is read once
    settings = ({"model": "handcrafted", "weights": "handcrafted", "per_window": False} if model is None else
                {"model": model.model_id, "weights": model.save_id, "checkpoint": str(source),
                 "per_window": per_window})
    recorded = out / "meta.json"
    if recorded.exists() and json.loads(recorded.read_text()) != settings:
        raise UserError(f"{out} holds embeddings made with other weights or settings ({recorded}): choose "
                        f"another --out, or empty it")
    write_json(recorded, settings)
    sample_rate = handcrafted.SAMPLE_RATE if model is None else model.sample_rate
    written, kept, skipped = 0, 0, []
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
            embedding, starts = model.embed(y, sample_rate, per_window=True)
            # the start times first: a .npy without its .seconds.npy is never left behind
            write_serialised(target.with_suffix(".seconds.npy"), lambda file, s=starts: np.save(file, s))
        else:
            embedding = model.embed(y, sample_rate)
        write_serialised(target, lambda file, e=embedding: np.save(file, e.astype(np.float32)))
        written += 1
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["path", "reason"])
    writer.writerows(skipped)
    write_text(out / "skipped.csv", table.getvalue())
    for name, reason in skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    return written, kept, len(skipped)
