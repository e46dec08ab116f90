"""CLMR's augmentation chain, applied to a whole batch at once on the training device.

Each transform is drawn independently per example with CLMR's probabilities: polarity
inversion 0.8, noise 0.01, gain 0.3, high/low-pass filter 0.8, delay 0.3, pitch shift 0.6,
reverb 0.6 (the random crop is the loader's). Filters, delay and reverb work in the
frequency domain or by shifting; pitch shift is a phase vocoder plus resampling, grouped by
shift so that examples with the same shift go through together.
"""
import math

import torch
import torch.nn.functional as F


def _chosen(batch, p, device):
    return torch.rand(batch, device=device) < p


def polarity(x, p=0.8):
    return torch.where(_chosen(len(x), p, x.device)[:, None], -x, x)


def noise(x, p=0.01, low=1e-4, high=1e-2):
    level = torch.empty(len(x), 1, device=x.device).uniform_(low, high) * x.pow(2).mean(1, keepdim=True).sqrt()
    return torch.where(_chosen(len(x), p, x.device)[:, None], x + level * torch.randn_like(x), x)


def gain(x, p=0.3, low_db=-20.0, high_db=-1.0):
    factor = 10 ** (torch.empty(len(x), 1, device=x.device).uniform_(low_db, high_db) / 20)
    return torch.where(_chosen(len(x), p, x.device)[:, None], x * factor, x)


def high_low_pass(x, sample_rate, p=0.8, order=4):
    """A 4th-order Butterworth magnitude response: low-pass at 2.2-4 kHz or high-pass at 0.2-1.2 kHz."""
    n = x.shape[1]
    freqs = torch.fft.rfftfreq(n, 1 / sample_rate, device=x.device).clamp(min=1e-3)
    lowpass = torch.rand(len(x), 1, device=x.device) < 0.5
    cutoff = torch.where(lowpass, torch.empty(len(x), 1, device=x.device).uniform_(2200, 4000),
                         torch.empty(len(x), 1, device=x.device).uniform_(200, 1200))
    ratio = torch.where(lowpass, freqs / cutoff, cutoff / freqs)
    response = 1 / torch.sqrt(1 + ratio ** (2 * order))
    filtered = torch.fft.irfft(torch.fft.rfft(x) * response, n=n)
    return torch.where(_chosen(len(x), p, x.device)[:, None], filtered, x)


def delay(x, sample_rate, p=0.3, volume=0.5):
    """Add an echo 200-500 ms later (in 50 ms steps) at half the volume."""
    out = x.clone()
    chosen = _chosen(len(x), p, x.device)
    delays_ms = 200 + 50 * torch.randint(0, 7, (len(x),), device=x.device)
    for ms in delays_ms[chosen].unique().tolist():
        rows = chosen & (delays_ms == ms)
        shift = int(ms * sample_rate / 1000)
        out[rows, shift:] += volume * x[rows, :-shift]
    return out


def _phase_vocoder(spec, rate, hop):
    """Time-stretch a complex STFT (batch, freq, frames) by `rate` (>1: faster)."""
    steps = torch.arange(0, spec.shape[-1], rate, device=spec.device)
    spec = torch.cat([spec, torch.zeros_like(spec[..., :2])], dim=-1)
    before, after = spec[..., steps.long()], spec[..., steps.long() + 1]
    alpha = steps % 1
    advance = torch.linspace(0, math.pi * hop, spec.shape[-2], device=spec.device)[:, None]
    dphase = after.angle() - before.angle() - advance
    dphase = dphase - 2 * math.pi * torch.round(dphase / (2 * math.pi))
    phase = torch.cat([before.angle()[..., :1], (dphase + advance)[..., :-1]], dim=-1).cumsum(-1)
    return torch.polar(alpha * after.abs() + (1 - alpha) * before.abs(), phase)


def pitch_shift(x, p=0.6, max_semitones=7, n_fft=1024, hop=256):
    """Shift by a whole number of semitones in [-7, 7] without changing the duration."""
    out = x.clone()
    chosen = _chosen(len(x), p, x.device)
    shifts = torch.randint(-max_semitones, max_semitones + 1, (len(x),), device=x.device)
    window = torch.hann_window(n_fft, device=x.device)
    n = x.shape[1]
    for semitones in shifts[chosen].unique().tolist():
        if semitones == 0:
            continue
        rows = chosen & (shifts == semitones)
        factor = 2 ** (semitones / 12)
        spec = torch.stft(x[rows], n_fft, hop, window=window, return_complex=True)
        longer = torch.istft(_phase_vocoder(spec, 1 / factor, hop), n_fft, hop, window=window,
                             length=round(n * factor))
        out[rows] = F.interpolate(longer[:, None], size=n, mode="linear", align_corners=False)[:, 0]
    return out


def reverb(x, sample_rate, p=0.6):
    """Convolve with an exponentially decaying noise burst (RT60 0.2-1.2 s), 20-50% wet."""
    n, tail = x.shape[1], sample_rate
    t = torch.arange(tail, device=x.device) / sample_rate
    rt60 = torch.empty(len(x), 1, device=x.device).uniform_(0.2, 1.2)
    impulse = torch.randn(len(x), tail, device=x.device) * torch.exp(-6.91 * t / rt60)
    impulse = impulse / impulse.norm(dim=1, keepdim=True)
    size = n + tail
    wet = torch.fft.irfft(torch.fft.rfft(x, size) * torch.fft.rfft(impulse, size), size)[:, :n]
    mix = torch.empty(len(x), 1, device=x.device).uniform_(0.2, 0.5)
    wet = wet * (x.norm(dim=1, keepdim=True) / wet.norm(dim=1, keepdim=True).clamp(min=1e-8))
    return torch.where(_chosen(len(x), p, x.device)[:, None], (1 - mix) * x + mix * wet, x)


def augment(x, sample_rate):
    """The whole chain, in CLMR's order, on a (batch, samples) float tensor."""
    x = polarity(x)
    x = noise(x)
    x = gain(x)
    x = high_low_pass(x, sample_rate)
    x = delay(x, sample_rate)
    x = pitch_shift(x)
    return reverb(x, sample_rate)
