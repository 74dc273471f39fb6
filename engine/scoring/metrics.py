"""Per-pair metrics from the kernels' per-pixel terms, reduced where the terms live.

The kernels (`pixgate_kernels.cpu`, `pixgate_kernels.cuda`) fill a planes x N x H x W float32 array; the
reductions here are torch operations, so the same code reduces a host array on the CPU
and a device array on the GPU, and only N small rows come back to the host.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

import pixgate_kernels as kernels
from pixgate.config import DELTA_E_QUANTILE, EDGE_FLAT_MEAN, OPAQUE_ALPHA
from pixgate.runs import schema

if TYPE_CHECKING:
    import torch


def pixel_terms(base: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Run the kernels on a batch where it lives (host or CUDA device).

    Args:
        base: N x H x W x 4 uint8 tensor, contiguous.
        cand: Candidate pixels, same shape and device.

    Returns:
        kernels.N_PLANES x N x H x W float32 tensor on the same device.
    """
    import torch

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


def _quantiles(de: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
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
    return _quantiles_batched(de, count)


def _quantiles_batched(de: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """`_quantiles` for every row at once, on any device (tested on the CPU against the
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

    n = terms.shape[1]
    flat = terms[: kernels.N_TERMS].reshape(kernels.N_TERMS, n, -1)
    pixels: torch.Tensor | int = flat.shape[2]
    if keep is not None:
        kept = keep.reshape(n, -1)
        masked = torch.where(kept, flat, 0.0)
        # Colour terms outside count as "not opaque": left out. Plane by plane, so no
        # index tensor has to cross to the device.
        for plane in (kernels.DE, kernels.L_SHIFT, kernels.C_SHIFT):
            masked[plane] = torch.where(kept, flat[plane], math.nan)
        flat = masked
        pixels = kept.sum(dim=1).to(torch.float64)
    de = flat[kernels.DE]
    count = (~torch.isnan(de)).sum(dim=1).to(torch.float64)

    def nansum(plane: int) -> torch.Tensor:
        return torch.nansum(flat[plane], dim=1, dtype=torch.float64)

    edge_base = flat[kernels.EDGE_BASE].sum(dim=1, dtype=torch.float64)
    edge_kept = flat[kernels.EDGE_KEPT].sum(dim=1, dtype=torch.float64)
    edge = torch.where(edge_base > EDGE_FLAT_MEAN * pixels, edge_kept / edge_base.clamp_min(1e-300), 1.0)
    union = flat[kernels.ALPHA_UNION].sum(dim=1, dtype=torch.float64)
    inter = flat[kernels.ALPHA_INTER].sum(dim=1, dtype=torch.float64)
    return torch.stack(
        [
            nansum(kernels.DE) / count,
            _quantiles(de, count),
            nansum(kernels.C_SHIFT) / count,
            nansum(kernels.L_SHIFT) / count,
            edge,
            flat[kernels.ALPHA_ABS].sum(dim=1, dtype=torch.float64)
            / (pixels.clamp_min(1.0) if isinstance(pixels, torch.Tensor) else pixels),
            torch.where(union > 0, inter / union.clamp_min(1.0), 1.0),
            count,
        ],
        dim=1,
    )


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


__all__ = ["TABLE", "pixel_terms", "reduce_table", "reduce_terms", "table_rows"]
