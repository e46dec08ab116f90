"""MusiCNN (Pons et al.): a musically motivated front end on a 96-bin log-mel of 3 s.

Front end: timbral filters spanning 0.4 and 0.7 of the mel axis (max-pooled over
frequency) and temporal filters of 128, 64 and 32 frames on the frequency-averaged
spectrogram. Mid end: three 1-D convolutions with residual connections; its width (750
channels) sets the model's size to the reference table's 12.0 M. Back end: max and mean
over time of the front- and mid-end features, dense 200 (the embedding), dense 50.
"""
import torch
from torch import nn

from common.encoder import AudioEncoder
from common.melspec import LogMel

TIMBRAL_FILTERS, TEMPORAL_FILTERS = 204, 51  # musicnn's 1.6 x 128 and 1.6 x 32
MID_WIDTH = 750


class TimbralBranch(nn.Module):
    def __init__(self, height):
        super().__init__()
        self.conv = nn.Conv2d(1, TIMBRAL_FILTERS, (height, 7), padding=(0, 3))
        self.bn = nn.BatchNorm2d(TIMBRAL_FILTERS)

    def forward(self, mel):  # (batch, 1, mels, frames) -> (batch, filters, frames)
        return torch.relu(self.bn(self.conv(mel))).amax(dim=2)


class TemporalBranch(nn.Module):
    def __init__(self, width):
        super().__init__()
        # "same" output length for an even kernel: one more zero on the left than the right
        self.pad = nn.ConstantPad1d((width // 2, width - 1 - width // 2), 0.0)
        self.conv = nn.Conv1d(1, TEMPORAL_FILTERS, width)
        self.bn = nn.BatchNorm1d(TEMPORAL_FILTERS)

    def forward(self, envelope):  # (batch, 1, frames) -> (batch, filters, frames)
        return torch.relu(self.bn(self.conv(self.pad(envelope))))


class MusiCNN(AudioEncoder):
    name, sample_rate, input_seconds, emb_dim, n_mels = "musicnn", 16000, 3.0, 200, 96

    def __init__(self, n_tags=50):
        super().__init__()
        self.melspec = LogMel(self.sample_rate, n_fft=512, hop_length=256, n_mels=self.n_mels)
        self.input_norm = nn.BatchNorm2d(1)
        self.timbral = nn.ModuleList(TimbralBranch(int(f * self.n_mels)) for f in (0.4, 0.7))
        self.temporal = nn.ModuleList(TemporalBranch(w) for w in (128, 64, 32))
        front = 2 * TIMBRAL_FILTERS + 3 * TEMPORAL_FILTERS
        self.mid = nn.ModuleList(
            nn.Sequential(nn.Conv1d(c_in, MID_WIDTH, 7, padding=3), nn.BatchNorm1d(MID_WIDTH), nn.ReLU())
            for c_in in (front, MID_WIDTH, MID_WIDTH))
        pooled = 2 * (front + 3 * MID_WIDTH)
        self.dense = nn.Sequential(nn.BatchNorm1d(pooled), nn.Dropout(0.5), nn.Linear(pooled, self.emb_dim))
        self.head = nn.Sequential(nn.BatchNorm1d(self.emb_dim), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(self.emb_dim, n_tags))

    def embed(self, waveforms):
        mel = self.input_norm(self.melspec(waveforms).unsqueeze(1))
        envelope = mel.mean(dim=2)
        front = torch.cat([b(mel) for b in self.timbral] + [b(envelope) for b in self.temporal], dim=1)
        features, x = [front], front
        for i, layer in enumerate(self.mid):
            x = layer(x) + (x if i > 0 else 0)  # residual from the second layer on
            features.append(x)
        features = torch.cat(features, dim=1)
        return self.dense(torch.cat([features.amax(dim=2), features.mean(dim=2)], dim=1))

    def forward(self, waveforms):
        return self.head(self.embed(waveforms))
