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

import numpy as np

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


def _shrink_torch(img: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`img` area-averaged by `k` and composited over white (N x H' x W' x 4 uint8), and
    its blocks whose averaged alpha is opaque."""
    import torch
    import torch.nn.functional as F

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


def _working_lab_torch(
    base: torch.Tensor, cand: torch.Tensor, k: int, rate: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both images at the working size, filtered, in CIELAB (N x 3 x H' x W' each), and
    the blocks opaque in both: torch operations, the GPU's path."""
    import torch

    from pixgate.scoring.scielab import filtered_lab

    (small_base, opaque_base), (small_cand, opaque_cand) = _shrink_torch(base, k), _shrink_torch(cand, k)
    # Both sides in one batch: one set of transforms' overheads.
    base_lab, cand_lab = filtered_lab(torch.cat([small_base, small_cand]), samples_per_degree=rate).chunk(2)
    return base_lab, cand_lab, opaque_base & opaque_cand


def _working_lab_cpu(
    base: torch.Tensor, cand: torch.Tensor, k: int, rate: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`_working_lab_torch`'s results with the averaging, the decoding and the opponent
    transform in one numba pass (`pixgate_kernels.local.opponent_cpu`), where torch's
    CPU operations take several."""
    import torch

    from pixgate.scoring.scielab import filtered_lab_of_opponent, opponent_matrix
    from pixgate_kernels.local import opponent_cpu

    matrix = np.asarray(opponent_matrix(), np.float64)
    (opp_base, opaque_base), (opp_cand, opaque_cand) = (
        opponent_cpu(img.numpy(), k, matrix, opaque=OPAQUE_ALPHA) for img in (base, cand)
    )
    lab = filtered_lab_of_opponent(torch.from_numpy(np.concatenate([opp_base, opp_cand])), samples_per_degree=rate)
    base_lab, cand_lab = lab.chunk(2)
    return base_lab, cand_lab, torch.from_numpy(opaque_base & opaque_cand)


def _working_lab(
    base: torch.Tensor, cand: torch.Tensor, keep: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both images at the working size (opaque, composited over white once), filtered and
    in CIELAB, and the pixels that count there."""
    import torch
    import torch.nn.functional as F

    h, w = base.shape[1:3]
    k = max(1, math.ceil(max(h, w) / SCIELAB_WORK_SIDE))
    rate = SCIELAB_SAMPLES_PER_DEGREE / k
    working = _working_lab_cpu if base.device.type == "cpu" else _working_lab_torch
    base_lab, cand_lab, counted = working(base, cand, k, rate)
    if keep is not None and k > 1:
        counted &= -F.max_pool2d(-keep[:, None].to(torch.float32), k, ceil_mode=True)[:, 0] > 0.5
    elif keep is not None:
        counted &= keep
    return base_lab, cand_lab, counted


def hue_shift(base_lab: torch.Tensor, cand_lab: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    """`hue_shift` per pair (degrees, >= 0; NaN without a sector of colour): see the module.

    Args:
        base_lab: N x 3 x H x W CIELAB of the baseline.
        cand_lab: CIELAB of the candidate, same shape.
        counted: N x H x W bool: the pixels that count.
    """
    import torch

    ab, bb, ac, bc = base_lab[:, 1], base_lab[:, 2], cand_lab[:, 1], cand_lab[:, 2]
    chroma_b, chroma_c = torch.hypot(ab, bb), torch.hypot(ac, bc)
    used = counted & (chroma_b >= HUE_MIN_CHROMA) & (chroma_c >= HUE_MIN_CHROMA)
    # The signed angle from the baseline's hue to the candidate's, in (-180, 180].
    turn = torch.rad2deg(torch.atan2(ab * bc - bb * ac, ab * ac + bb * bc))
    sector = ((torch.atan2(bb, ab) + math.pi) / (2 * math.pi) * HUE_SECTORS).long().clamp(0, HUE_SECTORS - 1)
    n = base_lab.shape[0]
    # Per pair and sector: pixels, chroma and chroma-weighted turn, by a masked sum per
    # sector (the same on every run on a GPU, where a scatter's atomic adds are not).
    used_f = used.to(torch.float64).reshape(n, -1)
    weight = chroma_b.to(torch.float64).reshape(n, -1) * used_f
    weighted_turn = weight * turn.to(torch.float64).reshape(n, -1)
    flat_sector = sector.reshape(n, -1)
    per_sector = []
    for s in range(HUE_SECTORS):
        member = (flat_sector == s).to(torch.float64)
        per_sector.append(torch.stack([(member * v).sum(dim=1) for v in (used_f, weight, weighted_turn)]))
    pixels, total, turned = torch.stack(per_sector, dim=2).unbind(dim=0)
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

    from pixgate.scoring.scielab import difference_table

    base_lab, cand_lab, counted = _working_lab(base, cand, keep)
    return torch.cat(
        [difference_table(base_lab, cand_lab, counted), hue_shift(base_lab, cand_lab, counted)[:, None]], dim=1
    )


__all__ = ["COLUMNS", "hue_shift", "spatial_colour"]
