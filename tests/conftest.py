import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def data_root():
    """The repository's data/ folder with the demo datasets rendered (first use renders them)."""
    from common import demo
    demo.ensure(REPO / "data")
    return REPO / "data"


def run_demo_script(script, *options, check=True, env=None):
    """Run one of the repository's scripts on the demo data from the repository root, as a
    user would; with `check`, a failure shows the end of its stderr."""
    out = subprocess.run([sys.executable, script, "--demo", "--data-root", str(REPO / "data"), *map(str, options)],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check:
        assert out.returncode == 0, out.stderr[-2000:]
    return out
