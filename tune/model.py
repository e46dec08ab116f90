"""TUNe, the Tailed U-Net (Vélez Vásquez and Burgoyne, ISMIR 2022): CLMR's SampleCNN idea
turned into a U-Net with a tail, so that the embedding mixes time scales.

On 59,049 raw samples at 22,050 Hz (2.68 s, CLMR's input):
  contracting  five blocks of (conv 3, BN, ReLU), 11 channels doubling to 176, with a max
               pool of 3 between them: 59,049 down to 729 frames
  expanding    four transposed convolutions (stride 3) back up to 59,049 frames, each
               followed by a block over its output and the contracting block of the same
               resolution (the U-Net's skip connections)
  tail         nine more pool-and-block steps down to three frames of 512 channels, averaged:
               the 512-d embedding. TUNe+ (`--size plus`, model id tune-plus) also feeds the
               first four tail blocks the expanding path's output of the same resolution.
Every block's convolution is initialised as TUNe's code does (Kaiming, uniform, for ReLU).
A projection head (512 -> 512 -> 64) maps the embedding to the contrastive loss's space, as
in CLMR. Without that head TUNe has 2,096,970 parameters and TUNe+ 2,220,390: the paper's
2.1 M and 2.2 M.
"""
import torch
from torch import nn

from ...models.encoder import AudioEncoder

WIDTH = 11  # channels of the first block; they double at each of the five levels


def block(c_in, c_out):
    conv = nn.Conv1d(c_in, c_out, 3, padding=1)
    nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")
    return nn.Sequential(conv, nn.BatchNorm1d(c_out), nn.ReLU())


class TUNe(AudioEncoder):
    name, sample_rate, input_seconds, emb_dim, n_mels = "tune", 22050, 59049 / 22050, 512, None
    AUGMENTED = True
    VARIANT_OPTION, DEFAULT_VARIANT = "size", "base"
    VARIANTS = {"plus": {"tail_links": True}}
    HEADS = ("projector",)
    LAYERS = ("contracting", "expanding", "tail")
    tail_links = False

    def __init__(self, projection_dim=64):
        super().__init__()
        w = [WIDTH * 2 ** level for level in range(5)]  # 11, 22, 44, 88, 176
        self.pool = nn.MaxPool1d(3)
        self.contracting = nn.ModuleList(block(a, b) for a, b in zip([1, *w], w))
        self.up = nn.ModuleList(nn.ConvTranspose1d(w[i + 1], w[i], 3, stride=3) for i in reversed(range(4)))
        self.expanding = nn.ModuleList(block(2 * w[i], w[i]) for i in reversed(range(4)))
        links = w[1:] if self.tail_links else [0] * 4
        tail = [(w[i] + links[i], w[i + 1]) for i in range(4)] + [(w[4], 32 * WIDTH)] + \
            [(32 * WIDTH, 32 * WIDTH)] * 3 + [(32 * WIDTH, self.emb_dim)]
        self.tail = nn.ModuleList(block(a, b) for a, b in tail)
        self.projector = nn.Sequential(nn.Linear(self.emb_dim, self.emb_dim, bias=False), nn.ReLU(),
                                       nn.Linear(self.emb_dim, projection_dim, bias=False))

    def frames(self, waveforms):
        """(batch, samples) -> (batch, 512, samples / 19,683): three frames for one window."""
        x = waveforms.unsqueeze(1)
        skips = []
        for level, contract in enumerate(self.contracting):
            x = contract(x if level == 0 else self.pool(x))
            skips.append(x)
        expanded = [x]  # the expanding path's outputs, coarsest first (its bottom is the last skip)
        for up, expand, skip in zip(self.up, self.expanding, reversed(skips[:-1])):
            x = expand(torch.cat([up(x), skip], dim=1))
            expanded.append(x)
        for level, step in enumerate(self.tail):
            x = self.pool(x)
            if self.tail_links and level < 4:  # TUNe+: the expanding output at this resolution
                x = torch.cat([x, expanded[3 - level]], dim=1)
            x = step(x)
        return x

    def embed(self, waveforms):
        return self.frames(waveforms).mean(dim=2)

    def forward(self, waveforms):
        """Projections (batch, projection_dim) for the contrastive loss."""
        return self.projector(self.embed(waveforms))
