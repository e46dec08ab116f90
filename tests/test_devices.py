"""The device and precision choices the CUDA path depends on, checked where a CPU can show them:
no silent fall-back to the CPU, float32 without TF32, bfloat16 only where it is native, a rank's
GPU under any binding, batches that share equally, and NT-Xent's product in float32."""
import os
import runpy
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

from common.cli import UserError
from common.models.registry import train_script
from common.training import distributed, loop
from common.training.distributed import World, rank_device, resolve_device, resolve_precision

NVIDIA_SMI = "#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0a1b2c3d)'\n"


@pytest.fixture
def driver_with_a_gpu(tmp_path, monkeypatch):
    """A PATH whose nvidia-smi lists an H100, on this machine where torch sees no CUDA device."""
    (tmp_path / "nvidia-smi").write_text(NVIDIA_SMI)
    (tmp_path / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    distributed.gpus_the_driver_lists.cache_clear()
    yield tmp_path
    distributed.gpus_the_driver_lists.cache_clear()


def test_auto_refuses_the_cpu_where_the_driver_lists_a_gpu_torch_cannot_use(driver_with_a_gpu):
    with pytest.raises(UserError, match="nvidia-smi lists GPU 0: NVIDIA H100 80GB HBM3 but torch .* cannot use "
                                        "it: .* or pass --device cpu") as error:
        resolve_device("auto")
    assert "\n" not in str(error.value)
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_command_on_auto_stops_in_one_line_before_any_work(driver_with_a_gpu):
    out = subprocess.run([sys.executable, "downstream.py", "--model", "vggish", "--task", "pitch", "--demo"],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ})
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "nvidia-smi lists GPU 0: NVIDIA H100" in out.stderr


def test_without_a_driver_auto_is_the_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    distributed.gpus_the_driver_lists.cache_clear()
    try:
        assert resolve_device("auto") == torch.device("cpu")
    finally:
        distributed.gpus_the_driver_lists.cache_clear()


def test_float32_means_ieee_float32_without_tf32():
    before = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    try:
        torch.backends.cudnn.conv.fp32_precision = "tf32"  # torch's default for convolutions
        assert resolve_precision("float32", torch.device("cpu")) == torch.float32
        assert torch.backends.cudnn.conv.fp32_precision == torch.backends.cuda.matmul.fp32_precision == "ieee"
    finally:
        torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = before


@pytest.mark.parametrize("native,expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_takes_bfloat16_only_on_gpus_that_run_it_natively(monkeypatch, native, expected):
    asked = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: asked.append(including_emulation) or native)
    assert resolve_precision("auto", torch.device("cuda")) == expected
    assert asked == [False]  # a pre-Ampere GPU emulates bfloat16: slower than float32


@pytest.mark.parametrize("visible,local_rank,expected", [(4, 3, 3), (1, 3, 0), (2, 3, 1)])
def test_a_rank_takes_a_gpu_it_can_see(monkeypatch, visible, local_rank, expected):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    assert rank_device(local_rank) == torch.device("cuda", expected)


def test_a_batch_the_processes_cannot_share_equally_is_refused_not_rounded():
    assert World(size=2).batch_share(8) == 4
    with pytest.raises(UserError, match="--batch-size 10 does not share equally among 4 processes: choose a "
                                        "multiple of 4 \\(8, 12\\)"):
        World(size=4).batch_share(10)
    with pytest.raises(UserError, match="\\(4\\)"):
        World(size=4).batch_share(3)


def test_nt_xent_compares_the_projections_in_float32_under_bfloat16_autocast():
    nt_xent = train_script("clmr").nt_xent
    z = torch.randn(20, 64, generator=torch.Generator().manual_seed(0))
    exact = nt_xent(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert nt_xent(z.to(torch.bfloat16)).dtype == torch.float32
        torch.testing.assert_close(nt_xent(z), exact, rtol=0, atol=0)


class SimulatedGPU(TorchDispatchMode):
    """A CPU run seen as a GPU run: every tensor made from the model's parameters or handed to
    `to_device` counts as on the device, and so does everything computed from one. Reading
    a device value on the host (item, tolist, cpu, numpy, bool, a boolean index, nonzero,
    unique) is what makes the host wait for a GPU: each read is recorded as (what, the
    project's file it happened in, the names of the project's functions it happened in)."""
    READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
             torch.ops.aten._unique2.default, torch.ops.aten.unique_consecutive.default,
             torch.ops.aten.masked_select.default, torch.ops.aten.unique_dim.default}
    INDEXING = {torch.ops.aten.index.Tensor, torch.ops.aten.index_put_.default, torch.ops.aten.index_put.default}

    def __init__(self):
        super().__init__()
        self.on_device, self.reads = WeakTensorKeyDictionary(), []

    def mark(self, tensor):
        self.on_device[tensor] = True
        return tensor

    def read(self, what):
        places = [f for f in traceback.extract_stack() if f.filename.startswith(str(REPO)) and
                  "/tests/" not in f.filename]
        self.reads.append((what, str(Path(places[-1].filename).relative_to(REPO)), {f.name for f in places}))

    def reads_in(self, function):
        return [f"{what} in {file}" for what, file, functions in self.reads if function in functions]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        on_device = any(t in self.on_device for t in tensors)
        boolean_index = func in self.INDEXING and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in tree_flatten(args[1])[0])
        if on_device and (func in self.READS or boolean_index):
            self.read(str(func))
        out = func(*args, **kwargs)
        if on_device:
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self.mark(t)
        return out


class _ListReads(TorchFunctionMode):
    """tolist(), cpu() and numpy() of a CPU tensor read it without passing through the dispatcher."""
    METHODS = {torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy}

    def __init__(self, gpu):
        super().__init__()
        self.gpu = gpu

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.METHODS and args[0] in self.gpu.on_device:
            self.gpu.read(func.__name__)
        out = func(*args, **(kwargs or {}))
        if func is torch.Tensor.cpu:  # the copy on the host (here the tensor itself) is the host's
            self.gpu.on_device.pop(out, None)
        return out


@pytest.mark.parametrize("model", ["vggish", "clmr", "tmae", "mulap"])
def test_a_training_step_never_waits_for_the_device(model, tmp_path, data_root, monkeypatch):
    """The tagging models, CLMR's augmentations and NT-Xent, masking and captions: four steps
    read nothing back inside a step; the host reads the losses after the first step (the
    warm-up), every READ_EVERY (here 3) steps and before the final save."""
    gpu = SimulatedGPU()
    original = distributed.to_device
    for module in list(sys.modules.values()):
        if getattr(module, "to_device", None) is original:
            monkeypatch.setattr(module, "to_device", lambda t, device: gpu.mark(original(t, device).clone()))
    monkeypatch.setattr(loop, "build_for", _marking(loop.build_for, gpu))
    monkeypatch.setattr(loop, "READ_EVERY", 3)
    monkeypatch.setattr(sys, "argv", [f"{model}/train.py", "--demo", "--subset", "1", "--batch-size", "2",
                                      "--max-steps", "4", "--runs-dir", str(tmp_path), "--device", "cpu"])
    with gpu, _ListReads(gpu):
        runpy.run_path(str(REPO / model / "train.py"), run_name="__main__")
    # MuLaP's backbone embeds the sounding chunks of a crop alone, and their number is data:
    # one read a step
    assert gpu.reads_in("step") == (["aten.nonzero.default in mulap/model.py"] * 4 if model == "mulap" else [])
    assert gpu.reads_in("read_losses") == ["tolist in common/training/loop.py"] * 3  # after steps 1 and 3, at 4
    log = (tmp_path / "demo" / model / "1" / "seed0" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["1", "2", "3", "4"]


def _marking(build_for, gpu):
    def build_and_mark(*args):
        model = build_for(*args)
        for tensor in [*model.parameters(), *model.buffers()]:
            gpu.mark(tensor)
        return model
    return build_and_mark


def test_batchnorm_over_the_global_batch_is_torchs_syncbatchnorm_on_gpus():
    """NCCL runs torch's fused SyncBatchNorm; the CPU's gloo runs GlobalBatchNorm. Either
    way the layers keep their trained state."""
    from common.models.registry import build
    from common.training.global_batch import GlobalBatchNorm, sync_batchnorm
    for device, kind in ((torch.device("cuda"), torch.nn.SyncBatchNorm), (torch.device("cpu"), GlobalBatchNorm)):
        model = build("vggish", n_tags=50)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        converted = sync_batchnorm(model, device)
        norms = [m for m in converted.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert norms and all(type(m) is kind for m in norms)
        assert converted.state_dict().keys() == state.keys()
        assert all(torch.equal(converted.state_dict()[k], v) for k, v in state.items())


def test_extraction_reads_the_embeddings_back_every_read_every_batches(monkeypatch):
    """Eleven clips of 1-3 windows in batches of 4: six batches, read back after the third and
    the sixth, and the same means as when every batch is read at once."""
    from common.evaluation import extraction
    from common.models.registry import build
    torch.manual_seed(0)
    encoder = build("vggish", n_tags=50).eval()
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(encoder.input_samples * (1 + i % 3)).astype(np.float32) * 0.1 for i in range(11)]

    def embedded(read_every):
        monkeypatch.setattr(extraction, "READ_EVERY", read_every)
        out = np.zeros((len(clips), encoder.emb_dim), dtype=np.float32)
        extraction.embed_clips(encoder, clips.__getitem__, len(clips), out, 4, torch.device("cpu"))
        return out

    expected = embedded(1)
    gpu = SimulatedGPU()
    for tensor in [*encoder.parameters(), *encoder.buffers()]:
        gpu.mark(tensor)
    monkeypatch.setattr(extraction, "to_device", lambda t, device: gpu.mark(t.clone()))
    with gpu, _ListReads(gpu):
        out = embedded(3)
    assert len(gpu.reads) == 6 and gpu.reads_in("read_back") == ["cpu in common/evaluation/extraction.py"] * 6
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
