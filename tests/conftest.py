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
