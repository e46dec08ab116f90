"""The front door stays true: README's set-up and test commands are the ones CI runs, and
every link and repository path the documentation names exists."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "data" / "README.md"]
# a file of the repository as the pages name it: from one of its top-level folders
FOLDERS = "common|tests|benchmarks|notebooks|docs|figures/demo|data|vggish|musicnn|ast|clmr|tmae|tune|mulap"
REPO_PATH = re.compile(rf"(?<![\w./<-])((?:{FOLDERS})/[\w./-]*\.(?:py|ipynb|md|gz|txt|tsv|png))\b")


def _quick_start_commands():
    text = (REPO / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readmes_set_up_and_full_test_commands_are_what_ci_runs():
    commands = _quick_start_commands()
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    setup = next(c for c in commands if c.startswith("pip install"))
    assert setup == "pip install -r requirements.txt" and setup in ci
    assert "python -m pytest" in commands and "python -m pytest" in ci
    assert 'python -m pytest -m "not slow"' in commands


def test_every_link_in_the_docs_leads_to_a_file_of_the_repository():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
            if not re.match(r"https?://", target) and not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken


def test_every_repository_path_the_docs_name_exists():
    missing = []
    for page in PAGES:
        for path in set(REPO_PATH.findall(page.read_text())):
            if "<" not in path and "*" not in path and not (REPO / path).exists():
                missing.append(f"{page.relative_to(REPO)}: {path}")
    assert not missing
