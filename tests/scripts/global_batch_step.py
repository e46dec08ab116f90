"""One training step of a model's objective on a fixed global batch, as train.py takes it:
run alone, or under torchrun where each process takes its share of the batch. Saves the
loss and every parameter's gradient (after DDP's averaging) from the first process. In
float64: in float32 the gradients of a single process already move by up to 0.7% when the
batch is only reordered, which would hide a real difference.

    python tests/scripts/global_batch_step.py clmr out.pt
    torchrun --nproc_per_node=2 tests/scripts/global_batch_step.py clmr out.pt
    torchrun --nproc_per_node=2 tests/scripts/global_batch_step.py clmr out.pt per-process

`per-process` leaves out what makes N processes equal one (the gathering and the global
BatchNorm): the per-process objective that naive DDP code computes.
"""
import importlib.util
import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from common.models.registry import base_name, build  # noqa: E402
from common.training import distributed  # noqa: E402
from common.training.epochs import Batch  # noqa: E402
from common.training.global_batch import gather_views, sync_batchnorm  # noqa: E402
from common.training.loop import tagging_loss  # noqa: E402

BATCH = 6


def objective(name, local):
    """The model's loss on a batch of audio that is already augmented (the augmentations draw
    per process, so the comparison starts after them)."""
    if base_name(name) == "clmr":
        spec = importlib.util.spec_from_file_location("clmr_train", REPO / "clmr" / "train.py")
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        gather = (lambda z, views: z) if local else gather_views

        def loss(model, batch):
            z = gather(model(batch.audio), batch.views)  # (2N, frames, d)
            return script.nt_xent(z.reshape(-1, z.shape[-1]))
        return loss
    return tagging_loss


def main(name, out, local=False):
    world = distributed.start("cpu")
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    contrastive = base_name(name) == "clmr"
    model = build(name, **({} if contrastive else {"n_tags": 50})).double()
    for module in model.modules():  # dropout draws per process, by design: not part of the comparison
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    if world.size > 1 and not local:
        model = sync_batchnorm(model, world.device)
    net = DistributedDataParallel(model) if world.size > 1 else model
    net.train()
    generator = torch.Generator().manual_seed(1)
    views = 2 if contrastive else 1
    audio = torch.randn(views, BATCH, model.input_samples * model.crop_windows, generator=generator) * 0.1
    labels = (torch.rand(BATCH, 50, generator=generator) < 0.2).float()
    mine = torch.arange(BATCH)[world.rank::world.size]  # this process's share, as training._epoch_plan deals it
    batch = Batch(audio[:, mine].reshape(-1, audio.shape[-1]), labels[mine], views)
    loss = objective(name, local)(net, batch)
    loss.backward()
    if world.is_main:
        torch.save({"loss": world.mean(loss.detach()), "grads": {k: p.grad for k, p in model.named_parameters()},
                    "running": {k: b for k, b in model.named_buffers() if "running" in k}}, out)
    else:
        world.mean(loss.detach())
    world.barrier()
    world.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], local="per-process" in sys.argv[3:])
