"""Ignore regions: parts of an image that are allowed to change (see pixgate.scoring.manifest).

A pair's ignored pixels are taken out of every metric in two steps:

- before anything is measured, the candidate takes the baseline's pixels there, so both
  images carry the same content. This is what LPIPS needs: AlexNet's receptive field
  spreads a change far beyond its box, so masking the spatial map afterwards would not
  remove it;
- the kernels' per-pixel terms are then reduced over the pixels outside the regions only
  (pixgate.scoring.metrics.reduce_terms), grown by one pixel because the Sobel operator at a
  region's edge reads the pixels inside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixgate.config import DEFAULT_MAX_PIXELS
from pixgate.scoring.manifest import ManifestEntry


class IgnoreRegionError(ValueError):
    """An ignore region that does not fit the image (becomes an error row)."""


def _mask_image(path: Path, width: int, height: int, max_pixels: int) -> np.ndarray:
    """A mask file's pixels at or above mid-grey (luma, as Pillow's `convert("L")`).

    Read and decoded as every image is (`pixgate.scoring.decode`): a regular file only, under the
    run's pixel limit.
    """
    from PIL import Image

    from pixgate.scoring.decode import DecodeError, decode_image

    try:
        rgba = decode_image(path, max_pixels=max_pixels).rgba
    except DecodeError as exc:
        raise IgnoreRegionError(f"ignore mask {path}: {exc}") from None
    if rgba.shape[:2] != (height, width):
        raise IgnoreRegionError(
            f"ignore mask {path} is {rgba.shape[1]}x{rgba.shape[0]}, the baseline is {width}x{height}"
        )
    luma = np.asarray(Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB").convert("L"))
    return luma >= 128


def ignore_mask(
    entry: ManifestEntry, width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray | None:
    """The pair's ignored pixels (H x W bool, baseline coordinates), or None without regions.

    Args:
        entry: The pair's manifest entry.
        width: The baseline's width.
        height: The baseline's height.
        max_pixels: Decompression-bomb limit for a mask image (the run's).

    Raises:
        IgnoreRegionError: A box outside the image, a mask of another size, or an
            unreadable mask.
    """
    if entry.ignore_mask is not None:
        return _mask_image(entry.ignore_mask, width, height, max_pixels)
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
