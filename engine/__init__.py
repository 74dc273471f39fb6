"""pixgate: batch scoring of image pairs for generator migrations.

Importing the package is cheap: torch, numba and pyarrow load only where they are used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
