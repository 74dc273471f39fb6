"""Registration: where the candidate's content sits against the baseline's.

Per pair, on the device the batch lives on (on a GPU torch operations only, with no host
synchronisation; on a CPU the passes around the transforms and the profile search are
numba loops, `pixgate_kernels.registration`, where torch's operations cost several times
as much):

- the global shift, by phase correlation of the two lumas (over white, Hann-windowed),
  with a parabola through the correlation peak for the sub-pixel part (at full
  resolution: lumas pooled first alias fine periodic content, a hairline grid or a
  halftone, into a false peak);
- the scale in x and in y, by a search over stretches about the image centre (and shifts
  around the one found) of the edge profiles: the mean |d luma / dx| of every column and
  |d luma / dy| of every row, compared by normalised correlation. Content stretched by
  a few per cent inside the same canvas moves the profile's outer edges by tens of
  pixels, which a shift cannot explain, while antialiasing, grain or JPEG leave it where
  it was.

`align` then moves the candidate back by the whole-pixel part of a small shift (at most
`REGISTRATION_ALIGN_MAX_PX`), so that jitter of a pixel or two is not read as a defect by
the pixel metrics; the rows and columns it fills in are left out of them.

Ignore regions (where the candidate carries the baseline's pixels) are filled flat in both
lumas before the correlation, so they cannot pin the shift at zero; with more than
`REGISTRATION_SCALE_MAX_IGNORED` of a pair ignored, or a side under
`REGISTRATION_SCALE_MIN_SIDE`, no scale is read.

Phase correlation follows Kuglin & Hines (1975); the sub-pixel parabola and the Hann window
are the usual refinements. tests/scoring/test_registration.py compares the shift with
scikit-image's `phase_cross_correlation`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

import numpy as np

from pixgate.config import (
    REGISTRATION_ALIGN_MAX_PX,
    REGISTRATION_MIN_STRUCTURE,
    REGISTRATION_SCALE_FINE_STEP,
    REGISTRATION_SCALE_MAX_IGNORED,
    REGISTRATION_SCALE_MIN_SIDE,
    REGISTRATION_SCALE_RANGE,
    REGISTRATION_SCALE_STEP,
)
from pixgate.runs import schema

if TYPE_CHECKING:
    import torch

#: `estimate`'s columns, in order.
COLUMNS: Final = (
    schema.SHIFT_X.name,
    schema.SHIFT_Y.name,
    schema.SCALE_X.name,
    schema.SCALE_Y.name,
    schema.ASPECT_CHANGE.name,
    schema.SCALE_CHANGE.name,
)
# Rec. 709 luma weights, as the kernels use (pixgate_kernels' `_luma_on_white`).
_LUMA: Final = (0.2126, 0.7152, 0.0722)
# Shifts tried around the phase-correlation shift in the profile search, in pixels: the
# correlation's whole-pixel peak and a stretch about the centre are found together.
_SHIFT_SPAN: Final = 1.0
_SHIFT_STEP: Final = 0.5
_SHIFT_FINE_STEP: Final = 0.25


def luma_on_white(img: torch.Tensor) -> torch.Tensor:
    """Rec. 709 luma (0..1) of N x H x W x 4 uint8 straight-alpha pixels over white, float32."""
    import torch

    x = img.to(torch.float32)
    # One product over the channel axis: far faster than three strided slices.
    weights = torch.tensor([*_LUMA, 0.0], dtype=torch.float32, device=img.device) / 255.0
    a = x[..., 3] / 255.0
    return (x @ weights) * a + (1.0 - a)


def _hann(size: int, like: torch.Tensor) -> torch.Tensor:
    import torch

    if size < 3:
        return torch.ones(size, dtype=like.dtype, device=like.device)
    return torch.hann_window(size, periodic=False, dtype=like.dtype, device=like.device)


def _filled(luma: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Luma with the pixels outside `keep` set to the mean of those inside: an ignore
    region (where the candidate carries the baseline's pixels) then holds nothing that
    could pull the correlation towards no shift."""
    import torch

    luma = luma.to(torch.float32)
    if keep is None:
        return luma
    kept = keep.to(torch.float32)
    mean = (luma * kept).sum(dim=(1, 2), keepdim=True) / kept.sum(dim=(1, 2), keepdim=True).clamp_min(1.0)
    return torch.where(keep, luma, mean)


def phase_shift(base: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """The shift of the candidate's content against the baseline's, by phase correlation.

    On a CPU a pair at a time, the passes around the transforms in numba
    (`pixgate_kernels.registration`'s `windowed_cpu`, `whitened_cross_cpu`,
    `correlation_peak_cpu`): torch's CPU transforms round a batch of one differently from
    a larger batch, and a pair's row must not depend on the pairs batched with it (a
    resumed run rescores some pairs in other batches). On a GPU the whole batch in torch
    operations (`_phase_shift_torch`).

    Args:
        base: N x H x W luma (float).
        cand: Candidate luma, same shape.

    Returns:
        N x 2 float64 (dx, dy): the candidate is about the baseline moved right by dx and
        down by dy pixels, that is cand(x, y) ~ base(x - dx, y - dy).
    """
    import torch

    if base.device.type != "cpu":
        return _phase_shift_torch(base, cand)
    from pixgate.scoring.scielab import fast_length
    from pixgate_kernels.registration import correlation_peak_cpu, whitened_cross_cpu, windowed_cpu

    n, h, w = base.shape
    size = (fast_length(h), fast_length(w))
    wy, wx = _hann(h, torch.empty(0)).numpy(), _hann(w, torch.empty(0)).numpy()
    b, c = base.to(torch.float32).numpy(), cand.to(torch.float32).numpy()
    shifts = []
    for i in range(n):
        both = torch.from_numpy(windowed_cpu(b[i : i + 1], c[i : i + 1], wy, wx, size))
        cross = torch.from_numpy(whitened_cross_cpu(torch.fft.rfft2(both).numpy()))
        shifts.append(correlation_peak_cpu(torch.fft.irfft2(cross, s=size).numpy()))
    return torch.from_numpy(np.concatenate(shifts)) if shifts else torch.zeros((0, 2), dtype=torch.float64)


def _phase_shift_torch(base: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """`phase_shift` of a whole batch in torch operations: the GPU's path."""
    import torch

    from pixgate.scoring.scielab import fast_length

    n, h, w = base.shape
    window = _hann(h, base)[:, None] * _hann(w, base)[None, :]
    # The window takes both images to zero at their borders, so zeros past them up to a
    # length with small prime factors change nothing but the FFT's speed.
    hp, wp = fast_length(h), fast_length(w)

    # Both sides in one transform: one call's overheads, not two.
    both = torch.cat([cand, base]).to(torch.float32)
    both = (both - both.mean(dim=(1, 2), keepdim=True)).mul_(window)
    spectra = torch.fft.rfft2(both, s=(hp, wp))
    cross = spectra[:n] * torch.conj(spectra[n:])
    # Whitened in place through the real view. The epsilon keeps frequencies neither
    # image has (a flat image) at zero weight instead of dividing by zero.
    parts = torch.view_as_real(cross)
    parts.div_(parts.square().sum(dim=-1, keepdim=True).sqrt_().add_(1e-12))
    corr = torch.fft.irfft2(cross, s=(hp, wp))
    h, w = hp, wp
    flat = corr.reshape(n, -1).argmax(dim=1)
    py, px = flat // w, flat % w
    rows = torch.arange(n, device=base.device)

    def refine(peak: torch.Tensor, size: int, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        centre = corr[rows, py, px]
        curvature = before - 2.0 * centre + after
        offset = torch.where(curvature < 0, 0.5 * (before - after) / curvature.clamp(max=-1e-12), 0.0)
        signed = torch.where(peak > size // 2, peak - size, peak).to(torch.float64)
        return signed + offset.clamp(-0.5, 0.5).to(torch.float64)

    dy = refine(py, h, corr[rows, (py - 1) % h, px], corr[rows, (py + 1) % h, px])
    dx = refine(px, w, corr[rows, py, (px - 1) % w], corr[rows, py, (px + 1) % w])
    return torch.stack([dx, dy], dim=1)


def _profiles(luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean |gradient| of every column (x profile, N x W) and of every row (y profile, N x H)."""
    gx = (luma[:, :, 1:] - luma[:, :, :-1]).abs()
    gy = (luma[:, 1:, :] - luma[:, :-1, :]).abs()
    # Each difference sits between two pixels: index i holds the step from i to i + 1.
    return gx.mean(dim=1), gy.mean(dim=2)


def _search(
    base: torch.Tensor, cand: torch.Tensor, scales: torch.Tensor, shifts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best stretch and shift of 1-D profiles, per row.

    Args:
        base: N x L baseline profiles.
        cand: N x L candidate profiles.
        scales: N x S stretches to try, about the profile's centre.
        shifts: N x T shifts to try, pixels.

    Returns:
        Per row, the best scale, the best shift and their normalised correlation.
    """
    import torch

    length = base.shape[1]
    # Compared over the middle of the profile, where every stretch tried samples inside it.
    margin = min(math.ceil(REGISTRATION_SCALE_RANGE * length / 2.0 + _SHIFT_SPAN + 2), length // 4)
    if base.device.type == "cpu":
        # numba's loop: the same search without the N x S x T x L tensors torch builds.
        from pixgate_kernels.registration import profile_search_cpu

        found = profile_search_cpu(base.numpy(), cand.numpy(), scales.numpy(), shifts.numpy(), margin)
        s, t, c = (torch.from_numpy(v) for v in found)
        return s, t, c
    return _search_torch(base, cand, scales, shifts, margin)


def _search_torch(
    base: torch.Tensor, cand: torch.Tensor, scales: torch.Tensor, shifts: torch.Tensor, margin: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`_search` in torch operations, with no host synchronisation: the GPU's path."""
    import torch

    n, length = base.shape
    centre = (length - 1) / 2.0
    u = torch.arange(margin, length - margin, device=base.device, dtype=torch.float32)
    ref = base[:, margin : length - margin]
    ref = ref - ref.mean(dim=1, keepdim=True)
    pos = centre + (u - centre)[None, None, None, :] * scales[:, :, None, None].float()
    pos = (pos + shifts[:, None, :, None].float()).clamp(0.0, length - 1.0)
    lo = pos.floor().long().clamp(max=length - 2) if length > 1 else pos.floor().long()
    frac = pos - lo.float()
    flat_lo = lo.reshape(n, -1)
    hi = (flat_lo + 1).clamp(max=length - 1)
    sampled = torch.gather(cand, 1, flat_lo) * (1.0 - frac.reshape(n, -1)) + torch.gather(cand, 1, hi) * frac.reshape(
        n, -1
    )
    sampled = sampled.reshape(pos.shape)
    sampled = sampled - sampled.mean(dim=3, keepdim=True)
    num = (sampled * ref[:, None, None, :]).sum(dim=3)
    den = torch.sqrt((sampled * sampled).sum(dim=3) * (ref * ref).sum(dim=1)[:, None, None]).clamp_min(1e-30)
    ncc = (num / den).reshape(n, -1)
    best = ncc.argmax(dim=1)
    t_count = shifts.shape[1]
    rows = torch.arange(n, device=base.device)
    return scales[rows, best // t_count], shifts[rows, best % t_count], ncc[rows, best]


def _scale(base: torch.Tensor, cand: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The stretch (factor) of the candidate's profile against the baseline's, per row:
    a coarse search over `REGISTRATION_SCALE_RANGE`, then a fine one around its best."""
    import torch

    n = base.shape[0]
    dev = base.device
    if base.shape[1] + 1 < REGISTRATION_SCALE_MIN_SIDE:
        # A 1 % stretch moves a short image's edges by under a pixel: nothing to read.
        return torch.full((n,), math.nan, dtype=torch.float64, device=dev)
    steps = round(REGISTRATION_SCALE_RANGE / REGISTRATION_SCALE_STEP)
    coarse = 1.0 + torch.arange(-steps, steps + 1, device=dev, dtype=torch.float64) * REGISTRATION_SCALE_STEP
    span = round(_SHIFT_SPAN / _SHIFT_STEP)
    offsets = torch.arange(-span, span + 1, device=dev, dtype=torch.float64) * _SHIFT_STEP
    # Around the correlation's shift and around none: under a stretch the correlation
    # peak can sit off the stretch's own centre.
    around = torch.cat([shift[:, None] + offsets[None, :], offsets.expand(n, -1)], dim=1)
    s, t, _ = _search(base, cand, coarse.expand(n, -1), around)
    fine_steps = round(REGISTRATION_SCALE_STEP / REGISTRATION_SCALE_FINE_STEP)
    fine = torch.arange(-fine_steps, fine_steps + 1, device=dev, dtype=torch.float64) * REGISTRATION_SCALE_FINE_STEP
    fine_shift = torch.arange(-2, 3, device=dev, dtype=torch.float64) * _SHIFT_FINE_STEP
    s, _, _ = _search(base, cand, s[:, None] + fine[None, :], t[:, None] + fine_shift[None, :])

    # A flat profile (no edges along that axis, in either image) says nothing about scale.
    def structured(profile: torch.Tensor) -> torch.Tensor:
        return profile.std(dim=1, correction=0) / profile.mean(dim=1).clamp_min(1e-12) >= REGISTRATION_MIN_STRUCTURE

    return torch.where(structured(base) & structured(cand), s, math.nan)


def identical_pairs(base: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Per pair, whether the two images are pixel-identical.

    On a CPU a scan that stops at the first difference (`pixgate_kernels.registration.identical_cpu`);
    on a GPU one comparison, queued with no host synchronisation.

    Args:
        base: N x H x W x 4 uint8 baseline pixels.
        cand: Candidate pixels, same shape and device.

    Returns:
        N bool on the batch's device.
    """
    import torch

    if base.device.type == "cpu":
        from pixgate_kernels.registration import identical_cpu

        return torch.from_numpy(identical_cpu(base.contiguous().numpy(), cand.contiguous().numpy()))
    return (base == cand).flatten(1).all(dim=1)


def estimate(base: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Per pair, where the candidate's content sits against the baseline's.

    Args:
        base: N x H x W x 4 uint8 baseline pixels (any device).
        cand: Candidate pixels, same shape and device.

    Returns:
        `estimate_luma`'s table.
    """
    identical = identical_pairs(base, cand)
    return estimate_luma(luma_on_white(base), luma_on_white(cand), identical)


def estimate_luma(
    base: torch.Tensor, cand: torch.Tensor, identical: torch.Tensor, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """Per pair, where the candidate's content sits against the baseline's, from the two
    lumas (the kernels' luma planes are the same as `luma_on_white`).

    Args:
        base: N x H x W baseline luma over white (float, any device).
        cand: Candidate luma, same shape and device.
        identical: N bool: the pair is pixel-identical.
        keep: Optional N x H x W bool: the pixels that count (outside ignore regions).

    Returns:
        N x len(COLUMNS) float64 on the same device: shift_x, shift_y (pixels), scale_x,
        scale_y (factors), aspect_change (scale_x / scale_y - 1) and scale_change (the
        larger of |scale_x - 1| and |scale_y - 1|, or the one there is). A scale is NaN
        along an axis where either image has no edges (and aspect_change with it); a
        pixel-identical pair is exactly (0, 0, 1, 1, 0, 0).
    """
    import torch

    base, cand = _filled(base, keep), _filled(cand, keep)
    shift = phase_shift(base, cand)
    (bx, by), (cx, cy) = _profiles(base), _profiles(cand)
    sx = _scale(bx, cx, shift[:, 0])
    sy = _scale(by, cy, shift[:, 1])
    if keep is not None:
        # The filled regions' borders are steps in the edge profiles that a stretch could
        # be fitted to: with much of the picture ignored, no scale is read.
        ignored = 1.0 - keep.flatten(1).to(torch.float64).mean(dim=1)
        sx = torch.where(ignored > REGISTRATION_SCALE_MAX_IGNORED, math.nan, sx)
        sy = torch.where(ignored > REGISTRATION_SCALE_MAX_IGNORED, math.nan, sy)
    shift = torch.where(identical[:, None], 0.0, shift)
    sx, sy = torch.where(identical, 1.0, sx), torch.where(identical, 1.0, sy)
    # From the axis that has edges when the other has none (fmax skips NaN).
    change = torch.fmax((sx - 1.0).abs(), (sy - 1.0).abs())
    return torch.stack([shift[:, 0], shift[:, 1], sx, sy, sx / sy - 1.0, change], dim=1)


def whole_shift(found: torch.Tensor) -> torch.Tensor:
    """Per pair, the whole-pixel (dx, dy) `align` undoes: N x 2 int64, zero where the
    shift is beyond `REGISTRATION_ALIGN_MAX_PX` along either axis."""
    import torch

    whole = torch.round(found[:, :2])
    small = (whole.abs() <= REGISTRATION_ALIGN_MAX_PX).all(dim=1)
    return torch.where(small[:, None], whole, 0.0).long()


def align(
    cand: torch.Tensor, keep: torch.Tensor | None, found: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The candidate moved back by the whole-pixel part of a small shift, per pair.

    Pairs whose shift is beyond `REGISTRATION_ALIGN_MAX_PX` along either axis stay where
    they are: a shift that large is a change of layout for the rules to see, not jitter.

    Args:
        cand: N x H x W x 4 uint8 candidate pixels.
        keep: Optional N x H x W bool mask of the pixels that count.
        found: `estimate`'s N x len(COLUMNS) output for the batch.

    Returns:
        The aligned candidate, and the mask with the rows and columns the move filled in
        (edge pixels repeated), and the one beside them, left out. On a CPU, when no pair
        moves, `cand` and `keep` themselves (callers test `is cand` to skip work; on a GPU
        that test would make the host wait for the device, so a new tensor comes back).
    """
    import torch

    n, h, w = cand.shape[:3]
    whole = whole_shift(found)
    if cand.device.type == "cpu" and not bool(whole.any()):
        return cand, keep
    dx, dy = whole[:, 0], whole[:, 1]
    ys = torch.arange(h, device=cand.device)[None, :] + dy[:, None]
    xs = torch.arange(w, device=cand.device)[None, :] + dx[:, None]
    # The rows and columns filled in, and the one next to them: the Sobel operator there
    # reads a filled-in neighbour.
    inside_y = (ys >= (dy < 0).long()[:, None]) & (ys < h - (dy > 0).long()[:, None])
    inside_x = (xs >= (dx < 0).long()[:, None]) & (xs < w - (dx > 0).long()[:, None])
    inside = inside_y[:, :, None] & inside_x[:, None, :]
    ys, xs = ys.clamp(0, h - 1), xs.clamp(0, w - 1)
    if cand.device.type == "cpu":
        # Pair by pair, only those that move: two contiguous gathers each, far cheaper on
        # a CPU than one gather over the whole batch.
        moved = cand.clone()
        for i in whole.any(dim=1).nonzero().flatten().tolist():
            moved[i] = cand[i].index_select(0, ys[i]).index_select(1, xs[i])
    else:
        moved = cand[torch.arange(n, device=cand.device)[:, None, None], ys[:, :, None], xs[:, None, :]]
    return moved, inside if keep is None else keep & inside


__all__ = [
    "COLUMNS",
    "align",
    "estimate",
    "estimate_luma",
    "identical_pairs",
    "luma_on_white",
    "phase_shift",
    "whole_shift",
]
