"""The docs: the site builds with no warning, and every code block of the README and the
docs pages runs as written.

Python blocks (```python) of one page run in order in one namespace, in a temporary
working directory that links the checkout's data/, enumeration/ and calculators/ (so the
paths the pages use resolve as in a checkout, and whatever a block writes stays in the
temporary directory). Shell blocks (```console / ```bash) of the guides run their `$ `
lines there too. A block preceded by `<!-- norun -->` is not run (long jobs: labels,
training, the interactive UI); there are few, and the test counts them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDES = DOCS / "guide"
NORUN = "<!-- norun -->"
SHELL = ("console", "bash", "sh", "shell")
FENCE = re.compile(r"^```(\S*)(.*)$")
# The pages whose blocks run, README first: the README's quickstart trains the Pt
# limit-24 forest into the session's model cache, which the guides reuse.
TOPICS = sorted(
    (p for p in DOCS.rglob("*.md") if "api" not in p.relative_to(DOCS).parts),
    key=lambda p: (p.parent != GUIDES, str(p)),
)
PAGES = [ROOT / "README.md", *TOPICS]


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    run: bool

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with their language and norun mark."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, k = [], 0
    while k < len(lines):
        match = FENCE.match(lines[k])
        if not match:
            k += 1
            continue
        start, language = k, match.group(1).lower()
        end = next((j for j in range(k + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{page}:{k + 1}: unclosed code block"
        previous = next((lines[j].strip() for j in range(k - 1, -1, -1) if lines[j].strip()), "")
        code = "\n".join(lines[start + 1 : end]) + "\n"
        found.append(Block(page, start + 1, language, code, run=previous != NORUN))
        k = end + 1
    return found


def runnable_shell(block: Block) -> bool:
    """Shell blocks run in the guides (the README's and the topic pages' are examples)."""
    return block.language in SHELL and block.run and block.page.parent == GUIDES


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A temporary working directory with the checkout's bundled directories linked in."""
    for name in ("data", "enumeration", "calculators"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_front_door() -> None:
    """The README starts with the two commands CI depends on and stays short."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith(
        "# qcapprox\n\n```\n"
        "make demo   # set-up (.venv, pinned deps) + the main job on the bundled defaults\n"
        "make test   # set-up + the test suite (what CI runs)\n```\n"
    )
    assert len(text.splitlines()) < 200


@pytest.mark.parametrize(
    "page",
    [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_dates_or_private_paths(page: Path) -> None:
    """No date stamps in running text and no path a clone does not have."""
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), f"{page}: a date stamp"
    assert "../shared" not in text, f"{page}: ../shared is not in a clone"


def test_few_blocks_not_run() -> None:
    """Blocks marked not to run are the exception: long jobs and the interactive UI."""
    python = [b for page in PAGES for b in blocks(page) if b.language == "python"]
    skipped = [b.where() for b in python if not b.run]
    assert len(skipped) <= 5, skipped
    assert len(python) - len(skipped) >= 15
    for block in (b for page in PAGES for b in blocks(page)):
        assert block.language in ("", "text", "python", *SHELL), block.where()


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if any(b.language == "python" and b.run for b in blocks(p))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_python_blocks_run(page: Path, workdir: Path) -> None:
    """Every python block of a page runs, in order, in one namespace."""
    namespace: dict = {"__name__": "__main__"}
    for block in blocks(page):
        if block.language != "python" or not block.run:
            continue
        try:
            exec(compile(block.code, block.where(), "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"{block.where()}: the block fails: {err!r}") from err


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if any(runnable_shell(b) for b in blocks(p))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_shell_blocks_run(page: Path, workdir: Path) -> None:
    """The cheap shell commands of the guides (`$ ` lines) exit with 0."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["COLUMNS"] = "100"
    for block in filter(runnable_shell, blocks(page)):
        for line in block.code.splitlines():
            if not line.startswith("$ "):
                continue
            done = subprocess.run(
                ["bash", "-c", line[2:]], cwd=workdir, env=env, capture_output=True, text=True,
                timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, f"{block.where()}: {line}\n{done.stdout}{done.stderr}"


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
    reason="mkdocs and mkdocstrings are not installed (pip install -e '.[dev]')",
)
def test_site_builds_without_warnings(tmp_path: Path) -> None:
    """`mkdocs build --strict`: any warning (a broken link or anchor, a page missing from the
    nav, a docstring mkdocstrings cannot parse) fails."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
         "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (tmp_path / "site" / "api" / "calculators" / "index.html").is_file()
    shutil.rmtree(tmp_path / "site")
