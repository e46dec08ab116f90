"""DistributedDataParallel set-up from torchrun's environment (NCCL on GPU, gloo on CPU).

Run as `torchrun --nproc_per_node=N <model>/train.py ...`; a plain `python` run is a
world of one and all of this reduces to no-ops.
"""
import argparse
import functools
import os
import shutil
import subprocess
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

    def average(self, tensor):
        """The mean of a tensor over all processes, left on the device: nothing waits for it."""
        if self.size == 1:
            return tensor
        total = tensor.float().clone()
        dist.all_reduce(total)
        return total / self.size

    def any(self, flag):
        return self.mean(1.0 if flag else 0.0) > 0

    def batch_share(self, batch_size):
        """Each process's part of a step's `batch_size` items; a batch the processes cannot
        share equally is refused rather than rounded (the run would train on another batch
        than its config.json records)."""
        if batch_size % self.size:
            fits = ", ".join(str(k * self.size) for k in (batch_size // self.size, batch_size // self.size + 1) if k)
            raise UserError(f"--batch-size {batch_size} does not share equally among {self.size} processes: choose a "
                            f"multiple of {self.size} ({fits})")
        return batch_size // self.size

    def barrier(self):
        if self.size > 1:
            dist.barrier()

    def close(self):
        if self.size > 1 and dist.is_initialized():
            dist.destroy_process_group()


@functools.cache
def gpus_the_driver_lists():
    """The GPUs `nvidia-smi -L` lists (its lines), [] where there is no NVIDIA driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.startswith("GPU ")]


def resolve_device(name):
    """The torch device for `--device`: auto, cpu, cuda or cuda:N; a wrong one is a UserError.
    auto refuses to fall back to the CPU where the driver lists a GPU that this torch cannot
    use (a CPU build, or a CUDA build newer than the driver): hours on the CPU by mistake."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if gpus_the_driver_lists():
            build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
            raise UserError(f"--device auto: nvidia-smi lists {gpus_the_driver_lists()[0].split(' (UUID')[0]} but "
                            f"torch {torch.__version__} ({build}) cannot use it: install a torch build for this "
                            f"driver (docs/installation.md), or pass --device cpu to run on the CPU")
        return torch.device("cpu")
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


def synchronize(device):
    """Return once `device` has done what it was given: a GPU runs behind the host, so a
    timing ends here."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def add_device_option(parser):
    parser.add_argument("--device", default="auto", type=_device_option,
                        help="auto (cuda if there is one, else cpu), cpu, cuda or cuda:N (default: auto)")


def resolve_precision(name, device):
    """torch.bfloat16 or torch.float32 for `--precision` auto/float32/bfloat16. auto takes
    bfloat16 autocast where the hardware runs it natively (CUDA GPUs from Ampere on, and CPUs
    with AVX-512 BF16 or AMX, where it about halves the time of a training step or a forward
    pass; older GPUs emulate it, slowly). float32 means float32: TF32 is turned off
    (exact_float32)."""
    if name == "auto":
        if device.type == "cuda":
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        else:
            native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
        name = "bfloat16" if native else "float32"
    if name == "float32":
        exact_float32()
    return getattr(torch, name)


def exact_float32():
    """CUDA runs float32 convolutions on its TF32 units by default (10 bits of mantissa, on
    Ampere and newer): emulated, that moved untrained CLMR's between-clip differences by a
    third, the very differences its probes read. These switches make float32 IEEE float32
    for cuDNN's convolutions and CUDA's matrix products (torch's fp32_precision API)."""
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cuda.matmul.fp32_precision = "ieee"


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
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        device = rank_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return World(rank=rank, size=size, device=device)


def rank_device(local_rank):
    """The GPU of the process of `local_rank` on its machine: its own where it sees them all
    (torchrun), the one it sees where a scheduler binds one GPU to each task (Slurm's
    --gpus-per-task: every rank sees only cuda:0)."""
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def to_device(tensor, device):
    """A host tensor on `device`, copied from pinned memory when that is a GPU: the GPU makes
    the copy in its own time while the host goes on (from ordinary memory the host would
    wait for the GPU to finish everything queued before it)."""
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def unwrap(model):
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
