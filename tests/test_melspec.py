import librosa
import numpy as np
import pytest
import torch

from common.melspec import LogMel


@pytest.mark.parametrize("n_mels", [128, 96])
def test_log_mel_matches_librosa(n_mels):
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    batch = np.stack([0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t)),
                      0.1 * rng.standard_normal(len(t))]).astype(np.float32)
    front_end = LogMel(16000, n_fft=512, hop_length=256, n_mels=n_mels)
    ours = front_end(torch.from_numpy(batch)).numpy()
    for y, mel in zip(batch, ours):
        reference = librosa.power_to_db(
            librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=256, n_mels=n_mels),
            ref=1.0, amin=1e-10, top_db=None)
        assert mel.shape == reference.shape == (n_mels, front_end.frames(len(y)))
        np.testing.assert_allclose(mel, reference, atol=1e-3)
