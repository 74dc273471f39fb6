"""CUDA compilation of the per-pixel bodies: `numba.cuda.jit(device=True)`.

The kernel reads and writes device arrays in place: torch CUDA tensors passed through
`__cuda_array_interface__` (see `numba.cuda.as_cuda_array`), so the batch LPIPS used
never returns to the host. With `NUMBA_ENABLE_CUDASIM=1` (set before numba is imported)
the same code runs on the CPU simulator, which is how it is tested without a GPU.
"""

from __future__ import annotations

import functools
from typing import Any

from numba import cuda

from pixgate_kernels._bodies import N_PLANES, build, lookup_table

THREADS_PER_BLOCK = 256
_passes = build(cuda.jit(device=True))
_luma_terms, _pixel_terms, _exact_where_needed = _passes.luma_terms, _passes.pixel_terms, _passes.exact_where_needed


@cuda.jit
def _luma_kernel(base: Any, cand: Any, out: Any) -> None:
    n_img, h, w = base.shape[0], base.shape[1], base.shape[2]
    for i in range(cuda.grid(1), n_img * h * w, cuda.gridsize(1)):
        n = i // (h * w)
        y = (i - n * h * w) // w
        x = i - n * h * w - y * w
        _luma_terms(base, cand, n, y, x, out)


@cuda.jit
def _terms_kernel(base: Any, cand: Any, opaque: int, lut: Any, out: Any) -> None:
    n_img, h, w = base.shape[0], base.shape[1], base.shape[2]
    for i in range(cuda.grid(1), n_img * h * w, cuda.gridsize(1)):
        n = i // (h * w)
        y = (i - n * h * w) // w
        x = i - n * h * w - y * w
        _pixel_terms(base, cand, n, y, x, opaque, lut, out)
        _exact_where_needed(base, cand, n, y, x, lut, out)


@functools.cache
def _device_lut() -> Any:
    return cuda.to_device(lookup_table())


def pixel_terms_cuda(base: Any, cand: Any, opaque: int, out: Any, *, stream: Any = 0, max_blocks: int = 4096) -> Any:
    """Per-pixel terms of a batch on the GPU (or the CUDA simulator).

    Args:
        base: N x H x W x 4 uint8 device array (or anything with `__cuda_array_interface__`).
        cand: Candidate pixels of the same shape.
        opaque: Alpha at or above which a pixel is opaque.
        out: N_PLANES x N x H x W float32 device array to fill; the first N_TERMS
            planes are the terms, the rest scratch.
        stream: CUDA stream to launch on (0: the default stream).
        max_blocks: Upper bound on the grid; a grid-stride loop covers the rest.

    Returns:
        `out`, filled (asynchronously on the current stream).
    """
    if tuple(base.shape) != tuple(cand.shape) or len(base.shape) != 4 or base.shape[3] != 4:
        raise ValueError(f"base and cand must both be N x H x W x 4; got {tuple(base.shape)} and {tuple(cand.shape)}")
    if tuple(out.shape) != (N_PLANES, *tuple(base.shape[:3])):
        raise ValueError(f"out must be {(N_PLANES, *tuple(base.shape[:3]))}; got {tuple(out.shape)}")
    total = int(base.shape[0]) * int(base.shape[1]) * int(base.shape[2])
    blocks = max(1, min(max_blocks, (total + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK))
    # Two launches on one stream: the second reads neighbours' luma written by the first.
    _luma_kernel[blocks, THREADS_PER_BLOCK, stream](base, cand, out)
    _terms_kernel[blocks, THREADS_PER_BLOCK, stream](base, cand, opaque, _device_lut(), out)
    return out


__all__ = ["THREADS_PER_BLOCK", "pixel_terms_cuda"]
