"""Mel spectrograms in torch, batched on the training device, in two recipes.

study    what the study's code computes, through torchaudio.transforms.MelSpectrogram's
         defaults: periodic Hann window, centred frames with reflect padding, power 2,
         the HTK mel scale, triangular filters without normalisation (MusiCNN's code asks
         for Slaney's area normalisation); each model then compresses as its own code
         does: dB (VGGish), the natural log of mel + 1e-8 (MusiCNN), or nothing (AST)
librosa  a librosa-style front end, for comparison: librosa's Slaney mel scale
         and normalisation, zero padding, dB for every model, and a BatchNorm on the input

`MelSpectrogram(..., htk=False, filter_norm="slaney", pad_mode="constant")` equals
`power_to_db(librosa.feature.melspectrogram(...))`; the study recipe equals torchaudio's
(HTK filters are librosa's with htk=True: the same triangles on the same FFT bins), which is
not a dependency here: tests/test_melspec.py checks both against the formulas, and
`mel_filters` against librosa.filters.mel (computed here in numpy: librosa's pulls in
scipy.signal, seconds at every start of a command).
"""
import numpy as np
import torch
from torch import nn

FRONT_ENDS = ("study", "librosa")
COMPRESSIONS = {
    "db": lambda power: torch.log10(power.clamp(min=1e-10)).mul_(10.0),  # torchaudio's AmplitudeToDB: no top_db
    "ln": lambda power: torch.log(power + 1e-8),
    "power": lambda power: power,
}


def _hz_to_mel(hz, htk):
    hz = np.asanyarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    # Slaney's scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel, htk):
    mel = np.asanyarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    return np.where(mel >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel - 15.0)), mel * (200.0 / 3))


def mel_filters(sample_rate, n_fft, n_mels, f_max=None, htk=True, norm=None):
    """(n_mels, 1 + n_fft // 2) float32 triangular filters from 0 Hz to f_max (default: Nyquist),
    equally spaced on the HTK or Slaney mel scale; norm "slaney" scales each to unit area."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0, htk), _hz_to_mel(f_max or sample_rate / 2, htk), n_mels + 2), htk)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    ramps = edges[:, None] - bins[None, :]
    widths = np.diff(edges)
    rising, falling = -ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    if norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


FILTERS_PER_BAND = 16  # filters multiplied at once, each band over only the bins its triangles cover
CPU_CHUNK = 8  # items per STFT on a CPU: 8 clips' intermediates stay in cache, 64 clips' do not (2x slower)


def filter_bands(basis, rows=FILTERS_PER_BAND):
    """(first filter, last filter + 1, first bin, last bin + 1) for each run of `rows` filters.

    Each triangle covers a few neighbouring bins, so a dense product with the filter bank is
    mostly zeros (98% for 128 filters on 257 bins): a product per band does an eighth of its work."""
    bands = []
    for first in range(0, len(basis), rows):
        covered = np.flatnonzero(basis[first:first + rows].any(axis=0))
        low, high = (int(covered[0]), int(covered[-1]) + 1) if len(covered) else (0, 0)
        bands.append((first, min(first + rows, len(basis)), low, high))
    return bands


class MelSpectrogram(nn.Module):
    def __init__(self, sample_rate, n_fft, hop_length, n_mels, f_max=None, htk=True, filter_norm=None,
                 pad_mode="reflect", compression="db"):
        super().__init__()
        self.hop_length, self.n_fft, self.pad_mode = hop_length, n_fft, pad_mode
        self.compress = COMPRESSIONS[compression]
        basis = mel_filters(sample_rate, n_fft, n_mels, f_max, htk, filter_norm)
        self.bands = filter_bands(basis)
        self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def frames(self, n_samples):
        return 1 + n_samples // self.hop_length

    def power(self, waveforms):
        """(batch, samples) float waveforms -> (batch, n_mels, frames) mel power."""
        spec = torch.stft(waveforms.float(), self.n_fft, self.hop_length, window=self.window,
                          center=True, pad_mode=self.pad_mode, return_complex=True)
        parts = torch.view_as_real(spec)  # re and im squared directly: faster than complex abs
        power = torch.addcmul(parts[..., 0].square(), parts[..., 1], parts[..., 1])
        return torch.cat([self.mel_basis[first:last, low:high] @ power[:, low:high]
                          for first, last, low, high in self.bands], dim=1)

    def forward(self, waveforms):
        """(batch, samples) -> (batch, n_mels, frames), always in float32."""
        chunks = waveforms.split(CPU_CHUNK) if waveforms.device.type == "cpu" else [waveforms]
        with torch.autocast(waveforms.device.type, enabled=False):  # logs of tiny powers need float32
            return torch.cat([self.compress(self.power(chunk)) for chunk in chunks])


class FrontEnd(nn.Module):
    """Waveforms -> (batch, 1, n_mels, frames): a model's mel spectrogram, then the input
    BatchNorm where its recipe has one."""

    def __init__(self, recipe, sample_rate, n_fft, hop_length, n_mels, f_max=None, filter_norm=None,
                 compression="db", input_norm=True):
        super().__init__()
        if recipe not in FRONT_ENDS:
            raise ValueError(f"unknown front end {recipe!r}: choose from {', '.join(FRONT_ENDS)}")
        if recipe == "librosa":
            self.mel = MelSpectrogram(sample_rate, n_fft, hop_length, n_mels, f_max, htk=False, filter_norm="slaney",
                                      pad_mode="constant", compression="db")
        else:
            self.mel = MelSpectrogram(sample_rate, n_fft, hop_length, n_mels, f_max, filter_norm=filter_norm,
                                      compression=compression)
        self.norm = nn.BatchNorm2d(1) if input_norm or recipe == "librosa" else nn.Identity()

    def forward(self, waveforms):
        return self.norm(self.mel(waveforms).unsqueeze(1))
