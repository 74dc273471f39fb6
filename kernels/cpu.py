"""CPU compilation of the per-pixel bodies: `numba.njit`, parallel over image rows."""

from __future__ import annotations

import numba
import numpy as np

from pixgate_kernels._bodies import N_PLANES, build, lookup_table
from pixgate_kernels._cache import use_kernel_cache

use_kernel_cache()

# error_model="numpy": a division by zero gives inf or NaN (then selected away) instead of
# a Python exception, whose check would stop the row loop from vectorising; the GPU
# behaves the same.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# `forceinline`: LLVM inlines the per-pixel bodies into the kernels' loops, after numba has
# typed each body once. numba's own inlining (`inline="always"`) gives the vectoriser the
# same loops, but it copies every body into every caller before typing it and numba's
# parallel passes then work through all of it: compiling, which the first run on a
# machine pays (benchmarks/cold_start.py), took several times as long, for kernels that
# ran no faster.
_passes = build(
    numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH),
    numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH, forceinline=True),
)
_luma_terms, _exact_where_needed, _edge_pair = _passes.luma_terms, _passes.exact_where_needed, _passes.edge_pair
_linear_to_lab, _ciede2000_fast, _store_terms = _passes.linear_to_lab, _passes.ciede2000_fast, _passes.store_terms
_neighbours = _passes.neighbours
_LUT = lookup_table()


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _terms_kernel(base: np.ndarray, cand: np.ndarray, opaque: int, lut: np.ndarray, out: np.ndarray) -> None:
    # Pass 1, both lumas, is `_luma_kernel`'s (registration reads it first).
    n_img, h, w = base.shape[0], base.shape[1], base.shape[2]
    # Pass 2 a row at a time, in the steps of `_pixel_terms`: the table's sRGB decoding
    # (lookups, which stay scalar), then CIELAB and ΔE over the row (no table, branches or
    # libm: LLVM vectorises it, ~4x faster than a pixel at a time), then the stores; pass
    # 3 last.
    for row in numba.prange(n_img * h):
        n = row // h
        y = row - n * h
        lab = np.empty((6, w))  # linear RGB of both images, then their CIELAB
        de = np.empty(w)
        for x in range(w):
            for c in range(3):
                lab[c, x] = lut[base[n, y, x, c]]
                lab[3 + c, x] = lut[cand[n, y, x, c]]
        for x in range(w):
            l1, a1, b1 = _linear_to_lab(lab[0, x], lab[1, x], lab[2, x])
            l2, a2, b2 = _linear_to_lab(lab[3, x], lab[4, x], lab[5, x])
            de[x] = _ciede2000_fast(l1, a1, b1, l2, a2, b2)
            lab[0, x], lab[1, x], lab[2, x], lab[3, x], lab[4, x], lab[5, x] = l1, a1, b1, l2, a2, b2
        # Interior columns take x - 1 and x + 1 as neighbours, with no clamping per
        # pixel; the border columns replicate, as `_neighbours` does.
        y0, y2 = _neighbours(y, h)
        for x in range(1, w - 1):
            _store_terms(base, cand, n, y0, y, y2, x - 1, x, x + 1, opaque, out, de[x],
                         lab[0, x], lab[1, x], lab[2, x], lab[3, x], lab[4, x], lab[5, x])  # fmt: skip
        for x in range(0, w, max(w - 1, 1)):  # columns 0 and w - 1
            x0, x2 = _neighbours(x, w)
            _store_terms(base, cand, n, y0, y, y2, x0, x, x2, opaque, out, de[x],
                         lab[0, x], lab[1, x], lab[2, x], lab[3, x], lab[4, x], lab[5, x])  # fmt: skip
        for x in range(w):
            _exact_where_needed(base, cand, n, y, x, lut, out)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _luma_kernel(base: np.ndarray, cand: np.ndarray, out: np.ndarray) -> None:
    n_img, h, w = base.shape[0], base.shape[1], base.shape[2]
    for row in numba.prange(n_img * h):
        n = row // h
        y = row - n * h
        for x in range(w):
            _luma_terms(base, cand, n, y, x, out)


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


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _input_kernel(
    base: np.ndarray, cand: np.ndarray, gain: np.ndarray, offset: np.ndarray, background: np.ndarray, out: np.ndarray
) -> None:
    n_img, h, w = base.shape[0], base.shape[1], base.shape[2]
    for row in numba.prange(2 * n_img * h):
        m = row // h
        y = row - m * h
        img = base if m < n_img else cand
        n = m if m < n_img else m - n_img
        for x in range(w):
            a = img[n, y, x, 3] / 255.0
            for c in range(3):
                # Opaque: a = 1 and the background's share is exactly 0.
                v = img[n, y, x, c] / 255.0 * a + background[c] * (1.0 - a)
                out[m, y, x, c] = v * gain[c] + offset[c]


def network_input_cpu(
    base: np.ndarray, cand: np.ndarray, gain: np.ndarray, offset: np.ndarray, background: np.ndarray
) -> np.ndarray:
    """Both batches as one network input, in one pass: composited over `background`,
    then per channel `value * gain + offset` (value in 0..1).

    Fuses what would otherwise be a conversion, a composite, a concatenation and a
    scaling layer, each a pass over the float data.

    Args:
        base: N x H x W x 4 uint8 baseline pixels (straight alpha).
        cand: Candidate pixels of the same shape.
        gain: 3 per-channel factors.
        offset: 3 per-channel offsets.
        background: 3 channel values (0..1) that transparency is composited over.

    Returns:
        2N x H x W x 3 float32: the baseline images, then the candidate images.
    """
    _check(base, cand)
    for name, value in (("gain", gain), ("offset", offset), ("background", background)):
        if np.shape(value) != (3,):
            raise ValueError(f"{name} must hold 3 channel values; got shape {np.shape(value)}")
    out = np.empty((2 * base.shape[0], *base.shape[1:3], 3), np.float32)
    g, o, bg = (np.asarray(v, np.float64) for v in (gain, offset, background))
    _input_kernel(base, cand, g, o, bg, out)
    return out


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


def luma_cpu(base: np.ndarray, cand: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Both images' luma over white (0..1), as the terms' luma planes hold it: the first
    of `pixel_terms_cpu`'s passes alone.

    Args:
        base: N x H x W x 4 uint8 baseline pixels.
        cand: Candidate pixels of the same shape.
        out: Optional N_PLANES x N x H x W float32 array to fill (a buffer kept from
            batch to batch), as `pixel_terms_cpu`'s.

    Returns:
        `out`, or a new N_PLANES x N x H x W float32 array, with the LUMA_BASE and
        LUMA_CAND planes filled (the others unset).
    """
    _check(base, cand)
    out = _planes(base, out)
    _luma_kernel(base, cand, out)
    return out


def pixel_terms_cpu(
    base: np.ndarray, cand: np.ndarray, opaque: int, out: np.ndarray | None = None, *, luma_ready: bool = False
) -> np.ndarray:
    """Per-pixel terms of a batch on the CPU.

    Args:
        base: N x H x W x 4 uint8 baseline pixels.
        cand: Candidate pixels of the same shape.
        opaque: Alpha at or above which a pixel is opaque.
        out: Optional N_PLANES x N x H x W float32 output; the first N_TERMS planes are
            the terms, the rest scratch.
        luma_ready: `out` already holds these images' luma planes (`luma_cpu`'s): the
            first pass is not run again.

    Returns:
        `out`, filled.
    """
    _check(base, cand)
    if out is None and luma_ready:
        raise ValueError("luma_ready needs the out array that holds the lumas")
    out = _planes(base, out)
    if not luma_ready:
        _luma_kernel(base, cand, out)
    _terms_kernel(base, cand, opaque, _LUT, out)
    return out


def _planes(base: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """`out` checked against the planes `base`'s batch needs (the kernels write without
    bounds checks), or a new array."""
    shape = (N_PLANES, *base.shape[:3])
    if out is None:
        return np.empty(shape, np.float32)
    if out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        layout = "C-contiguous" if out.flags.c_contiguous else "not C-contiguous"
        raise ValueError(f"out must be a C-contiguous {shape} float32 array; got {out.shape} {out.dtype}, {layout}")
    return out


def _check(base: np.ndarray, cand: np.ndarray) -> None:
    if base.shape != cand.shape or base.ndim != 4 or base.shape[3] != 4:
        raise ValueError(f"base and cand must both be N x H x W x 4; got {base.shape} and {cand.shape}")
    if base.dtype != np.uint8 or cand.dtype != np.uint8:
        raise ValueError(f"base and cand must be uint8; got {base.dtype} and {cand.dtype}")


__all__ = ["edge_magnitudes_cpu", "luma_cpu", "network_input_cpu", "pixel_terms_cpu"]
