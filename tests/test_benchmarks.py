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
