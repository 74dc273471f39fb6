"""Where numba keeps the compiled kernels: the user's cache folder, so that they are
compiled once per machine (or per CI cache), not once per installation.

`$PIXGATE_KERNEL_CACHE`, else numba's own `$NUMBA_CACHE_DIR`, else
`$XDG_CACHE_HOME/pixgate/numba` (`~/.cache/pixgate/numba`). Without a home folder numba
keeps its default (beside the sources when they are writable). numba reads the folder
when a kernel is decorated, so this runs before any decorator of the package.
"""

from __future__ import annotations

import os

import numba

#: Environment variable naming the kernels' cache folder.
KERNEL_CACHE_ENV = "PIXGATE_KERNEL_CACHE"


def kernel_cache_dir() -> str | None:
    """The folder the compiled kernels go to, or None for numba's default."""
    chosen = os.environ.get(KERNEL_CACHE_ENV) or os.environ.get("NUMBA_CACHE_DIR")
    if chosen:
        return chosen
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = os.path.expanduser("~")
        if home == "~":
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "pixgate", "numba")


def use_kernel_cache() -> None:
    """Point numba's cache at `kernel_cache_dir()` (a no-op without one)."""
    folder = kernel_cache_dir()
    if folder:
        setattr(numba.config, "CACHE_DIR", folder)  # noqa: B010 (set at run time, not in its stubs)


__all__ = ["KERNEL_CACHE_ENV", "kernel_cache_dir", "use_kernel_cache"]
