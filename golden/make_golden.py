"""Build pixgate's golden set: poster-like baselines and one candidate per failure mode.

Deterministic: the same Pillow version gives the same bytes. Run from the repository
root: `python golden/make_golden.py` (writes golden/baseline, golden/candidate and
golden/manifest.jsonl).

Each candidate reproduces a failure seen in real generator migrations. The manifest
records, per pair, the prompt and seed that "generated" it, tags, the text it should
show, and the flags a correct scorer must raise.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageDraw, ImageEnhance, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent
SIZE = (256, 256)  # width, height: small enough to keep the folder light
ICC = {name: (HERE / "icc" / f"{name}.icc").read_bytes() for name in ("sRGB", "AdobeRGB1998")}
# The jitter pair's whole-pixel move of the content (right, down), and the content
# stretch pair's horizontal factor: legitimate jitter stays within a few pixels, while a
# stretch of a few per cent is a visible distortion of type and product shapes.
JITTER_PX = (2, 1)
CONTENT_STRETCH = 1.03


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def poster(
    seed: int,
    title: str,
    small: str,
    *,
    cutout: bool,
    title_size: int = 30,
    small_size: int = 11,
    offset: tuple[float, float] = (0.0, 0.0),
    ink: tuple[int, int, int] = (20, 20, 20),
    coverage_gamma: float = 1.0,
) -> tuple[Image.Image, list[list[int]]]:
    """A poster: gradient, shapes, a large title, small print, optional transparent corners.

    The text arguments re-render the same poster's text the way another engine might:
    another size, a sub-pixel offset, another ink, or other antialiasing (`coverage_gamma`:
    the glyphs' edge coverage raised to this power, as a renderer that blends in another
    gamma does; the glyphs stay where they are). Returns the image and the box of each line of text ([x0, y0, x1, y1],
    ends exclusive).
    """
    rng = np.random.default_rng(seed)
    w, h = SIZE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    t = (x / w * 0.6 + y / h * 0.4)[..., None]
    img = Image.fromarray((c0 * (1 - t) + c1 * t).astype(np.uint8), "RGB").convert("RGBA")
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = rng.integers(0, w - 60), rng.integers(40, h - 90)
        colour = (*rng.integers(0, 255, 3).tolist(), 255)
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x0 + rng.integers(30, 70), y0 + rng.integers(30, 70)), fill=colour)
        else:
            draw.rectangle((x0, y0, x0 + rng.integers(30, 70), y0 + rng.integers(20, 50)), fill=colour)
    dx, dy = offset
    draw.rectangle((0, h - 44, w, h), fill=(250, 250, 245, 255))
    lines = (
        ((14 + dx, 12 + dy), title, _font(title_size), {"fill": (255, 255, 255, 255), "stroke_width": 2,
                                                       "stroke_fill": (0, 0, 0, 255)}),
        ((8 + dx, h - 40 + dy), small, _font(small_size), {"fill": (*ink, 255)}),
        ((8 + dx, h - 24 + dy), SMALL_PRINT, _font(small_size), {"fill": (*ink, 255)}),
    )  # fmt: skip
    boxes = []
    layer = Image.new("RGBA", SIZE, (0, 0, 0, 0)) if coverage_gamma != 1.0 else None
    for xy, text, font, style in lines:
        ImageDraw.Draw(layer or img).text(xy, text, font=font, **style)  # type: ignore[arg-type]
        x0, y0, x1, y1 = draw.textbbox(xy, text, font=font, stroke_width=int(style.get("stroke_width", 0)))
        boxes.append([int(x0), int(y0), min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h)])
    if layer is not None:
        coverage = np.asarray(layer.getchannel("A"), dtype=np.float64) / 255.0
        layer.putalpha(Image.fromarray(np.rint(255.0 * coverage**coverage_gamma).astype(np.uint8)))
        img.alpha_composite(layer)
    if cutout:
        mask = Image.new("L", SIZE, 0)
        ImageDraw.Draw(mask).rounded_rectangle((0, 0, w - 1, h - 1), radius=48, fill=255)
        img.putalpha(mask)
    return img, boxes


def _mush_small_text(img: Image.Image) -> Image.Image:
    """Re-rasterise the small-print band at a quarter of the resolution."""
    w, h = img.size
    band = img.crop((0, h - 44, w, h))
    band = band.resize((w // 4, 11), Image.Resampling.BILINEAR).resize((w, 44), Image.Resampling.BILINEAR)
    out = img.copy()
    out.paste(band, (0, h - 44))
    return out


def _jitter(img: Image.Image, dx: int, dy: int) -> Image.Image:
    """The content moved `dx` px right and `dy` px down, the edge pixels repeated into the gap."""
    w, h = img.size
    moved = np.pad(np.asarray(img), ((dy, 0), (dx, 0), (0, 0)), mode="edge")[:h, :w]
    return Image.fromarray(moved, img.mode)


def _stretch_content(img: Image.Image, factor: float) -> Image.Image:
    """The content stretched horizontally by `factor` about the centre, in the same canvas."""
    cx = img.width / 2
    # The affine maps each output position to the input position it samples.
    return img.transform(img.size, Image.Transform.AFFINE, (1 / factor, 0, cx - cx / factor, 0, 1, 0),
                         resample=Image.Resampling.BICUBIC)  # fmt: skip


def _flatten(img: Image.Image) -> Image.Image:
    """Still RGBA, but opaque everywhere: the pixels under the transparent corners show."""
    out = img.copy()
    out.putalpha(255)
    return out


def _adobe_numbers(img: Image.Image) -> Image.Image:
    """The sRGB pixels converted to Adobe RGB (1998) numbers (to be saved with the sRGB tag)."""
    srgb, adobe = (ImageCms.ImageCmsProfile(io.BytesIO(ICC[name])) for name in ("sRGB", "AdobeRGB1998"))
    out = ImageCms.profileToProfile(img, srgb, adobe, outputMode="RGB")
    assert out is not None
    return out


# id -> (prompt, seed, cutout, tags, candidate transform, expected flags). `passes` and
# `fails_by` are the shipped policy's verdict on the pair judged alone: no rule names it,
# or each rule listed does.
PAIRS = {
    "identical_sale": ("summer sale poster, bold title", 11, False, ["identical"], "same", {"identical": True}),
    "identical_cutout": (
        "sticker with rounded transparent corners",
        12,
        True,
        ["identical", "alpha"],
        "same",
        {"identical": True},
    ),
    "alpha_dropped": (
        "sticker with rounded transparent corners",
        13,
        True,
        ["alpha"],
        "drop_alpha",
        {"alpha_parity": False},
    ),
    "icc_swapped": ("product card, muted colours", 14, False, ["icc"], "icc_adobe", {"icc_match": False}),
    "saturation_boost": (
        "product card, muted colours",
        15,
        False,
        ["colour"],
        "saturate",
        {"chroma_shift_positive": True},
    ),
    "edges_lost": ("geometric poster, crisp shapes", 16, False, ["edges"], "blur", {"edge_loss": True}),
    "small_text_mush": ("promo banner with fine print", 17, False, ["text"], "mush", {"text_unreadable": True}),
    "stretched": (
        "square poster",
        18,
        False,
        ["aspect"],
        "stretch",
        {"size_match": False, "aspect_ratio_delta_min": 0.2},
    ),
    "jpeg_reencoded": ("promo banner exported as PNG", 19, False, ["format"], "jpeg", {"format_change": True}),
    "text_rerendered": (
        "promo banner, same copy",
        20,
        False,
        ["text"],
        "rerender",
        {"text_pass": True, "size_match": True},
    ),
    "text_antialiased": (
        "promo banner, same copy, other text renderer",
        21,
        False,
        ["text", "identical_text"],
        "antialias",
        {"text_pass": True, "size_match": True},
    ),
    "jitter_shifted": (
        "promo banner, re-rendered a pixel or two off",
        22,
        False,
        ["geometry", "legitimate"],
        "jitter",
        {"passes": True, "size_match": True, "shift_px": list(JITTER_PX)},
    ),
    "content_stretched": (
        "square poster, content stretched in its canvas",
        23,
        False,
        ["geometry"],
        "stretch_content",
        {"fails_by": ["content geometry"], "size_match": True},
    ),
    "cutout_flattened": (
        "sticker with rounded transparent corners",
        24,
        True,
        ["alpha"],
        "flatten",
        {"fails_by": ["cut-out flattened"], "alpha_parity": True},
    ),
    "price_changed": (
        "price promo with fine print",
        25,
        False,
        ["text"],
        "reprice",
        {"fails_by": ["typography"], "size_match": True},
    ),
    "converted_colour": (
        "vivid product poster",
        26,
        False,
        ["colour", "icc"],
        "adobe_numbers",
        {"fails_by": ["chroma lowered", "colour as seen (S-CIELAB colour)"], "icc_match": True},
    ),
}

# Typography verdicts every pair must get (`score --manifest`): the text survives
# everything but the blur and the small print rasterised to mush, and reads as the
# expected copy everywhere but where one digit of a price changed.
TEXT_LOST = {"edges_lost", "small_text_mush"}
TEXT_CHANGED = {"price_changed"}
# The price in the price pair's small print, on the baseline and on the candidate.
PRICE = ("24.99", "29.99")

TITLES = {
    "small_text_mush": ("MEGA DEAL", "Offer valid 1-31 July on selected items only."),
    "price_changed": ("SUMMER -40%", f"Now only {PRICE[0]}. Offer valid 1-31 July only."),
}
DEFAULT_TEXT = ("SUMMER -40%", "Offer valid 1-31 July on selected items only.")
SMALL_PRINT = "Terms apply. See store for details."


def _save_png(img: Image.Image, path: Path, icc: bytes) -> None:
    img.save(path, format="PNG", icc_profile=icc, optimize=True)


def build(out: Path = HERE) -> None:
    """Write baseline/, candidate/, manifest.jsonl and prompts.jsonl under `out`."""
    base_dir, cand_dir = out / "baseline", out / "candidate"
    for d in (base_dir, cand_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    lines = []
    for pid, (prompt, seed, cutout, tags, how, expected) in PAIRS.items():
        title, small = TITLES.get(pid, DEFAULT_TEXT)
        img, boxes = poster(seed, title, small, cutout=cutout)
        if not cutout:
            img = img.convert("RGB")
        _save_png(img, base_dir / f"{pid}.png", ICC["sRGB"])
        cand_path = cand_dir / f"{pid}.png"
        if how == "same":
            shutil.copy(base_dir / f"{pid}.png", cand_path)
        elif how == "drop_alpha":
            # The pixels under the transparent corners show through once alpha is gone.
            _save_png(img.convert("RGB"), cand_path, ICC["sRGB"])
        elif how == "icc_adobe":
            _save_png(img, cand_path, ICC["AdobeRGB1998"])
        elif how == "saturate":
            _save_png(ImageEnhance.Color(img).enhance(1.6), cand_path, ICC["sRGB"])
        elif how == "blur":
            _save_png(img.filter(ImageFilter.GaussianBlur(2.5)), cand_path, ICC["sRGB"])
        elif how == "mush":
            _save_png(_mush_small_text(img), cand_path, ICC["sRGB"])
        elif how == "stretch":
            _save_png(img.resize((int(SIZE[0] * 1.25), SIZE[1]), Image.Resampling.BICUBIC), cand_path, ICC["sRGB"])
        elif how == "rerender":
            # Another engine's clean rendering of the same copy: a point larger, half a
            # pixel off, slightly lighter ink.
            other, _ = poster(seed, title, small, cutout=cutout, title_size=31, small_size=12,
                              offset=(0.5, 0.5), ink=(45, 45, 45))  # fmt: skip
            _save_png(other.convert("RGB"), cand_path, ICC["sRGB"])
        elif how == "antialias":
            # The same copy in the same place, antialiased with another coverage curve: only
            # the edge pixels of the glyphs differ.
            other, _ = poster(seed, title, small, cutout=cutout, coverage_gamma=0.6)
            _save_png(other.convert("RGB"), cand_path, ICC["sRGB"])
        elif how == "jitter":
            _save_png(_jitter(img, *JITTER_PX), cand_path, ICC["sRGB"])
        elif how == "stretch_content":
            _save_png(_stretch_content(img, CONTENT_STRETCH), cand_path, ICC["sRGB"])
        elif how == "flatten":
            _save_png(_flatten(img), cand_path, ICC["sRGB"])
        elif how == "reprice":
            # The same poster with one digit of the price changed, nothing else.
            other, _ = poster(seed, title, small.replace(*PRICE), cutout=cutout)
            _save_png(other.convert("RGB"), cand_path, ICC["sRGB"])
        elif how == "adobe_numbers":
            # Converted to another colour space, the sRGB tag kept: every viewer shows
            # the Adobe RGB numbers as sRGB ones.
            _save_png(_adobe_numbers(img), cand_path, ICC["sRGB"])
        elif how == "jpeg":
            cand_path = cand_dir / f"{pid}.jpg"
            img.save(cand_path, format="JPEG", quality=70, icc_profile=ICC["sRGB"])
        else:
            raise ValueError(f"unknown transform {how!r}")
        lines.append(
            json.dumps(
                {
                    "id": pid,
                    "prompt": prompt,
                    "seed": seed,
                    "tags": tags,
                    "baseline": f"baseline/{pid}.png",
                    "sha256": hashlib.sha256((base_dir / f"{pid}.png").read_bytes()).hexdigest(),
                    "expected_text": [title, small, SMALL_PRINT],
                    "text_boxes": boxes,
                    "expected": {**expected, "text_pass": pid not in TEXT_LOST | TEXT_CHANGED},
                },
                sort_keys=True,
            )
        )
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    # The same prompts for `pixgate capture` and `pixgate canary` (one generator call each).
    prompts = [
        json.dumps({"id": pid, "prompt": spec[0], "seed": spec[1]}, sort_keys=True) for pid, spec in PAIRS.items()
    ]
    (out / "prompts.jsonl").write_text("\n".join(prompts) + "\n")


if __name__ == "__main__":
    build()
