"""The install: the wheel `pip install .` builds carries the library and every model, and
works away from the checkout (the full fresh-venv install is measured in docs/installation.md)."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from common.models.registry import MODELS

pytestmark = pytest.mark.slow  # a wheel build

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_model_and_builds_them_away_from_the_checkout(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                          "--quiet", "-w", str(tmp_path / "wheel")], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"study_models/{m}/model.py" for m in MODELS} <= names
    assert {"common/resources/mtat_index.tsv.gz", "common/resources/study_results.csv.gz",
            "common/models/hear.py"} <= names
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("import json; from common.models import registry as models; "
            "print(json.dumps([str(models.MODELS_ROOT)] + [models.describe(models.build(m))['params'] "
            "for m in models.MODELS]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    root, *params = json.loads(out.stdout)
    assert root == str(tmp_path / "site" / "study_models") and len(params) == len(MODELS)
