"""VGGish: the short-chunk CNN of Won et al. 2020 on a 128-bin log-mel of 59,049 samples.

The study's code reads 59,049 samples at 16 kHz (3.69 s; the `table` variant takes the
3.75 s its table gives) and computes torchaudio's default mel spectrogram (HTK scale,
unnormalised filters up to 8 kHz) in dB, then a BatchNorm. Seven 3x3 conv blocks (BN,
ReLU, 2x2 max pool) take 128 x 231 frames down to 1 x 1; a global max pool, then dense
512 (the embedding), BN, ReLU, dropout and the 50 tag logits.
"""
import torch
from torch import nn

from ...models.encoder import AudioEncoder
from ...models.melspec import FrontEnd

CHANNELS = (128, 128, 256, 256, 256, 256, 512)


def conv_block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.MaxPool2d(2))


class VGGish(AudioEncoder):
    name, sample_rate, input_seconds, emb_dim, n_mels = "vggish", 16000, 59049 / 16000, 512, 128
    VARIANTS = {"table": {"input_seconds": 3.75}}
    HEADS = ("head",)
    LAYERS = ("convs",)

    def __init__(self, n_tags=50):
        super().__init__()
        self.front_end = FrontEnd(self.front_end_recipe, self.sample_rate, n_fft=512, hop_length=256,
                                  n_mels=self.n_mels, f_max=8000.0, compression="db", input_norm=True)
        widths = (1,) + CHANNELS
        self.convs = nn.Sequential(*(conv_block(a, b) for a, b in zip(widths, widths[1:])))
        self.dense = nn.Linear(CHANNELS[-1], self.emb_dim)
        self.head = nn.Sequential(nn.BatchNorm1d(self.emb_dim), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(self.emb_dim, n_tags))

    def embed(self, waveforms):
        x = self.convs(self.front_end(waveforms))
        return self.dense(torch.amax(x, dim=(2, 3)))

    def forward(self, waveforms):
        """Tag logits (batch, n_tags)."""
        return self.head(self.embed(waveforms))
