"""The user guide's code runs, and its links and paths point to files that exist.

Every ```python block of ``docs/*.md`` runs; the blocks of one page run in order in one
namespace, so a page can build on its earlier blocks. Each page runs in a temporary working
directory (examples may write files) with matplotlib's Agg backend. The measurement logs of
``docs/experiments/`` are records, not examples, and are not run. A block that must not run
(shell commands, output) is fenced as ```bash or ```text.
"""

import re
import textwrap
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# A fenced block, possibly indented (inside a list item): indent, language, code.
FENCE = re.compile(r"^([ \t]*)```(\w*)[ \t]*\n(.*?)^\1```[ \t]*$", re.MULTILINE | re.DOTALL)
# Markdown links [text](target) and images ![alt](target).
LINK = re.compile(r"\]\(([^)\s]+)\)")
# Paths under docs/ named in prose or docstrings, e.g. ``docs/experiments/moco.md``.
DOCS_PATH = re.compile(r"\bdocs/[\w./-]*\w\.(?:md|csv|png)\b")


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """The ```python blocks of a page: (lines before the block's first line, code)."""
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start(3)), textwrap.dedent(match.group(3)))
        for match in FENCE.finditer(text)
        if match.group(2) == "python"
    ]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to -."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#{1,6}[ \t]+(.+?)[ \t]*#*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


PAGES = sorted(page for page in DOCS.glob("*.md") if python_blocks(page))


def test_the_guide_pages_have_examples():
    names = {page.name for page in PAGES}
    expected = {
        "getting-started.md",
        "embedder.md",
        "regressor.md",
        "recipes.md",
        "search.md",
        "training.md",
    }
    assert expected <= names, f"pages without python examples: {sorted(expected - names)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_examples_run(page, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    try:
        for offset, code in python_blocks(page):
            # Leading newlines make tracebacks give the line of the block in the page.
            exec(compile("\n" * offset + code, str(page), "exec"), namespace)
    finally:
        plt.close("all")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve(path):
    text = path.read_text(encoding="utf-8")
    missing = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # a URL
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            missing.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            missing.append(target)
    assert not missing, f"{path.relative_to(ROOT)} links to missing files or headings: {missing}"


def test_docs_paths_named_in_text_exist():
    """Paths such as ``docs/experiments/moco.md`` in the README, the guide and the package's
    docstrings name files that exist (benchmark scripts may name outputs not yet written)."""
    sources = [*_markdown_files(), *sorted((ROOT / "skphotoz").rglob("*.py"))]
    missing = {
        f"{source.relative_to(ROOT)}: {name}"
        for source in sources
        for name in DOCS_PATH.findall(source.read_text(encoding="utf-8"))
        if not (ROOT / name).exists()
    }
    assert not missing, f"paths to missing files: {sorted(missing)}"
