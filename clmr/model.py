"""CLMR (Spijkervet and Burgoyne 2021): a SampleCNN encoder trained contrastively.

SampleCNN on 59,049 raw samples at 22,050 Hz (2.68 s): a strided 3-sample convolution,
nine blocks of (conv 3, BN, ReLU, max pool 3) down to one frame, and a last conv: the
512-d output is the embedding. A projection head (512 -> 512 -> 64, as CLMR's) maps it to
the space where the NT-Xent loss compares the two views of a clip.

Three contrastive strategies (Choi et al. 2022, "Towards proper contrastive self-supervised
learning strategies for music audio representation"), chosen by clmr/train.py's --strategy
and each a model id of its own: they differ in what a positive pair is and at what scale the
loss acts.
  different-segments  (clmr; CLMR's own) two crops of the same clip, each augmented: the
                      positive is another moment of the same track, the whole crop's embedding
  same-segment        (clmr-same-segment) one crop augmented twice: the positive is the same
                      moment heard through other augmentations
  regional            (clmr-regional) one crop of three windows (8.0 s) augmented twice; the
                      encoder's output keeps one frame per window (SampleCNN reduces 59,049
                      samples to one frame, so 177,147 give three), and each frame's positive
                      is the same frame of the other view: the loss acts on regions of the
                      excerpt rather than on its whole. A frame is exactly what `embed` gives
                      for one window, so extraction is unchanged.
"""
from torch import nn

from ...models.encoder import AudioEncoder

BLOCK_CHANNELS = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512)


def block(c_in, c_out):
    return nn.Sequential(nn.Conv1d(c_in, c_out, 3, padding=1), nn.BatchNorm1d(c_out), nn.ReLU(), nn.MaxPool1d(3))


class CLMR(AudioEncoder):
    name, sample_rate, input_seconds, emb_dim, n_mels = "clmr", 22050, 59049 / 22050, 512, None
    AUGMENTED = True
    VARIANT_OPTION, DEFAULT_VARIANT = "strategy", "different-segments"
    VARIANTS = {"same-segment": {"views_share_crop": True},
                "regional": {"views_share_crop": True, "crop_windows": 3}}
    HEADS = ("projector",)
    LAYERS = ("encoder",)

    def __init__(self, projection_dim=64):
        super().__init__()
        c = BLOCK_CHANNELS
        self.encoder = nn.Sequential(
            nn.Sequential(nn.Conv1d(1, c[0], 3, stride=3), nn.BatchNorm1d(c[0]), nn.ReLU()),
            *(block(a, b) for a, b in zip(c, c[1:])),
            nn.Sequential(nn.Conv1d(c[-1], self.emb_dim, 3, padding=1), nn.BatchNorm1d(self.emb_dim), nn.ReLU()),
        )
        self.projector = nn.Sequential(nn.Linear(self.emb_dim, self.emb_dim, bias=False), nn.ReLU(),
                                       nn.Linear(self.emb_dim, projection_dim, bias=False))

    def embed(self, waveforms):
        return self.encoder(waveforms.unsqueeze(1)).flatten(1)

    def forward(self, waveforms):
        """Projections (batch, frames, projection_dim) for the contrastive loss: a frame per input
        window (one, but for the regional strategy's three-window crops)."""
        return self.projector(self.encoder(waveforms.unsqueeze(1)).transpose(1, 2))
