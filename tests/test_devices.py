"""The device and precision choices the CUDA path depends on, checked where a CPU can show them:
no silent fall-back to the CPU, float32 without TF32, bfloat16 only where it is native, a rank's
GPU under any binding, batches that share equally, and NT-Xent's product in float32."""
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from common.cli import UserError
from common.models.registry import train_script
from common.training import distributed
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
