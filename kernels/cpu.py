"""CPU compilation of the per-pixel bodies: `numba.njit`, parallel over image rows."""

from __future__ import annotations

import numba
import numpy as np

from kernels._bodies import N_PLANES, build, lookup_table

_luma_terms, _pixel_terms, _edge_pair = build(
    numba.njit(cache=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})
)
_LUT = lookup_table()


@numba.njit(parallel=True, cache=True)
def _terms_kernel(base: np.ndarray, cand: np.ndarray, opaque: int, lut: np.ndarray, out: np.ndarray) -> None:
    n_img, h, w = base.shape[0], base.shape[1], base.shape[2]
    for row in numba.prange(n_img * h):
        n = row // h
        y = row - n * h
        for x in range(w):
            _luma_terms(base, cand, n, y, x, out)
    for row in numba.prange(n_img * h):
        n = row // h
        y = row - n * h
        for x in range(w):
            _pixel_terms(base, cand, n, y, x, opaque, lut, out)


# Serial and free of the GIL, unlike `_terms_kernel`: callers run it from several Python
# threads at once (the typography workers), which numba's parallel layer does not allow.
@numba.njit(nogil=True, cache=True)
def _edges_kernel(base: np.ndarray, cand: np.ndarray, scratch: np.ndarray, out: np.ndarray) -> None:
    n_img, h, w = base.shape[0], base.shape[1], base.shape[2]
    for n in range(n_img):
        for y in range(h):
            for x in range(w):
                _luma_terms(base, cand, n, y, x, scratch)
        for y in range(h):
            for x in range(w):
                _edge_pair(scratch, n, y, x, out)


def edge_magnitudes_cpu(base: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Sobel magnitudes of both images' luma (over white), the same as the terms' edge planes.

    Thread-safe and releases the GIL, so several threads can run it at once.

    Args:
        base: N x H x W x 4 uint8 baseline pixels.
        cand: Candidate pixels of the same shape.

    Returns:
        2 x N x H x W float32: baseline magnitudes, then candidate magnitudes.
    """
    _check(base, cand)
    scratch = np.empty((N_PLANES, *base.shape[:3]), np.float32)
    out = np.empty((2, *base.shape[:3]), np.float32)
    _edges_kernel(base, cand, scratch, out)
    return out


def pixel_terms_cpu(base: np.ndarray, cand: np.ndarray, opaque: int, out: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel terms of a batch on the CPU.

    Args:
        base: N x H x W x 4 uint8 baseline pixels.
        cand: Candidate pixels of the same shape.
        opaque: Alpha at or above which a pixel is opaque.
        out: Optional N_PLANES x N x H x W float32 output; the first N_TERMS planes are
            the terms, the rest scratch.

    Returns:
        `out`, filled.
    """
    _check(base, cand)
    if out is None:
        out = np.empty((N_PLANES, *base.shape[:3]), np.float32)
    _terms_kernel(base, cand, opaque, _LUT, out)
    return out


def _check(base: np.ndarray, cand: np.ndarray) -> None:
    if base.shape != cand.shape or base.ndim != 4 or base.shape[3] != 4:
        raise ValueError(f"base and cand must both be N x H x W x 4; got {base.shape} and {cand.shape}")
    if base.dtype != np.uint8 or cand.dtype != np.uint8:
        raise ValueError(f"base and cand must be uint8; got {base.dtype} and {cand.dtype}")


__all__ = ["edge_magnitudes_cpu", "pixel_terms_cpu"]
