"""Pretrain AST (randomly initialised) on an MTAT subset by multi-label tagging.

Each clip is cut into 6 consecutive 5.12 s segments (the whole clip, the last one
zero-padded), every segment is seen once per epoch, and the Audio Spectrogram
Transformer learns to predict the clip's top-50 tags with binary cross-entropy. The
study's configuration is the default: batch 24, Adam 1e-4, weight decay 1e-5,
ReduceLROnPlateau (0.5, patience 10) on the epoch loss, 150 epochs, weights kept every
10. The loop itself (data, checkpoints, resume, DDP) is common/training/loop.py.

    python ast/train.py --subset 5              # real MTAT, 5 tracks per genre
    python ast/train.py --demo --subset 1 --max-steps 3
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common.cli import run  # noqa: E402
from common.training.loop import pretrain, tagging_loss  # noqa: E402

DEFAULTS = {"epochs": 150, "batch_size": 24, "lr": 1e-4, "weight_decay": 1e-5, "lr_schedule": "plateau",
            "crops": "tile", "crops_per_clip": 6, "checkpoint_every": 10}


if __name__ == "__main__":
    run(lambda: pretrain("ast", tagging_loss, DEFAULTS, __doc__.split("\n")[0], learns_from="tags"))
