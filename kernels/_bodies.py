"""Per-pixel math, written once and compiled twice.

`build(jit)` compiles every body with the given decorator, `numba.njit` for the CPU or
`numba.cuda.jit(device=True)` for the GPU, wiring each body to the compiled versions of
the bodies it calls. Nothing here allocates: every body works on scalars and indexes the
caller's arrays, which is what both targets need.

Inputs are H x W x 4 uint8 straight-alpha sRGB images (batched: N x H x W x 4), alpha 255
where a file has no transparency.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

# Per-pixel outputs, in this order (see `pixel_terms`), then two scratch planes that
# hold each image's luma between the two passes, then the candidate's Sobel magnitude
# (the local structure measure reads both images' magnitudes).
DE, L_SHIFT, C_SHIFT, EDGE_BASE, EDGE_KEPT, ALPHA_ABS, ALPHA_INTER, ALPHA_UNION = range(8)
N_TERMS = 8
LUMA_BASE, LUMA_CAND = 8, 9
EDGE_CAND = 10
N_PLANES = 11

# D65 reference white (CIE 1931 2-degree), as used by sRGB.
_XN, _YN, _ZN = 0.95047, 1.0, 1.08883
_DELTA = 6.0 / 29.0
_POW25_7 = 25.0**7
_RAD30 = math.radians(30.0)
_DEG = 180.0 / math.pi
_COS30, _SIN30 = math.cos(math.radians(30.0)), math.sin(math.radians(30.0))
_COS6, _SIN6 = math.cos(math.radians(6.0)), math.sin(math.radians(6.0))
_COS63, _SIN63 = math.cos(math.radians(63.0)), math.sin(math.radians(63.0))


# Polynomial stand-ins for atan2, exp and sin: the CPU compiler cannot vectorise a loop
# that calls libm (pip's LLVM has no SVML), and with them the whole per-pixel body runs on
# SIMD lanes. Each series is cut where its first dropped term is below 1e-10, far beyond
# the float32 the terms are stored in; tests/kernels/test_kernels.py compares the result with the
# libm form and with scikit-image.
_TAN_PI_8 = math.tan(math.pi / 8.0)
# The rotation term exp(-arg) is taken as 0 at and beyond this argument (~2e-22).
_ROTATION_ARG_MAX = 50.0
# Hue vectors summing to less than this are opposite hues, where CIEDE2000's mean hue is
# discontinuous; those pixels take the textbook's angle-based case analysis instead.
_OPPOSITE_NORM = 1e-9
# Returned by the vectorisable CIEDE2000 for a pixel that needs that case analysis.
NEEDS_EXACT = -1.0

# The lookup table every kernel takes: the linear-light values of the 256 8-bit sRGB codes.
_LIN = 256
# Cube-root seed on [1/8, 1.1]: least-squares cubic in t (relative error < 1.7 %); two
# Halley steps then leave < 5e-16. Coefficients from the highest power down.
_CBRT_SEED = (0.4059, -1.0739, 1.3064, 0.3608)


def lookup_table() -> Any:
    """The kernels' lookup table (float64): sRGB decoding of the 8-bit codes.

    Inputs are 8-bit, so a table replaces three powers per pixel and image.
    """
    import numpy as np

    c = np.arange(_LIN, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _cbrt(t: float) -> float:
    """Cube root of t in [(6/29)**3, ~1.1], without a table or branches, so it vectorises.

    Factors of 8 (whose cube roots are exact) bring t into [1/8, 1.1]; a cubic seed there
    (_CBRT_SEED) and two Halley steps, each cubing the relative error, end at float64
    precision. Smaller t (which CIELAB treats linearly) give a finite, unused value.
    """
    low = t < 1.0 / 64.0
    t = t * 64.0 if low else t
    mid = t < 1.0 / 8.0
    t = t * 8.0 if mid else t
    c3, c2, c1, c0 = _CBRT_SEED
    y = ((c3 * t + c2) * t + c1) * t + c0
    y3 = y * y * y
    y = y * (y3 + 2.0 * t) / (2.0 * y3 + t)
    y3 = y * y * y
    y = y * (y3 + 2.0 * t) / (2.0 * y3 + t)
    y = y * 0.25 if low else y
    return y * 0.5 if mid else y


def _atan2(y: float, x: float) -> float:
    """atan2 without libm or branches: octant reduction to |z| <= tan(pi/8), then
    atan(z) = sum_k (-1)^k z^(2k+1) / (2k+1) to k = 10 (first dropped term < 7e-11)."""
    ax, ay = abs(x), abs(y)
    hi, lo = max(ax, ay), min(ax, ay)
    z = lo / hi if hi > 0.0 else 0.0
    big = z > _TAN_PI_8
    z = (z - 1.0) / (z + 1.0) if big else z
    z2 = z * z
    p = 1.0 / 21.0
    p = p * z2 - 1.0 / 19.0
    p = p * z2 + 1.0 / 17.0
    p = p * z2 - 1.0 / 15.0
    p = p * z2 + 1.0 / 13.0
    p = p * z2 - 1.0 / 11.0
    p = p * z2 + 1.0 / 9.0
    p = p * z2 - 1.0 / 7.0
    p = p * z2 + 1.0 / 5.0
    p = p * z2 - 1.0 / 3.0
    p = p * z2 + 1.0
    a = z * p + (math.pi / 4.0 if big else 0.0)
    a = math.pi / 2.0 - a if ay > ax else a
    a = math.pi - a if x < 0.0 else a
    return -a if y < 0.0 else a


def _exp_neg(x: float) -> float:
    """exp(-x) for 0 <= x <= _ROTATION_ARG_MAX without libm or branches: exp(-x/64) by
    its Taylor series to the 12th power (error < 2e-11), then squared six times (< 1e-9)."""
    u = -min(x, _ROTATION_ARG_MAX) / 64.0
    e = 1.0 + u / 12.0
    e = 1.0 + u / 11.0 * e
    e = 1.0 + u / 10.0 * e
    e = 1.0 + u / 9.0 * e
    e = 1.0 + u / 8.0 * e
    e = 1.0 + u / 7.0 * e
    e = 1.0 + u / 6.0 * e
    e = 1.0 + u / 5.0 * e
    e = 1.0 + u / 4.0 * e
    e = 1.0 + u / 3.0 * e
    e = 1.0 + u / 2.0 * e
    e = 1.0 + u * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    return e * e


def _sin_small(v: float) -> float:
    """sin(v) for 0 <= v <= pi/3 without libm or branches: Taylor to v^13 (error < 2e-12)."""
    v2 = v * v
    s = 1.0 - v2 / (12.0 * 13.0)
    s = 1.0 - v2 / (10.0 * 11.0) * s
    s = 1.0 - v2 / (8.0 * 9.0) * s
    s = 1.0 - v2 / (6.0 * 7.0) * s
    s = 1.0 - v2 / (4.0 * 5.0) * s
    s = 1.0 - v2 / (2.0 * 3.0) * s
    return v * s


class Passes(NamedTuple):
    """The compiled passes and the steps of pass 2 (see `build`)."""

    luma_terms: Any
    pixel_terms: Any
    exact_where_needed: Any
    edge_pair: Any
    linear_to_lab: Any
    ciede2000_fast: Any
    store_terms: Any
    neighbours: Any


def build(
    jit: Callable[[Callable[..., Any]], Any], vector_jit: Callable[[Callable[..., Any]], Any] | None = None
) -> Passes:
    """Compile the per-pixel bodies with `jit`: pass 1 (luma), pass 2 (terms) whole and as
    its steps, pass 3 (exact ΔE where needed), and the edges-only pass.

    `vector_jit` (default `jit`) compiles the bodies the CPU kernel calls once per pixel:
    the CPU passes a decorator that has LLVM inline them into its loops, which the
    vectoriser needs and which spares a call (with its array reference counting) per
    pixel. The large, rarely called bodies (the exact CIEDE2000, and what only the GPU
    kernel calls) stay functions: inlining them as well adds compile time for nothing.
    """
    vector_jit = vector_jit or jit
    cbrt = vector_jit(_cbrt)
    atan2 = vector_jit(_atan2)
    exp_neg = vector_jit(_exp_neg)
    sin_small = vector_jit(_sin_small)

    def _lab_f(t: float) -> float:
        root = cbrt(t)  # computed either way: a select, not a branch
        return root if t > _DELTA**3 else t / (3.0 * _DELTA * _DELTA) + 4.0 / 29.0

    lab_f = vector_jit(_lab_f)

    def _linear_to_lab(rl: float, gl: float, bl: float) -> tuple[float, float, float]:
        """CIELAB (D65) of linear-light sRGB; no table, no branches."""
        x = 0.4124564 * rl + 0.3575761 * gl + 0.1804375 * bl
        y = 0.2126729 * rl + 0.7151522 * gl + 0.0721750 * bl
        z = 0.0193339 * rl + 0.1191920 * gl + 0.9503041 * bl
        fx, fy, fz = lab_f(x / _XN), lab_f(y / _YN), lab_f(z / _ZN)
        return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)

    linear_to_lab = vector_jit(_linear_to_lab)

    def _srgb_to_lab(lut: Any, r: int, g: int, b: int) -> tuple[float, float, float]:
        """CIELAB of an 8-bit sRGB colour: the table's decoding, then `_linear_to_lab`."""
        return linear_to_lab(lut[r], lut[g], lut[b])

    def _primed(a1: float, b1: float, a2: float, b2: float) -> tuple[float, float, float, float]:
        """CIEDE2000's a' of both colours (a stretched by the G factor) and their C'."""
        c1 = math.sqrt(a1 * a1 + b1 * b1)
        c2 = math.sqrt(a2 * a2 + b2 * b2)
        cbar7 = ((c1 + c2) / 2.0) ** 7
        g = 0.5 * (1.0 - math.sqrt(cbar7 / (cbar7 + _POW25_7)))
        a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
        return a1p, a2p, math.sqrt(a1p * a1p + b1 * b1), math.sqrt(a2p * a2p + b2 * b2)

    def _hue_weight(ch: float, shh: float) -> float:
        """CIEDE2000's T from the cosine and sine of the mean hue: multiple-angle and
        angle-sum identities replace the four cosines of the textbook form."""
        c2h, s2h = 2.0 * ch * ch - 1.0, 2.0 * shh * ch
        c3h, s3h = ch * (4.0 * ch * ch - 3.0), shh * (3.0 - 4.0 * shh * shh)
        c4h, s4h = 2.0 * c2h * c2h - 1.0, 2.0 * s2h * c2h
        return (
            1.0
            - 0.17 * (ch * _COS30 + shh * _SIN30)
            + 0.24 * c2h
            + 0.32 * (c3h * _COS6 - s3h * _SIN6)
            - 0.20 * (c4h * _COS63 + s4h * _SIN63)
        )

    def _weighted(dl: float, dc: float, dhh: float, lbar: float, cbarp: float, t: float, sin_2dtheta: float) -> float:
        """CIEDE2000 from the differences, their weights and the rotation term's sine."""
        cbarp7 = cbarp**7
        rc = 2.0 * math.sqrt(cbarp7 / (cbarp7 + _POW25_7))
        sl = 1.0 + 0.015 * (lbar - 50.0) ** 2 / math.sqrt(20.0 + (lbar - 50.0) ** 2)
        sc = 1.0 + 0.045 * cbarp
        sh = 1.0 + 0.015 * cbarp * t
        rt = -sin_2dtheta * rc
        return math.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhh / sh) ** 2 + rt * (dc / sc) * (dhh / sh))

    primed = vector_jit(_primed)
    hue_weight = vector_jit(_hue_weight)
    weighted = vector_jit(_weighted)

    def _ciede2000_fast(l1: float, a1: float, b1: float, l2: float, a2: float, b2: float) -> float:
        """CIEDE2000 as `_ciede2000_exact` computes it, with selects for branches and the
        polynomial atan2, exp and sin, so that a CPU loop over pixels vectorises.

        Returns NEEDS_EXACT for opposite hues (a measure-zero set where CIEDE2000 is
        discontinuous): there the angle-based case analysis of the exact form decides.
        """
        a1p, a2p, c1p, c2p = primed(a1, b1, a2, b2)
        dl = l2 - l1
        dc = c2p - c1p
        lbar = (l1 + l2) / 2.0
        cbarp = (c1p + c2p) / 2.0
        chromatic = c1p * c2p != 0.0
        dap, db = a2p - a1p, b2 - b1
        dhh = math.sqrt(max(dap * dap + db * db - dc * dc, 0.0)) if chromatic else 0.0
        dhh = -dhh if a1p * b2 - a2p * b1 < 0.0 else dhh
        # Sum of the unit hue vectors; a grey side (C' = 0) adds nothing, so the mean hue
        # is the other side's, and (1, 0) when both are grey, as in the exact form.
        i1, i2 = 1.0 / max(c1p, 1e-300), 1.0 / max(c2p, 1e-300)
        ux = a1p * i1 + a2p * i2
        uy = b1 * i1 + b2 * i2
        norm = math.sqrt(ux * ux + uy * uy)
        grey = c1p == 0.0 and c2p == 0.0
        inv = 1.0 / max(norm, 1e-300)
        ch = ux * inv if not grey else 1.0
        shh = uy * inv if not grey else 0.0
        hbar = atan2(shh, ch)
        hbar = hbar + 2.0 * math.pi if hbar < 0.0 else hbar
        t = hue_weight(ch, shh)
        arg = ((hbar * _DEG - 275.0) / 25.0) ** 2
        dtheta = _RAD30 * exp_neg(arg) if arg < _ROTATION_ARG_MAX else 0.0
        de = weighted(dl, dc, dhh, lbar, cbarp, t, sin_small(2.0 * dtheta))
        return NEEDS_EXACT if chromatic and norm <= _OPPOSITE_NORM else de

    def _ciede2000_exact(l1: float, a1: float, b1: float, l2: float, a2: float, b2: float) -> float:
        """CIEDE2000 with kL = kC = kH = 1 (Sharma, Wu and Dalal, 2005), with libm and branches."""
        if l1 == l2 and a1 == a2 and b1 == b2:
            return 0.0
        a1p, a2p, c1p, c2p = primed(a1, b1, a2, b2)
        dl = l2 - l1
        dc = c2p - c1p
        lbar = (l1 + l2) / 2.0
        cbarp = (c1p + c2p) / 2.0
        # The hue terms without hue angles (transcendentals are the kernel's hot spot):
        # |dH'|^2 = |da', db|^2 - dC'^2, with the sign of sin(h2' - h1'); the mean
        # hue of the textbook's case analysis is the direction of the sum of the two unit
        # hue vectors (the bisector of the shorter arc).
        prod = c1p * c2p
        dhh = 0.0
        if prod == 0.0:
            if c1p != 0.0:
                ch, shh = a1p / c1p, b1 / c1p
            elif c2p != 0.0:
                ch, shh = a2p / c2p, b2 / c2p
            else:
                ch, shh = 1.0, 0.0
        else:
            # (da')^2 + (db)^2 - (dC')^2, from differences: exact for near-identical colours,
            # where the equal 2 (C1' C2' - a1' a2' - b1 b2) would cancel catastrophically.
            dap, db = a2p - a1p, b2 - b1
            sq = dap * dap + db * db - dc * dc
            dhh = math.sqrt(sq) if sq > 0.0 else 0.0
            if a1p * b2 - a2p * b1 < 0.0:
                dhh = -dhh
            ux = a1p / c1p + a2p / c2p
            uy = b1 / c1p + b2 / c2p
            norm = math.sqrt(ux * ux + uy * uy)
            if norm > 1e-9:
                ch, shh = ux / norm, uy / norm
            else:
                # Opposite hues, where CIEDE2000 is discontinuous: apply the textbook's
                # case analysis to the angles, so rounding picks the side it picks there.
                h1p = math.atan2(b1, a1p)
                h2p = math.atan2(b2, a2p)
                h1p = h1p + 2.0 * math.pi if h1p < 0.0 else h1p
                h2p = h2p + 2.0 * math.pi if h2p < 0.0 else h2p
                mean = h1p + h2p
                if abs(h1p - h2p) > math.pi:
                    mean += 2.0 * math.pi if mean < 2.0 * math.pi else -2.0 * math.pi
                ch, shh = math.cos(mean / 2.0), math.sin(mean / 2.0)
        hbar = math.atan2(shh, ch)
        if hbar < 0.0:
            hbar += 2.0 * math.pi
        t = hue_weight(ch, shh)
        # Far from 275 degrees the exponential underflows towards subnormals, which are
        # slow on x86; below exp(-50) (~2e-22) the term cannot change a float result.
        arg = ((hbar * _DEG - 275.0) / 25.0) ** 2
        dtheta = _RAD30 * math.exp(-arg) if arg < _ROTATION_ARG_MAX else 0.0
        return weighted(dl, dc, dhh, lbar, cbarp, t, math.sin(2.0 * dtheta))

    def _luma_on_white(img: Any, n: int, y: int, x: int) -> float:
        """Rec.709 luma (0..1) of a gamma-encoded pixel composited over white."""
        a = img[n, y, x, 3] / 255.0
        r = img[n, y, x, 0] * a + 255.0 * (1.0 - a)
        g = img[n, y, x, 1] * a + 255.0 * (1.0 - a)
        b = img[n, y, x, 2] * a + 255.0 * (1.0 - a)
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255.0

    def _sobel(out: Any, p: int, n: int, y0: int, y: int, y2: int, x0: int, x: int, x2: int) -> float:
        """Sobel gradient magnitude of plane out[p, n] at (y, x), given the neighbouring
        rows y0, y2 and columns x0, x2: the caller replicates borders (`_neighbours`).

        Taking the neighbours as arguments lets the CPU kernel pass x - 1 and x + 1 for
        the interior columns instead of clamping every index (alone, the Sobel loop then
        vectorises and runs ~4x faster; inside the terms' store loop it does not yet).
        """
        tl, tc, tr = out[p, n, y0, x0], out[p, n, y0, x], out[p, n, y0, x2]
        ml, mr = out[p, n, y, x0], out[p, n, y, x2]
        bl, bc, br = out[p, n, y2, x0], out[p, n, y2, x], out[p, n, y2, x2]
        gx = (tr + 2.0 * mr + br) - (tl + 2.0 * ml + bl)
        gy = (bl + 2.0 * bc + br) - (tl + 2.0 * tc + tr)
        return math.sqrt(gx * gx + gy * gy)

    def _neighbours(i: int, size: int) -> tuple[int, int]:
        """The indices before and after i, replicated at the borders."""
        return max(i - 1, 0), min(i + 1, size - 1)

    # Each body calls the others by these names; `jit` compiles lazily, so every name is
    # bound to its compiled version before anything is compiled.
    srgb_to_lab = jit(_srgb_to_lab)
    ciede2000_fast = vector_jit(_ciede2000_fast)
    ciede2000_exact = jit(_ciede2000_exact)

    def _ciede2000(l1: float, a1: float, b1: float, l2: float, a2: float, b2: float) -> float:
        """CIEDE2000 of one pair of colours: the vectorisable form, the exact one where it asks."""
        de = ciede2000_fast(l1, a1, b1, l2, a2, b2)
        if de == NEEDS_EXACT:
            de = ciede2000_exact(l1, a1, b1, l2, a2, b2)
        return de

    jit(_ciede2000)
    luma_on_white = vector_jit(_luma_on_white)
    sobel = vector_jit(_sobel)
    neighbours = vector_jit(_neighbours)

    def _luma_terms(base: Any, cand: Any, n: int, y: int, x: int, out: Any) -> None:
        """Pass 1: each image's luma at (y, x), into the scratch planes."""
        out[LUMA_BASE, n, y, x] = luma_on_white(base, n, y, x)
        out[LUMA_CAND, n, y, x] = luma_on_white(cand, n, y, x)

    def _store_terms(
        base: Any, cand: Any, n: int, y0: int, y: int, y2: int, x0: int, x: int, x2: int, opaque: int, out: Any,
        de: float, l1: float, a1: float, b1: float, l2: float, a2: float, b2: float,
    ) -> None:  # fmt: skip
        """Pass 2's output at (y, x), given its neighbouring rows and columns (see
        `_sobel`), both pixels' CIELAB and their ΔE from `_ciede2000_fast`: the `N_TERMS`
        terms, into out[:N_TERMS, n, y, x].

        Colour terms are NaN where the pixel is not opaque in both images. Needs pass 1
        done for the whole image (the Sobel operator reads the neighbours' luma).
        """
        ab = base[n, y, x, 3]
        ac = cand[n, y, x, 3]
        both = (ab >= opaque) & (ac >= opaque)
        out[DE, n, y, x] = de if both else math.nan
        out[L_SHIFT, n, y, x] = l2 - l1 if both else math.nan
        chroma = math.sqrt(a2 * a2 + b2 * b2) - math.sqrt(a1 * a1 + b1 * b1)
        out[C_SHIFT, n, y, x] = chroma if both else math.nan
        gb = sobel(out, LUMA_BASE, n, y0, y, y2, x0, x, x2)
        gc = sobel(out, LUMA_CAND, n, y0, y, y2, x0, x, x2)
        out[EDGE_BASE, n, y, x] = gb
        out[EDGE_KEPT, n, y, x] = min(gb, gc)
        out[EDGE_CAND, n, y, x] = gc
        out[ALPHA_ABS, n, y, x] = abs(float(ab) - float(ac)) / 255.0
        out[ALPHA_INTER, n, y, x] = 1.0 if both else 0.0
        out[ALPHA_UNION, n, y, x] = 1.0 if (ab >= opaque) | (ac >= opaque) else 0.0

    store_terms = vector_jit(_store_terms)

    def _pixel_terms(base: Any, cand: Any, n: int, y: int, x: int, opaque: int, lut: Any, out: Any) -> None:
        """Pass 2 at one pixel: CIELAB of both, ΔE, then `_store_terms`.

        The CPU kernel runs the same three steps a row at a time, so that the ΔE loop,
        free of branches and libm, vectorises; pass 3 then completes the rare pixels
        whose ΔE holds NEEDS_EXACT.
        """
        l1, a1, b1 = srgb_to_lab(lut, base[n, y, x, 0], base[n, y, x, 1], base[n, y, x, 2])
        l2, a2, b2 = srgb_to_lab(lut, cand[n, y, x, 0], cand[n, y, x, 1], cand[n, y, x, 2])
        de = ciede2000_fast(l1, a1, b1, l2, a2, b2)
        y0, y2 = neighbours(y, out.shape[2])
        x0, x2 = neighbours(x, out.shape[3])
        store_terms(base, cand, n, y0, y, y2, x0, x, x2, opaque, out, de, l1, a1, b1, l2, a2, b2)

    def _exact_where_needed(base: Any, cand: Any, n: int, y: int, x: int, lut: Any, out: Any) -> None:
        """Pass 3: the exact CIEDE2000 where pass 2 left NEEDS_EXACT (opposite hues)."""
        if out[DE, n, y, x] == NEEDS_EXACT:
            l1, a1, b1 = srgb_to_lab(lut, base[n, y, x, 0], base[n, y, x, 1], base[n, y, x, 2])
            l2, a2, b2 = srgb_to_lab(lut, cand[n, y, x, 0], cand[n, y, x, 1], cand[n, y, x, 2])
            out[DE, n, y, x] = ciede2000_exact(l1, a1, b1, l2, a2, b2)

    def _edge_pair(out: Any, n: int, y: int, x: int, dst: Any) -> None:
        """Pass 2 for edges alone: both images' Sobel magnitudes at (y, x), into dst[0:2, n, y, x]."""
        y0, y2 = neighbours(y, out.shape[2])
        x0, x2 = neighbours(x, out.shape[3])
        dst[0, n, y, x] = sobel(out, LUMA_BASE, n, y0, y, y2, x0, x, x2)
        dst[1, n, y, x] = sobel(out, LUMA_CAND, n, y0, y, y2, x0, x, x2)

    return Passes(
        luma_terms=vector_jit(_luma_terms),
        pixel_terms=jit(_pixel_terms),
        exact_where_needed=vector_jit(_exact_where_needed),
        edge_pair=vector_jit(_edge_pair),
        linear_to_lab=linear_to_lab,
        ciede2000_fast=ciede2000_fast,
        store_terms=store_terms,
        neighbours=neighbours,
    )
