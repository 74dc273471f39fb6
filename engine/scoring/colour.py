"""Colour as people see it: S-CIELAB differences and the hue shift, per pair.

Both come from the S-CIELAB-filtered CIELAB of the two images (pixgate.scoring.scielab),
computed once per batch, where the images live, with no host synchronisation:

- `scielab_mean`, `scielab_p95`: the S-CIELAB Delta E*ab over the pixels opaque in both
  (and kept); `scielab_colour`: the mean of its colour part alone, sqrt(Delta a*^2 +
  Delta b*^2), lightness being the structure measures' to judge;
- `hue_shift`: the largest mean hue rotation of any hue sector. The baseline's pixels of
  some colour (chroma at least `HUE_MIN_CHROMA` in both images) are split into
  `HUE_SECTORS` sectors by their hue; in each sector with at least `HUE_SECTOR_MIN_SHARE`
  of the counted pixels, the chroma-weighted mean of the signed hue change. Content that
  moves, a glyph re-antialiased, grain or noise change hue one way as often as the other
  and average out; a colour space converted with the old tag kept, or a tint, turns a
  hue sector one way, which stays.

Large images are first area-averaged by the smallest whole factor k that brings their
longer side to `SCIELAB_WORK_SIDE` or less and filtered at 1/k of
`SCIELAB_SAMPLES_PER_DEGREE`: the picture seen from k times as far.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from pixgate.config import (
    HUE_MIN_CHROMA,
    HUE_SECTOR_MIN_SHARE,
    HUE_SECTORS,
    OPAQUE_ALPHA,
    SCIELAB_SAMPLES_PER_DEGREE,
    SCIELAB_WORK_SIDE,
)
from pixgate.runs import schema

if TYPE_CHECKING:
    import torch

#: `spatial_colour`'s columns, in order.
COLUMNS: Final = (
    schema.SCIELAB_MEAN.name,
    schema.SCIELAB_P95.name,
    schema.SCIELAB_COLOUR.name,
    schema.HUE_SHIFT.name,
)


def _working_size(
    base: torch.Tensor, cand: torch.Tensor, keep: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Both images at the working size (opaque, composited over white once), the pixels
    that count there, and the samples per degree to filter them at."""
    import torch
    import torch.nn.functional as F

    h, w = base.shape[1:3]
    k = max(1, math.ceil(max(h, w) / SCIELAB_WORK_SIDE))

    def shrink(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Averaged premultiplied, then over white: the same as compositing first (it is
        # linear), with one pass over the full-size pixels. The averaged alpha only says
        # which pixels count.
        x = img.permute(0, 3, 1, 2).to(torch.float32)
        x[:, :3] *= x[:, 3:] * (1.0 / 255.0)
        small = F.avg_pool2d(x, k, ceil_mode=True) if k > 1 else x
        small[:, :3] += 255.0 - small[:, 3:]
        opaque = small[:, 3] >= OPAQUE_ALPHA
        small[:, 3] = 255.0
        return small.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous(), opaque

    (small_base, opaque_base), (small_cand, opaque_cand) = shrink(base), shrink(cand)
    counted = opaque_base & opaque_cand
    if keep is not None and k > 1:
        counted &= -F.max_pool2d(-keep[:, None].to(torch.float32), k, ceil_mode=True)[:, 0] > 0.5
    elif keep is not None:
        counted &= keep
    return small_base, small_cand, counted, SCIELAB_SAMPLES_PER_DEGREE / k


def hue_shift(base_lab: torch.Tensor, cand_lab: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    """`hue_shift` per pair (degrees, >= 0; NaN without a sector of colour): see the module.

    Args:
        base_lab: N x 3 x H x W CIELAB of the baseline.
        cand_lab: CIELAB of the candidate, same shape.
        counted: N x H x W bool: the pixels that count.
    """
    import torch
    import torch.nn.functional as F

    ab, bb, ac, bc = base_lab[:, 1], base_lab[:, 2], cand_lab[:, 1], cand_lab[:, 2]
    chroma_b, chroma_c = torch.hypot(ab, bb), torch.hypot(ac, bc)
    used = counted & (chroma_b >= HUE_MIN_CHROMA) & (chroma_c >= HUE_MIN_CHROMA)
    # The signed angle from the baseline's hue to the candidate's, in (-180, 180].
    turn = torch.rad2deg(torch.atan2(ab * bc - bb * ac, ab * ac + bb * bc))
    sector = ((torch.atan2(bb, ab) + math.pi) / (2 * math.pi) * HUE_SECTORS).long().clamp(0, HUE_SECTORS - 1)
    member = F.one_hot(sector, HUE_SECTORS).to(torch.float64) * used[..., None]
    weight = member * chroma_b[..., None].to(torch.float64)
    n = base_lab.shape[0]
    pixels = member.reshape(n, -1, HUE_SECTORS).sum(dim=1)
    total = weight.reshape(n, -1, HUE_SECTORS).sum(dim=1)
    turned = (weight * turn[..., None].to(torch.float64)).reshape(n, -1, HUE_SECTORS).sum(dim=1)
    share = pixels / counted.reshape(n, -1).sum(dim=1, keepdim=True).clamp_min(1).to(torch.float64)
    mean = torch.where((share >= HUE_SECTOR_MIN_SHARE) & (total > 0), (turned / total.clamp_min(1e-30)).abs(), -1.0)
    largest = mean.max(dim=1).values
    return torch.where(largest >= 0, largest, math.nan)


def spatial_colour(base: torch.Tensor, cand: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """`COLUMNS` per pair: N x 4 float64 on the batch's device (NaN where no pixel counts).

    Args:
        base: N x H x W x 4 uint8 baseline pixels.
        cand: Candidate pixels, same shape and device (after registration).
        keep: Optional N x H x W bool: the pixels that count.
    """
    import torch

    from pixgate.scoring.scielab import difference_table, filtered_lab

    small_base, small_cand, counted, rate = _working_size(base, cand, keep)
    base_lab = filtered_lab(small_base, samples_per_degree=rate)
    cand_lab = filtered_lab(small_cand, samples_per_degree=rate)
    return torch.cat(
        [difference_table(base_lab, cand_lab, counted), hue_shift(base_lab, cand_lab, counted)[:, None]], dim=1
    )


__all__ = ["COLUMNS", "hue_shift", "spatial_colour"]
