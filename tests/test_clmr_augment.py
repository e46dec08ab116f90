"""CLMR's augmentations against torchaudio-augmentations' definitions and sox's reverb.

Each transform is checked on what it does to a signal (its statistics over many draws),
the reverb against a sample-by-sample run of sox's reverb.c filter loop.
"""
import numpy as np
import pytest
import torch

from common.models.registry import model_file

augment = model_file("clmr", "augment")

SR = 22050


def sine(hz, n=SR, batch=1):
    return torch.sin(2 * np.pi * hz * torch.arange(n) / SR).repeat(batch, 1)


def peak_hz(x):
    spectrum = torch.fft.rfft(x * torch.hann_window(x.shape[-1]), dim=-1).abs()
    return spectrum.argmax(dim=-1).double() * SR / x.shape[-1]


def test_each_transform_fires_with_clmrs_probability():
    torch.manual_seed(0)
    x = torch.randn(4000, 64) * 0.1
    assert (augment.polarity(x) == -x).all(dim=1).float().mean().item() == pytest.approx(0.8, abs=0.03)
    assert (augment.gain(x) != x).any(dim=1).float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert (augment.noise(x) != x).any(dim=1).float().mean().item() == pytest.approx(0.01, abs=0.006)


def test_gain_is_uniform_in_decibels_between_minus_20_and_minus_1():
    torch.manual_seed(0)
    x = torch.full((4000, 8), 0.5)
    out = augment.gain(x, p=1.0)
    db = 20 * torch.log10(out[:, 0] / 0.5)
    assert db.min() >= -20.0 - 1e-4 and db.max() <= -1.0 + 1e-4
    assert db.mean().item() == pytest.approx(-10.5, abs=0.4)
    assert db.std().item() == pytest.approx(19 / 12 ** 0.5, abs=0.3)


def test_noise_standard_deviation_is_a_uniform_fraction_of_the_clips():
    torch.manual_seed(0)
    x = sine(440, 8000, 500)
    ratio = (augment.noise(x, p=1.0) - x).std(dim=1) / x.std(dim=1)
    assert ratio.min() > 0.9e-4 and ratio.max() < 1.05e-2
    assert ratio.mean().item() == pytest.approx((1e-4 + 1e-2) / 2, rel=0.1)


def test_delay_adds_a_half_volume_echo_at_200_to_450_ms_and_halves_the_sum():
    torch.manual_seed(0)
    x = torch.zeros(600, SR)
    x[:, 0] = 1.0
    out = augment.delay(x, SR, p=1.0)
    assert (out[:, 0] == 0.5).all()
    echo_at = out[:, 1:].argmax(dim=1) + 1
    lags_ms = set((echo_at * 1000 / SR).round().int().tolist())
    assert lags_ms == {200, 250, 300, 350, 400, 450}  # numpy's arange(200, 500, 50): 500 ms never
    assert torch.allclose(out[:, 1:].max(dim=1).values, torch.tensor(0.25))


def test_filters_are_juliuss_windowed_sinc_low_pass_and_its_complement():
    cutoff = torch.tensor([3000.0 / SR])
    taps = augment.lowpass_taps(cutoff)
    passed, stopped = sine(500), sine(6000)
    half = int(8 / cutoff.item() / 2)
    inner = slice(half, SR - half)  # away from the padded edges
    passed_std = augment.lowpass(passed, taps)[0, inner].std().item()
    assert passed_std == pytest.approx(passed[0, inner].std().item(), rel=1e-3)
    assert augment.lowpass(stopped, taps)[0, inner].std() < 1e-3 * stopped.std()
    at_cutoff = sine(3000)
    assert (augment.lowpass(at_cutoff, taps)[0, inner].std() / at_cutoff.std()).item() == pytest.approx(0.5, abs=0.03)
    # the same taps as julius' definition, applied directly
    t = torch.arange(-half, half + 1, dtype=torch.float64)
    reference = 2 * cutoff.double() * torch.hann_window(2 * half + 1, periodic=False, dtype=torch.float64) \
        * torch.sinc(2 * cutoff.double() * t)
    reference /= reference.sum()
    noise = torch.randn(1, 4000, dtype=torch.float64)
    padded = torch.nn.functional.pad(noise[:, None], (half, half), mode="replicate")
    direct = torch.nn.functional.conv1d(padded, reference[None, None])[:, 0]
    assert torch.allclose(augment.lowpass(noise.float(), taps).double(), direct, atol=1e-5)


def test_filters_of_different_lengths_share_one_batch():
    """A batch mixes the high-pass's long taps with the low-pass's short ones: each example
    is filtered as it would be alone."""
    cutoff = torch.tensor([300.0, 3000.0, 1000.0]) / SR
    x = torch.randn(3, 4000)
    together = augment.lowpass(x, augment.lowpass_taps(cutoff))
    for row in range(3):
        alone = augment.lowpass(x[row:row + 1], augment.lowpass_taps(cutoff[row:row + 1]))
        assert torch.allclose(together[row], alone[0], atol=1e-6)


def test_pitch_shift_moves_a_tone_by_its_drawn_cents_without_changing_length():
    x = sine(440, SR, 64)
    torch.manual_seed(3)
    torch.rand(64)  # pitch_shift draws which examples it shifts, then their shifts
    cents = torch.randint(-700, 701, (64,))
    torch.manual_seed(3)
    out = augment.pitch_shift(x, p=1.0)
    assert out.shape == x.shape
    expected = 440 * 2 ** (cents.double() / 1200)
    assert ((peak_hz(out) - expected).abs() <= 2.5).all()  # Hz: a few bins of a 1-second FFT
    assert (cents % 100 != 0).float().mean() > 0.9  # fractional semitones, as sox's pitch in cents


def test_resynthesis_is_torch_istft_of_each_examples_own_frames():
    """The batched pitch shift resynthesises examples of different lengths together: each as
    torch.istft would from its own frames alone."""
    window = torch.hann_window(1024)
    spec = torch.stft(torch.randn(3, 12000), 1024, 256, window=window, return_complex=True)
    frames = torch.tensor([spec.shape[-1], 30, 41])
    together = augment._overlap_add(spec, window, 256, frames)
    for row, count in enumerate(frames.tolist()):
        alone = torch.istft(spec[row, :, :count], 1024, 256, window=window)
        torch.testing.assert_close(together[row, :len(alone)], alone, atol=1e-5, rtol=0)


def test_resampling_is_torch_interpolate_of_each_examples_own_length():
    y = torch.randn(3, 900)
    lengths = torch.tensor([900, 611, 402])
    together = augment._resample_linear(y, lengths, 500)
    for row, length in enumerate(lengths.tolist()):
        alone = torch.nn.functional.interpolate(y[row:row + 1, None, :length], size=500, mode="linear",
                                                align_corners=False)[0, 0]
        torch.testing.assert_close(together[row], alone, atol=1e-5, rtol=0)


def sox_reverb_loop(x, reverberance, hf_damping, room_scale):
    """sox's reverb.c on a mono input, sample by sample, mixed back to mono (dry + mean wet)."""
    a = -1 / np.log(1 - 0.3)
    b = 100 / (np.log(1 - 0.98) * a + 1)
    feedback, damping = 1 - np.exp((reverberance - b) / (a * b)), hf_damping / 100 * 0.3 + 0.2
    scale, r = room_scale / 100 * 0.9 + 0.1, SR / 44100
    wet = np.zeros((2, len(x)))
    for channel in (0, 1):
        offset, combs, allpasses = channel, [], []
        for length in augment.COMB_LENGTHS:
            combs.append({"buf": np.zeros(int(scale * r * (length + 12 * offset) + 0.5)), "ptr": 0, "store": 0.0})
            offset = -offset
        for length in augment.ALLPASS_LENGTHS:
            allpasses.append({"buf": np.zeros(int(r * (length + 12 * offset) + 0.5)), "ptr": 0})
            offset = -offset
        for n, sample in enumerate(x):
            out = 0.0
            for c in combs:
                output = c["buf"][c["ptr"]]
                c["store"] = output + (c["store"] - output) * damping
                c["buf"][c["ptr"]] = sample + c["store"] * feedback
                c["ptr"] = (c["ptr"] - 1) % len(c["buf"])
                out += output
            for f in reversed(allpasses):
                output = f["buf"][f["ptr"]]
                f["buf"][f["ptr"]] = out + output * 0.5
                f["ptr"] = (f["ptr"] - 1) % len(f["buf"])
                out = output - out
            wet[channel, n] = out * 0.015
    return x + wet.mean(axis=0)


@pytest.mark.parametrize("reverberance,hf_damping,room_scale", [(50, 50, 100), (99, 0, 0), (10, 99, 60)])
def test_reverb_response_is_soxs_filter_loop(reverberance, hf_damping, room_scale):
    x = np.random.default_rng(0).standard_normal(2000) * 0.1
    size = 1 << 20  # long enough that nothing of the tail wraps around
    response = augment.sox_reverb_response(*(torch.tensor([float(v)]) for v in (reverberance, hf_damping, room_scale)),
                                           SR, size)
    ours = torch.fft.irfft(torch.fft.rfft(torch.tensor(x[None]).float(), size) * response, size)[0, :len(x)]
    reference = sox_reverb_loop(x, reverberance, hf_damping, room_scale)
    assert np.abs(reference - x).max() > 0.01  # the reverb does something
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-6)


def test_chain_keeps_shape_and_finiteness():
    torch.manual_seed(0)
    x = torch.randn(6, 59049) * 0.1
    out = augment.augment(x, SR)
    assert out.shape == x.shape and torch.isfinite(out).all() and not torch.equal(out, x)


def test_a_transform_left_out_is_skipped_and_the_others_draw_as_before():
    """Without every transform but the polarity inversion, the chain is that inversion alone."""
    x = torch.randn(64, 4096) * 0.1
    torch.manual_seed(0)
    alone = augment.polarity(x)
    torch.manual_seed(0)
    chained = augment.augment(x, SR, left_out=[t for t in augment.CHAIN if t != "polarity"])
    assert torch.equal(alone, chained) and not torch.equal(chained, x)
