"""What an epoch of pretraining visits, and what one step reads.

An epoch visits `crops_per_clip` items of every clip in a shuffled order: with --crops tile
(the study's way) the clip's consecutive segments of the model's input length (the last one
zero-padded), with --crops random as many uniformly placed crops. Each step's batch is
shared out among the processes. A multi-view objective sees each item through crops of its
own or through one shared crop, as the model says (views_share_crop, crop_windows: CLMR's
strategies). Every order and offset comes from generators seeded with the run's seed, so
the step counter is the whole random state.
"""
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Batch:
    audio: torch.Tensor          # (views * batch, samples): view v of item i is row v * batch + i
    labels: torch.Tensor | None  # (batch, tags) for the supervised models
    views: int
    captions: list | None = None  # a caption per item, for the language-supervised model


def items_per_clip(lengths, args, crop_samples):
    """How many items each clip (of `lengths` samples) gives an epoch. With tile crops, clip c
    gives its first `crops_per_clip` consecutive segments of the crop length, but only those at
    least half audio (the study's last, zero-padded segments of 29-second MTAT clips are
    68-89% audio; a short clip of the demo or of --audio-dir gives fewer, and always one);
    with random crops, `crops_per_clip` items whose offsets are drawn when read."""
    if args.crops == "random":
        return np.full(len(lengths), args.crops_per_clip)
    return np.clip((lengths + crop_samples // 2) // crop_samples, 1, args.crops_per_clip)


def epoch_items(data, args, crop_samples):
    """What one epoch visits: (clip index, segment index) arrays, an entry per item."""
    lengths = np.array([data.cache.lengths[data.cache.position(k)] for k in data.keys])
    per_clip = items_per_clip(lengths, args, crop_samples)
    clips = np.repeat(np.arange(len(data.keys)), per_clip)
    segments = np.concatenate([np.arange(n) for n in per_clip])
    return clips, segments


def epoch_plan(n_items, seed, epoch, world, batch_size):
    """This process's batches of item indices for one epoch, which visits every item once.
    Each step's `batch_size` items are shared out among the processes; a last, smaller step is
    kept unless it would leave a process fewer than two items (BatchNorm cannot train on
    one), in which case its items join the step before."""
    order = np.random.default_rng([seed, 1_000_003, epoch]).permutation(n_items)
    per_step = world.batch_share(batch_size) * world.size
    starts = list(range(0, n_items, per_step))
    if len(starts) > 1 and n_items - starts[-1] < 2 * world.size:
        starts.pop()
    return [order[a:b][world.rank::world.size] for a, b in zip(starts, starts[1:] + [n_items])]


def read_crops(data, clips, segments, crops, input_samples, rng):
    """The audio of one batch's items: (len(clips), input_samples)."""
    keys = [data.keys[i] for i in clips]
    if crops == "tile":
        return data.cache.crops(keys, segments * input_samples, input_samples)
    return data.cache.random_crops(keys, input_samples, rng)


def seed_step(seed, rank, step):
    """Seed torch's generators for one step and return numpy's generator for it."""
    torch.manual_seed(hash((seed, rank, step)) & 0x7FFF_FFFF_FFFF_FFFF)
    return np.random.default_rng([seed, rank, step])
