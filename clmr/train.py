"""Pretrain CLMR (SampleCNN) on an MTAT subset by contrastive learning, without labels.

Each clip gives two random 2.68 s crops once per epoch; both go through CLMR's
augmentation chain (clmr/augment.py, batched on the training device), the encoder and the
projection head, and the NT-Xent loss (temperature 0.5) pulls the two views of a clip
together and pushes the other clips of the batch away: of the whole batch under torchrun,
whose projections every process gathers (common/training/global_batch.py), so N processes
learn what one would. The study's configuration is the default: batch 10, Adam 3e-4 at a
constant rate without weight decay (CLMR's code applies its 1e-6 only with LARS), and, as
its Lightning trainer sets no epoch limit, Lightning's default of 1,000 epochs; weights
kept every 50 (our choice). The loop itself (data, checkpoints, resume, DDP) is
common/training/loop.py.

--strategy picks what a positive pair is and at what scale the loss acts (Choi et al. 2022;
clmr/model.py): different-segments (CLMR's: two crops of the clip), same-segment (one crop
augmented twice) or regional (one three-window crop augmented twice, each window's frame
matched with the same frame of the other view). The loss is the same NT-Xent in all three:
a regional frame is one more item of the batch. The strategies assume CLMR's random crops:
under --crops tile both views read the same segment, whatever the strategy.

    python clmr/train.py --subset 5
    python clmr/train.py --subset 5 --strategy regional  # the model id clmr-regional
    python clmr/train.py --subset 5 --augment -pitch     # without the pitch shift: the model id clmr-no-pitch
    python clmr/train.py --audio-dir ~/my_music       # any folder of WAV/FLAC/MP3
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common.cli import run  # noqa: E402
from common.models.registry import model_file  # noqa: E402
from common.training.distributed import unwrap  # noqa: E402
from common.training.global_batch import gather_views  # noqa: E402
from common.training.loop import pretrain  # noqa: E402

DEFAULTS = {"epochs": 1000, "batch_size": 10, "lr": 3e-4, "weight_decay": 0.0, "lr_schedule": "constant",
            "crops": "random", "crops_per_clip": 1, "checkpoint_every": 50}
SAMPLE_RATE, TEMPERATURE = 22050, 0.5
augment = model_file("clmr", "augment").augment


def nt_xent(z, temperature=TEMPERATURE):
    """NT-Xent over 2N projections where rows i and i + N are the two views of one clip."""
    n = len(z) // 2
    with torch.autocast(z.device.type, enabled=False):  # autocast would run the product in bfloat16
        z = F.normalize(z.to(torch.promote_types(z.dtype, torch.float32)), dim=1)  # never below float32
        similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))  # a view is not its own positive
    positives = torch.arange(n, 3 * n, device=z.device) % (2 * n)  # made on the device: no copy to wait for
    return F.cross_entropy(similarity, positives)


def contrastive_loss(model, batch):
    """NT-Xent between the views of every item and frame: (2N, frames, d) projections become
    2N x frames rows, view by view, so frame f of an item's first view pairs with frame f of
    its second."""
    z = gather_views(model(augment(batch.audio, SAMPLE_RATE, unwrap(model).left_out)), batch.views)
    return nt_xent(z.reshape(-1, z.shape[-1]))


if __name__ == "__main__":
    run(lambda: pretrain("clmr", contrastive_loss, DEFAULTS, __doc__.split("\n")[0], views=2))
