"""Turning clips into one embedding each: windowing, batched inference, averaging.

A clip is cut into non-overlapping windows of the model's input length; a last partial
window is dropped (it would be mostly padding), except that a clip shorter than one
window becomes one zero-padded window. The windows of consecutive clips fill batches of
--batch-size, and each clip's embedding is the mean of its windows' embeddings. Clips are
streamed: only one batch of audio is in memory at a time. The embeddings stay on the
device and come back every READ_EVERY batches, so the host decodes and prepares the next
batches while a GPU computes. A quick study embeds a sample of each split
(sample_per_split).
"""
from collections import Counter

import numpy as np
import torch

from ..training.distributed import autocast, resolve_precision, to_device

# bfloat16 is kept for a checkpoint only when the embeddings of this many clips stay apart in it
BFLOAT16_CHECK_CLIPS = 8
# Batches whose embeddings wait on the device before the host reads them back in one go
READ_EVERY = 32
# Windows per forward pass when --batch-size is not given: a GPU is kept busy only by larger ones
BATCH_SIZE = {"cpu": 16, "cuda": 64}


def default_batch_size(device):
    return BATCH_SIZE[device.type]


def window_count(n_samples, length):
    """How many windows a clip of `n_samples` gives (see the module's docstring)."""
    return max(1, n_samples // length)


def windows(y, length):
    """(n_windows, length) non-overlapping windows of `y` (see the module's docstring)."""
    if len(y) < length:
        return np.pad(y, (0, length - len(y)))[None]
    count = window_count(len(y), length)
    return y[: count * length].reshape(count, length)


@torch.inference_mode()
def bfloat16_keeps_differences(encoder, batch, device, tolerance=0.2):
    """Whether bfloat16 autocast reproduces, within `tolerance`, float32's differences between
    the embeddings of a few windows (numpy, (n, samples)). A probe sees only those differences,
    and some networks bury them under a large common part: untrained CLMR's embeddings differ
    between clips by 0.03% of their size, below bfloat16's resolution (0.4%); the others'
    bfloat16 error is 0.2-5%."""
    x = torch.from_numpy(batch).float().to(device)
    exact = encoder.embed(x).float()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        rounded = encoder.embed(x).float()
    exact, rounded = exact - exact.mean(0), rounded - rounded.mean(0)
    return bool((exact - rounded).norm() <= tolerance * exact.norm())


def first_windows(cache, clip_ids, length):
    """The first window of each of the first BFLOAT16_CHECK_CLIPS clips in the decoded-audio
    cache: what checked_precision compares."""
    return [windows(cache.clip(c), length)[0] for c in clip_ids[:BFLOAT16_CHECK_CLIPS]]


def checked_precision(requested, encoder, first_windows, device):
    """(the precision a checkpoint's features are made in, why it is not the one asked for or
    None): --precision auto keeps bfloat16 only where it keeps the differences between the
    first windows of BFLOAT16_CHECK_CLIPS clips. `first_windows()` gives them (one per clip),
    and is called only when there is a choice to check."""
    precision = resolve_precision(requested, device)
    if requested != "auto" or precision != torch.bfloat16:
        return precision, None
    first = first_windows()
    if len(first) < BFLOAT16_CHECK_CLIPS or not bfloat16_keeps_differences(encoder, np.stack(first), device):
        return torch.float32, ("bfloat16 loses the differences between clips of this checkpoint's embeddings (or "
                               "too few clips to tell): extracting in float32")
    return precision, None


@torch.inference_mode()
def embed_clips(encoder, audio_of, n_clips, out, batch_size, device, precision=torch.float32, progress=None,
                layers=None):
    """Write the mean window embedding of clip i (audio `audio_of(i)`) into out[i]; with
    `layers` (block numbers from 1, None for the embedding), each one's into the array of
    `out` (a list) at its position, all from one forward pass.

    With `precision` bfloat16 the forward pass runs under autocast (the log-mel front end
    stays in float32); on CPUs with native bfloat16 units that about halves AST's time.
    """
    pending, owners, counts, queued = [], [], np.zeros(n_clips, dtype=np.int64), []
    outs = out if layers else [out]
    for array in outs:
        array[:] = 0.0

    def forward(batch):
        if not layers:
            return [encoder.embed(batch)]
        every = encoder.embed_layers(batch)
        return [every[-1 if k is None else k - 1] for k in layers]

    def flush():
        batch = to_device(torch.from_numpy(np.concatenate(pending)), device)
        with autocast(device, precision):
            queued.append(([e.float() for e in forward(batch)], np.concatenate(owners)))
        pending.clear()
        owners.clear()
        if len(queued) == READ_EVERY:
            read_back()

    def read_back():  # the host waits for the device here only
        for embeddings, rows in queued:
            for array, part in zip(outs, embeddings):
                np.add.at(array, rows, part.cpu().numpy())
        queued.clear()

    for i in range(n_clips):
        clip_windows = windows(audio_of(i), encoder.input_samples)
        counts[i] = len(clip_windows)
        while len(clip_windows):  # a clip's windows fill the batch, and the next ones the next
            room = batch_size - sum(len(p) for p in pending)
            pending.append(clip_windows[:room])
            owners.append(np.full(len(pending[-1]), i))
            clip_windows = clip_windows[room:]
            if len(pending[-1]) == room:
                flush()
        if progress is not None:
            progress.update()
    if pending:
        flush()
    read_back()
    for array in outs:
        array /= counts[:, None]


def sample_per_split(clips, n):
    """At most n clips of each split, taken in turn from each combination of the dataset's
    labels in a seeded order (so a key or an instrument keeps its share), in dataset order.
    The dataset's labels, not the task's: tasks on one dataset share the sample and features."""
    rng = np.random.default_rng(0)
    kept = set()
    for split in ("train", "valid", "test"):
        members = [c for c in clips if c.split == split]
        taken = Counter()
        turns = []
        for position, i in enumerate(rng.permutation(len(members))):
            label = repr(sorted(members[i].labels.items()))
            turns.append((taken[label], position, members[i].id))
            taken[label] += 1
        kept.update(clip_id for _, _, clip_id in sorted(turns)[:n])
    return [c for c in clips if c.id in kept]
