"""Writes the S-CIELAB reference inputs (see SOURCE.md): opaque sRGB PNG pairs.

Run from the checkout's root: python tests/data/scielab/make_inputs.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

HERE = Path(__file__).resolve().parent


def scene(height: int, width: int, seed: int, *, dx: int = 0) -> Image.Image:
    """A gradient with discs and two lines of text, the text moved `dx` pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    c0, c1 = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
    t = (0.6 * x / width + 0.4 * y / height)[..., None]
    img = Image.fromarray(np.rint(c0 * (1 - t) + c1 * t).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = (int(v) for v in rng.integers(0, min(height, width) * 3 // 4, 2))
        r = int(rng.integers(min(height, width) // 8, min(height, width) // 3))
        draw.ellipse((x0, y0, x0 + r, y0 + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw.text((6 + dx, 6), "SALE 40%", font=ImageFont.load_default(size=height // 5), fill=(255, 255, 255))
    draw.text((6 + dx, height - 18), "Terms apply. Ref 4471-B", font=ImageFont.load_default(size=11), fill=(15, 15, 15))
    return img


def noisy(img: Image.Image, sigma: float, seed: int) -> Image.Image:
    a = np.asarray(img, dtype=np.float64)
    a = a + np.random.default_rng(seed).normal(0.0, sigma, a.shape)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))


def main() -> None:
    pairs = {
        # Grain: the same picture with noise of sigma 2 levels.
        "grain": (scene(96, 128, 1), noisy(scene(96, 128, 1), 2.0, 11)),
        # Saturation +10 %.
        "saturation": (scene(96, 128, 2), ImageEnhance.Color(scene(96, 128, 2)).enhance(1.10)),
        # Text drawn 1 px to the right, and grain: at 224 samples per degree the
        # reference builds its kernels with no resampling.
        "shifted_text": (scene(240, 256, 3), noisy(scene(240, 256, 3, dx=1), 2.0, 13)),
    }
    for name, (base, cand) in pairs.items():
        base.save(HERE / f"{name}_base.png", optimize=True)
        cand.save(HERE / f"{name}_cand.png", optimize=True)


if __name__ == "__main__":
    main()
