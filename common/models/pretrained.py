"""Any checkpoint of this project as an embedding function, from Python.

    from common.models.pretrained import load
    model = load("runs/demo/vggish/5/seed0/last.pt")          # or untrained.pt, checkpoints/step*.pt
    clip = model.embed(waveform, sample_rate=44100)             # (emb_dim,): the mean of its windows
    frames, seconds = model.embed(waveform, 44100, per_window=True)   # (windows, emb_dim), window starts
    layers = model.embed(waveform, 44100, layers=True)          # a list: each block's, then the embedding
    clip = model.embed_file("song.flac")                        # any file the project decodes

A waveform at any rate is resampled to the model's (soxr, as the datasets are); it is cut
into the model's non-overlapping input windows as extract_features.py cuts clips
(common/evaluation/extraction.py), so `embed` gives exactly the features the study's probes see.
"""
from pathlib import Path

import numpy as np
import torch

from common.cli import UserError
from common.data.audio import load_audio, resample
from common.evaluation.extraction import windows
from common.models import checkpoints
from common.models.registry import build_for


class Pretrained:
    """A checkpoint's encoder in eval mode, with what it was trained on."""

    def __init__(self, path, device="cpu", model_id=None, state=None):
        """`model_id`: refuse a checkpoint of another model; `state`: the checkpoint's dict,
        when it was loaded already."""
        self.path = Path(path)
        state = state or checkpoints.load(self.path, model_id)
        self.model_id = state["model_name"]
        self.encoder = build_for(self.model_id, state.get("tags"), state.get("vocabulary"))
        checkpoints.load_weights(self.encoder, self.path, state["model"])
        self.encoder.to(device).eval()
        self.device = torch.device(device)
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
            out = self.encoder.embed_layers(x) if layers else [self.encoder.embed(x)]
            parts.append([o.float().cpu().numpy() for o in out])
        stacked = [np.concatenate(layer) for layer in zip(*parts)]
        return stacked if layers else stacked[0]

    def embed(self, waveform, sample_rate, per_window=False, layers=False):
        """A mono waveform (numpy or torch, any rate) -> its clip embedding (emb_dim,); with
        `per_window`, (window embeddings (n, emb_dim), window start times in seconds (n,));
        with `layers`, a list of such embeddings instead of one: each block's, then the
        embedding."""
        y = np.asarray(waveform.detach().cpu() if torch.is_tensor(waveform) else waveform, dtype=np.float32)
        if y.ndim != 1:
            raise UserError(f"embed takes one mono waveform (1-D), not an array of shape {y.shape}")
        y = resample(y, sample_rate, self.sample_rate)
        cut = windows(y, self.encoder.input_samples)
        out = self.embed_windows(cut, layers)
        if per_window:
            return out, np.arange(len(cut)) * self.window_seconds
        return [o.mean(axis=0) for o in out] if layers else out.mean(axis=0)

    def embed_file(self, path, per_window=False, layers=False):
        """An audio file (WAV, FLAC, MP3, ...: decoded and resampled as the datasets are)."""
        return self.embed(load_audio(path, self.sample_rate), self.sample_rate, per_window, layers)


def load(path, device="cpu"):
    return Pretrained(path, device)
