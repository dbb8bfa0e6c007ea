"""The README's package table names exactly the packages in the tree (top-level ones and their
subpackages), so a newcomer who trusts it finds every system where it says."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {"tests"}


def _packages_in_tree() -> set[str]:
    top = {p.parent.name for p in REPO.glob("*/__init__.py")} - NOT_SHIPPED
    subpackages = {
        f"{path.parent.parent.name}/{path.parent.name}" for name in top for path in REPO.glob(f"{name}/*/__init__.py")
    }
    return top | subpackages


def _packages_in_readme_table() -> set[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([\w/]+)/` \|", section, re.MULTILINE))


def test_the_readme_package_table_matches_the_tree() -> None:
    in_tree, in_readme = _packages_in_tree(), _packages_in_readme_table()
    assert in_tree, "no packages found"
    assert sorted(in_tree - in_readme) == [], "packages missing from the README's table"
    assert sorted(in_readme - in_tree) == [], "README lists packages that are not in the tree"
