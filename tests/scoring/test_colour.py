"""Colour as people see it: the hue shift turns with a real colour change and not with
noise or moved content; S-CIELAB's colour part leaves lightness out."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from pixgate.scoring.colour import COLUMNS, spatial_colour
from tests.conftest import promo_poster

# The shipped policy's bound on `hue_shift`, degrees (golden/policy.toml): legitimate
# changes must stay well under it, real colour changes well over it.
HUE_BOUND = 2.0


def _row(base: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    table = spatial_colour(torch.from_numpy(base[None].copy()), torch.from_numpy(cand[None].copy()))
    return dict(zip(COLUMNS, table[0].tolist(), strict=True))


def _hsv_turned(rgba: np.ndarray, degrees: float) -> np.ndarray:
    hsv = np.asarray(Image.fromarray(np.ascontiguousarray(rgba[..., :3])).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + round(degrees / 360 * 256)) % 256
    rgb = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
    return np.dstack([rgb, rgba[..., 3]])


def _converted_to_adobe(rgba: np.ndarray) -> np.ndarray:
    from importlib.resources import files

    adobe = files("pixgate") / "data" / "AdobeRGB1998.icc"  # the profile pixgate ships
    transform = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(adobe.read_bytes())), "RGB", "RGB"
    )
    rgb = ImageCms.applyTransform(Image.fromarray(np.ascontiguousarray(rgba[..., :3])), transform)
    assert rgb is not None
    return np.dstack([np.asarray(rgb), rgba[..., 3]])


def test_identical_pictures_turn_no_hue() -> None:
    base, _ = promo_poster(1, 256)
    row = _row(base, base.copy())
    assert row["hue_shift"] == 0.0 and row["scielab_mean"] == 0.0 and row["scielab_colour"] == 0.0


@pytest.mark.parametrize("degrees", [6.0, 12.0])
def test_a_turned_hue_reads_as_turned(degrees: float) -> None:
    base, _ = promo_poster(2, 256)
    # HSV's hue is not CIELAB's: a turn of d degrees in one is of the same order in the
    # other, not equal.
    assert _row(base, _hsv_turned(base, degrees))["hue_shift"] > degrees / 3 > HUE_BOUND / 2


def test_a_colour_space_converted_with_the_old_tag_kept_turns_a_hue() -> None:
    base, _ = promo_poster(3, 256)
    assert _row(base, _converted_to_adobe(base))["hue_shift"] > HUE_BOUND


def test_noise_and_moved_text_turn_no_hue() -> None:
    base, boxes = promo_poster(4, 256)
    noise = np.random.default_rng(0).normal(0, 2.0, base[..., :3].shape)
    noisy = np.dstack([np.clip(np.rint(base[..., :3] + noise), 0, 255).astype(np.uint8), base[..., 3]])
    assert _row(base, noisy)["hue_shift"] < HUE_BOUND / 4
    # The headline moved by 2 px over its unmoved background.
    x0, y0, x1, y1 = boxes[0]
    moved = base.copy()
    moved[y0 : y1 + 2, x0 + 2 : x1 + 2] = base[y0 - 2 : y1, x0:x1]
    row = _row(base, moved)
    assert row["hue_shift"] < HUE_BOUND
    # Lightness is left out of the colour part.
    assert row["scielab_colour"] < row["scielab_mean"]


def test_a_grey_picture_has_no_hue_to_turn() -> None:
    ramp = np.tile(np.linspace(0, 255, 128, dtype=np.uint8), (96, 1))
    grey = np.dstack([ramp] * 3 + [np.full((96, 128), 255, np.uint8)])
    assert math.isnan(_row(grey, np.ascontiguousarray(grey[:, ::-1]))["hue_shift"])
