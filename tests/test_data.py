"""The tests read only what the checkout carries: a fresh clone passes with nothing beside it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import DATA

ROOT = Path(__file__).resolve().parents[1]
# A module under tests/ reaching above the checkout (`Path(__file__).parents[2]` is the
# checkout's parent), or at the folder that used to hold the data beside it. Paths with
# `..` in test data are hostile inputs the tests feed pixgate, not places they read.
_OUTSIDE = re.compile(r"parents\[(?:[2-9]|\d{2,})\]|shared/data|\"shared\"")


def test_the_data_root_is_inside_the_checkout() -> None:
    assert DATA.resolve().is_relative_to(ROOT)
    files = [p for p in DATA.rglob("*") if not p.is_dir()]
    assert files
    for path in files:  # no link leads out, and nothing but regular files
        assert not path.is_symlink() and path.is_file(), path
        assert path.resolve().is_relative_to(ROOT), path


def test_no_test_names_a_path_outside_the_checkout() -> None:
    here = Path(__file__).resolve()
    for module in sorted(ROOT.joinpath("tests").rglob("*.py")):
        if module.resolve() == here:
            continue
        found = _OUTSIDE.search(module.read_text(encoding="utf-8"))
        assert found is None, f"{module.relative_to(ROOT)}: {found.group(0)!r}"


def test_each_data_set_says_where_it_comes_from() -> None:
    for folder in (DATA / "pngsuite", DATA / "icc"):
        readme = (folder / "README.md").read_text(encoding="utf-8")
        assert "licen" in readme.lower() or "free to use" in readme.lower(), folder
