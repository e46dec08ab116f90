"""Pretrain TMAE on an MTAT subset by masked modelling, without labels.

Random 4.85 s crops (8 per clip per epoch) become 114 log-mel patches; 75% are hidden,
and the model learns to reconstruct them: the loss is the mean squared error on the
hidden patches only. Configuration (the reference table gives none for this model):
batch 64, Adam 2e-4, weight decay 1e-5. The loop itself (data, checkpoints, resume, DDP)
is common/training.py.

    python tmae/train.py --subset 5
    python tmae/train.py --audio-dir ~/my_music       # any folder of WAV/FLAC/MP3
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common.cli import run  # noqa: E402
from common.training import pretrain  # noqa: E402

DEFAULTS = {"batch_size": 64, "lr": 2e-4, "weight_decay": 1e-5, "crops_per_clip": 8}


def masked_patch_loss(model, batch):
    predicted, target, mask = model(batch.audio)
    per_patch = (predicted.float() - target).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()


if __name__ == "__main__":
    run(lambda: pretrain("tmae", masked_patch_loss, DEFAULTS, __doc__.split("\n")[0], supervised=False))
