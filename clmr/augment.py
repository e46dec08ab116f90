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

Which examples a transform takes, and their parameters, are drawn on the host with torch's
CPU generator; the audio, and the Gaussian noise as large as it, are on the device. The host
so knows every shape without reading anything back, a GPU never waits for it, each
transform computes the examples it takes and no others, and a seed makes the same choices
on any device.
"""
import math

import torch
import torch.nn.functional as F

from ...training.distributed import to_device


def _taken(batch, p):
    """The examples (host indices) a transform takes, each with probability p."""
    return (torch.rand(batch) < p).nonzero()[:, 0]


def _uniform(count, low, high):
    return torch.empty(count).uniform_(low, high)


def _replace(x, index, values):
    """x with its examples `index` (on x's device) replaced by `values`."""
    return x.index_copy(0, index, values)


def _column(x, values):
    """Host values, one per example, as a column on x's device."""
    return to_device(values.to(x.dtype), x.device)[:, None]


def polarity(x, p=0.8):
    sign = torch.where(torch.rand(len(x)) < p, -1.0, 1.0)
    return x * _column(x, sign)


def noise(x, p=0.01, low=1e-4, high=1e-2):
    rows = _taken(len(x), p)
    if not len(rows):
        return x
    index = to_device(rows, x.device)
    taken = x[index]
    std = _column(x, _uniform(len(rows), low, high)) * taken.std(dim=1, keepdim=True)
    return _replace(x, index, taken + std * torch.randn_like(taken))


def gain(x, p=0.3, low_db=-20.0, high_db=-1.0):
    rows = _taken(len(x), p)
    factor = _column(x, 10 ** (_uniform(len(rows), low_db, high_db) / 20))
    index = to_device(rows, x.device)
    return _replace(x, index, (x[index] * factor).clamp(-1.0, 1.0))


def lowpass_taps(cutoff, zeros=8):
    """julius.lowpass_filter's taps for a cutoff (fraction of the sample rate) per example: a
    Hann-windowed sinc of half-size zeros / cutoff / 2, normalised to unit sum; (examples,
    2 * widest + 1), each centred, zero beyond its own half-size."""
    half = (zeros / cutoff / 2).long()
    widest = int(half.max()) if len(half) else 0
    t = torch.arange(-widest, widest + 1)
    inside = t.abs()[None] <= half[:, None]
    window = 0.5 + 0.5 * torch.cos(math.pi * t[None] / half[:, None].clamp(min=1))  # periodic=False Hann
    taps = torch.where(inside, 2 * cutoff[:, None] * window * torch.sinc(2 * cutoff[:, None] * t[None]), 0.0)
    return taps / taps.sum(dim=1, keepdim=True)


def lowpass(x, taps):
    """Each example convolved with its own taps (lowpass_taps'), the edges padded by
    replication, as julius does."""
    widest = taps.shape[1] // 2
    taps = to_device(taps.to(x.dtype), x.device)
    padded = F.pad(x[:, None], (widest, widest), mode="replicate")[:, 0]
    size = padded.shape[1] + taps.shape[1] - 1
    out = torch.fft.irfft(torch.fft.rfft(padded, size) * torch.fft.rfft(taps.flip(1), size), size)
    return out[:, 2 * widest: 2 * widest + x.shape[1]]


def high_low_pass(x, sample_rate, p=0.8):
    rows = _taken(len(x), p)
    use_lowpass = torch.rand(len(rows)) < 0.5
    hz = torch.where(use_lowpass, _uniform(len(rows), 2200, 4000), _uniform(len(rows), 200, 1200))
    index = to_device(rows, x.device)
    taken = x[index]
    low = lowpass(taken, lowpass_taps(hz / sample_rate))
    return _replace(x, index, torch.where(_column(x, use_lowpass) > 0, low, taken - low))


def delay(x, sample_rate, p=0.3, volume=0.5):
    rows = _taken(len(x), p)
    delays_ms = 200 + 50 * torch.randint(0, 6, (len(rows),))  # numpy's arange(200, 500, 50)
    source = torch.arange(x.shape[1])[None] - (delays_ms * sample_rate // 1000)[:, None]
    source = to_device(source, x.device)
    index = to_device(rows, x.device)
    taken = x[index]
    echo = volume * taken.gather(1, source.clamp(min=0)) * (source >= 0)
    return _replace(x, index, (taken + echo) / 2)


def pitch_shift(x, p=0.6, max_cents=700, n_fft=1024, hop=256):
    """Shift by a whole number of cents in [-700, 700] without changing the duration: each
    example's STFT stretched by its own factor (a phase vocoder), resynthesised, then
    resampled to its length, all the examples at once."""
    chosen = torch.rand(len(x)) < p
    cents = torch.randint(-max_cents, max_cents + 1, (len(x),))
    rows = (chosen & (cents != 0)).nonzero()[:, 0]
    if not len(rows):
        return x
    factor = 2 ** (cents[rows].double() / 1200)
    window = torch.hann_window(n_fft, device=x.device)
    index = to_device(rows, x.device)
    spec = torch.stft(x[index], n_fft, hop, window=window, return_complex=True)
    stretched, frames = _phase_vocoder(spec, 1 / factor, hop)
    longer = _overlap_add(stretched, window, hop, frames)
    return _replace(x, index, _resample_linear(longer, torch.round(x.shape[1] * factor).long(), x.shape[1]))


def _phase_vocoder(spec, rate, hop):
    """Time-stretch complex STFTs (examples, freq, frames), each by its own `rate` (host
    numbers, >1: faster): (the stretched STFTs, as long as the longest, and how many frames
    each fills, on the host)."""
    frames = torch.ceil(spec.shape[-1] / rate).long()
    steps = torch.arange(int(frames.max()))[None] * rate[:, None]
    index = to_device(steps.long().clamp(max=spec.shape[-1]), spec.device)[:, None].expand(-1, spec.shape[1], -1)
    alpha = to_device((steps % 1).float(), spec.device)[:, None]
    spec = torch.cat([spec, torch.zeros_like(spec[..., :2])], dim=-1)
    before, after = spec.gather(-1, index), spec.gather(-1, index + 1)
    advance = torch.linspace(0, math.pi * hop, spec.shape[-2], device=spec.device)[:, None]
    dphase = after.angle() - before.angle() - advance
    dphase = dphase - 2 * math.pi * torch.round(dphase / (2 * math.pi))
    phase = torch.cat([before.angle()[..., :1], (dphase + advance)[..., :-1]], dim=-1).cumsum(-1)
    return torch.polar(alpha * after.abs() + (1 - alpha) * before.abs(), phase), frames


def _overlap_add(spec, window, hop, frames):
    """torch.istft (centred) of each example's first `frames` frames (host numbers): the
    frames beyond add nothing, neither to the signal nor to the window's normalisation."""
    n_fft, total = len(window), spec.shape[-1]
    used = to_device((torch.arange(total)[None] < frames[:, None]).float(), spec.device)[:, None]
    length = n_fft + hop * (total - 1)

    def add(columns):  # (examples, n_fft, frames) -> (examples, length), each column at its hop
        return F.fold(columns, (1, length), (1, n_fft), stride=(1, hop))[:, 0, 0]

    signal = add(torch.fft.irfft(spec, n_fft, dim=1) * window[:, None] * used)
    envelope = add(window.pow(2)[:, None] * used)
    return torch.where(envelope > 1e-11, signal / envelope.clamp(min=1e-11), 0.0)[:, n_fft // 2:]


def _resample_linear(y, lengths, n):
    """F.interpolate(mode="linear", align_corners=False) of each row's first `lengths` (host
    numbers) samples onto `n` samples."""
    position = ((torch.arange(n)[None] + 0.5) * (lengths / n)[:, None] - 0.5).clamp(min=0)
    left = position.long()
    right = torch.minimum(left + 1, lengths[:, None] - 1)
    weight = to_device((position - left).float(), y.device)
    return torch.lerp(y.gather(1, to_device(left, y.device)), y.gather(1, to_device(right, y.device)), weight)


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
            zl = delay_by(math.floor(r * (length + STEREO_ADJUST * offset) + 0.5))
            channel_wet = channel_wet * (1.5 * zl - 1) / (1 - 0.5 * zl)
            offset = -offset
        wet = wet + channel_wet
    return 1 + 0.015 * wet / 2  # wet gain 0 dB


def reverb(x, sample_rate, p=0.6):
    rows = _taken(len(x), p)
    reverberance, hf_damping, room_scale = to_device(torch.randint(0, 100, (3, len(rows))).float(), x.device)
    n = x.shape[1]
    # The impulse response is infinite: an FFT of 4n keeps what wraps around below 0.7 %
    # of its start for the longest reverb (0.98 per 809-sample loop over the 3n beyond the clip).
    size = 1 << math.ceil(math.log2(4 * n))
    response = sox_reverb_response(reverberance, hf_damping, room_scale, sample_rate, size)
    index = to_device(rows, x.device)
    taken = x[index].float()
    return _replace(x, index, torch.fft.irfft(torch.fft.rfft(taken, size) * response, size)[:, :n].to(x.dtype))


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
