"""The documentation's references hold: every relative Markdown link (and heading anchor) in the README
and the docs pages points at something that exists, every `docs/...` path named anywhere in the
project exists, every docs page is one click from the README, and the README's layout names every
package and config group. Cheap: text only, no imports of the project."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
MARKDOWN = [README, *PAGES]
# Where a bare `docs/<page>` mention may appear: code, configs, benchmarks, tests and the Markdown itself.
SOURCES = sorted(
    p for pattern in ("src/**/*.py", "conf/**/*.yaml", "benchmarks/**/*.py", "tests/**/*.py", ".ci/*")
    for p in ROOT.glob(pattern) if p.is_file()
) + MARKDOWN

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
DOCS_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*\w")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """Markdown without fenced code blocks and inline code, where links are links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()  # a link in a heading keeps its text
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of `page`, with GitHub's -1, -2 ... suffixes for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text())) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_slug_follows_githubs_rule():
    assert slug("GPU benchmark: `python -m benchmarks.throughput`") == "gpu-benchmark-python--m-benchmarksthroughput"
    assert slug("Base configs: shared keys in one place") == "base-configs-shared-keys-in-one-place"
    assert slug("The course notes' recipes") == "the-course-notes-recipes"


@pytest.mark.parametrize("page", MARKDOWN, ids=rel)
def test_every_relative_link_exists(page: Path):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no heading #{anchor} in {rel(file)})")
    assert not broken, f"{rel(page)} links to: {', '.join(broken)}"


@pytest.mark.parametrize("source", SOURCES, ids=rel)
def test_every_docs_path_named_exists(source: Path):
    named = {m.rstrip(".") for m in DOCS_PATH.findall(source.read_text(errors="replace"))}
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"{rel(source)} names {', '.join(missing)}, which does not exist"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README)}
    assert [rel(p) for p in PAGES if p.resolve() not in linked] == []


def test_the_readme_is_a_tour_and_keeps_the_two_commands():
    text = README.read_text()
    assert len(text.encode()) <= 15_500, "the README is a tour: move details to a docs page"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/setup && .venv/bin/python -m pytest" in ci
    assert "bash .ci/setup && .venv/bin/python -m pytest" in text
    assert "bash .ci/setup && .venv/bin/python -m src.train" in text


def test_the_readme_layout_names_every_package_and_config_group():
    layout = README.read_text().split("## Project layout", 1)[1]
    packages = [p.name for p in (ROOT / "src").iterdir() if (p / "__init__.py").exists()]
    packages += [p.name for p in (ROOT / "src" / "models").iterdir() if (p / "__init__.py").exists()]
    groups = [p.name for p in (ROOT / "conf").iterdir() if p.is_dir()]
    missing = [name for name in packages + groups if not re.search(rf"(?<![\w]){name}/", layout)]
    assert missing == [], f"the README's project layout does not show {missing}"
