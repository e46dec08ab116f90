import os
import subprocess
import sys
from pathlib import Path

import pytest

# Each pytest-xdist worker, and each command its tests start, takes its share of the cores. Left
# to their defaults, PyTorch's and OpenBLAS's threads in two workers at once, each as many as the
# cores, spin against each other: the tests of test_stats.py and test_finetune.py took 2.5 times
# as long on 2 cores. Set before torch and numpy are imported, which read it once.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # a worker's, not the process that starts them
    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // workers)))

import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common.allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()  # as every command does (cli.run), for the tests that call their main() here


def pytest_configure(config):
    """Before pytest-xdist starts its workers, compile in this one process the librosa functions
    numba caches, for both dtypes the tests and commands hand them. numba writes each compiled
    gufunc as two files, not as a pair: two workers compiling one at once can leave a mixed
    pair that crashes the next process to load it (numba/numba#10128, seen as a segfault in
    librosa.pyin in a fresh venv). The workers, and the commands they start, then only read."""
    if hasattr(config, "workerinput"):
        return
    import librosa
    import numpy as np

    from common.evaluation import handcrafted
    for dtype in (np.float32, np.float64):
        y = (np.random.default_rng(0).standard_normal(handcrafted.SAMPLE_RATE) * 0.1).astype(dtype)
        handcrafted.features(y)
        librosa.feature.melspectrogram(y=y, sr=16000)
        librosa.pyin(y, fmin=60, fmax=1000, sr=handcrafted.SAMPLE_RATE)


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
