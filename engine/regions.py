"""Ignore regions: parts of an image that are allowed to change (see engine.manifest).

A pair's ignored pixels are taken out of every metric in two steps:

- before anything is measured, the candidate takes the baseline's pixels there, so both
  images carry the same content. This is what LPIPS needs: AlexNet's receptive field
  spreads a change far beyond its box, so masking the spatial map afterwards would not
  remove it;
- the kernels' per-pixel terms are then reduced over the pixels outside the regions only
  (engine.metrics.reduce_terms), grown by one pixel because the Sobel operator at a
  region's edge reads the pixels inside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.manifest import ManifestEntry


class IgnoreRegionError(ValueError):
    """An ignore region that does not fit the image (becomes an error row)."""


def _mask_image(path: Path, width: int, height: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            mask = np.asarray(img.convert("L"))
    except (OSError, UnidentifiedImageError) as exc:
        raise IgnoreRegionError(f"ignore mask {path}: cannot read it ({exc})") from None
    if mask.shape != (height, width):
        raise IgnoreRegionError(
            f"ignore mask {path} is {mask.shape[1]}x{mask.shape[0]}, the baseline is {width}x{height}"
        )
    return mask >= 128


def ignore_mask(entry: ManifestEntry, width: int, height: int) -> np.ndarray | None:
    """The pair's ignored pixels (H x W bool, baseline coordinates), or None without regions.

    Raises:
        IgnoreRegionError: A box outside the image, a mask of another size, or an
            unreadable mask.
    """
    if entry.ignore_mask is not None:
        return _mask_image(entry.ignore_mask, width, height)
    if entry.ignore_boxes is None:
        return None
    mask = np.zeros((height, width), dtype=bool)
    for box in entry.ignore_boxes:
        x0, y0, x1, y1 = box
        if x1 > width or y1 > height:
            raise IgnoreRegionError(
                f"ignore box {list(box)} (manifest line {entry.line}) lies outside the {width}x{height} baseline"
            )
        mask[y0:y1, x0:x1] = True
    return mask


def apply_ignore(baseline: np.ndarray, candidate: np.ndarray, mask: np.ndarray) -> None:
    """Give the candidate the baseline's pixels where `mask` is set (in place)."""
    candidate[mask] = baseline[mask]


def grow(mask: np.ndarray, pixels: int = 1) -> np.ndarray:
    """`mask` grown by `pixels` in the 8 directions (a square structuring element)."""
    out = mask.copy()
    for _ in range(pixels):
        step = out.copy()
        step[1:] |= out[:-1]
        step[:-1] |= out[1:]
        step[:, 1:] |= step[:, :-1].copy()
        step[:, :-1] |= step[:, 1:].copy()
        out = step
    return out


__all__ = ["IgnoreRegionError", "apply_ignore", "grow", "ignore_mask"]
