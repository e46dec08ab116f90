"""Any checkpoint of this project as an embedding function, from Python.

    from .pretrained import load
    model = load("runs/demo/vggish/5/seed0/last.pt")          # or untrained.pt, checkpoints/step*.pt
    clip = model.embed(waveform, sample_rate=44100)             # (emb_dim,): the mean of its windows
    frames, seconds = model.embed(waveform, 44100, per_window=True)   # (windows, emb_dim), window starts
    layers = model.embed(waveform, 44100, layers=True)          # a list: each block's, then the embedding
    clip = model.embed_file("song.flac")                        # any file the project decodes

A float waveform in [-1, 1] at any rate is resampled to the model's (soxr, as the datasets
are), rounded to 16 bits as the decoded-audio cache stores every dataset's clips
(common/data/audio.py), and cut into the model's non-overlapping input windows as
extract_features.py cuts clips (common/evaluation/extraction.py): a file gives the features
extract_features.py gives it at the same precision. That is float32 unless
`load(path, precision="bfloat16")` (bfloat16 autocast, as `--precision auto` takes it on a
GPU). Integer samples, a waveform shorter than SHORTEST_SECONDS, non-finite samples and
several channels are refused with a one-line error that says what to do.
"""
from pathlib import Path

import numpy as np
import torch

from ..cli import UserError
from ..data.audio import SHORTEST_SECONDS, as_16_bit, load_audio, resample
from ..evaluation.extraction import windows
from ..training.distributed import autocast, exact_float32
from . import checkpoints
from .registry import build_for

# Float audio peaking above this is integer samples that were not scaled to [-1, 1]
LOUDEST_FLOAT_PEAK = 2.0


class Pretrained:
    """A checkpoint's encoder in eval mode, with what it was trained on."""

    def __init__(self, path, device="cpu", model_id=None, state=None, precision="float32"):
        """`model_id`: refuse a checkpoint of another model; `state`: the checkpoint's dict,
        when it was loaded already; `precision`: float32 or bfloat16 (autocast), a name or a dtype."""
        self.path = Path(path)
        state = state or checkpoints.load(self.path, model_id)
        self.model_id = state["model_name"]
        self.encoder = build_for(self.model_id, state.get("tags"), state.get("vocabulary"))
        checkpoints.load_weights(self.encoder, self.path, state["model"])
        self.encoder.to(device).eval()
        self.device = torch.device(device)
        self.precision = getattr(torch, precision) if isinstance(precision, str) else precision
        if self.precision == torch.float32:
            exact_float32()  # as extract_features.py's float32: no TF32 on a GPU
        self.step, self.subset, self.minutes = state["step"], state.get("subset"), state.get("minutes")
        self.draw, self.budget = state.get("draw", 0), state.get("budget")
        # the compute that made these weights: its optimizer steps times one step's FLOPs
        self.train_flops = self.step * state["step_flops"] if "step_flops" in state else None
        self.save_id = state.get("save_id")
        self.sample_rate, self.emb_dim = self.encoder.sample_rate, self.encoder.emb_dim
        self.window_seconds = self.encoder.input_samples / self.sample_rate

    @torch.inference_mode()
    def embed_windows(self, batch, layers=False, batch_size=16):
        """(n, input_samples) numpy windows at the model's rate -> (n, emb_dim), or with
        `layers` a list of (n, width) arrays: each block of the model, then the embedding."""
        parts = []
        for start in range(0, len(batch), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(batch[start:start + batch_size], dtype=np.float32))
            x = x.to(self.device)
            with autocast(self.device, self.precision):
                out = self.encoder.embed_layers(x) if layers else [self.encoder.embed(x)]
            parts.append([o.float().cpu().numpy() for o in out])
        stacked = [np.concatenate(layer) for layer in zip(*parts)]
        return stacked if layers else stacked[0]

    def embed(self, waveform, sample_rate, per_window=False, layers=False, batch_size=16):
        """A mono float waveform in [-1, 1] (numpy or torch, any rate) -> its clip embedding
        (emb_dim,); with `per_window`, (window embeddings (n, emb_dim), window start times in
        seconds (n,)); with `layers`, a list of such embeddings instead of one: each block's,
        then the embedding."""
        y = as_16_bit(resample(checked_waveform(waveform, sample_rate), sample_rate, self.sample_rate))
        cut = windows(y, self.encoder.input_samples)
        out = self.embed_windows(cut, layers, batch_size)
        if per_window:
            return out, np.arange(len(cut)) * self.window_seconds
        return [o.mean(axis=0) for o in out] if layers else out.mean(axis=0)

    def embed_file(self, path, per_window=False, layers=False):
        """An audio file (WAV, FLAC, MP3, ...: decoded and resampled as the datasets are)."""
        return self.embed(load_audio(path, self.sample_rate), self.sample_rate, per_window, layers)


def load(path, device="cpu", precision="float32"):
    return Pretrained(path, device, precision=precision)


def checked_waveform(waveform, sample_rate):
    """A user's waveform as 1-D float32 numpy; a one-line UserError for what the models cannot
    take as it is."""
    y = np.asarray(waveform.detach().cpu() if torch.is_tensor(waveform) else waveform)
    if y.ndim != 1:
        fold = f": fold its channels first, e.g. y.mean(axis={int(np.argmin(y.shape))})" if y.ndim == 2 else ""
        raise UserError(f"embed takes one mono waveform (1-D), not an array of shape {y.shape}{fold}")
    if not np.issubdtype(y.dtype, np.floating):
        raise UserError(f"embed takes float audio in [-1, 1], not {y.dtype} samples: scale them first (int16, as "
                        f"scipy.io.wavfile reads them: y / 32768)")
    if len(y) < SHORTEST_SECONDS * sample_rate:
        raise UserError(f"a waveform of {len(y)} samples ({len(y) / sample_rate:.3f} s at {sample_rate} Hz) is too "
                        f"short to embed: at least {SHORTEST_SECONDS} s")
    if not np.isfinite(y).all():
        raise UserError("the waveform holds non-finite samples (NaN or infinity)")
    if np.abs(y).max() > LOUDEST_FLOAT_PEAK:
        raise UserError(f"the waveform peaks at {np.abs(y).max():.4g}: float audio lies in [-1, 1] (integer "
                        f"samples need scaling, e.g. y / 32768)")
    return y.astype(np.float32)
