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
from typing import Any

# Per-pixel outputs, in this order (see `pixel_terms`), then two scratch planes that
# hold each image's luma between the two passes.
DE, L_SHIFT, C_SHIFT, EDGE_BASE, EDGE_KEPT, ALPHA_ABS, ALPHA_INTER, ALPHA_UNION = range(8)
N_TERMS = 8
LUMA_BASE, LUMA_CAND = 8, 9
N_PLANES = 10

# D65 reference white (CIE 1931 2-degree), as used by sRGB.
_XN, _YN, _ZN = 0.95047, 1.0, 1.08883
_DELTA = 6.0 / 29.0
_POW25_7 = 25.0**7
_RAD30 = math.radians(30.0)
_DEG = 180.0 / math.pi
_COS30, _SIN30 = math.cos(math.radians(30.0)), math.sin(math.radians(30.0))
_COS6, _SIN6 = math.cos(math.radians(6.0)), math.sin(math.radians(6.0))
_COS63, _SIN63 = math.cos(math.radians(63.0)), math.sin(math.radians(63.0))


# Layout of the lookup table every kernel takes: 256 linear-light values of the 8-bit
# sRGB codes, then cube roots on a uniform grid over [0, 1] that seed Newton's method.
_LIN = 256
_CBRT_STEPS = 4096


def lookup_table() -> Any:
    """The kernels' lookup table (float64): sRGB decoding, then cube-root seeds.

    Inputs are 8-bit, so a table replaces three powers per pixel and image; the CIELAB
    cube roots, the other hot spot, start from a table value and take two Newton steps.
    """
    import numpy as np

    c = np.arange(256, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    seeds = np.cbrt(np.linspace(0.0, 1.0, _CBRT_STEPS + 1))
    return np.concatenate([linear, seeds])


def _cbrt(lut: Any, t: float) -> float:
    """Cube root of t in (0, ~1.1]: a table seed, then two Newton steps.

    From a seed with relative error e, each step leaves about e**2: the coarsest seed
    used (t just above (6/29)**3, error ~0.4 %) ends below 1e-10, beyond float32.
    """
    i = int(t * _CBRT_STEPS)
    if i > _CBRT_STEPS:
        i = _CBRT_STEPS
    y = lut[_LIN + i]
    if y == 0.0:
        y = 0.2  # only for t below one grid step, which CIELAB handles linearly anyway
    y = y - (y * y * y - t) / (3.0 * y * y)
    return y - (y * y * y - t) / (3.0 * y * y)


def build(jit: Callable[[Callable[..., Any]], Any]) -> tuple[Any, Any, Any]:
    """Compile the per-pixel bodies with `jit`; returns the passes (luma, terms, edges only)."""
    cbrt = jit(_cbrt)

    def _lab_f(lut: Any, t: float) -> float:
        if t > _DELTA**3:
            return cbrt(lut, t)
        return t / (3.0 * _DELTA * _DELTA) + 4.0 / 29.0

    lab_f = jit(_lab_f)

    def _srgb_to_lab(lut: Any, r: int, g: int, b: int) -> tuple[float, float, float]:
        rl, gl, bl = lut[r], lut[g], lut[b]
        x = 0.4124564 * rl + 0.3575761 * gl + 0.1804375 * bl
        y = 0.2126729 * rl + 0.7151522 * gl + 0.0721750 * bl
        z = 0.0193339 * rl + 0.1191920 * gl + 0.9503041 * bl
        fx, fy, fz = lab_f(lut, x / _XN), lab_f(lut, y / _YN), lab_f(lut, z / _ZN)
        return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)

    def _ciede2000(l1: float, a1: float, b1: float, l2: float, a2: float, b2: float) -> float:
        """CIEDE2000 with kL = kC = kH = 1 (Sharma, Wu and Dalal, 2005)."""
        if l1 == l2 and a1 == a2 and b1 == b2:
            return 0.0
        c1 = math.sqrt(a1 * a1 + b1 * b1)
        c2 = math.sqrt(a2 * a2 + b2 * b2)
        cbar7 = ((c1 + c2) / 2.0) ** 7
        g = 0.5 * (1.0 - math.sqrt(cbar7 / (cbar7 + _POW25_7)))
        a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
        c1p, c2p = math.sqrt(a1p * a1p + b1 * b1), math.sqrt(a2p * a2p + b2 * b2)
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
        # T from cos and sin of the mean hue: multiple-angle and angle-sum identities
        # replace the four cosines of the textbook form.
        c2h, s2h = 2.0 * ch * ch - 1.0, 2.0 * shh * ch
        c3h, s3h = ch * (4.0 * ch * ch - 3.0), shh * (3.0 - 4.0 * shh * shh)
        c4h, s4h = 2.0 * c2h * c2h - 1.0, 2.0 * s2h * c2h
        t = (
            1.0
            - 0.17 * (ch * _COS30 + shh * _SIN30)
            + 0.24 * c2h
            + 0.32 * (c3h * _COS6 - s3h * _SIN6)
            - 0.20 * (c4h * _COS63 + s4h * _SIN63)
        )
        # Far from 275 degrees the exponential underflows towards subnormals, which are
        # slow on x86; below exp(-50) (~2e-22) the term cannot change a float result.
        arg = ((hbar * _DEG - 275.0) / 25.0) ** 2
        dtheta = _RAD30 * math.exp(-arg) if arg < 50.0 else 0.0
        cbarp7 = cbarp**7
        rc = 2.0 * math.sqrt(cbarp7 / (cbarp7 + _POW25_7))
        sl = 1.0 + 0.015 * (lbar - 50.0) ** 2 / math.sqrt(20.0 + (lbar - 50.0) ** 2)
        sc = 1.0 + 0.045 * cbarp
        sh = 1.0 + 0.015 * cbarp * t
        rt = -math.sin(2.0 * dtheta) * rc
        return math.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhh / sh) ** 2 + rt * (dc / sc) * (dhh / sh))

    def _luma_on_white(img: Any, n: int, y: int, x: int) -> float:
        """Rec.709 luma (0..1) of a gamma-encoded pixel composited over white."""
        a = img[n, y, x, 3] / 255.0
        r = img[n, y, x, 0] * a + 255.0 * (1.0 - a)
        g = img[n, y, x, 1] * a + 255.0 * (1.0 - a)
        b = img[n, y, x, 2] * a + 255.0 * (1.0 - a)
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255.0

    def _sobel(plane: Any, n: int, y: int, x: int) -> float:
        """Sobel gradient magnitude of plane[n] at (y, x); borders are replicated."""
        h = plane.shape[1]
        w = plane.shape[2]
        y0, y2 = max(y - 1, 0), min(y + 1, h - 1)
        x0, x2 = max(x - 1, 0), min(x + 1, w - 1)
        tl, tc, tr = plane[n, y0, x0], plane[n, y0, x], plane[n, y0, x2]
        ml, mr = plane[n, y, x0], plane[n, y, x2]
        bl, bc, br = plane[n, y2, x0], plane[n, y2, x], plane[n, y2, x2]
        gx = (tr + 2.0 * mr + br) - (tl + 2.0 * ml + bl)
        gy = (bl + 2.0 * bc + br) - (tl + 2.0 * tc + tr)
        return math.sqrt(gx * gx + gy * gy)

    # Each body calls the others by these names; `jit` compiles lazily, so every name is
    # bound to its compiled version before anything is compiled.
    srgb_to_lab = jit(_srgb_to_lab)
    ciede2000 = jit(_ciede2000)
    luma_on_white = jit(_luma_on_white)
    sobel = jit(_sobel)

    def _luma_terms(base: Any, cand: Any, n: int, y: int, x: int, out: Any) -> None:
        """Pass 1: each image's luma at (y, x), into the scratch planes."""
        out[LUMA_BASE, n, y, x] = luma_on_white(base, n, y, x)
        out[LUMA_CAND, n, y, x] = luma_on_white(cand, n, y, x)

    def _pixel_terms(base: Any, cand: Any, n: int, y: int, x: int, opaque: int, lut: Any, out: Any) -> None:
        """Pass 2: the `N_TERMS` per-pixel terms of pair n at (y, x), into out[:N_TERMS, n, y, x].

        Colour terms are NaN where the pixel is not opaque in both images. Needs pass 1
        done for the whole image (the Sobel operator reads the neighbours' luma).
        """
        ab = base[n, y, x, 3]
        ac = cand[n, y, x, 3]
        both = ab >= opaque and ac >= opaque
        if both:
            l1, a1, b1 = srgb_to_lab(lut, base[n, y, x, 0], base[n, y, x, 1], base[n, y, x, 2])
            l2, a2, b2 = srgb_to_lab(lut, cand[n, y, x, 0], cand[n, y, x, 1], cand[n, y, x, 2])
            out[DE, n, y, x] = ciede2000(l1, a1, b1, l2, a2, b2)
            out[L_SHIFT, n, y, x] = l2 - l1
            out[C_SHIFT, n, y, x] = math.sqrt(a2 * a2 + b2 * b2) - math.sqrt(a1 * a1 + b1 * b1)
        else:
            out[DE, n, y, x] = math.nan
            out[L_SHIFT, n, y, x] = math.nan
            out[C_SHIFT, n, y, x] = math.nan
        gb = sobel(out[LUMA_BASE], n, y, x)
        gc = sobel(out[LUMA_CAND], n, y, x)
        out[EDGE_BASE, n, y, x] = gb
        out[EDGE_KEPT, n, y, x] = min(gb, gc)
        out[ALPHA_ABS, n, y, x] = abs(float(ab) - float(ac)) / 255.0
        out[ALPHA_INTER, n, y, x] = 1.0 if both else 0.0
        out[ALPHA_UNION, n, y, x] = 1.0 if (ab >= opaque or ac >= opaque) else 0.0

    def _edge_pair(out: Any, n: int, y: int, x: int, dst: Any) -> None:
        """Pass 2 for edges alone: both images' Sobel magnitudes at (y, x), into dst[0:2, n, y, x]."""
        dst[0, n, y, x] = sobel(out[LUMA_BASE], n, y, x)
        dst[1, n, y, x] = sobel(out[LUMA_CAND], n, y, x)

    return jit(_luma_terms), jit(_pixel_terms), jit(_edge_pair)
