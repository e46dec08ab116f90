"""Each model's mel spectrogram against a reference written from the documented formulas.

The reference follows torchaudio's documentation of MelSpectrogram (and its functional
melscale_fbanks / spectrogram), which the study's code calls: HTK mel scale
m = 2595 log10(1 + f / 700), n_mels + 2 points evenly spaced in mel between 0 and f_max,
triangles over the FFT bin frequencies linspace(0, sr / 2, n_fft / 2 + 1), Slaney's area
normalisation 2 / (f[m + 2] - f[m]) when asked, a periodic Hann window, frames centred by
reflect padding of n_fft / 2, power 2. torchaudio itself is not a dependency.
"""
import librosa
import numpy as np
import pytest
import torch

from common.models.melspec import MelSpectrogram, mel_filters
from common.models.registry import build

SR, N_FFT, HOP = 16000, 512, 256


def reference_mel(y, n_mels, f_max, filter_norm, compression, htk=True, pad_mode="reflect"):
    if htk:
        to_mel, to_hz = (lambda f: 2595.0 * np.log10(1.0 + f / 700.0)), (lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0))
        f_pts = to_hz(np.linspace(to_mel(0.0), to_mel(f_max), n_mels + 2))
    else:
        f_pts = librosa.mel_frequencies(n_mels + 2, fmin=0.0, fmax=f_max, htk=False)
    bins = np.linspace(0, SR // 2, N_FFT // 2 + 1)
    down = (bins[:, None] - f_pts[None, :-2]) / (f_pts[1:-1] - f_pts[:-2])
    up = (f_pts[None, 2:] - bins[:, None]) / (f_pts[2:] - f_pts[1:-1])
    filters = np.maximum(0.0, np.minimum(down, up))  # (bins, n_mels)
    if filter_norm == "slaney":
        filters *= 2.0 / (f_pts[2:] - f_pts[:-2])
    padded = np.pad(y.astype(np.float64), N_FFT // 2, mode=pad_mode)
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    frames = np.stack([padded[i * HOP: i * HOP + N_FFT] * window for i in range(n_frames)])
    power = filters.T @ (np.abs(np.fft.rfft(frames, axis=1)) ** 2).T  # (n_mels, frames)
    return {"db": lambda p: 10 * np.log10(np.maximum(p, 1e-10)), "ln": lambda p: np.log(p + 1e-8),
            "power": lambda p: p}[compression](power)


@pytest.fixture(scope="module")
def waveforms():
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t)),
                     0.1 * rng.standard_normal(len(t))]).astype(np.float32)


def assert_close(ours, reference, compression):
    if compression == "power":  # relative to each spectrogram's scale: raw powers span many decades
        np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-6 * reference.max())
    else:
        np.testing.assert_allclose(ours, reference, atol=2e-3)


# What the study's code computes for each model (its models/<model>/ code; our models' docstrings), and
# TMAE's, which has no study code, as VGGish's.
STUDY_RECIPES = {"vggish": (128, 8000.0, None, "db"), "musicnn": (96, 8000.0, "slaney", "ln"),
                 "ast": (128, 8000.0, None, "power"), "tmae": (96, 8000.0, None, "db")}


@pytest.mark.parametrize("name", STUDY_RECIPES)
def test_each_models_front_end_is_its_study_recipe(name, waveforms):
    n_mels, f_max, filter_norm, compression = STUDY_RECIPES[name]
    model = build(name).eval()
    with torch.no_grad():
        ours = model.front_end.mel(torch.from_numpy(waveforms)).numpy()
    for y, mel in zip(waveforms, ours):
        reference = reference_mel(y, n_mels, f_max, filter_norm, compression)
        assert mel.shape == reference.shape == (n_mels, 1 + len(y) // HOP)
        assert_close(mel, reference, compression)
    has_norm = isinstance(model.front_end.norm, torch.nn.BatchNorm2d)
    assert has_norm == (name in ("vggish", "tmae"))  # the study's VGGish has its spec_bn; MusiCNN and AST none


@pytest.mark.parametrize("name", STUDY_RECIPES)
def test_the_librosa_front_end_is_librosas_log_mel(name, waveforms):
    model = build(f"{name}-librosa").eval()
    n_mels, f_max = STUDY_RECIPES[name][:2]
    with torch.no_grad():
        ours = model.front_end.mel(torch.from_numpy(waveforms)).numpy()
    for y, mel in zip(waveforms, ours):
        reference = librosa.power_to_db(librosa.feature.melspectrogram(
            y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=n_mels, fmax=f_max, pad_mode="constant"),
            ref=1.0, amin=1e-10, top_db=None)
        np.testing.assert_allclose(mel, reference, atol=2e-3)
        np.testing.assert_allclose(mel, reference_mel(y, n_mels, f_max, "slaney", "db", htk=False, pad_mode="constant"),
                                   atol=2e-3)
    assert isinstance(model.front_end.norm, torch.nn.BatchNorm2d)


def test_htk_filters_differ_from_slaney_where_the_scales_part():
    """The two recipes are not the same computation under two names."""
    y = np.random.default_rng(1).standard_normal(SR).astype(np.float32)
    htk = MelSpectrogram(SR, N_FFT, HOP, 128, htk=True)(torch.from_numpy(y[None])).numpy()[0]
    slaney = MelSpectrogram(SR, N_FFT, HOP, 128, htk=False, filter_norm="slaney")(torch.from_numpy(y[None])).numpy()[0]
    assert np.abs(htk - slaney).mean() > 1.0  # dB


@pytest.mark.parametrize("htk", [True, False])
@pytest.mark.parametrize("norm", [None, "slaney"])
def test_mel_filters_are_librosas(htk, norm):
    for sr, n_fft, n_mels, f_max in ((16000, 512, 128, None), (16000, 512, 96, 8000), (22050, 2048, 96, None),
                                     (8000, 257, 64, 3000)):
        expected = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=f_max, htk=htk, norm=norm)
        ours = mel_filters(sr, n_fft, n_mels, f_max, htk, norm)
        assert ours.dtype == expected.dtype and ours.shape == expected.shape
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("n_fft, n_mels", [(512, 128), (400, 128), (64, 40)])  # 1, 4 and 4 empty HTK filters
def test_a_batch_equals_its_items_and_the_dense_filter_product(n_fft, n_mels):
    """A CPU batch is computed in chunks and the filters band by band (for speed): neither
    changes a value."""
    mel = MelSpectrogram(SR, n_fft, n_fft // 2, n_mels, htk=True)
    waveforms = torch.from_numpy(np.random.default_rng(2).standard_normal((19, SR // 2)).astype(np.float32))
    with torch.no_grad():
        batch = mel(waveforms)
        spectrum = torch.stft(waveforms, n_fft, n_fft // 2, window=mel.window, return_complex=True)
        dense = 10 * torch.log10((mel.mel_basis @ spectrum.abs().square()).clamp(min=1e-10))
        items = torch.cat([mel(w[None]) for w in waveforms])
    np.testing.assert_allclose(batch.numpy(), dense.numpy(), atol=1e-4)
    np.testing.assert_array_equal(batch.numpy(), items.numpy())
