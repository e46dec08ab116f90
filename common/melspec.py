"""Mel spectrograms in torch, batched on the training device, in two recipes.

study    what the study's code computes, through torchaudio.transforms.MelSpectrogram's
         defaults: periodic Hann window, centred frames with reflect padding, power 2,
         the HTK mel scale, triangular filters without normalisation (MusiCNN's code asks
         for Slaney's area normalisation); each model then compresses as its own code
         does: dB (VGGish), the natural log of mel + 1e-8 (MusiCNN), or nothing (AST)
librosa  the project's first front end, kept for comparison: librosa's Slaney mel scale
         and normalisation, zero padding, dB for every model, and a BatchNorm on the input

`MelSpectrogram(..., htk=False, filter_norm="slaney", pad_mode="constant")` equals
`power_to_db(librosa.feature.melspectrogram(...))`; the study recipe equals torchaudio's
(HTK filters are librosa's with htk=True: the same triangles on the same FFT bins), which is
not a dependency here: tests/test_melspec.py checks both against the formulas.
"""
import librosa
import torch
from torch import nn

FRONT_ENDS = ("study", "librosa")
COMPRESSIONS = {
    "db": lambda power: 10.0 * torch.log10(power.clamp(min=1e-10)),  # torchaudio's AmplitudeToDB: no top_db
    "ln": lambda power: torch.log(power + 1e-8),
    "power": lambda power: power,
}


class MelSpectrogram(nn.Module):
    def __init__(self, sample_rate, n_fft, hop_length, n_mels, f_max=None, htk=True, filter_norm=None,
                 pad_mode="reflect", compression="db"):
        super().__init__()
        self.hop_length, self.n_fft, self.pad_mode = hop_length, n_fft, pad_mode
        self.compress = COMPRESSIONS[compression]
        basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=f_max, htk=htk,
                                    norm=filter_norm)
        self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def frames(self, n_samples):
        return 1 + n_samples // self.hop_length

    def power(self, waveforms):
        """(batch, samples) float waveforms -> (batch, n_mels, frames) mel power."""
        spec = torch.stft(waveforms.float(), self.n_fft, self.hop_length, window=self.window,
                          center=True, pad_mode=self.pad_mode, return_complex=True)
        parts = torch.view_as_real(spec)  # re and im squared directly: faster than complex abs
        return torch.matmul(self.mel_basis, parts[..., 0].square() + parts[..., 1].square())

    def forward(self, waveforms):
        """(batch, samples) -> (batch, n_mels, frames), always in float32."""
        with torch.autocast(waveforms.device.type, enabled=False):  # logs of tiny powers need float32
            return self.compress(self.power(waveforms))


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
