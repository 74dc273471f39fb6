"""The rules of the house (ARCHITECTURE.md), held by reading every module's imports.

Each module of pixgate belongs to one part of the pipeline; a part may import only the
parts listed for it below, so data flows one way (scoring writes run files, judging and
the report read them) and the layering cannot creep. Imports inside functions and under
TYPE_CHECKING count as much as those at the top.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

ENGINE, KERNELS = ROOT / "engine", ROOT / "kernels"
#: Top-level modules of pixgate that every part stands on.
BASE = {"config", "errors", "safe_io", "locking", "telemetry"}
#: part -> the parts it may import (itself included).
ALLOWED: dict[str, set[str]] = {
    "kernels": {"kernels"},
    "base": {"base"},
    "runs": {"base", "runs"},
    "judging": {"base", "runs", "judging"},
    "scoring": {"base", "runs", "scoring", "kernels"},
    # The report draws per-pixel maps with the scoring's models and kernels.
    "report": {"base", "runs", "scoring", "kernels", "report"},
    "golden": {"base", "runs", "judging", "scoring", "golden"},
    "capture": {"base", "runs", "judging", "scoring", "report", "capture"},
    "api": {"base", "runs", "judging", "scoring", "api"},
    "cli": {"base", "runs", "judging", "scoring", "report", "golden", "capture", "kernels", "api", "cli"},
}
#: What kernels may import besides the standard library: it is a leaf, compiled by numba
#: for the CPU and for CUDA.
KERNEL_IMPORTS = {"numpy", "numba"} | set(sys.stdlib_module_names) | {"__future__"}


def _modules() -> list[tuple[str, Path]]:
    found = [("pixgate." + ".".join(p.relative_to(ENGINE).with_suffix("").parts), p) for p in ENGINE.rglob("*.py")]
    found += [("pixgate_kernels." + p.stem, p) for p in KERNELS.glob("*.py")]
    return [(name.removesuffix(".__init__"), path) for name, path in sorted(found)]


def _part(module: str) -> str:
    """The part of the pipeline a module belongs to."""
    parts = module.split(".")
    if parts[0] == "pixgate_kernels":
        return "kernels"
    if parts[0] != "pixgate":
        raise ValueError(f"{module} is not a pixgate module")
    if len(parts) == 1:
        return "api"
    if parts[1] in BASE:
        return "base"
    if parts[1] in ("cli", "__main__"):
        return "cli"
    return parts[1]


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """(module imported, line) for every import of the file, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "pixgate":
                # `from pixgate import x`: a module of the package, or the version string.
                out += [(f"pixgate.{a.name}" if a.name != "__version__" else "pixgate.config", node.lineno)
                        for a in node.names]  # fmt: skip
            else:
                out.append((base, node.lineno))
    return out


MODULES = _modules()


def test_every_module_is_in_a_part() -> None:
    parts = {_part(name) for name, _ in MODULES}
    assert parts <= set(ALLOWED), parts - set(ALLOWED)


def _violations(module: str, path: Path) -> list[str]:
    part = _part(module)
    wrong = []
    for imported, line in _imports(path, module):
        top = imported.split(".")[0]
        if top in ("engine", "kernels"):
            wrong.append(f"line {line}: {imported} (the import names are pixgate and pixgate_kernels)")
        elif top in ("pixgate", "pixgate_kernels") and _part(imported) not in ALLOWED[part]:
            wrong.append(f"line {line}: {imported} ({_part(imported)} is not allowed in {part})")
        elif part == "kernels" and top not in KERNEL_IMPORTS | {"pixgate_kernels"}:
            wrong.append(f"line {line}: {imported} (kernels import numpy and numba only)")
    return wrong


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_follow_the_layers(module: str, path: Path) -> None:
    wrong = _violations(module, path)
    assert not wrong, f"{module}: " + "; ".join(wrong)


def test_the_rules_catch_what_breaks_them(tmp_path: Path) -> None:
    """The checker itself: imports that run back up, at the top, inside a function or
    relative, and the old import names, are each caught."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from typing import TYPE_CHECKING\n"
        "from pixgate.runs import schema\n"  # allowed
        "if TYPE_CHECKING:\n    from pixgate.report.html import build_report\n"
        "def f():\n    from ..judging import gate\n    import engine.config\n"
    )
    wrong = _violations("pixgate.scoring.bad", bad)
    assert [w.split(":")[0] for w in wrong] == ["line 4", "line 6", "line 7"], wrong
    leaf = tmp_path / "leaf.py"
    leaf.write_text("import numpy\nimport torch\nfrom pixgate.config import OPAQUE_ALPHA\n")
    assert [w.split(":")[0] for w in _violations("pixgate_kernels.leaf", leaf)] == ["line 2", "line 3"]


def test_judging_never_imports_torch() -> None:
    """The judge runs on any CI box: importing every judging module loads no torch."""
    import subprocess

    judging = [name for name, _ in MODULES if _part(name) in ("judging", "runs", "base")]
    code = "import sys\n" + "".join(f"import {m}\n" for m in judging) + "print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_package_list_is_the_folders() -> None:
    """pyproject.toml lists each package by its import name (the folders are mapped):
    a folder missing there would be left out of a wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"pixgate": "engine", "pixgate_kernels": "kernels"}
    folders = {".".join(("pixgate", *p.parent.relative_to(ENGINE).parts)) for p in ENGINE.rglob("__init__.py")}
    # data: the ICC profile the demo engine embeds, a package of data files.
    folders |= {"pixgate_kernels", "pixgate.data"}
    assert set(config["packages"]) == folders


def test_no_module_is_too_long_to_read_in_one_sitting() -> None:
    """Modules stay small enough to read in one sitting, the command line's included (a
    module per command family)."""
    long = {name: n for name, path in MODULES if (n := len(path.read_text().splitlines())) > MODULE_MAX_LINES}
    assert not long, long


#: Lines a module may have.
MODULE_MAX_LINES = 700
