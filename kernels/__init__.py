"""Per-pixel numba kernels (CPU and CUDA) for alpha, edge and colour-profile diffs.

A leaf package: numpy and numba only, never `pixgate`. One set of per-pixel bodies
(`pixgate_kernels._bodies`) is compiled twice: `pixgate_kernels.cpu` (numba.njit, parallel) and
`pixgate_kernels.cuda` (numba.cuda.jit device functions), imported on demand.

Both fill, for a batch of N pairs of H x W x 4 uint8 sRGB images, an
N_PLANES x N x H x W float32 array: N_TERMS planes of per-pixel terms, indexed by the
constants below, then scratch planes.
Reductions to per-pair numbers happen where the array lives (host or device).
"""

from pixgate_kernels._bodies import (
    ALPHA_ABS,
    ALPHA_INTER,
    ALPHA_UNION,
    C_SHIFT,
    DE,
    EDGE_BASE,
    EDGE_CAND,
    EDGE_KEPT,
    L_SHIFT,
    LUMA_BASE,
    LUMA_CAND,
    N_PLANES,
    N_TERMS,
    NEEDS_EXACT,
)

__all__ = [
    "ALPHA_ABS",
    "ALPHA_INTER",
    "ALPHA_UNION",
    "C_SHIFT",
    "DE",
    "EDGE_BASE",
    "EDGE_CAND",
    "EDGE_KEPT",
    "LUMA_BASE",
    "LUMA_CAND",
    "L_SHIFT",
    "NEEDS_EXACT",
    "N_PLANES",
    "N_TERMS",
]
