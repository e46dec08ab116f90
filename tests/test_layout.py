import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ast_folder_does_not_shadow_the_standard_library():
    assert not (REPO / "ast" / "__init__.py").exists()
    out = subprocess.run([sys.executable, "-c", "import ast, inspect, dataclasses; print(ast.__file__)"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "site-packages" not in out.stdout and not out.stdout.startswith(str(REPO))
