"""AST: the Audio Spectrogram Transformer (Gong et al. 2021), randomly initialised.

ViT-Base (12 layers, width 768, 12 heads) on a 128-bin mel spectrogram of 320 frames:
the study's code reads 81,866 samples (30.7 s / 6 at 16 kHz: 5.117 s, its table's 5.12 s)
and feeds the raw mel power of torchaudio's defaults (HTK scale, unnormalised filters up to
8 kHz), no log and no normalisation, in a time x frequency layout, cut into 16 x 16 patches
with stride 10 on both axes (31 x 12 = 372 patches, time-major), plus class and
distillation tokens. The embedding is the mean of the two tokens after the last layer. No
ImageNet weights: nothing is downloaded.
"""
import torch
from torch import nn

from ...models.encoder import AudioEncoder
from ...models.melspec import FrontEnd
from ...models.transformer import Block, PatchEmbed, init_weights

FRAMES, WIDTH, DEPTH, HEADS = 320, 768, 12, 12


class AST(AudioEncoder):
    name, sample_rate, input_seconds, emb_dim, n_mels = "ast", 16000, 81866 / 16000, WIDTH, 128
    HEADS = ("head",)
    LAYERS, TOKEN_LAYERS = ("blocks",), True

    def __init__(self, n_tags=50):
        super().__init__()
        self.front_end = FrontEnd(self.front_end_recipe, self.sample_rate, n_fft=512, hop_length=256,
                                  n_mels=self.n_mels, f_max=8000.0, compression="power", input_norm=False)
        self.patches = PatchEmbed(WIDTH, patch=16, stride=10)
        n_patches = ((FRAMES - 16) // 10 + 1) * ((self.n_mels - 16) // 10 + 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.positions = nn.Parameter(torch.zeros(1, n_patches + 2, WIDTH))
        self.blocks = nn.Sequential(*(Block(WIDTH, HEADS) for _ in range(DEPTH)))
        self.norm = nn.LayerNorm(WIDTH, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(WIDTH), nn.Linear(WIDTH, n_tags))
        for p in (self.cls_token, self.dist_token, self.positions):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(init_weights)

    def embed(self, waveforms):
        x = self.patches(self.front_end(waveforms).transpose(2, 3))  # (batch, 1, 320 frames, mels)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), self.dist_token.expand(len(x), -1, -1), x], 1)
        x = self.norm(self.blocks(tokens + self.positions))
        return (x[:, 0] + x[:, 1]) / 2

    def forward(self, waveforms):
        return self.head(self.embed(waveforms))
