"""Ignore regions: masks from boxes and images, growth, and their errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from pixgate.scoring.manifest import ManifestEntry
from pixgate.scoring.regions import IgnoreRegionError, apply_ignore, grow, ignore_mask


def _entry(boxes: list[tuple[int, int, int, int]] | None = None, mask: Path | None = None) -> ManifestEntry:
    return ManifestEntry("p", (), None, 7, tuple(boxes) if boxes else None, mask)


def test_boxes_make_a_mask() -> None:
    mask = ignore_mask(_entry([(2, 1, 5, 3), (0, 4, 1, 6)]), 8, 6)
    assert mask is not None and mask.shape == (6, 8)
    want = np.zeros((6, 8), bool)
    want[1:3, 2:5] = True
    want[4:6, 0:1] = True
    np.testing.assert_array_equal(mask, want)
    assert ignore_mask(_entry(), 8, 6) is None


def test_mask_image_white_means_ignore(tmp_path: Path) -> None:
    pixels = np.zeros((6, 8), np.uint8)
    pixels[2:4, 3:7] = 255
    pixels[0, 0] = 100  # grey below half counts as kept
    Image.fromarray(pixels).save(tmp_path / "m.png")
    mask = ignore_mask(_entry(mask=tmp_path / "m.png"), 8, 6)
    np.testing.assert_array_equal(mask, pixels >= 128)


@pytest.mark.parametrize(
    ("entry_kind", "phrase"),
    [
        ("box", "ignore box [4, 0, 9, 2] (manifest line 7) lies outside the 8x6 baseline"),
        ("size", "is 5x5, the baseline is 8x6"),
        ("unreadable", "not a PNG, JPEG or WebP image"),
        ("fifo", "a FIFO (named pipe), not a regular file"),
        ("bomb", "exceeds the decompression-bomb limit of 47"),
    ],
)
@pytest.mark.timeout(30)
def test_regions_that_do_not_fit(entry_kind: str, phrase: str, tmp_path: Path) -> None:
    """Masks are read like any image: a regular file, under the run's pixel limit."""
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((6, 8), np.uint8)).save(tmp_path / "big.png")
    (tmp_path / "junk.png").write_bytes(b"junk")
    os.mkfifo(tmp_path / "fifo.png")
    entry = {
        "box": _entry([(4, 0, 9, 2)]),
        "size": _entry(mask=tmp_path / "small.png"),
        "unreadable": _entry(mask=tmp_path / "junk.png"),
        "fifo": _entry(mask=tmp_path / "fifo.png"),
        "bomb": _entry(mask=tmp_path / "big.png"),
    }[entry_kind]
    with pytest.raises(IgnoreRegionError) as info:
        ignore_mask(entry, 8, 6, max_pixels=47)
    assert phrase in str(info.value)


def test_grow_equals_a_square_dilation() -> None:
    rng = np.random.default_rng(2)
    mask = rng.random((17, 23)) < 0.05
    for pixels in (1, 2):
        want = ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=pixels)
        np.testing.assert_array_equal(grow(mask, pixels), want)


def test_apply_ignore_copies_the_baseline_in() -> None:
    base = np.zeros((4, 4, 4), np.uint8)
    cand = np.full((4, 4, 4), 200, np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    apply_ignore(base, cand, mask)
    assert (cand[mask] == 0).all() and (cand[~mask] == 200).all()
