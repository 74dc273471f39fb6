"""CPU kernels for registration: whether a pair is pixel-identical, phase correlation's
passes around the FFTs (window, whitened cross-power spectrum, refined peak) and the
search for a stretch and shift of edge profiles.

On a GPU registration is a few torch launches (`pixgate.scoring.registration`); on a CPU
these numba loops replace a dozen torch operations each. tests/kernels/test_registration.py
and tests/scoring/test_registration.py check them against the torch code they stand in
for. Called from the scoring thread only, like `pixgate_kernels.local`'s; the wrappers
check shapes, since the compiled loops read without bounds checks.
"""

from __future__ import annotations

import numba
import numpy as np

from pixgate_kernels._cache import use_kernel_cache
from pixgate_kernels.local import _FASTMATH, _same

use_kernel_cache()


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _search_kernel(
    base: np.ndarray,
    cand: np.ndarray,
    scales: np.ndarray,
    shifts: np.ndarray,
    margin: int,
    best_scale: np.ndarray,
    best_shift: np.ndarray,
    best_ncc: np.ndarray,
) -> None:
    n, length = base.shape
    centre = (length - 1) / 2.0
    m = length - 2 * margin
    for i in numba.prange(n):
        ref = np.empty(m)
        mean = 0.0
        for j in range(m):
            mean += base[i, margin + j]
        mean /= m
        ref_sq = 0.0
        for j in range(m):
            ref[j] = base[i, margin + j] - mean
            ref_sq += ref[j] * ref[j]
        sampled = np.empty(m)
        top = -np.inf
        for si in range(scales.shape[1]):
            scale = scales[i, si]
            for ti in range(shifts.shape[1]):
                shift = shifts[i, ti]
                total = 0.0
                for j in range(m):
                    pos = centre + (margin + j - centre) * scale + shift
                    pos = min(max(pos, 0.0), length - 1.0)
                    lo = min(int(np.floor(pos)), max(length - 2, 0))
                    frac = pos - lo
                    hi = min(lo + 1, length - 1)
                    v = cand[i, lo] * (1.0 - frac) + cand[i, hi] * frac
                    sampled[j] = v
                    total += v
                mean_s = total / m
                num = 0.0
                sq = 0.0
                for j in range(m):
                    d = sampled[j] - mean_s
                    num += d * ref[j]
                    sq += d * d
                ncc = num / max(np.sqrt(sq * ref_sq), 1e-30)
                if ncc > top:
                    top = ncc
                    best_scale[i], best_shift[i], best_ncc[i] = scale, shift, ncc


def profile_search_cpu(
    base: np.ndarray, cand: np.ndarray, scales: np.ndarray, shifts: np.ndarray, margin: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stretch (about the profile's centre) and shift of the candidate's 1-D profile
    that correlate best with the baseline's, per row, every pair of `scales` and `shifts`
    tried (linear interpolation, positions clamped to the profile).

    Args:
        base: N x L float baseline profiles.
        cand: N x L candidate profiles.
        scales: N x S stretches to try.
        shifts: N x T shifts to try, samples.
        margin: Samples left out at both ends of the baseline's profile.

    Returns:
        Per row (float64, N each): the best scale, the best shift and their normalised
        correlation (the first best, scales outer and shifts inner, on a tie).
    """
    n, length = base.shape
    _same("cand", cand, base.shape)
    if scales.shape[0] != n or shifts.shape[0] != n:
        raise ValueError(f"scales and shifts must have {n} rows; got {scales.shape} and {shifts.shape}")
    if not 0 <= margin < length / 2:
        raise ValueError(f"margin must leave samples of the {length}-long profiles; got {margin}")
    if not (np.isfinite(scales).all() and np.isfinite(shifts).all()):
        # A NaN position would index the profile at INT64_MIN.
        raise ValueError("scales and shifts must be finite")
    # NaN until a correlation beats -inf: a row whose every correlation is NaN says so.
    out = (np.full(n, np.nan), np.full(n, np.nan), np.full(n, -np.inf))
    _search_kernel(
        np.ascontiguousarray(base, np.float64),
        np.ascontiguousarray(cand, np.float64),
        np.ascontiguousarray(scales, np.float64),
        np.ascontiguousarray(shifts, np.float64),
        margin,
        *out,
    )
    return out


@numba.njit(parallel=True, cache=True)
def _identical_kernel(b: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    for i in numba.prange(b.shape[0]):
        same = True
        for j in range(b.shape[1]):
            if b[i, j] != c[i, j]:
                same = False
                break
        out[i] = same


def identical_cpu(base: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Per pair, whether the two images are the same bytes: a scan that stops at the first
    difference, with no N x H x W x 4 comparison array in between.

    Args:
        base: N x ... uint8 array, C-contiguous.
        cand: Same shape and dtype.

    Returns:
        N bool.
    """
    if base.shape != cand.shape or base.dtype != np.uint8 or cand.dtype != np.uint8:
        raise ValueError(f"base and cand must be uint8 arrays of one shape; got {base.shape} {base.dtype}, "
                         f"{cand.shape} {cand.dtype}")  # fmt: skip
    n = base.shape[0]
    if n == 0 or base.size == 0:
        return np.full(n, True)  # no bytes to differ
    b, c = np.ascontiguousarray(base).reshape(n, -1), np.ascontiguousarray(cand).reshape(n, -1)
    if b.shape[1] % 8 == 0:  # eight bytes a step where the rows allow it
        b, c = b.view(np.uint64), c.view(np.uint64)
    out = np.empty(n, np.bool_)
    _identical_kernel(b, c, out)
    return out


@numba.njit(parallel=True, cache=True)
def _windowed_kernel(
    base: np.ndarray, cand: np.ndarray, wy: np.ndarray, wx: np.ndarray, means: np.ndarray, out: np.ndarray
) -> None:
    n, h, w = base.shape
    for job in numba.prange(2 * n):
        src = cand if job < n else base
        i = job % n
        total = 0.0
        for y in range(h):
            for x in range(w):
                total += src[i, y, x]
        means[job] = total / max(h * w, 1)
    for row in numba.prange(2 * n * out.shape[1]):
        job, y = row // out.shape[1], row % out.shape[1]
        src = cand if job < n else base
        i = job % n
        mean = np.float32(means[job])
        if y < h:
            for x in range(w):
                out[job, y, x] = (src[i, y, x] - mean) * (wy[y] * wx[x])
            for x in range(w, out.shape[2]):
                out[job, y, x] = 0.0
        else:
            for x in range(out.shape[2]):
                out[job, y, x] = 0.0


def windowed_cpu(
    base: np.ndarray, cand: np.ndarray, wy: np.ndarray, wx: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Phase correlation's input: every image less its mean, times the window, zero-padded
    to the transform's size, in one pass.

    Args:
        base: N x H x W float32 baseline luma.
        cand: Candidate luma, same shape.
        wy: H float32 window down the rows.
        wx: W float32 window across the columns.
        size: The transform's (rows, columns), each at least the image's.

    Returns:
        2N x rows x columns float32: the candidates first, then the baselines.
    """
    if base.ndim != 3:
        raise ValueError(f"base must be N x H x W; got shape {base.shape}")
    n, h, w = base.shape
    _same("cand", cand, base.shape)
    if base.dtype != np.float32 or cand.dtype != np.float32:
        raise ValueError(f"base and cand must be float32; got {base.dtype} and {cand.dtype}")
    if wy.shape != (h,) or wx.shape != (w,):
        raise ValueError(f"wy and wx must have {h} and {w} samples; got {wy.shape} and {wx.shape}")
    if size[0] < h or size[1] < w:
        raise ValueError(f"size must be at least {(h, w)}; got {size}")
    out = np.empty((2 * n, *size), np.float32)
    means = np.empty(2 * n)
    _windowed_kernel(
        np.ascontiguousarray(base),
        np.ascontiguousarray(cand),
        np.ascontiguousarray(wy, np.float32),
        np.ascontiguousarray(wx, np.float32),
        means,
        out,
    )
    return out


@numba.njit(parallel=True, cache=True)
def _whiten_kernel(spectra: np.ndarray, out: np.ndarray) -> None:
    n, rows, cols = out.shape
    for row in numba.prange(n * rows):
        i, y = row // rows, row % rows
        for x in range(cols):
            c = spectra[i, y, x]
            b = spectra[n + i, y, x]
            re = c.real * b.real + c.imag * b.imag
            im = c.imag * b.real - c.real * b.imag
            # The epsilon keeps frequencies neither image has at zero weight.
            mag = np.float32(np.sqrt(re * re + im * im)) + np.float32(1e-12)
            out[i, y, x] = complex(re / mag, im / mag)


def whitened_cross_cpu(spectra: np.ndarray) -> np.ndarray:
    """The whitened cross-power spectrum of each pair, cand x conj(base) / |...|.

    Args:
        spectra: 2N x rows x columns complex64: the candidates' spectra, then the
            baselines' (`windowed_cpu`'s order, transformed).

    Returns:
        N x rows x columns complex64.
    """
    if spectra.ndim != 3 or spectra.shape[0] % 2 or spectra.dtype != np.complex64:
        raise ValueError(f"spectra must be 2N x rows x columns complex64; got {spectra.shape} {spectra.dtype}")
    out = np.empty((spectra.shape[0] // 2, *spectra.shape[1:]), np.complex64)
    _whiten_kernel(np.ascontiguousarray(spectra), out)
    return out


@numba.njit(parallel=True, cache=True)
def _peak_kernel(corr: np.ndarray, out: np.ndarray) -> None:
    n, h, w = corr.shape
    for i in numba.prange(n):
        py = px = 0
        top = corr[i, 0, 0]
        for y in range(h):
            for x in range(w):
                # The first of equal maxima, in row-major order, as torch's argmax.
                if corr[i, y, x] > top:
                    top, py, px = corr[i, y, x], y, x
        for axis in range(2):
            peak, size = (px, w) if axis == 0 else (py, h)
            if axis == 0:
                before, after = corr[i, py, (px - 1) % w], corr[i, py, (px + 1) % w]
            else:
                before, after = corr[i, (py - 1) % h, px], corr[i, (py + 1) % h, px]
            # In float32, as torch's path computes it.
            curvature = before - np.float32(2.0) * top + after
            offset = np.float32(0.0)
            if curvature < 0:
                offset = np.float32(0.5) * (before - after) / min(curvature, np.float32(-1e-12))
            offset = min(max(offset, np.float32(-0.5)), np.float32(0.5))
            signed = peak - size if peak > size // 2 else peak
            out[i, axis] = signed + np.float64(offset)


def correlation_peak_cpu(corr: np.ndarray) -> np.ndarray:
    """Per pair, the signed (dx, dy) of the correlation's highest sample, refined by a
    parabola through it and its two neighbours along each axis (wrapping round).

    Args:
        corr: N x H x W float32 phase correlation surfaces.

    Returns:
        N x 2 float64.
    """
    if corr.ndim != 3 or corr.dtype != np.float32 or 0 in corr.shape[1:]:
        raise ValueError(f"corr must be a non-empty N x H x W float32 array; got {corr.shape} {corr.dtype}")
    out = np.empty((corr.shape[0], 2), np.float64)
    _peak_kernel(np.ascontiguousarray(corr), out)
    return out


__all__ = [
    "correlation_peak_cpu",
    "identical_cpu",
    "profile_search_cpu",
    "whitened_cross_cpu",
    "windowed_cpu",
]
