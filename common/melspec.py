"""Log-mel spectrograms in torch, batched on the training device.

The filterbank is librosa's (Slaney mel scale and normalisation), the STFT matches
librosa.stft's defaults (periodic Hann window, centred frames, zero padding), and the
log is librosa.power_to_db with ref 1: so `LogMel` equals
`power_to_db(librosa.feature.melspectrogram(...))` while running on a whole batch at once.
"""
import librosa
import torch
from torch import nn


class LogMel(nn.Module):
    def __init__(self, sample_rate, n_fft, hop_length, n_mels, f_min=0.0, f_max=None, amin=1e-10):
        super().__init__()
        self.hop_length = hop_length
        self.n_fft = n_fft
        self.amin = amin
        basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
        self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def frames(self, n_samples):
        return 1 + n_samples // self.hop_length

    def power(self, waveforms):
        """(batch, samples) float waveforms -> (batch, n_mels, frames) mel power."""
        spec = torch.stft(waveforms.float(), self.n_fft, self.hop_length, window=self.window,
                          center=True, pad_mode="constant", return_complex=True)
        parts = torch.view_as_real(spec)  # re and im squared directly: faster than complex abs
        return torch.matmul(self.mel_basis, parts[..., 0].square() + parts[..., 1].square())

    def forward(self, waveforms):
        """(batch, samples) -> (batch, n_mels, frames) log-mel in dB, always in float32."""
        with torch.autocast(waveforms.device.type, enabled=False):  # dB of tiny powers needs float32
            return 10.0 * torch.log10(self.power(waveforms).clamp(min=self.amin))
