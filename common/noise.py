"""White Gaussian noise at a signal-to-noise ratio, seeded per clip.

The generator is seeded with the clip's id and the SNR, so every model that reads the
clip at the same sample rate sees exactly the same noisy audio, in every run.
"""
import hashlib

import numpy as np

CLEAN = "clean"


def parse_snr(text):
    """'clean' or a number of dB."""
    if text == CLEAN:
        return CLEAN
    return float(text)


def snr_name(snr):
    """File stem for an SNR: 'clean', 'snr20', 'snr-5', 'snr2.5'."""
    return CLEAN if snr == CLEAN else f"snr{snr:g}"


def add_noise(y, snr_db, clip_id):
    """y plus white Gaussian noise whose power is the clip's power over 10^(snr/10)."""
    seed = int.from_bytes(hashlib.sha1(f"{clip_id}|{snr_db:g}".encode()).digest()[:8], "little")
    noise = np.random.default_rng(seed).standard_normal(len(y)).astype(np.float32)
    power = np.mean(y.astype(np.float64) ** 2)
    return y + noise * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
