"""The install: the wheel `pip install .` builds carries the library and every model, and
works away from the checkout (the full fresh-venv install is measured in docs/installation.md)."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import save_untrained

from common.models.registry import MODELS

pytestmark = pytest.mark.slow  # a wheel build

REPO = Path(__file__).resolve().parent.parent


# What hear-validator (and hear-eval-kit) does with a module name: a console script, whose
# sys.path starts at its own folder rather than the working one
VALIDATOR = """import importlib, sys, torch
module = importlib.import_module(sys.argv[1])
model = module.load_model(sys.argv[2])
scene = module.get_scene_embeddings(torch.rand(2, model.sample_rate) * 2 - 1, model)
print(tuple(scene.shape))
"""


def test_the_wheel_holds_every_model_under_a_name_of_its_own_and_builds_them_away_from_the_checkout(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                          "--quiet", "-w", str(tmp_path / "wheel")], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"limited_data_music/study_models/{m}/model.py" for m in MODELS} <= names
    assert {"limited_data_music/resources/mtat_index.tsv.gz", "limited_data_music/resources/study_results.csv.gz",
            "limited_data_music/models/hear.py"} <= names
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")} == \
        {"limited_data_music"}
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("import json; from limited_data_music.models import registry as models; "
            "print(json.dumps([str(models.MODELS_ROOT)] + [models.describe(models.build(m))['params'] "
            "for m in models.MODELS]))")
    installed = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=installed)
    assert out.returncode == 0, out.stderr[-2000:]
    root, *params = json.loads(out.stdout)
    assert root == str(tmp_path / "site" / "limited_data_music" / "study_models") and len(params) == len(MODELS)
    checkpoint = save_untrained("clmr", tmp_path / "untrained.pt")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "validator.py").write_text(VALIDATOR)
    out = subprocess.run([sys.executable, str(tmp_path / "bin" / "validator.py"), "limited_data_music.models.hear",
                          str(checkpoint)], cwd=tmp_path, capture_output=True, text=True, env=installed)
    assert out.returncode == 0 and out.stdout.strip() == "(2, 512)", out.stderr[-2000:]


def test_the_hear_module_of_a_checkout_loads_as_readme_shows_from_its_root(tmp_path):
    """README: PYTHONPATH=. hear-validator common.models.hear --model ... from the repository root."""
    checkpoint = save_untrained("tmae", tmp_path / "untrained.pt")
    (tmp_path / "validator.py").write_text(VALIDATOR)
    command = [sys.executable, str(tmp_path / "validator.py"), "common.models.hear", str(checkpoint)]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "."})
    assert out.returncode == 0 and out.stdout.strip() == "(2, 256)", out.stderr[-2000:]
