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
        from numba import cuda

        from pixgate_kernels.cuda import pixel_terms_cuda

        # Launch on torch's current stream so the kernels are ordered after the upload
        # and before the reductions, with no synchronisation in between.
        stream = cuda.external_stream(torch.cuda.current_stream(base.device).cuda_stream)
        pixel_terms_cuda(
            cuda.as_cuda_array(base.contiguous()),
            cuda.as_cuda_array(cand.contiguous()),
            OPAQUE_ALPHA,
            cuda.as_cuda_array(out),
            stream=stream,
        )
    else:
        from pixgate_kernels.cpu import pixel_terms_cpu

        pixel_terms_cpu(base.contiguous().numpy(), cand.contiguous().numpy(), OPAQUE_ALPHA, out.numpy())
    return out


def _quantiles(de: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Per row, the `DELTA_E_QUANTILE` quantile (inverted CDF) of the non-NaN values."""
    import torch

    p95 = torch.full((de.shape[0],), math.nan, dtype=torch.float64, device=de.device)
    for i, count in enumerate(counts):
        if not count:
            continue
        k = max(1, math.ceil(DELTA_E_QUANTILE * count))
        if de.device.type == "cpu":
            # NumPy's selection sorts NaN last, so the k-th value needs no masked copy;
            # about 3x faster than torch.kthvalue on the opaque pixels.
            p95[i] = float(np.partition(de[i].numpy(), k - 1)[k - 1])
        else:
            p95[i] = torch.kthvalue(de[i][~torch.isnan(de[i])], k).values.to(torch.float64)
    return p95


def reduce_terms(
    terms: torch.Tensor, both_alpha: Sequence[bool], keep: torch.Tensor | None = None
) -> list[dict[str, Any]]:
    """Per-pair column values from per-pixel terms.

    Definitions (docs/run-files.md's column table says the same):
      - `delta_e_mean`, `delta_e_p95`: mean and `DELTA_E_QUANTILE` quantile (inverted CDF)
        of CIEDE2000 over pixels opaque in both images;
      - `lightness_shift`, `chroma_shift`: mean candidate minus baseline L* and C*, same pixels;
      - `edge_preservation`: sum of min(G_base, G_cand) over sum of G_base, G the Sobel
        magnitude of luma composited over white (1 when the baseline has no edges);
      - `alpha_mae`, `alpha_iou`: only when both images have alpha.

    Args:
        terms: kernels.N_PLANES x N x H x W float32 tensor (any device).
        both_alpha: Per pair, whether both images carry alpha.
        keep: Optional N x H x W bool tensor on the same device: only these pixels count
            (ignore regions, see pixgate.scoring.regions); every pixel when None.

    Returns:
        One dict per pair, keyed by column name.
    """
    import torch

    n = terms.shape[1]
    flat = terms[: kernels.N_TERMS].reshape(kernels.N_TERMS, n, -1)
    pixels: torch.Tensor | int = flat.shape[2]
    if keep is not None:
        kept = keep.reshape(1, n, -1)
        colour = torch.tensor([kernels.DE, kernels.L_SHIFT, kernels.C_SHIFT], device=flat.device)
        nan_outside = torch.where(kept, flat[colour], math.nan)
        flat = torch.where(kept, flat, 0.0)
        flat[colour] = nan_outside  # colour terms outside count as "not opaque": left out
        pixels = kept[0].sum(dim=1).to(torch.float64)
    de = flat[kernels.DE]
    valid = ~torch.isnan(de)
    count = valid.sum(dim=1).to(torch.float64)

    def nansum(plane: int) -> torch.Tensor:
        return torch.nansum(flat[plane], dim=1, dtype=torch.float64)

    p95 = _quantiles(de, valid.sum(dim=1).tolist())
    edge_base = flat[kernels.EDGE_BASE].sum(dim=1, dtype=torch.float64)
    edge_kept = flat[kernels.EDGE_KEPT].sum(dim=1, dtype=torch.float64)
    edge = torch.where(edge_base > EDGE_FLAT_MEAN * pixels, edge_kept / edge_base.clamp_min(1e-300), 1.0)
    union = flat[kernels.ALPHA_UNION].sum(dim=1, dtype=torch.float64)
    inter = flat[kernels.ALPHA_INTER].sum(dim=1, dtype=torch.float64)
    table = torch.stack(
        [
            nansum(kernels.DE) / count,
            p95,
            nansum(kernels.C_SHIFT) / count,
            nansum(kernels.L_SHIFT) / count,
            edge,
            flat[kernels.ALPHA_ABS].sum(dim=1, dtype=torch.float64)
            / (pixels.clamp_min(1.0) if isinstance(pixels, torch.Tensor) else pixels),
            torch.where(union > 0, inter / union.clamp_min(1.0), 1.0),
            count,
        ],
        dim=1,
    ).cpu()  # the only transfer: N x 8 numbers
    rows = []
    for i, values in enumerate(table.tolist()):
        de_mean, de_p95, chroma, lightness, edge_value, alpha_mae, alpha_iou, opaque = values
        colour = opaque > 0
        rows.append(
            {
                schema.DELTA_E_MEAN.name: de_mean if colour else None,
                schema.DELTA_E_P95.name: de_p95 if colour else None,
                schema.CHROMA_SHIFT.name: chroma if colour else None,
                schema.LIGHTNESS_SHIFT.name: lightness if colour else None,
                schema.EDGE_PRESERVATION.name: edge_value,
                schema.ALPHA_MAE.name: alpha_mae if both_alpha[i] else None,
                schema.ALPHA_IOU.name: alpha_iou if both_alpha[i] else None,
            }
        )
    return rows


__all__ = ["pixel_terms", "reduce_terms"]
