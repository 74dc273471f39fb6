"""Per-pair metrics from the kernels' per-pixel terms, reduced where the terms live.

The kernels (`pixgate_kernels.cpu`, `pixgate_kernels.cuda`) fill a planes x N x H x W float32 array; the
reductions here run where it lives, and only N small rows come back to the host. On a GPU
they are torch operations; on a CPU the sums, the structure tiles and the alpha outline
are numba loops (`pixgate_kernels.local`), one pass each where torch's CPU operations
take several, and tests/kernels/test_local.py checks the two agree.

Why `edge_preservation` = sum(min(Gb, Gc)) / sum(Gb), G the Sobel magnitude of luma:
  - it is 1 for identical images and stays in [0, 1], so a bound reads the same for any
    image size or content;
  - it is weighted by the baseline's edge strength, so outlines and glyph strokes (where
    small text lives) dominate and flat areas count for nothing;
  - `min` means edges the candidate adds (noise, ringing, JPEG blocks) cannot pay for
    edges it lost, unlike a ratio of total gradient energy;
  - a Gaussian blur lowers every gradient's peak, so stronger blur gives strictly lower
    values (tests/scoring/test_metrics.py checks the ranking).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

import pixgate_kernels as kernels
from pixgate.config import (
    ALPHA_CUTOUT_MIN_SHARE,
    ALPHA_FLATTENED_SHARE,
    DELTA_E_QUANTILE,
    EDGE_FLAT_MEAN,
    OPAQUE_ALPHA,
    STRUCTURE_NOISE_FLOOR,
    STRUCTURE_TILE_MIN_EDGE,
    STRUCTURE_TILE_PX,
    STRUCTURE_TOLERANCE_PX,
)
from pixgate.runs import schema
from pixgate.scoring import colour, registration

if TYPE_CHECKING:
    import torch


def pixel_terms(
    base: torch.Tensor, cand: torch.Tensor, out: torch.Tensor | None = None, *, luma_ready: bool = False
) -> torch.Tensor:
    """Run the kernels on a batch where it lives (host or CUDA device).

    Args:
        base: N x H x W x 4 uint8 tensor, contiguous.
        cand: Candidate pixels, same shape and device.
        out: On a CPU, optionally the kernels.N_PLANES x N x H x W float32 tensor to fill
            (`_planes_buffer`'s, or `pixgate_kernels.cpu.luma_cpu`'s array for these
            very images).
        luma_ready: `out` already holds these images' lumas (`luma_cpu`'s): they are
            not computed again.

    Returns:
        kernels.N_PLANES x N x H x W float32 tensor on the same device.
    """
    import torch

    if out is not None and base.device.type == "cpu":
        from pixgate_kernels.cpu import pixel_terms_cpu

        b, c = base.contiguous().numpy(), cand.contiguous().numpy()
        pixel_terms_cpu(b, c, OPAQUE_ALPHA, out.numpy(), luma_ready=luma_ready)
        return out
    out = torch.empty((kernels.N_PLANES, *base.shape[:3]), dtype=torch.float32, device=base.device)
    if base.device.type == "cuda":
        from pixgate_kernels.cuda import launch

        # Queued on torch's current stream: ordered after the upload and before the
        # reductions, with no synchronisation in between.
        launch(
            base.contiguous(),
            cand.contiguous(),
            OPAQUE_ALPHA,
            out,
            stream_handle=torch.cuda.current_stream(base.device).cuda_stream,
            device_index=base.device.index if base.device.index is not None else torch.cuda.current_device(),
        )
    else:
        from pixgate_kernels.cpu import pixel_terms_cpu

        pixel_terms_cpu(base.contiguous().numpy(), cand.contiguous().numpy(), OPAQUE_ALPHA, out.numpy())
    return out


_BUFFERS = threading.local()


def _planes_buffer(shape: tuple[int, ...]) -> np.ndarray:
    """The kernels' N_PLANES x N x H x W float32 planes for a CPU batch of `shape`, kept
    from batch to batch in the calling thread until `release_buffers`.

    A fresh array this large is mapped and zero-filled page by page on every batch (it
    is above the allocator's reuse threshold), which costs the system more time than
    some kernels; the scoring thread reads the planes only within `measure_table`.
    """
    kept: np.ndarray | None = getattr(_BUFFERS, "planes", None)
    if kept is None or kept.shape[1:] != tuple(shape):
        _BUFFERS.planes = None  # the old one freed before the new one is mapped
        kept = np.empty((kernels.N_PLANES, *shape), np.float32)
        _BUFFERS.planes = kept
    return kept


def release_buffers() -> None:
    """Free the calling thread's kept planes (`_planes_buffer`): at the end of a run, so a
    process that scores and goes on (the Python API, a service) does not hold them."""
    _BUFFERS.planes = None


def quantiles(de: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Per row, the `DELTA_E_QUANTILE` quantile (inverted CDF: the k-th smallest, k =
    ceil(q * count)) of the non-NaN values; NaN for a row without any.

    On a GPU every row at once, with no host synchronisation: one batched sort (NaN sorts
    last) and a gather. On a CPU a selection per row.
    """
    import torch

    if de.device.type == "cpu":
        p95 = torch.full((de.shape[0],), math.nan, dtype=torch.float64)
        for i, n in enumerate(count.tolist()):
            if n:
                k = max(1, math.ceil(DELTA_E_QUANTILE * n))
                # NumPy's selection sorts NaN last, so the k-th value needs no masked
                # copy; about 3x faster than torch.kthvalue on the opaque pixels.
                p95[i] = float(np.partition(de[i].numpy(), k - 1)[k - 1])
        return p95
    return quantiles_batched(de, count)


def quantiles_batched(de: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """`quantiles` for every row at once, on any device (tested on the CPU against the
    per-row selection)."""
    import torch

    k = torch.ceil(DELTA_E_QUANTILE * count).clamp(min=1.0, max=float(de.shape[1])).long() - 1
    kth = torch.sort(de, dim=1).values.gather(1, k.unsqueeze(1)).squeeze(1).to(torch.float64)
    return torch.where(count > 0, kth, math.nan)


def reduce_table(terms: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pair values from per-pixel terms, where the terms live: an N x `len(TABLE)`
    float64 tensor on their device, queued with no host synchronisation.

    Definitions (docs/run-files.md's column table says the same):
      - `delta_e_mean`, `delta_e_p95`: mean and `DELTA_E_QUANTILE` quantile (inverted CDF)
        of CIEDE2000 over pixels opaque in both images;
      - `lightness_shift`, `chroma_shift`: mean candidate minus baseline L* and C*, same pixels;
      - `edge_preservation`: sum of min(G_base, G_cand) over sum of G_base, G the Sobel
        magnitude of luma composited over white (1 when the baseline has no edges);
      - `alpha_mae`, `alpha_iou`: only when both images have alpha.

    Args:
        terms: kernels.N_PLANES x N x H x W float32 tensor (any device).
        keep: Optional N x H x W bool tensor on the same device: only these pixels count
            (ignore regions, see pixgate.scoring.regions); every pixel when None.
    """
    import torch

    pixels: torch.Tensor | int
    if terms.device.type == "cpu":
        sums, count, pixels, de = _plane_sums_cpu(terms, keep)
    else:
        sums, count, pixels, de = _plane_sums_torch(terms, keep)
    edge_base, edge_kept = sums[:, kernels.EDGE_BASE], sums[:, kernels.EDGE_KEPT]
    edge = torch.where(edge_base > EDGE_FLAT_MEAN * pixels, edge_kept / edge_base.clamp_min(1e-300), 1.0)
    union, inter = sums[:, kernels.ALPHA_UNION], sums[:, kernels.ALPHA_INTER]
    return torch.stack(
        [
            sums[:, kernels.DE] / count,
            quantiles(de, count),
            sums[:, kernels.C_SHIFT] / count,
            sums[:, kernels.L_SHIFT] / count,
            edge,
            sums[:, kernels.ALPHA_ABS] / (pixels.clamp_min(1.0) if isinstance(pixels, torch.Tensor) else pixels),
            torch.where(union > 0, inter / union.clamp_min(1.0), 1.0),
            count,
        ],
        dim=1,
    )


_COLOUR_PLANES: Final = (kernels.DE, kernels.L_SHIFT, kernels.C_SHIFT)


def _plane_sums_cpu(
    terms: torch.Tensor, keep: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`_plane_sums_torch`'s results from numba's one pass (`pixgate_kernels.local`)."""
    import torch

    from pixgate_kernels.local import plane_sums_cpu

    n = terms.shape[1]
    found = torch.from_numpy(
        plane_sums_cpu(terms[: kernels.N_TERMS].numpy(), None if keep is None else keep.numpy(), _COLOUR_PLANES)
    )
    de = terms[kernels.DE].reshape(n, -1)
    if keep is not None:
        de = torch.where(keep.reshape(n, -1), de, math.nan)
    return found[:, : kernels.N_TERMS], found[:, kernels.N_TERMS], found[:, kernels.N_TERMS + 1], de


def _plane_sums_torch(
    terms: torch.Tensor, keep: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | int, torch.Tensor]:
    """Per pair, each term plane summed over the kept pixels (N x N_TERMS float64; the
    colour planes over the pixels opaque in both), the pixels the colour planes count,
    the kept pixels, and the N x H*W CIEDE2000 values with every pixel not counted NaN."""
    import torch

    n = terms.shape[1]
    flat = terms[: kernels.N_TERMS].reshape(kernels.N_TERMS, n, -1)
    pixels: torch.Tensor | int = flat.shape[2]
    if keep is not None:
        kept = keep.reshape(n, -1)
        masked = torch.where(kept, flat, 0.0)
        # Colour terms outside count as "not opaque": left out. Plane by plane, so no
        # index tensor has to cross to the device.
        for plane in _COLOUR_PLANES:
            masked[plane] = torch.where(kept, flat[plane], math.nan)
        flat = masked
        pixels = kept.sum(dim=1).to(torch.float64)
    de = flat[kernels.DE]
    count = (~torch.isnan(de)).sum(dim=1).to(torch.float64)
    sums = torch.stack(
        [
            torch.nansum(flat[p], dim=1, dtype=torch.float64)
            if p in _COLOUR_PLANES
            else flat[p].sum(dim=1, dtype=torch.float64)
            for p in range(kernels.N_TERMS)
        ],
        dim=1,
    )
    return sums, count, pixels, de


#: `reduce_table`'s columns, in order.
TABLE = (
    schema.DELTA_E_MEAN.name,
    schema.DELTA_E_P95.name,
    schema.CHROMA_SHIFT.name,
    schema.LIGHTNESS_SHIFT.name,
    schema.EDGE_PRESERVATION.name,
    schema.ALPHA_MAE.name,
    schema.ALPHA_IOU.name,
    "opaque_pixels",
)


def table_rows(table: Sequence[Sequence[float]], both_alpha: Sequence[bool]) -> list[dict[str, Any]]:
    """Rows from `reduce_table`'s values on the host: colour columns null for a pair
    with no pixel opaque in both, alpha columns null unless both images carry alpha."""
    rows = []
    for values, alpha in zip(table, both_alpha, strict=True):
        row: dict[str, float | None] = dict(zip(TABLE, values, strict=True))
        if not (row.pop("opaque_pixels") or 0.0) > 0:
            for column in (schema.DELTA_E_MEAN, schema.DELTA_E_P95, schema.CHROMA_SHIFT, schema.LIGHTNESS_SHIFT):
                row[column.name] = None
        if not alpha:
            row[schema.ALPHA_MAE.name] = row[schema.ALPHA_IOU.name] = None
        rows.append(row)
    return rows


def _tile_sums(plane: torch.Tensor) -> torch.Tensor:
    """Sums over `STRUCTURE_TILE_PX` tiles overlapping by half (the whole image when smaller)."""
    import torch.nn.functional as F

    h, w = plane.shape[1:]
    size = (min(STRUCTURE_TILE_PX, h), min(STRUCTURE_TILE_PX, w))
    stride = (max(size[0] // 2, 1), max(size[1] // 2, 1))
    # Zeros past the last full tile, so the bottom and right edges are tiled too.
    pad_h, pad_w = (-(h - size[0])) % stride[0], (-(w - size[1])) % stride[1]
    padded = F.pad(plane[:, None], (0, pad_w, 0, pad_h))
    if size != (2 * stride[0], 2 * stride[1]):
        return F.avg_pool2d(padded, size, stride).flatten(1) * (size[0] * size[1])
    # A tile is 2 x 2 blocks of a stride's side: one pass over the pixels, not four.
    blocks = F.avg_pool2d(padded, stride, stride)[:, 0] * (stride[0] * stride[1])
    pairs = blocks[:, :-1] + blocks[:, 1:]
    return (pairs[:, :, :-1] + pairs[:, :, 1:]).flatten(1)


def structure_worst(terms: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """`structure_worst` per pair, from the kernels' Sobel magnitude planes: N float64.

    Per tile, the share of one image's edge strength (Sobel magnitude above
    `STRUCTURE_NOISE_FLOOR`) that the other image has within `STRUCTURE_TOLERANCE_PX`
    (its magnitudes dilated), both ways; the lowest share over the tiles where the image whose strength is
    shared has at least `STRUCTURE_TILE_MIN_EDGE`; 1 where no tile does.

    Whole-image edge preservation weighs a line of small print by its share of all edges;
    here a blurred line, a changed or missing word, or text set smaller is most of a tile.
    The dilation lets antialiasing and text moved by a pixel or two through; the floor lets
    grain and noise through.
    """
    import torch

    if terms.device.type == "cpu":
        from pixgate_kernels.local import structure_worst_cpu

        worst = structure_worst_cpu(
            terms[kernels.EDGE_BASE].numpy(),
            terms[kernels.EDGE_CAND].numpy(),
            None if keep is None else keep.numpy(),
            floor=STRUCTURE_NOISE_FLOOR,
            radius=STRUCTURE_TOLERANCE_PX,
            tile=STRUCTURE_TILE_PX,
            min_edge=STRUCTURE_TILE_MIN_EDGE,
        )
        return torch.from_numpy(worst)
    return _structure_worst_torch(terms, keep)


def _structure_worst_torch(terms: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """`structure_worst` in torch operations: the GPU's path (on a CPU, numba's loops in
    `pixgate_kernels.local` compute the same several times faster)."""
    import torch
    import torch.nn.functional as F

    gb = (terms[kernels.EDGE_BASE] - STRUCTURE_NOISE_FLOOR).clamp_min_(0.0)
    gc = (terms[kernels.EDGE_CAND] - STRUCTURE_NOISE_FLOOR).clamp_min_(0.0)
    if keep is not None:
        gb, gc = gb * keep, gc * keep

    def dilated(g: torch.Tensor) -> torch.Tensor:
        # A square's maximum, as a row's then a column's (the same, in two cheap passes).
        side, r = 2 * STRUCTURE_TOLERANCE_PX + 1, STRUCTURE_TOLERANCE_PX
        rows = F.max_pool2d(g[:, None], (1, side), stride=1, padding=(0, r))
        return F.max_pool2d(rows, (side, 1), stride=1, padding=(r, 0))[:, 0]

    worst = torch.ones(gb.shape[0], dtype=torch.float64, device=gb.device)
    for own, other in ((gb, gc), (gc, gb)):
        total = _tile_sums(own).to(torch.float64)
        shared = _tile_sums(torch.minimum(own, dilated(other))).to(torch.float64)
        share = torch.where(total >= STRUCTURE_TILE_MIN_EDGE, shared / total.clamp_min(1e-30), 1.0)
        worst = torch.minimum(worst, share.min(dim=1).values.clamp(max=1.0))
    return worst


def alpha_table(
    terms: torch.Tensor, base: torch.Tensor, cand: torch.Tensor, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """`alpha_edge_px` and `alpha_flattened` (1.0 / 0.0) per pair: N x 2 float64.

    The edge's movement is the summed alpha difference (the kernels' plane) over the
    length of the baseline's opaque outline (opaque pixels with a neighbour that is not,
    image borders replicated); NaN without an outline.
    """
    import torch

    ab, ac = base[..., 3], cand[..., 3]
    pixels = float(ab[0].numel())
    if base.device.type == "cpu":
        from pixgate_kernels.local import alpha_outline_cpu

        counts = torch.from_numpy(
            alpha_outline_cpu(
                ab.numpy(),
                ac.numpy(),
                terms[kernels.ALPHA_ABS].numpy(),
                None if keep is None else keep.numpy(),
                opaque=OPAQUE_ALPHA,
            )
        )
        outline, moved, clear_b, clear_c = counts.unbind(dim=1)
        clear_b, clear_c = clear_b / pixels, clear_c / pixels
    else:
        outline, moved, clear_b, clear_c = _alpha_counts_torch(terms, ab, ac, keep)
    edge_px = torch.where(outline > 0, moved / outline.clamp_min(1.0), math.nan)
    flattened = (clear_b >= ALPHA_CUTOUT_MIN_SHARE) & (clear_c < ALPHA_FLATTENED_SHARE * clear_b)
    return torch.stack([edge_px, flattened.to(torch.float64)], dim=1)


def _alpha_counts_torch(
    terms: torch.Tensor, ab: torch.Tensor, ac: torch.Tensor, keep: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The baseline's outline length, the summed alpha difference, and the clear shares
    of both images, per pair (float64): `alpha_table`'s inputs in torch operations, the
    GPU's path (`pixgate_kernels.local.alpha_outline_cpu` on a CPU)."""
    import torch
    import torch.nn.functional as F

    opaque = (ab >= OPAQUE_ALPHA).to(torch.float32)
    inner = -F.max_pool2d(-F.pad(opaque[:, None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[:, 0]
    edge = opaque - inner
    diff = terms[kernels.ALPHA_ABS]
    if keep is not None:
        diff, edge = diff * keep, edge * keep
    outline = edge.flatten(1).sum(dim=1, dtype=torch.float64)
    moved = diff.flatten(1).sum(dim=1, dtype=torch.float64)
    pixels = float(ab[0].numel())
    clear_b = (ab < OPAQUE_ALPHA).flatten(1).sum(dim=1, dtype=torch.float64) / pixels
    clear_c = (ac < OPAQUE_ALPHA).flatten(1).sum(dim=1, dtype=torch.float64) / pixels
    return outline, moved, clear_b, clear_c


#: `measure_table`'s columns after `TABLE`'s, in order.
LOCAL: Final = (
    schema.STRUCTURE_WORST.name,
    schema.ALPHA_EDGE_PX.name,
    schema.ALPHA_FLATTENED.name,
    *colour.COLUMNS,
)
#: Every column `measure_table` gives, in order.
MEASURED: Final = (*TABLE, *LOCAL, *registration.COLUMNS)


def measure_table(
    base: torch.Tensor, cand: torch.Tensor, keep: torch.Tensor | None = None, alpha: Sequence[bool] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every per-pair metric of a batch where it lives: register the candidate, move it
    back by a small shift, then the kernels and the reductions; queued with no host
    synchronisation on a GPU.

    Args:
        base: N x H x W x 4 uint8 tensor, contiguous.
        cand: Candidate pixels, same shape and device.
        keep: Optional N x H x W bool tensor: only these pixels count.
        alpha: Optional, per pair, whether both images carry alpha: when none does, the
            alpha columns are left NaN without computing them.

    Returns:
        An N x len(MEASURED) float64 tensor on the batch's device, and the aligned
        candidate (what LPIPS should compare to).
    """
    import torch

    # Registration first, from the lumas the kernels would compute, so that the kernels
    # run once, on the candidate moved back.
    identical = registration.identical_pairs(base, cand)
    if base.device.type == "cpu":
        from pixgate_kernels.cpu import luma_cpu

        planes = _planes_buffer(base.shape[:3])
        lumas = torch.from_numpy(luma_cpu(base.contiguous().numpy(), cand.contiguous().numpy(), planes))
        luma_base, luma_cand = lumas[kernels.LUMA_BASE], lumas[kernels.LUMA_CAND]
    else:
        lumas = None
        luma_base, luma_cand = registration.luma_on_white(base), registration.luma_on_white(cand)
    found = registration.estimate_luma(luma_base, luma_cand, identical, keep)
    moved, kept = registration.align(cand, keep, found)
    if moved is not cand and kept is not None:
        # The rows and columns the move filled in take the baseline's pixels, as ignore
        # regions do (pixgate.scoring.regions; they moved with the candidate and are put
        # back in place): left out of the pixel metrics, they would still reach the
        # wide S-CIELAB filter and LPIPS.
        moved = torch.where(kept[..., None], moved, base)
    # Nothing moved (on a CPU, `align` then gives the candidate itself): its lumas stand.
    # Moved, the kernels compute them again, over the ones registration has read.
    terms = pixel_terms(base, moved.contiguous(), lumas, luma_ready=moved is cand)
    reduced = reduce_table(terms, kept)
    table = torch.cat(
        [
            reduced,
            structure_worst(terms, kept)[:, None],
            alpha_table(terms, base, moved, kept)
            if alpha is None or any(alpha)
            else torch.full((base.shape[0], 2), math.nan, dtype=torch.float64, device=base.device),
            colour.spatial_colour(base, moved, kept),
            found,
        ],
        dim=1,
    )
    return table, moved


def measured_rows(table: Sequence[Sequence[float]], both_alpha: Sequence[bool]) -> list[dict[str, Any]]:
    """Rows from `measure_table`'s values on the host (see `table_rows`); NaN is null, and
    the alpha columns are null unless both images carry alpha."""
    rows = table_rows([v[: len(TABLE)] for v in table], both_alpha)
    for row, values, alpha in zip(rows, table, both_alpha, strict=True):
        extra = dict(zip(MEASURED[len(TABLE) :], values[len(TABLE) :], strict=True))
        for name, value in extra.items():
            row[name] = None if value is None or math.isnan(value) else value
        flattened = row[schema.ALPHA_FLATTENED.name]
        row[schema.ALPHA_FLATTENED.name] = None if flattened is None else flattened > 0.5
        if not alpha:
            row[schema.ALPHA_EDGE_PX.name] = row[schema.ALPHA_FLATTENED.name] = None
    return rows


def reduce_terms(
    terms: torch.Tensor, both_alpha: Sequence[bool], keep: torch.Tensor | None = None
) -> list[dict[str, Any]]:
    """Per-pair column values from per-pixel terms (`reduce_table`, then `table_rows`).

    Args:
        terms: kernels.N_PLANES x N x H x W float32 tensor (any device).
        both_alpha: Per pair, whether both images carry alpha.
        keep: Optional N x H x W bool tensor on the same device (see `reduce_table`).

    Returns:
        One dict per pair, keyed by column name.
    """
    return table_rows(reduce_table(terms, keep).cpu().tolist(), both_alpha)


__all__ = [
    "LOCAL",
    "MEASURED",
    "TABLE",
    "alpha_table",
    "measure_table",
    "measured_rows",
    "pixel_terms",
    "quantiles",
    "quantiles_batched",
    "reduce_table",
    "reduce_terms",
    "release_buffers",
    "structure_worst",
    "table_rows",
]
