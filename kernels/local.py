"""CPU kernels for the measures that look at a neighbourhood or a whole image rather than
one pixel: local structure over tiles, the alpha outline and S-CIELAB's opponent planes at
its working size (registration's passes are in `pixgate_kernels.registration`).

On a GPU the same measures are a few torch launches each (`pixgate.scoring.metrics`,
`pixgate.scoring.colour`, `pixgate.scoring.registration`), which is as fast as a kernel
there. On a CPU those torch operations (a stride-1 max pool, a gather over every stretch
tried) cost several times the per-pixel kernels themselves; these numba loops compute
the same numbers in one pass each. tests/kernels/test_local.py checks each against the
torch code it stands in for.

Also here: the plane sums of the per-pair reductions. Parallel (`numba.prange`) over pairs, or over rows or planes where
a batch holds few pairs, like `pixgate_kernels.cpu._terms_kernel`: called from the
scoring thread only (numba's parallel layer is not for several threads at once). The
wrappers check shapes, since the compiled loops read without bounds checks.
"""

from __future__ import annotations

import numba
import numpy as np

from pixgate_kernels._bodies import lookup_table
from pixgate_kernels._cache import use_kernel_cache

use_kernel_cache()
_LUT = lookup_table()

_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def _mask(keep: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """`keep` checked against the planes' N x H x W (numba reads without bounds checks),
    or the empty stand-in the kernels read as "every pixel"."""
    if keep is None:
        return np.zeros((0, 1, 1), np.bool_)
    if keep.dtype != np.bool_ or keep.shape != shape:
        raise ValueError(f"keep must be a {shape} bool array; got {keep.shape} {keep.dtype}")
    return keep


def _same(name: str, value: np.ndarray, shape: tuple[int, ...]) -> None:
    if value.shape != shape:
        raise ValueError(f"{name} must be {shape}, as the first argument; got {value.shape}")


@numba.njit(cache=True, fastmath=_FASTMATH)
def _dilate(g: np.ndarray, r: int, tmp: np.ndarray, out: np.ndarray) -> None:
    """The maximum over a (2r + 1)-pixel square around each pixel (inside the image):
    along the row, then along the column."""
    h, w = g.shape
    for y in range(h):
        for x in range(w):
            m = g[y, x]
            for d in range(max(0, x - r), min(w, x + r + 1)):
                m = max(m, g[y, d])
            tmp[y, x] = m
    for y in range(h):
        lo, hi = max(0, y - r), min(h, y + r + 1)
        for x in range(w):
            out[y, x] = tmp[lo, x]
        for d in range(lo + 1, hi):
            for x in range(w):
                out[y, x] = max(out[y, x], tmp[d, x])


@numba.njit(cache=True)
def _integral(plane: np.ndarray, out: np.ndarray) -> None:
    """`out[y, x]` = the sum of `plane[:y, :x]` (float64, one row and column larger)."""
    h, w = plane.shape
    out[0, :] = 0.0
    for y in range(h):
        out[y + 1, 0] = 0.0
        run = 0.0
        for x in range(w):
            run += plane[y, x]
            out[y + 1, x + 1] = out[y, x + 1] + run


@numba.njit(cache=True)
def _worst_share(total: np.ndarray, shared: np.ndarray, tile_h: int, tile_w: int, min_edge: float) -> float:
    """The lowest shared / total over tiles of `tile_h` x `tile_w` overlapping by half
    (cut at the bottom and right edges), among those whose total reaches `min_edge`."""
    h, w = total.shape[0] - 1, total.shape[1] - 1
    sy, sx = max(tile_h // 2, 1), max(tile_w // 2, 1)
    worst = 1.0
    y0 = 0
    while True:
        y1 = min(y0 + tile_h, h)
        x0 = 0
        while True:
            x1 = min(x0 + tile_w, w)
            t = total[y1, x1] - total[y0, x1] - total[y1, x0] + total[y0, x0]
            if t >= min_edge:
                s = shared[y1, x1] - shared[y0, x1] - shared[y1, x0] + shared[y0, x0]
                worst = min(worst, s / t)
            if x0 + tile_w >= w:
                break
            x0 += sx
        if y0 + tile_h >= h:
            break
        y0 += sy
    return worst


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _structure_kernel(
    edge_base: np.ndarray,
    edge_cand: np.ndarray,
    keep: np.ndarray,
    floor: float,
    radius: int,
    tile: int,
    min_edge: float,
    out: np.ndarray,
) -> None:
    n, h, w = edge_base.shape
    masked = keep.shape[0] == n
    tile_h, tile_w = min(tile, h), min(tile, w)
    for i in numba.prange(n):
        gb = np.empty((h, w), np.float32)
        gc = np.empty((h, w), np.float32)
        for y in range(h):
            for x in range(w):
                k = 1.0 if not masked or keep[i, y, x] else 0.0
                gb[y, x] = max(edge_base[i, y, x] - floor, 0.0) * k
                gc[y, x] = max(edge_cand[i, y, x] - floor, 0.0) * k
        tmp = np.empty((h, w), np.float32)
        dilated = np.empty((h, w), np.float32)
        both = np.empty((h, w), np.float32)
        total = np.empty((h + 1, w + 1), np.float64)
        shared = np.empty((h + 1, w + 1), np.float64)
        worst = 1.0
        for way in range(2):
            own, other = (gb, gc) if way == 0 else (gc, gb)
            _dilate(other, radius, tmp, dilated)
            for y in range(h):
                for x in range(w):
                    both[y, x] = min(own[y, x], dilated[y, x])
            _integral(own, total)
            _integral(both, shared)
            worst = min(worst, _worst_share(total, shared, tile_h, tile_w, min_edge))
        # Cancellation in the integral images can leave a share a hair outside [0, 1].
        out[i] = min(max(worst, 0.0), 1.0)


def structure_worst_cpu(
    edge_base: np.ndarray,
    edge_cand: np.ndarray,
    keep: np.ndarray | None,
    *,
    floor: float,
    radius: int,
    tile: int,
    min_edge: float,
) -> np.ndarray:
    """The lowest tile share of edge strength kept within `radius`, both ways, per pair.

    Args:
        edge_base: N x H x W float32 Sobel magnitudes of the baseline's luma.
        edge_cand: The candidate's, same shape.
        keep: Optional N x H x W bool: the pixels that count.
        floor: Magnitude below which an edge is noise (subtracted, at least 0).
        radius: Pixels an edge may move and still count as kept.
        tile: Tile side (tiles overlap by half; the whole image along a shorter side).
        min_edge: Summed strength a tile needs to be judged.

    Returns:
        N float64 in [0, 1]; 1 where no tile has `min_edge`.
    """
    _same("edge_cand", edge_cand, edge_base.shape)
    out = np.empty(edge_base.shape[0], np.float64)
    _structure_kernel(edge_base, edge_cand, _mask(keep, edge_base.shape), floor, radius, tile, min_edge, out)
    return out


@numba.njit(parallel=True, cache=True)
def _outline_kernel(
    alpha_base: np.ndarray, alpha_cand: np.ndarray, diff: np.ndarray, keep: np.ndarray, opaque: int, out: np.ndarray
) -> None:
    n, h, w = alpha_base.shape
    masked = keep.shape[0] == n
    for i in numba.prange(n):
        # Per row, whether the pixel and its left and right neighbours are all opaque
        # (the border replicated): three rows of it say whether the eight neighbours are.
        solid = np.empty((h, w), np.bool_)
        clear_b = clear_c = 0.0
        for y in range(h):
            for x in range(w):
                clear_c += alpha_cand[i, y, x] < opaque
                clear_b += alpha_base[i, y, x] < opaque
                solid[y, x] = alpha_base[i, y, max(x - 1, 0)] >= opaque
                solid[y, x] &= alpha_base[i, y, x] >= opaque
                solid[y, x] &= alpha_base[i, y, min(x + 1, w - 1)] >= opaque
        outline = moved = 0.0
        for y in range(h):
            up, down = max(y - 1, 0), min(y + 1, h - 1)
            for x in range(w):
                if masked and not keep[i, y, x]:
                    continue
                moved += diff[i, y, x]
                inner = solid[up, x] and solid[y, x] and solid[down, x]
                outline += alpha_base[i, y, x] >= opaque and not inner
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = outline, moved, clear_b, clear_c


def alpha_outline_cpu(
    alpha_base: np.ndarray, alpha_cand: np.ndarray, diff: np.ndarray, keep: np.ndarray | None, *, opaque: int
) -> np.ndarray:
    """Per pair: the baseline's opaque outline length, the summed alpha difference (both
    over the kept pixels), and the clear pixels of each image.

    Args:
        alpha_base: N x H x W uint8 alpha of the baseline (may be a strided view).
        alpha_cand: The candidate's, same shape.
        diff: N x H x W float32 per-pixel alpha difference.
        keep: Optional N x H x W bool: the pixels that count.
        opaque: Alpha at or above which a pixel is opaque.

    Returns:
        N x 4 float64: outline pixels, alpha difference, clear baseline pixels, clear
        candidate pixels.
    """
    _same("alpha_cand", alpha_cand, alpha_base.shape)
    _same("diff", diff, alpha_base.shape)
    out = np.empty((alpha_base.shape[0], 4), np.float64)
    _outline_kernel(alpha_base, alpha_cand, diff, _mask(keep, alpha_base.shape), opaque, out)
    return out


@numba.njit(cache=True)
def _shrunk_row(img: np.ndarray, i: int, oy: int, k: int, sums: np.ndarray) -> int:
    """Integer sums of value x alpha and of alpha over each k x k block of output row
    `oy` (exact), a block's row at a time; returns the block's height."""
    h, w = img.shape[1], img.shape[2]
    y0, y1 = oy * k, min(oy * k + k, h)
    sums[:] = 0
    for y in range(y0, y1):
        for x in range(w):
            a = np.int64(img[i, y, x, 3])
            ox = x // k
            sums[ox, 0] += img[i, y, x, 0] * a
            sums[ox, 1] += img[i, y, x, 1] * a
            sums[ox, 2] += img[i, y, x, 2] * a
            sums[ox, 3] += a
    return y1 - y0


@numba.njit(cache=True)
def _code(total: np.int64, count: int, white: float) -> np.uint8:
    """A block's 8-bit code over white: its premultiplied mean plus the white showing."""
    return np.uint8(min(max(np.round(total / (255.0 * count) + white), 0.0), 255.0))


@numba.njit(parallel=True, cache=True)
def _opponent_kernel(
    img: np.ndarray, k: int, opaque: int, lut: np.ndarray, matrix: np.ndarray, out: np.ndarray, solid: np.ndarray
) -> None:
    n, w = img.shape[0], img.shape[2]
    oh, ow = out.shape[2], out.shape[3]
    for row in numba.prange(n * oh):
        i = row // oh
        oy = row - i * oh
        sums = np.empty((ow, 4), np.int64)
        rows = _shrunk_row(img, i, oy, k, sums)
        for ox in range(ow):
            count = rows * (min(ox * k + k, w) - ox * k)
            a = sums[ox, 3] / count
            r = lut[_code(sums[ox, 0], count, 255.0 - a)]
            g = lut[_code(sums[ox, 1], count, 255.0 - a)]
            b = lut[_code(sums[ox, 2], count, 255.0 - a)]
            for c in range(3):
                out[i, c, oy, ox] = matrix[c, 0] * r + matrix[c, 1] * g + matrix[c, 2] * b
            solid[i, oy, ox] = a >= opaque


def opponent_cpu(img: np.ndarray, k: int, matrix: np.ndarray, *, opaque: int) -> tuple[np.ndarray, np.ndarray]:
    """Straight-alpha pixels area-averaged by `k` (premultiplied; the last block of a row
    or column over the pixels it has), composited over white and rounded to 8-bit codes,
    decoded from sRGB (the kernels' table) and taken to three channels by `matrix`, in
    one pass: S-CIELAB's opponent planes at its working size.

    Args:
        img: N x H x W x 4 uint8 straight-alpha pixels.
        k: Block side, at least 1.
        matrix: 3 x 3, linear RGB to the three channels.
        opaque: Averaged alpha at or above which a block is opaque.

    Returns:
        N x 3 x ceil(H / k) x ceil(W / k) float32 planes, and the N x ceil(H / k) x
        ceil(W / k) bool blocks whose averaged alpha is opaque.
    """
    if img.ndim != 4 or img.shape[3] != 4 or img.dtype != np.uint8:
        raise ValueError(f"img must be N x H x W x 4 uint8; got {img.shape} {img.dtype}")
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    if np.shape(matrix) != (3, 3):
        raise ValueError(f"matrix must be 3 x 3; got {np.shape(matrix)}")
    n, h, w = img.shape[:3]
    oh, ow = -(-h // k), -(-w // k)
    out = np.empty((n, 3, oh, ow), np.float32)
    solid = np.empty((n, oh, ow), np.bool_)
    _opponent_kernel(img, k, opaque, _LUT, np.asarray(matrix, np.float64), out, solid)
    return out, solid


@numba.njit(parallel=True, cache=True)
def _sums_kernel(terms: np.ndarray, keep: np.ndarray, colour: np.ndarray, out: np.ndarray) -> None:
    n_planes, n, h, w = terms.shape
    masked = keep.shape[0] == n
    for job in numba.prange(n * n_planes):
        # A plane of a pair at a time, a row at a time: loops LLVM vectorises.
        i, p = job // n_planes, job % n_planes
        nan_skipped = p == colour[0] or p == colour[1] or p == colour[2]
        total = count = pixels = 0.0
        for y in range(h):
            for x in range(w):
                v = terms[p, i, y, x]
                k = not masked or keep[i, y, x]
                # The colour planes are NaN where a pixel is not opaque in both: left out.
                use = k and not (nan_skipped and np.isnan(v))
                total += v if use else 0.0
                count += use
                pixels += k
        out[i, p] = total
        if p == colour[0]:
            out[i, n_planes] = count
        if p == 0:
            out[i, n_planes + 1] = pixels


def plane_sums_cpu(terms: np.ndarray, keep: np.ndarray | None, colour: tuple[int, int, int]) -> np.ndarray:
    """Per pair, the sum of each plane over the kept pixels (float64), in one pass.

    Args:
        terms: P x N x H x W float32 per-pixel planes.
        keep: Optional N x H x W bool: the pixels that count.
        colour: The three planes that are NaN where a pixel is not opaque in both images;
            their sums skip such pixels.

    Returns:
        N x (P + 2) float64: the P sums, the pixels `colour[0]` counted, the kept pixels.
    """
    out = np.empty((terms.shape[1], terms.shape[0] + 2), np.float64)
    if not all(0 <= c < terms.shape[0] for c in colour):
        raise ValueError(f"colour must name 3 of the {terms.shape[0]} planes; got {colour}")
    _sums_kernel(terms, _mask(keep, terms.shape[1:]), np.asarray(colour, np.int64), out)
    return out


__all__ = [
    "alpha_outline_cpu",
    "opponent_cpu",
    "plane_sums_cpu",
    "structure_worst_cpu",
]
