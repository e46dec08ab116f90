"""Pretrain AST (randomly initialised) on an MTAT subset by multi-label tagging.

The Audio Spectrogram Transformer sees random 5.12 s crops (6 per clip per epoch) and
learns to predict the clip's top-50 tags with binary cross-entropy; the reference
configuration is batch 24, Adam 1e-4, weight decay 1e-5. The loop itself (data,
checkpoints, resume, DDP) is common/training.py.

    python ast/train.py --subset 5              # real MTAT, 5 tracks per genre
    python ast/train.py --demo --subset 1 --max-steps 3
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common.cli import run  # noqa: E402
from common.training import pretrain, tagging_loss  # noqa: E402

DEFAULTS = {"batch_size": 24, "lr": 1e-4, "weight_decay": 1e-5, "crops_per_clip": 6}


if __name__ == "__main__":
    run(lambda: pretrain("ast", tagging_loss, DEFAULTS, __doc__.split("\n")[0], supervised=True))
