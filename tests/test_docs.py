"""The project documents itself: a short README, links that lead somewhere, no outside design doc."""

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

README_LIMIT_BYTES = 10 * 1024
# Local state that is not the repository's: tools, environments, caches and build output.
SKIPPED_DIRS = {".git", ".venv", ".hypothesis", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}
# A reference to a design document the repository does not hold (the brief it was built from);
# spelled in two pieces so that this file does not match itself.
OUTSIDE_DESIGN = re.compile("DESIGN" + r"(\.md|\s+section)\b")
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def repository_files() -> list[Path]:
    """The files a clone holds: git's list when this is a checkout, else a walk of the tree."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return [
            path
            for path in ROOT.rglob("*")
            if path.is_file()
            and not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts)
            and not any(part.endswith(".egg-info") for part in path.relative_to(ROOT).parts)
        ]
    return [ROOT / name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def links(markdown: str) -> list[str]:
    """Link targets outside code blocks and inline code."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return LINK.findall(prose)


def test_readme_stays_short():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes; the reference belongs in docs/"


def test_readme_keeps_the_two_commands_ci_runs():
    # .ci/run runs the second line verbatim; people copy the first.
    block = (ROOT / "README.md").read_text(encoding="utf-8").split("```sh\n", 1)[1].splitlines()
    assert block[:2] == [
        "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/pong selfplay",
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest",
    ]
    assert block[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_nothing_refers_to_a_design_document_outside_the_repository():
    offenders = []
    for path in repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # images, replays and other binary data
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE_DESIGN.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "refer to docs/design.md instead:\n" + "\n".join(offenders)


def broken_links(doc: Path) -> list[str]:
    """The relative links of a Markdown file that lead to no file, or to no heading of one."""
    broken = []
    for target in links(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto: ... are not files of the repository
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text("utf-8")):
            broken.append(f"{target}: no heading with that anchor")
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_lead_somewhere(doc):
    assert not broken_links(doc), f"{doc.relative_to(ROOT)}: " + "; ".join(broken_links(doc))


def test_the_checks_above_can_fail(tmp_path):
    # Each check must be able to see what it looks for.
    assert OUTSIDE_DESIGN.search("see " + "DESIGN" + " section 5")
    assert OUTSIDE_DESIGN.search("the brief, " + "DESIGN" + ".md")
    assert not OUTSIDE_DESIGN.search("docs/design.md")
    (tmp_path / "there.md").write_text("# Where `it` is: here\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[a](there.md#where-it-is-here) [b](gone.md) ![c](gone.png) [d](there.md#nowhere)\n"
        "[e](https://example.org/x) [f](#top) `[g](code.md)`\n\n```\n[h](block.md)\n```\n# Top\n",
        encoding="utf-8",
    )
    assert broken_links(doc) == [
        "gone.md: no such file",
        "gone.png: no such file",
        "there.md#nowhere: no heading with that anchor",
    ]
