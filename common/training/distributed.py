"""DistributedDataParallel set-up from torchrun's environment (NCCL on GPU, gloo on CPU).

Run as `torchrun --nproc_per_node=N <model>/train.py ...`; a plain `python` run is a
world of one and all of this reduces to no-ops.
"""
import argparse
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..cli import UserError


@dataclass
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self):
        return self.rank == 0

    def mean(self, value):
        """Average a float over all processes."""
        if self.size == 1:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.item() / self.size

    def any(self, flag):
        return self.mean(1.0 if flag else 0.0) > 0

    def barrier(self):
        if self.size > 1:
            dist.barrier()

    def close(self):
        if self.size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def resolve_device(name):
    """The torch device for `--device`: auto, cpu, cuda or cuda:N; a wrong one is a UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UserError(f"invalid value {name!r}: choose from auto, cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"invalid value {name!r}: no CUDA device is available here (use cpu or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"invalid value {name!r}: there are {torch.cuda.device_count()} CUDA devices")
    return device


def _device_option(text):
    """--device is checked as it is parsed, before any work, with the same rules as at use."""
    try:
        resolve_device(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_device_option(parser):
    parser.add_argument("--device", default="auto", type=_device_option,
                        help="auto (cuda if there is one, else cpu), cpu, cuda or cuda:N (default: auto)")


def resolve_precision(name, device):
    """torch.bfloat16 or torch.float32 for `--precision` auto/float32/bfloat16. auto takes
    bfloat16 autocast where the hardware runs it natively (CUDA, and CPUs with AVX-512 BF16
    or AMX, where it about halves the time of a training step or a forward pass)."""
    if name == "auto":
        native = device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()
        name = "bfloat16" if native else "float32"
    return getattr(torch, name)


def autocast(device, precision):
    """The context a forward pass runs in at `precision` (resolve_precision's): bfloat16
    autocast, or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == torch.bfloat16)


def add_precision_option(parser):
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"),
                        help="auto: bfloat16 autocast on CUDA and on CPUs with native bfloat16 units, else float32")


def start(device_name):
    """The process's World; under torchrun this joins the process group."""
    device = resolve_device(device_name)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank=rank, size=size, device=device)


def unwrap(model):
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
