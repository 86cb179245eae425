"""The documentation stays self-contained and true to the code it shows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def tracked_text_files() -> list[Path]:
    """The repository's tracked files that read as text."""
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [ROOT / name for name in names
            if not name.endswith((".png", ".zip", ".npz", ".pt")) and (ROOT / name).is_file()]


def anchors(page: Path) -> set[str]:
    """The fragment of every heading of a Markdown page, as GitHub spells it."""
    found: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_no_file_cites_a_page_outside_the_repository():
    outside = "spec" + ".md"  # written apart, so that this file does not cite it either
    citing = [str(path.relative_to(ROOT)) for path in tracked_text_files()
              if outside in path.read_text(errors="ignore")]
    assert citing == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_of_a_page_resolves(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        file, _, fragment = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.is_relative_to(ROOT) or not linked.exists():
            broken.append(target)
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_pages_date_results_rather_than_name_sessions(page):
    assert re.search(r"\bsessions?\b", page.read_text(), re.IGNORECASE) is None


def test_readme_shows_the_plug_in_example_whole():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Your own task family"):]
    shown = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    source = (ROOT / "examples" / "point_mass.py").read_text()
    assert shown == source[source.index("import gymnasium as gym"):]
