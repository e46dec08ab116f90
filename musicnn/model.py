"""MusiCNN (Pons et al.) as the study's code builds it, on a 96-bin log-mel of 3 s.

The study's code is a PyTorch port of musicnn (ilaria-manco/music-audio-tagging-pytorch):
its mel spectrogram is torchaudio's with Slaney-normalised filters on the HTK scale, and
the input is the natural log of mel + 1e-8, with no BatchNorm before the first layer.

Front end: timbral filters spanning 0.4 and 0.7 of the mel axis (38 x 8 and 67 x 8, 204
each) and temporal filters of 32, 64 and 128 frames over single mel bands (1 x k, 51
each), every branch conv, ReLU, BN, then max over frequency: 561 channels. Mid end: three
1-D convolutions of width 7 with the port's residual wiring. Back end: max and mean over
time, BN, dropout, dense 200 (the embedding), ReLU, BN, dropout, dense 50.

Two variants: the study's code (mid end 64 filters: 808,449 parameters) and `table`, whose
mid end (744 filters: 11,999,889 parameters) gives the study table's 12.0 M.
"""
import torch
from torch import nn

from ...models.encoder import AudioEncoder
from ...models.melspec import FrontEnd

TIMBRAL_FILTERS, TEMPORAL_FILTERS = 204, 51  # musicnn's filter factor 1.6 x 128 and 1.6 x 32


class FrontEndBranch(nn.Module):
    """One (height, width) filter shape over the whole spectrogram, max-pooled over frequency.
    Both paddings leave frames - 1 outputs, as the port's do: (0, 3) for width 8, (k - 1) // 2
    for the even temporal widths."""

    def __init__(self, filters, height, width):
        super().__init__()
        self.conv = nn.Conv2d(1, filters, (height, width), padding=(0, 3 if height > 1 else (width - 1) // 2))
        self.bn = nn.BatchNorm2d(filters)

    def forward(self, spec):  # (batch, 1, mels, frames) -> (batch, filters, frames - 1)
        return self.bn(torch.relu(self.conv(spec))).amax(dim=2)


class MidEnd(nn.Module):
    """The port's mid end: each conv is followed by ReLU then BN; the second layer's output
    adds the first's, the third layer (fed the second's BN) adds to that sum. The port also
    builds a BatchNorm after the third layer whose output it never uses (128 parameters,
    left out here: DistributedDataParallel refuses parameters without gradients)."""

    def __init__(self, channels, filters):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(c, filters, 7, padding=3) for c in (channels, filters, filters))
        self.bns = nn.ModuleList(nn.BatchNorm1d(filters) for _ in range(2))
        for conv in self.convs[:2]:
            nn.init.xavier_uniform_(conv.weight)

    def forward(self, x):
        first = self.bns[0](torch.relu(self.convs[0](x)))
        second = torch.relu(self.convs[1](first))
        residual = second + first
        third = torch.relu(self.convs[2](self.bns[1](second)))
        return torch.cat([x, first, residual, residual + third], dim=1)


class MusiCNN(AudioEncoder):
    name, sample_rate, input_seconds, emb_dim, n_mels = "musicnn", 16000, 3.0, 200, 96
    mid_filters = 64
    VARIANTS = {"table": {"mid_filters": 744}}
    HEADS = ("head",)
    LAYERS = ("mid.convs",)

    def __init__(self, n_tags=50):
        super().__init__()
        self.front_end = FrontEnd(self.front_end_recipe, self.sample_rate, n_fft=512, hop_length=256,
                                  n_mels=self.n_mels, filter_norm="slaney", compression="ln", input_norm=False)
        self.branches = nn.ModuleList(
            [FrontEndBranch(TIMBRAL_FILTERS, int(f * self.n_mels), 8) for f in (0.4, 0.7)]
            + [FrontEndBranch(TEMPORAL_FILTERS, 1, w) for w in (32, 64, 128)])
        front = 2 * TIMBRAL_FILTERS + 3 * TEMPORAL_FILTERS
        self.mid = MidEnd(front, self.mid_filters)
        pooled = 2 * (front + 3 * self.mid_filters)
        self.dense = nn.Sequential(nn.BatchNorm1d(pooled), nn.Dropout(0.5), nn.Linear(pooled, self.emb_dim))
        self.head = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(self.emb_dim), nn.Dropout(0.5),
                                  nn.Linear(self.emb_dim, n_tags))

    def embed(self, waveforms):
        spec = self.front_end(waveforms)
        features = self.mid(torch.cat([branch(spec) for branch in self.branches], dim=1))
        # the port pools 186 of the 187 frames (a fixed kernel); every frame is pooled here
        return self.dense(torch.cat([features.amax(dim=2), features.mean(dim=2)], dim=1))

    def forward(self, waveforms):
        return self.head(self.embed(waveforms))
