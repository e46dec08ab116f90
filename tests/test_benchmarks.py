import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_benchmarks_print_rows_with_the_machines_limit_and_the_fraction_reached(data_root):
    """A smoke run of benchmarks/run.py, one row against each kind of limit (memory, arithmetic):
    speed is measured there, never asserted here; what is checked is that every row says what
    it was compared to."""
    out = subprocess.run([sys.executable, "benchmarks/run.py", "--quick", "--only", "loader", "--only", "frontend",
                          "--data-root", str(data_root)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["name"] for r in rows] == ["loader", "frontend"]
    for row in rows:
        assert {"ours", "baseline", "ratio", "target", "limit", "of_limit"} <= set(row)
        assert row["ours"] > 0 and 0 < row["of_limit"] < 1.5, row
    assert rows[0]["limit"].endswith("GB/s of a memory copy") and "GFLOP/s of a float32 matmul" in rows[1]["limit"]


@pytest.mark.slow
def test_the_gpu_check_runs_every_row_on_the_cpu_in_smoke_mode(tmp_path, data_root):
    """benchmarks/gpu_check.sh is written for a GPU no session may have: its smoke mode on the
    CPU runs every row but torchrun's (which needs two GPUs) to the end, and the table says so."""
    out = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--device", "cpu", "--smoke", "--out", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in (tmp_path / "rows.tsv").read_text().splitlines()}
    assert list(rows) == ["environment", "train vggish", "resume vggish", "float32 vs tf32", "torchrun 2 GPUs",
                          "extract", "probes", "plan"]
    assert all(status == "ok" for name, (status, _) in rows.items() if name != "torchrun 2 GPUs"), rows
    assert rows["torchrun 2 GPUs"][0] == "skipped"
    assert "items/s at batch 8" in rows["train vggish"][1] and "finished at step 8" in rows["resume vggish"][1]
    assert "extract" in out.stdout and "(logs and runs under" in out.stdout


def test_the_gpu_check_refuses_an_unknown_option():
    out = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--devices", "cuda"], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: unknown option --devices (see the comment at the top of benchmarks/gpu_check.sh)"]
