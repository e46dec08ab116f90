"""VGGish: the short-chunk CNN of Won et al. 2020 on a 128-bin log-mel of 3.75 s.

Seven 3x3 conv blocks (BN, ReLU, 2x2 max pool) take 128 x 235 frames down to 1 x 1; a
global max pool, then dense 512 (the embedding), BN, ReLU, dropout and the 50 tag logits.
"""
import torch
from torch import nn

from common.encoder import AudioEncoder
from common.melspec import LogMel

CHANNELS = (128, 128, 256, 256, 256, 256, 512)


def conv_block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.MaxPool2d(2))


class VGGish(AudioEncoder):
    name, sample_rate, input_seconds, emb_dim, n_mels = "vggish", 16000, 3.75, 512, 128

    def __init__(self, n_tags=50):
        super().__init__()
        self.melspec = LogMel(self.sample_rate, n_fft=512, hop_length=256, n_mels=self.n_mels)
        self.input_norm = nn.BatchNorm2d(1)
        widths = (1,) + CHANNELS
        self.convs = nn.Sequential(*(conv_block(a, b) for a, b in zip(widths, widths[1:])))
        self.dense = nn.Linear(CHANNELS[-1], self.emb_dim)
        self.head = nn.Sequential(nn.BatchNorm1d(self.emb_dim), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(self.emb_dim, n_tags))

    def embed(self, waveforms):
        x = self.input_norm(self.melspec(waveforms).unsqueeze(1))
        x = self.convs(x)
        return self.dense(torch.amax(x, dim=(2, 3)))

    def forward(self, waveforms):
        """Tag logits (batch, n_tags)."""
        return self.head(self.embed(waveforms))
