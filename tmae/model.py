"""TMAE: a transformer masked autoencoder on 96-bin log-mel patches of 4.85 s.

The study published no code for it: its mel spectrogram is the one the study's VGGish
computes (torchaudio's defaults, in dB), normalised by a BatchNorm.

The log-mel (16 kHz, hop 256: 96 x 304 frames) is cut into 16 x 16 patches (6 x 19 = 114).
Training hides a random 75% of them; the encoder (width 256, 8 layers) sees only the rest,
and a light decoder (width 128, 4 layers) reconstructs the hidden patches from the
encoded ones and mask tokens. The embedding is the mean of the encoder's tokens on the
whole, unmasked input.
"""
import torch
from torch import nn

from ...models.encoder import AudioEncoder
from ...models.melspec import FrontEnd
from ...models.transformer import Block, PatchEmbed, init_weights, sincos_positions

PATCH, WIDTH, DEPTH, HEADS = 16, 256, 8, 4
DECODER_WIDTH, DECODER_DEPTH, DECODER_HEADS = 128, 4, 4


class TMAE(AudioEncoder):
    name, sample_rate, input_seconds, emb_dim, n_mels = "tmae", 16000, 4.85, WIDTH, 96
    HEADS = ("decoder_in", "mask_token", "decoder", "decoder_norm", "predict")
    LAYERS, TOKEN_LAYERS = ("blocks",), True

    def __init__(self, mask_ratio=0.75):
        super().__init__()
        self.mask_ratio = mask_ratio
        self.front_end = FrontEnd(self.front_end_recipe, self.sample_rate, n_fft=512, hop_length=256,
                                  n_mels=self.n_mels, compression="db", input_norm=True)
        self.grid = (self.n_mels // PATCH, self.front_end.mel.frames(self.input_samples) // PATCH)
        self.patches = PatchEmbed(WIDTH, PATCH, PATCH)
        self.register_buffer("positions", sincos_positions(*self.grid, WIDTH), persistent=False)
        self.blocks = nn.Sequential(*(Block(WIDTH, HEADS) for _ in range(DEPTH)))
        self.norm = nn.LayerNorm(WIDTH, eps=1e-6)
        self.decoder_in = nn.Linear(WIDTH, DECODER_WIDTH)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, DECODER_WIDTH))
        self.register_buffer("decoder_positions", sincos_positions(*self.grid, DECODER_WIDTH), persistent=False)
        self.decoder = nn.Sequential(*(Block(DECODER_WIDTH, DECODER_HEADS) for _ in range(DECODER_DEPTH)))
        self.decoder_norm = nn.LayerNorm(DECODER_WIDTH, eps=1e-6)
        self.predict = nn.Linear(DECODER_WIDTH, PATCH * PATCH)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(init_weights)

    def spectrogram(self, waveforms):
        """Normalised log-mel (batch, 1, mels, grid frames)."""
        return self.front_end(waveforms)[..., : self.grid[1] * PATCH]

    def patchify(self, spec):
        """(batch, 1, mels, frames) -> (batch, patches, 256), the same order as PatchEmbed."""
        b = len(spec)
        x = spec.reshape(b, self.grid[0], PATCH, self.grid[1], PATCH)
        return x.permute(0, 1, 3, 2, 4).reshape(b, -1, PATCH * PATCH)

    def embed(self, waveforms):
        x = self.patches(self.spectrogram(waveforms)) + self.positions
        return self.norm(self.blocks(x)).mean(dim=1)

    def forward(self, waveforms):
        """(predicted patches, target patches, mask) with mask 1 where a patch was hidden."""
        spec = self.spectrogram(waveforms)
        x = self.patches(spec) + self.positions
        b, n, _ = x.shape
        keep = int(n * (1 - self.mask_ratio))
        order = torch.rand(b, n, device=x.device).argsort(dim=1)
        visible = order[:, :keep]
        encoded = self.norm(self.blocks(torch.gather(x, 1, visible[..., None].expand(-1, -1, x.shape[-1]))))
        encoded = self.decoder_in(encoded)
        tokens = self.mask_token.to(encoded.dtype).expand(b, n, -1).clone()  # bfloat16 under autocast
        tokens.scatter_(1, visible[..., None].expand(-1, -1, DECODER_WIDTH), encoded)
        predicted = self.predict(self.decoder_norm(self.decoder(tokens + self.decoder_positions)))
        mask = torch.ones(b, n, device=x.device)
        mask.scatter_(1, visible, 0.0)
        return predicted, self.patchify(spec), mask
