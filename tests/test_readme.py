"""README.md and docs/: the Quick start shows exactly two command lines, .ci/run runs the documented
commands byte for byte, and every relative link (README -> docs/, docs/ -> docs/) resolves, anchors
included."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
FENCE = re.compile(r"^```.*?^```[ \t]*$", flags=re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def section(text: str, heading: str) -> str:
    """The body of the level-2 section `## heading`, up to the next level-2 heading."""
    assert f"\n## {heading}\n" in text, f"README.md has no section '## {heading}'"
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def quick_start_commands(readme: str) -> list[str]:
    return re.findall(r"^```(?:bash|sh)?\n(.*?)\n```", section(readme, "Quick start"), flags=re.M | re.S)


def editor_line(readme: str) -> str:
    found = re.search(r"^(\.venv/bin/python -m pytest -m editor \S+)$", section(readme, "Tests"), flags=re.M)
    assert found, "README.md's Tests section shows no real-editor command line"
    return found.group(1)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", FENCE.sub("", markdown), flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def relative_links(markdown: str) -> list[str]:
    return [t for t in LINK.findall(FENCE.sub("", markdown)) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def broken_links(page: Path) -> list[str]:
    broken = []
    text = page.read_text()
    for target in relative_links(text):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_file():
            broken.append(f"{target} (no file {file.relative_to(REPO) if file.is_relative_to(REPO) else file})")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            broken.append(f"{target} (no heading #{anchor} in {file.relative_to(REPO)})")
    return broken


def test_quick_start_shows_exactly_two_command_lines():
    commands = quick_start_commands(README.read_text())
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands
    main_line, test_line = commands
    assert re.fullmatch(r"python3 install\.py && \.venv/bin/dragedit \w+", main_line), main_line
    assert re.fullmatch(r"python3 install\.py --dev .* && \.venv/bin/python -m pytest -q", test_line), test_line


def test_ci_runs_the_documented_commands_byte_for_byte():
    readme = README.read_text()
    test_line = quick_start_commands(readme)[1]
    documented = re.findall(r'^run_documented \w+ "(.*)"$', (REPO / ".ci" / "run").read_text(), flags=re.M)
    assert documented == [test_line, editor_line(readme)]


def test_quick_start_runs_a_real_dragedit_command():
    command = re.fullmatch(r"python3 install\.py && \.venv/bin/dragedit (\w+)", quick_start_commands(README.read_text())[0])
    assert subprocess.run([str(REPO / ".venv" / "bin" / "dragedit"), command.group(1), "--help"],
                          capture_output=True).returncode == 0, f"dragedit has no command {command.group(1)!r}"


def test_every_readme_link_resolves():
    links = relative_links(README.read_text())
    assert any(t.startswith("docs/") for t in links), "README.md links to nothing in docs/"
    assert broken_links(README) == []


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_docs_link_resolves(page):
    assert broken_links(page) == []


def test_readme_links_every_docs_page():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in relative_links(README.read_text())}
    assert [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked] == []


@pytest.mark.parametrize("heading, anchor", [
    ("## `dragedit edit`", "dragedit-edit"),
    ("## install.py", "installpy"),
    ("## The papers' measures on the shipped model (2026-11-29)", "the-papers-measures-on-the-shipped-model-2026-11-29"),
    ("### Why, measured", "why-measured"),
])
def test_anchor_slugs_as_github_makes_them(heading, anchor):
    assert anchor in anchors(heading + "\n")
