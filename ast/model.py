"""AST: the Audio Spectrogram Transformer (Gong et al. 2021), randomly initialised.

ViT-Base (12 layers, width 768, 12 heads) on a 128-bin log-mel of 320 frames (16 kHz,
hop 256: 5.12 s), cut into 16 x 16 patches with stride 10 on both axes (12 x 31 = 372
patches), plus class and distillation tokens. The embedding is the mean of the two tokens
after the last layer. No ImageNet weights: nothing is downloaded.
"""
import torch
from torch import nn

from common.encoder import AudioEncoder
from common.melspec import LogMel
from common.transformer import Block, PatchEmbed, init_weights

FRAMES, WIDTH, DEPTH, HEADS = 320, 768, 12, 12


class AST(AudioEncoder):
    name, sample_rate, input_seconds, emb_dim, n_mels = "ast", 16000, 5.12, WIDTH, 128

    def __init__(self, n_tags=50):
        super().__init__()
        self.melspec = LogMel(self.sample_rate, n_fft=512, hop_length=256, n_mels=self.n_mels)
        self.input_norm = nn.BatchNorm2d(1)
        self.patches = PatchEmbed(WIDTH, patch=16, stride=10)
        n_patches = ((self.n_mels - 16) // 10 + 1) * ((FRAMES - 16) // 10 + 1)
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
        mel = self.melspec(waveforms)[..., :FRAMES]  # 321 centred frames: keep 320, as AST does
        x = self.patches(self.input_norm(mel.unsqueeze(1)))
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), self.dist_token.expand(len(x), -1, -1), x], 1)
        x = self.norm(self.blocks(tokens + self.positions))
        return (x[:, 0] + x[:, 1]) / 2

    def forward(self, waveforms):
        return self.head(self.embed(waveforms))
