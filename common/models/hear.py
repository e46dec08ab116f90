"""The HEAR 2021 embedding API over this project's checkpoints (hear-eval-kit's `--module common.models.hear`).

    python -m heareval.embeddings.runner common.models.hear --model runs/MTAT/clmr/5/seed0/last.pt

The contract (hearbenchmark.com, hear-baseline's reference modules): `load_model(path)`
returns a torch Module carrying `sample_rate`, `scene_embedding_size` and
`timestamp_embedding_size`; the two functions take float audio (n_sounds, n_samples) at the
model's rate, on any device (the model moves to it), and return float32 tensors on it. The
audio is rounded to 16 bits as every entry point rounds it (common/data/audio.py) and
embedded in float32, so a sound gives the features extract_features.py --precision float32
gives it.
- `get_scene_embeddings`: (n_sounds, emb_dim), the mean of the model's non-overlapping input
  windows: the clip embedding extract_features.py computes and the study's probes read.
- `get_timestamp_embeddings`: (n_sounds, n_timestamps, emb_dim) and the timestamps
  (n_sounds, n_timestamps) in milliseconds: one input window centred on every multiple of
  TIMESTAMP_HOP_MS (the audio zero-padded by half a window at both ends, as hear-baseline
  frames it). Every model reads 2.7-5.1 s windows, so a timestamp's embedding describes
  seconds around it, not 50 ms.
Any checkpoint of any model works, untrained.pt included; a file that is not one, no path,
integer samples and non-finite ones are refused with a one-line error.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cli import UserError
from ..data.audio import PCM16_SCALE
from ..evaluation.extraction import window_count
from .pretrained import Pretrained

TIMESTAMP_HOP_MS = 50  # hear-baseline's; HEAR's event tasks are scored at this resolution
BATCH_SIZE = 32


class HearModel(nn.Module):
    def __init__(self, pretrained):
        super().__init__()
        self.encoder = pretrained.encoder
        self.model_id = pretrained.model_id
        self.sample_rate = pretrained.sample_rate
        self.scene_embedding_size = self.timestamp_embedding_size = pretrained.emb_dim


def load_model(model_file_path=""):
    if not model_file_path:  # HEAR's default: the baselines that need no weights accept none
        raise UserError("load_model needs a checkpoint of this project (hear-eval-kit's --model), e.g. "
                        "runs/demo/clmr/5/seed0/last.pt")
    return HearModel(Pretrained(model_file_path))


@torch.inference_mode()
def _embed(model, windows):
    """A list of (input_samples,) windows -> (n, emb_dim) float32, stacked a batch at a time
    (every 50 ms of long audio would not fit in memory at once)."""
    return torch.cat([model.encoder.embed(torch.stack(windows[i:i + BATCH_SIZE])).float()
                      for i in range(0, len(windows), BATCH_SIZE)])


def _check(audio, model):
    """The audio as the models take it (float32, at 16-bit resolution), on its own device."""
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), not {tuple(audio.shape)}")
    if not audio.is_floating_point():
        raise ValueError(f"audio must be float in [-1, 1], not {audio.dtype}: scale integer samples first")
    if not torch.isfinite(audio).all():
        raise ValueError("audio holds non-finite samples (NaN or infinity)")
    model.to(audio.device).eval()
    return _as_16_bit(audio.detach().float())


def _as_16_bit(audio):
    """data.audio.as_16_bit's rounding, on the audio's own device: the same float32 products
    (half to even, as numpy rounds), so the same values without a copy to the host and back."""
    return torch.round(audio.clamp(-1.0, 1.0) * PCM16_SCALE) * np.float32(1 / PCM16_SCALE)


def get_timestamp_embeddings(audio, model, hop_ms=TIMESTAMP_HOP_MS):
    audio = _check(audio, model)
    n_sounds, n_samples = audio.shape
    length = model.encoder.input_samples
    hop = hop_ms / 1000 * model.sample_rate
    starts = [round(k * hop) for k in range(int(n_samples // hop) + 2) if round(k * hop) <= n_samples]
    count = len(starts)  # centres 0, hop, ... up to the end of the audio
    padded = F.pad(audio, (length // 2, length - length // 2))
    windows = [padded[i, s:s + length] for i in range(n_sounds) for s in starts]  # views: no copies yet
    embeddings = _embed(model, windows).reshape(n_sounds, count, -1)
    # the nominal centres, as hear-baseline reports them: a window starts within half a sample of its own
    timestamps = torch.arange(count, dtype=torch.float32, device=audio.device) * hop_ms
    return embeddings, timestamps.expand(n_sounds, -1)


def get_scene_embeddings(audio, model):
    audio = _check(audio, model)
    n_sounds, n_samples = audio.shape
    length = model.encoder.input_samples
    count = window_count(n_samples, length)
    if n_samples < length:
        audio = F.pad(audio, (0, length - n_samples))
    windows = list(audio[:, : count * length].reshape(n_sounds * count, length))
    return _embed(model, windows).reshape(n_sounds, count, -1).mean(dim=1)
