"""CLMR's augmentation chain, applied to a whole batch at once on the training device.

The study's CLMR takes its transforms from torchaudio-augmentations (Spijkervet), each
drawn independently per example with CLMR's probabilities: polarity inversion 0.8, noise
0.01, gain 0.3, high/low-pass filter 0.8, delay 0.3, pitch shift 0.6, reverb 0.6 (the
random crop is the loader's). Each transform here follows that library's definition, in
plain torch:
  noise      Gaussian, its standard deviation uniform in [1e-4, 1e-2] x the clip's
  gain       uniform in [-20, -1] dB, then clipped to [-1, 1] (torchaudio's Vol)
  filters    julius' windowed-sinc low-pass (cutoff 2.2-4 kHz) or high-pass (input minus
             the low-pass, cutoff 0.2-1.2 kHz), 8 zero crossings, replicate padding
  delay      an echo 200-450 ms later (50 ms steps) at half volume, the sum halved
  pitch      uniform in [-700, 700] cents (sox's `pitch`: a time stretch, then resampling;
             the stretch is a phase vocoder here where sox uses WSOLA)
  reverb     sox's `reverb` (freeverb: 8 damped comb filters in parallel, 4 all-pass
             filters in series, on two channels of slightly different delays mixed back to
             one) with reverberance, HF damping and room scale uniform integers in [0, 100)
             and sox's defaults for the rest; computed exactly as a frequency response
"""
import math

import torch
import torch.nn.functional as F


def _chosen(batch, p, device):
    return torch.rand(batch, device=device) < p


def _uniform(x, low, high):
    return torch.empty(len(x), 1, device=x.device).uniform_(low, high)


def polarity(x, p=0.8):
    return torch.where(_chosen(len(x), p, x.device)[:, None], -x, x)


def noise(x, p=0.01, low=1e-4, high=1e-2):
    std = _uniform(x, low, high) * x.std(dim=1, keepdim=True)
    return torch.where(_chosen(len(x), p, x.device)[:, None], x + std * torch.randn_like(x), x)


def gain(x, p=0.3, low_db=-20.0, high_db=-1.0):
    louder = (x * 10 ** (_uniform(x, low_db, high_db) / 20)).clamp(-1.0, 1.0)
    return torch.where(_chosen(len(x), p, x.device)[:, None], louder, x)


def lowpass(x, cutoff, zeros=8):
    """julius.lowpass_filter with a cutoff (fraction of the sample rate) per example: a
    Hann-windowed sinc of half-size zeros / cutoff / 2, normalised to unit sum."""
    half = (zeros / cutoff / 2).long()  # (batch,)
    widest = int(half.max())
    t = torch.arange(-widest, widest + 1, device=x.device)
    inside = t.abs()[None] <= half[:, None]
    window = 0.5 + 0.5 * torch.cos(math.pi * t[None] / half[:, None].clamp(min=1))  # periodic=False Hann
    taps = torch.where(inside, 2 * cutoff[:, None] * window * torch.sinc(2 * cutoff[:, None] * t[None]), 0.0)
    taps = taps / taps.sum(dim=1, keepdim=True)
    padded = F.pad(x[:, None], (widest, widest), mode="replicate")[:, 0]
    size = padded.shape[1] + len(t) - 1
    out = torch.fft.irfft(torch.fft.rfft(padded, size) * torch.fft.rfft(taps.flip(1), size), size)
    return out[:, 2 * widest: 2 * widest + x.shape[1]]


def high_low_pass(x, sample_rate, p=0.8):
    use_lowpass = torch.rand(len(x), device=x.device) < 0.5
    hz = torch.where(use_lowpass, _uniform(x, 2200, 4000)[:, 0], _uniform(x, 200, 1200)[:, 0])
    low = lowpass(x, hz / sample_rate)
    filtered = torch.where(use_lowpass[:, None], low, x - low)
    return torch.where(_chosen(len(x), p, x.device)[:, None], filtered, x)


def delay(x, sample_rate, p=0.3, volume=0.5):
    out = x.clone()
    chosen = _chosen(len(x), p, x.device)
    delays_ms = 200 + 50 * torch.randint(0, 6, (len(x),), device=x.device)  # numpy's arange(200, 500, 50)
    for ms in delays_ms[chosen].unique().tolist():
        rows = chosen & (delays_ms == ms)
        shift = int(ms * sample_rate / 1000)
        echo = torch.zeros_like(x[rows])
        echo[:, shift:] = volume * x[rows, :-shift]
        out[rows] = (x[rows] + echo) / 2
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


def pitch_shift(x, p=0.6, max_cents=700, n_fft=1024, hop=256):
    """Shift by a whole number of cents in [-700, 700] without changing the duration."""
    out = x.clone()
    chosen = _chosen(len(x), p, x.device)
    cents = torch.randint(-max_cents, max_cents + 1, (len(x),), device=x.device)
    window = torch.hann_window(n_fft, device=x.device)
    n = x.shape[1]
    for shift in cents[chosen].unique().tolist():
        if shift == 0:
            continue
        rows = chosen & (cents == shift)
        factor = 2 ** (shift / 1200)
        spec = torch.stft(x[rows], n_fft, hop, window=window, return_complex=True)
        longer = torch.istft(_phase_vocoder(spec, 1 / factor, hop), n_fft, hop, window=window,
                             length=round(n * factor))
        out[rows] = F.interpolate(longer[:, None], size=n, mode="linear", align_corners=False)[:, 0]
    return out


# sox reverb.c: freeverb's delay lengths at 44.1 kHz, and the stereo spread between channels
COMB_LENGTHS = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)
ALLPASS_LENGTHS, STEREO_ADJUST = (225, 341, 441, 556), 12


def sox_reverb_response(reverberance, hf_damping, room_scale, sample_rate, size):
    """The frequency response (batch, size // 2 + 1) of sox's reverb on a mono input mixed
    back to mono: dry + the mean of its two wet channels. Parameters are (batch,) tensors in
    percent. Each comb filter y[n] = buf[n - L], buf[n] = x[n] + feedback * lp[n], with lp the
    one-pole low-pass lp[n] = (1 - d) y[n] + d lp[n - 1], has the response
    z^-L (1 - d z^-1) / (1 - d z^-1 - feedback (1 - d) z^-L); each all-pass
    y[n] = buf[n - L] - x[n], buf[n] = x[n] + buf[n - L] / 2, has (1.5 z^-L - 1) / (1 - 0.5 z^-L)."""
    a = -1 / math.log(1 - 0.3)
    b = 100 / (math.log(1 - 0.98) * a + 1)
    feedback = (1 - torch.exp((reverberance - b) / (a * b)))[:, None]  # 0.3 .. 0.98
    d = (hf_damping / 100 * 0.3 + 0.2)[:, None]
    scale = (room_scale / 100 * 0.9 + 0.1)[:, None]
    r = sample_rate / 44100
    k = torch.arange(size // 2 + 1, device=reverberance.device)
    angles = torch.arange(size, device=k.device) * (-2 * math.pi / size)
    unit_circle = torch.polar(torch.ones_like(angles), angles)

    def delay_by(samples):  # z^-L on the FFT grid, looked up at the exact integer phase k L mod size
        return unit_circle[(k * samples) % size]

    damped = 1 - d * delay_by(1)  # 1 - d z^-1, shared by every comb
    wet = 0
    for channel in (0, 1):  # stereo depth 100 %: channel 1's delays are 12 samples (at 44.1 kHz) apart
        offset, channel_wet = channel, 0
        for length in COMB_LENGTHS:
            zl = delay_by(torch.floor(scale * r * (length + STEREO_ADJUST * offset) + 0.5).long())
            channel_wet = channel_wet + zl * damped * (damped - feedback * (1 - d) * zl).reciprocal()
            offset = -offset
        for length in ALLPASS_LENGTHS:
            zl = delay_by(torch.tensor(math.floor(r * (length + STEREO_ADJUST * offset) + 0.5), device=k.device))
            channel_wet = channel_wet * (1.5 * zl - 1) / (1 - 0.5 * zl)
            offset = -offset
        wet = wet + channel_wet
    return 1 + 0.015 * wet / 2  # wet gain 0 dB


def reverb(x, sample_rate, p=0.6):
    chosen = _chosen(len(x), p, x.device)
    reverberance, hf_damping, room_scale = torch.randint(0, 100, (3, len(x)), device=x.device).float()
    out, n = x.clone(), x.shape[1]
    if chosen.any():
        # The impulse response is infinite: an FFT of 4n keeps what wraps around below 0.7 %
        # of its start for the longest reverb (0.98 per 809-sample loop over the 3n beyond the clip).
        size = 1 << math.ceil(math.log2(4 * n))
        response = sox_reverb_response(reverberance[chosen], hf_damping[chosen], room_scale[chosen], sample_rate, size)
        out[chosen] = torch.fft.irfft(torch.fft.rfft(x[chosen].float(), size) * response, size)[:, :n].to(x.dtype)
    return out


# The chain in CLMR's order, by the names a model id's -no-<name> leaves one out with
CHAIN = {"polarity": lambda x, sr: polarity(x), "noise": lambda x, sr: noise(x), "gain": lambda x, sr: gain(x),
         "filter": high_low_pass, "delay": delay, "pitch": lambda x, sr: pitch_shift(x), "reverb": reverb}


def augment(x, sample_rate, left_out=()):
    """The chain, in CLMR's order, on a (batch, samples) float tensor; without the transforms
    named in `left_out`."""
    for name, transform in CHAIN.items():
        if name not in left_out:
            x = transform(x, sample_rate)
    return x
