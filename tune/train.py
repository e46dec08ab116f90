"""Pretrain TUNe (Tailed U-Net) on an MTAT subset by contrastive learning, exactly as CLMR is.

TUNe's paper trains it within CLMR's framework: two random crops of a clip, CLMR's
augmentation chain, a 512-512-64 projection head and the NT-Xent loss at temperature 0.5.
So this script hands common/training/loop.py clmr/train.py's objective and defaults (the
study's CLMR configuration: batch 10, Adam 3e-4, 1,000 epochs), and TUNe is compared with
CLMR on equal terms; TUNe's own runs used batch 48 for 10,000 epochs (docs/models.md,
TUNe). --size picks TUNe (base) or TUNe+ (plus, the model id tune-plus).

    python tune/train.py --subset 5
    python tune/train.py --subset 5 --size plus
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from clmr.train import DEFAULTS, contrastive_loss  # noqa: E402
from common.cli import run  # noqa: E402
from common.training.loop import pretrain  # noqa: E402

if __name__ == "__main__":
    run(lambda: pretrain("tune", contrastive_loss, DEFAULTS, __doc__.split("\n")[0], views=2))
