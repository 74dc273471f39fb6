"""The compiled kernels go to the user's cache folder, or where PIXGATE_KERNEL_CACHE says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The cheapest kernel to compile: enough to see where numba writes.
_COMPILE = (
    "import numpy as np\n"
    "from pixgate_kernels.cpu import network_input_cpu\n"
    "a = np.zeros((1, 8, 8, 4), np.uint8)\n"
    "network_input_cpu(a, a, np.ones(3), np.zeros(3), np.ones(3))\n"
)


def _compile(env: dict[str, str]) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("PIXGATE_KERNEL_CACHE", "NUMBA_CACHE_DIR")}
    done = subprocess.run([sys.executable, "-c", _COMPILE], env={**clean, **env}, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr


def _cached(folder: Path) -> list[str]:
    return sorted(p.suffix for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc"))


@pytest.mark.parametrize("how", ["xdg", "pixgate", "numba"])
def test_kernels_are_cached_in_the_users_cache_folder(how: str, tmp_path: Path) -> None:
    xdg, chosen = tmp_path / "xdg", tmp_path / "chosen"
    env = {"XDG_CACHE_HOME": str(xdg)}
    if how == "pixgate":
        env["PIXGATE_KERNEL_CACHE"] = str(chosen)
    elif how == "numba":
        env["NUMBA_CACHE_DIR"] = str(chosen)
    _compile(env)
    where = xdg / "pixgate" / "numba" if how == "xdg" else chosen
    assert ".nbi" in _cached(where) and ".nbc" in _cached(where), sorted(tmp_path.rglob("*"))
    if how != "xdg":
        assert not xdg.exists()


def test_an_edited_body_compiles_into_a_fresh_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """numba stamps only the file that defines a kernel; the bodies it inlines from
    `_bodies.py` are covered by the folder's digest."""
    import shutil

    from pixgate_kernels import _cache

    copy = tmp_path / "kernels"
    shutil.copytree(Path(_cache.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _cache.sources_digest(copy) == _cache.sources_digest()
    bodies = copy / "_bodies.py"
    bodies.write_text(bodies.read_text().replace("_ROTATION_ARG_MAX = 50.0", "_ROTATION_ARG_MAX = 49.0"))
    assert _cache.sources_digest(copy) != _cache.sources_digest()
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert _cache.kernel_cache_dir() == str(Path(os.environ["PIXGATE_KERNEL_CACHE"]) / _cache.sources_digest())
