"""Test conditions: clean audio, white Gaussian noise at an SNR, and the study's deformations.

Noise is seeded with the clip's id and the SNR, so every model that reads the clip at the
same sample rate sees exactly the same noisy audio, in every run.

The study evaluates on clean audio and three deformations made by mir_ref with
audiomentations, named deform_0..2 in its published results. mir_ref's example
configuration lists three: AddGaussianSNR at 15 dB, AddGaussianSNR at 0 dB and Gain at
-12 dB, and the study's numbers fall in that pattern (deform_1 hurts most, deform_2 least),
so we take deform_k to be the k-th of those. AddGaussianSNR draws noise of standard deviation
rms(y) / 10^(snr/20): the same as ours, so deform_1 is our 0 dB noise.
"""
import argparse
import hashlib

import numpy as np

CLEAN = "clean"
DEFORMATIONS = {"deform_0": ("noise", 15.0), "deform_1": ("noise", 0.0), "deform_2": ("gain", -12.0)}


def parse_snr(text):
    """'clean', one of the study's deformations (deform_0, deform_1, deform_2), or a number of dB."""
    if text == CLEAN or text in DEFORMATIONS:
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid condition {text!r}: clean, {', '.join(DEFORMATIONS)} or an SNR "
                                         f"in dB")
    return value


def snr_name(snr):
    """File stem for a condition: 'clean', 'snr20', 'snr-5', 'snr2.5', 'deform_0'."""
    return snr if isinstance(snr, str) else f"snr{snr:g}"


def condition_label(stem):
    """How results name a condition (their `snr` column): 'clean', '20', 'deform_0'."""
    return stem[3:] if stem.startswith("snr") else stem


def condition_order(label):
    """clean first, then SNRs from the highest down, then the study's deformations."""
    if label == CLEAN:
        return 0, 0.0, label
    if label in DEFORMATIONS:
        return 2, 0.0, label
    return 1, -float(label), label


def add_noise(y, snr_db, clip_id):
    """y plus white Gaussian noise whose power is the clip's power over 10^(snr/10)."""
    seed = int.from_bytes(hashlib.sha1(f"{clip_id}|{snr_db:g}".encode()).digest()[:8], "little")
    noise = np.random.default_rng(seed).standard_normal(len(y)).astype(np.float32)
    power = np.mean(y.astype(np.float64) ** 2)
    return y + noise * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))


def recipe(condition):
    """What a condition does to the audio: ("clean", 0.0), ("noise", dB) or ("gain", dB).
    Conditions of one recipe give the same audio (deform_1 is the 0 dB noise), so the same
    features."""
    if condition == CLEAN:
        return CLEAN, 0.0
    return DEFORMATIONS.get(condition, ("noise", condition))


def apply_condition(y, condition, clip_id):
    """The audio a probe is tested on under `condition` (see parse_snr)."""
    kind, amount = recipe(condition)
    if kind == CLEAN:
        return y
    if kind == "gain":
        return y * np.float32(10 ** (amount / 20))
    return add_noise(y, amount, clip_id)
