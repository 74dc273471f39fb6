"""Per-pixel numba kernels (CPU and CUDA) for alpha, edge and colour-profile diffs.

A leaf package: it imports numpy and numba only, never `engine`.
"""

__all__: list[str] = []
