import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# numba caches each compiled librosa gufunc as two files, not written atomically as a pair:
# two processes compiling one at once can leave a mixed pair that crashes the next process
# to load it (numba/numba#10128). Each pytest-xdist worker, and every command it starts,
# keeps a cache of its own (set here in each worker: they inherit the controller's setting).
os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) /
                                    f"numba-cache-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")


@pytest.fixture(scope="session")
def data_root():
    """The repository's data/ folder with the demo datasets rendered (first use renders them)."""
    from common.data import demo
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


def save_untrained(model_id, path):
    """What train.py saves as untrained.pt (the tagging models with their 50 tags, MuLaP with a
    vocabulary)."""
    from common.data import captions
    from common.data.mtat import TOP50
    from common.models import checkpoints
    from common.models.registry import build_for
    tags = list(TOP50) if model_id in ("vggish", "musicnn", "ast") else None
    vocabulary = list(captions.vocabulary(["a slow piano piece"])) if model_id == "mulap" else None
    torch.manual_seed(0)
    model = build_for(model_id, tags, vocabulary)
    checkpoints.save(path, {"model_name": model_id, "subset": None, "draw": 0, "minutes": 0.0, "data": "demo",
                            "seed": 0, "tags": tags, "vocabulary": vocabulary, "model": model.state_dict(),
                            "step": 0})
    return path
