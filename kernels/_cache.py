"""Where numba keeps the compiled kernels: the user's cache folder, so that they are
compiled once per machine (or per CI cache), not once per installation.

`$PIXGATE_KERNEL_CACHE`, else numba's own `$NUMBA_CACHE_DIR`, else
`$XDG_CACHE_HOME/pixgate/numba` (`~/.cache/pixgate/numba`). Without a home folder numba
keeps its default (beside the sources when they are writable). numba reads the folder
when a kernel is decorated, so this runs before any decorator of the package.

Inside that folder the kernels go to a subfolder named by a digest of the package's
sources: numba checks only the stamp of the file that defines a kernel, not of the
bodies it calls from `_bodies.py`, so an edited body would otherwise load a stale kernel.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba

#: Environment variable naming the kernels' cache folder.
KERNEL_CACHE_ENV = "PIXGATE_KERNEL_CACHE"
#: The files whose text the compiled kernels depend on.
_SOURCES = ("_bodies.py", "cpu.py", "cuda.py", "local.py", "__init__.py")


def sources_digest(folder: Path = Path(__file__).parent) -> str:
    """A short digest of the kernels' sources in `folder` (and numba's version): the
    cache subfolder."""
    digest = hashlib.sha256(numba.__version__.encode())
    for name in _SOURCES:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return digest.hexdigest()[:16]


def kernel_cache_dir() -> str | None:
    """The folder the compiled kernels go to, or None for numba's default."""
    chosen = os.environ.get(KERNEL_CACHE_ENV) or os.environ.get("NUMBA_CACHE_DIR")
    if not chosen:
        base = os.environ.get("XDG_CACHE_HOME")
        if not base:
            home = os.path.expanduser("~")
            if home == "~":
                return None
            base = os.path.join(home, ".cache")
        chosen = os.path.join(base, "pixgate", "numba")
    return os.path.join(chosen, sources_digest())


def use_kernel_cache(*, cuda: bool = False) -> None:
    """Point numba's cache at `kernel_cache_dir()` (a no-op without one); with `cuda`,
    numba-cuda's too, where it keeps its own setting (importing numba-cuda takes a
    noticeable part of a short run's start-up, so the CPU kernels leave it alone)."""
    folder = kernel_cache_dir()
    if not folder:
        return
    setattr(numba.config, "CACHE_DIR", folder)  # noqa: B010 (set at run time, not in its stubs)
    if not cuda:
        return
    try:
        from numba.cuda.core import config as cuda_config
    except ImportError:  # older numba-cuda reads numba.config
        return
    setattr(cuda_config, "CACHE_DIR", folder)  # noqa: B010


__all__ = ["KERNEL_CACHE_ENV", "kernel_cache_dir", "sources_digest", "use_kernel_cache"]
