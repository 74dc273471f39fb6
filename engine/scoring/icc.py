"""ICC profiles: compare colour spaces by content and convert pixels to sRGB (lcms2).

Untagged images are sRGB. Profiles are compared by what they do (a grid of colours sent
through each to sRGB), not by their names or bytes, so a parametric and a tabulated
sRGB profile match while Adobe RGB and sRGB do not.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageCms

from pixgate.config import ICC_MATCH_LEVELS

_GRID = {"RGB": 9, "GRAY": 33, "CMYK": 5}  # samples per channel of the comparison grid
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_PIL_MODE = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}


class ICCError(ValueError):
    """A profile lcms2 cannot use for this image."""


@functools.lru_cache(maxsize=64)
def _profile(data: bytes | None) -> ImageCms.ImageCmsProfile:
    if data is None:
        return _SRGB
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(data))
    except (OSError, ImageCms.PyCMSError) as exc:
        raise ICCError(f"embedded ICC profile is unreadable: {exc}") from None


def colour_space(data: bytes | None) -> str:
    """`RGB`, `GRAY`, `CMYK` (or another lcms colour space name) of a profile."""
    return str(_profile(data).profile.xcolor_space).strip()


def _grid(space: str) -> Image.Image:
    n = _GRID[space]
    levels = np.linspace(0, 255, n).round().astype(np.uint8)
    channels = {"RGB": 3, "GRAY": 1, "CMYK": 4}[space]
    mesh = np.stack(np.meshgrid(*([levels] * channels), indexing="ij"), -1).reshape(1, -1, channels)
    return Image.fromarray(mesh[..., 0] if channels == 1 else mesh, _PIL_MODE[space])


@functools.lru_cache(maxsize=64)
def _signature(data: bytes | None) -> tuple[str, np.ndarray]:
    """The colour space and its test grid as 8-bit sRGB, through the profile."""
    space = colour_space(data)
    if space not in _GRID:
        return space, np.zeros((0, 3), np.int16)
    grid = _grid(space)
    srgb = np.asarray(grid.convert("RGB")) if data is None else to_srgb(grid, data)
    return space, srgb.reshape(-1, 3).astype(np.int16)


def same_colour_space(a: bytes | None, b: bytes | None) -> bool:
    """Whether two profiles (None = untagged = sRGB) map colours the same way."""
    if a == b:
        return True
    space_a, grid_a = _signature(a)
    space_b, grid_b = _signature(b)
    if space_a != space_b or grid_a.shape != grid_b.shape or not grid_a.size:
        return False
    return bool(np.abs(grid_a - grid_b).max() <= ICC_MATCH_LEVELS)


def is_srgb(data: bytes | None) -> bool:
    """The profile is (equivalent to) sRGB, so pixels need no conversion."""
    return data is None or same_colour_space(data, None)


@functools.lru_cache(maxsize=32)
def _transform(data: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    try:
        return ImageCms.buildTransform(_profile(data), _SRGB, mode, "RGB")
    except ImageCms.PyCMSError as exc:
        raise ICCError(f"embedded ICC profile cannot convert {mode} pixels: {exc}") from None


def to_srgb(pixels: Image.Image, data: bytes) -> np.ndarray:
    """Convert an `RGB`, `L` or `CMYK` image through its profile to sRGB, H x W x 3 uint8."""
    space = colour_space(data)
    if _PIL_MODE.get(space) != pixels.mode:
        raise ICCError(f"embedded ICC profile is for {space} data but the pixels are {pixels.mode}")
    out = ImageCms.applyTransform(pixels, _transform(data, pixels.mode))
    assert out is not None
    return np.asarray(out, dtype=np.uint8)


__all__ = ["ICCError", "colour_space", "is_srgb", "same_colour_space", "to_srgb"]
