"""Pretrain TMAE on an MTAT subset by masked modelling, without labels.

Each clip is cut into 6 consecutive 4.85 s segments (the whole 29-second clip), each
seen once per epoch; a segment becomes 114 log-mel patches, 75% are hidden, and the model
learns to reconstruct them: the loss is the mean squared error on the hidden patches
only. The study publishes no code or configuration for this model, so ours follows its
other models: the same segments, ReduceLROnPlateau, 1,000 epochs with weights kept every
50, batch 64, Adam 2e-4, weight decay 1e-5. The loop itself (data, checkpoints, resume,
DDP) is common/training/loop.py.

    python tmae/train.py --subset 5
    python tmae/train.py --audio-dir ~/my_music       # any folder of WAV/FLAC/MP3
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common.cli import run  # noqa: E402
from common.training.loop import pretrain  # noqa: E402

DEFAULTS = {"epochs": 1000, "batch_size": 64, "lr": 2e-4, "weight_decay": 1e-5, "lr_schedule": "plateau",
            "crops": "tile", "crops_per_clip": 6, "checkpoint_every": 50}


def masked_patch_loss(model, batch):
    predicted, target, mask = model(batch.audio)
    per_patch = (predicted.float() - target).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()


if __name__ == "__main__":
    run(lambda: pretrain("tmae", masked_patch_loss, DEFAULTS, __doc__.split("\n")[0]))
