"""Text lines of a baseline, and lines ready for OCR: where the typography checks read.

The baseline is the reference; pixgate.scoring.typography compares what is read here.

1. Text regions: the manifest's `text_boxes` when it gives them, else the lines OCR finds
   in the whole baseline (`find_text_regions`: scaled so its long side is about
   `OCR_FIND_SIDE`; page analysis with a local threshold, and sparse text), kept when
   their own reading is at least `OCR_MIN_CONFIDENCE` sure.
2. Each region is cropped with room around it (`OCR_GROW_X`, `OCR_GROW_Y`), scaled so a
   line is about `OCR_LINE_HEIGHT` pixels tall, binarised with Otsu's threshold of the
   line's own box and turned dark text on light (the background is the class that holds
   most of the box's border), so light-on-dark and dark-on-light text read alike, shapes
   the crop cuts through left out, then read by Tesseract (`prepare_line`).

The baseline's regions and readings are cached by its pixels (pixgate.scoring.ocr_cache,
keyed with `READING_SETTINGS`), so a baseline is read once however many runs use it
(`baseline_text`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from pixgate.config import (
    OCR_FIND_MAX_SCALE,
    OCR_FIND_MAX_SIDE,
    OCR_FIND_SIDE,
    OCR_GROW_X,
    OCR_GROW_Y,
    OCR_LINE_HEIGHT,
    OCR_MATCH_CONTRAST_SHARE,
    OCR_MATCH_LUMA_MAX,
    OCR_MATCH_SHIFT_PX,
    OCR_MAX_REGIONS,
    OCR_MAX_SCALE,
    OCR_MIN_CONFIDENCE,
    OCR_MIN_LINE_CHARS,
    OCR_MIN_LINE_PX,
    OCR_REGION_MAX_PIXELS,
    TESSERACT_MAX_SIDE,
)
from pixgate.scoring.ocr import Budget, OcrSettings, find_lines, read_region
from pixgate.scoring.ocr_cache import BaselineText, OcrCache, cache_key

if TYPE_CHECKING:
    from PIL import Image

    from pixgate.scoring.manifest import Box

#: Pixels added around each text region: a blurred stroke spreads beyond a tight box, and
#: Tesseract needs a little background around a line.
_MARGIN = 3
#: White border added around a prepared line before OCR (Tesseract expects margins).
_PAD = 16
#: Pixels converted to luma, or to edge magnitudes, at a time (bounds the temporaries).
BAND_PIXELS = 1 << 20

#: Everything besides the pixels and the engine that shapes a baseline's reading: part of
#: the OCR cache's key.
READING_SETTINGS: dict[str, Any] = {
    "find_side": OCR_FIND_SIDE,
    "find_max_scale": OCR_FIND_MAX_SCALE,
    "find_max_side": OCR_FIND_MAX_SIDE,
    "max_regions": OCR_MAX_REGIONS,
    "region_max_pixels": OCR_REGION_MAX_PIXELS,
    "tesseract_max_side": TESSERACT_MAX_SIDE,
    "grow": [OCR_GROW_X, OCR_GROW_Y],
    "line_height": OCR_LINE_HEIGHT,
    "max_scale": OCR_MAX_SCALE,
    "min_confidence": OCR_MIN_CONFIDENCE,
    "min_line": [OCR_MIN_LINE_PX, OCR_MIN_LINE_CHARS],
    "margin": _MARGIN,
    "pad": _PAD,
    "find_passes": ["auto-sauvola", "sparse-otsu"],
}


def gray_over_white(rgba: np.ndarray) -> np.ndarray:
    """Rec.709 luma of an H x W x 4 uint8 image composited over white, as uint8.

    Computed a band of rows at a time, so the float temporaries stay small whatever the
    image's size.
    """
    out = np.empty(rgba.shape[:2], np.uint8)
    weights = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    rows = max(1, BAND_PIXELS // max(rgba.shape[1], 1))
    for top in range(0, rgba.shape[0], rows):
        band = rgba[top : top + rows]
        a = band[..., 3:4].astype(np.float32) / 255.0
        rgb = band[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
        out[top : top + rows] = np.clip(np.rint(rgb @ weights), 0, 255).astype(np.uint8)
    return out


def region_matches(base: np.ndarray, cand: np.ndarray, box: Box) -> bool:
    """Whether the candidate's pixels around `box` (its read area, `grown_box`) match the
    baseline's, so that the region would read as the baseline's and need not be read.

    They match when, at some whole-pixel offset up to `OCR_MATCH_SHIFT_PX`, the luma over
    white of every pixel is within `OCR_MATCH_CONTRAST_SHARE` of the contrast of the
    baseline's line (the gap between its Otsu classes' means, in `box` itself) and within
    `OCR_MATCH_LUMA_MAX`.

    Args:
        base: Baseline H x W x 4 uint8 pixels.
        cand: Candidate pixels of the same size (another size never matches).
        box: The region, in baseline pixels.

    Returns:
        True when the region matches.
    """
    if cand.shape != base.shape:
        return False
    height, width = base.shape[:2]
    x0, y0, x1, y1 = grown_box(box, width, height)
    if x1 <= x0 or y1 <= y0:
        return False
    reach = OCR_MATCH_SHIFT_PX
    # The candidate's area reaches past the region by the offsets tried, within the image.
    cx0, cy0, cx1, cy1 = max(x0 - reach, 0), max(y0 - reach, 0), min(x1 + reach, width), min(y1 + reach, height)
    grey = gray_over_white(base[y0:y1, x0:x1])
    # The contrast of the line's own box (not of the room read around it, which may hold
    # a picture's shapes of a contrast the text does not have).
    bx0, by0 = min(max(box[0], x0), x1 - 1) - x0, min(max(box[1], y0), y1 - 1) - y0
    line = grey[by0 : max(box[3] - y0, by0 + 1), bx0 : max(box[2] - x0, bx0 + 1)]
    bound = min(float(OCR_MATCH_LUMA_MAX), OCR_MATCH_CONTRAST_SHARE * _contrast(line))
    ref = grey.astype(np.int16)
    around = gray_over_white(cand[cy0:cy1, cx0:cx1]).astype(np.int16)
    # Unmoved first, then by distance: an unchanged region matches at the first try.
    offsets = sorted(((dx, dy) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)),
                     key=lambda o: o[0] * o[0] + o[1] * o[1])  # fmt: skip
    for dx, dy in offsets:
        # The part of the region whose moved pixels lie inside the image: at an edge
        # (a region grown up to it) content moved out of the picture is not compared.
        rx0, rx1 = max(x0, -dx), min(x1, width - dx)
        ry0, ry1 = max(y0, -dy), min(y1, height - dy)
        if rx1 <= rx0 or ry1 <= ry0:
            continue
        moved = around[ry0 + dy - cy0 : ry1 + dy - cy0, rx0 + dx - cx0 : rx1 + dx - cx0]
        kept = ref[ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0]
        if int(np.abs(moved - kept).max(initial=0)) <= bound:
            return True
    return False


def _contrast(grey: np.ndarray) -> float:
    """The gap between the means of uint8 `grey`'s two Otsu classes (0 for a flat region)."""
    t = otsu_threshold(grey)
    dark, light = grey[grey <= t], grey[grey > t]
    if not dark.size or not light.size:
        return 0.0
    return float(light.mean() - dark.mean())


def otsu_threshold(values: np.ndarray) -> int:
    """Otsu's threshold of uint8 `values`: the level that best splits them in two classes."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    p = hist / max(hist.sum(), 1.0)
    w = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * w - mu) ** 2 / (w * (1.0 - w))
    between[~np.isfinite(between)] = -1.0
    return int(np.argmax(between))


def padded_box(box: Box, width: int, height: int) -> Box:
    """`box` with `_MARGIN` pixels around it, within a `width` x `height` image."""
    x0, y0, x1, y1 = box
    return max(x0 - _MARGIN, 0), max(y0 - _MARGIN, 0), min(x1 + _MARGIN, width), min(y1 + _MARGIN, height)


def grown_box(box: Box, width: int, height: int) -> Box:
    """`box` with the room read around a line (`OCR_GROW_X`, `OCR_GROW_Y` of its size, at
    least `_MARGIN`), within a `width` x `height` image."""
    x0, y0, x1, y1 = box
    gx = max(_MARGIN, round(OCR_GROW_X * (x1 - x0)))
    gy = max(_MARGIN, round(OCR_GROW_Y * (y1 - y0)))
    return max(x0 - gx, 0), max(y0 - gy, 0), min(x1 + gx, width), min(y1 + gy, height)


def prepare_line(
    rgba: np.ndarray, box: Box, *, line_height: int = OCR_LINE_HEIGHT, binarise: bool = True
) -> Image.Image:
    """One text region of an H x W x 4 image, ready for Tesseract: grown, scaled (within
    `TESSERACT_MAX_SIDE` and `OCR_REGION_MAX_PIXELS`), binarised, dark text on white.

    Args:
        rgba: The image.
        box: The region, in its pixels.
        line_height: The height the grown region is scaled to (at most `OCR_MAX_SCALE`
            times).
        binarise: Binarise (Otsu's threshold of the region's own box); else keep the grey
            levels, only turned dark on light.
    """
    from PIL import Image, ImageOps

    x0, y0, x1, y1 = grown_box(box, rgba.shape[1], rgba.shape[0])
    crop = Image.fromarray(gray_over_white(rgba[y0:y1, x0:x1]))
    scale = min(max(line_height / max(y1 - y0, 1), 1.0), OCR_MAX_SCALE)
    # A region too large for Tesseract's limits (a whole-page box, a huge candidate) is
    # scaled down to them: page analysis, which no time limit stops, grows with its area.
    scale = min(
        scale,
        (TESSERACT_MAX_SIDE - 2 * _PAD) / max(crop.width, crop.height),
        math.sqrt(OCR_REGION_MAX_PIXELS / max(crop.width * crop.height, 1)),
    )
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    sx, sy = size[0] / crop.width, size[1] / crop.height
    a = np.asarray(crop.resize(size, Image.Resampling.LANCZOS))
    # The threshold and the polarity come from the line itself (its box with a margin):
    # the room around it may hold shapes of a photo, which would decide them otherwise.
    px0, py0, px1, py1 = padded_box(box, rgba.shape[1], rgba.shape[0])
    core = a[
        round((py0 - y0) * sy) : max(round((py1 - y0) * sy), 1), round((px0 - x0) * sx) : max(round((px1 - x0) * sx), 1)
    ]
    if core.size == 0:
        core = a
    threshold = otsu_threshold(core)
    edge = core > threshold
    background_bright = np.concatenate([edge[0], edge[-1], edge[:, 0], edge[:, -1]]).mean() >= 0.5
    text = a <= threshold if background_bright else a > threshold
    # Shapes the crop cuts through (the edge of a picture beside the line, a neighbouring
    # line's glyphs) are not this line's text, which lies well inside the grown region:
    # left in, they read as brackets, bars and stray letters at the line's ends.
    cut = _touching_border(text)
    if not binarise:
        grey = a if background_bright else 255 - a
        return ImageOps.expand(Image.fromarray(np.where(cut, 255, grey).astype(np.uint8)), border=_PAD, fill=255)
    return ImageOps.expand(Image.fromarray(np.where(text & ~cut, 0, 255).astype(np.uint8)), border=_PAD, fill=255)


def _touching_border(mask: np.ndarray) -> np.ndarray:
    """The pixels of `mask` in 8-connected shapes that touch its border."""
    from scipy import ndimage

    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0])


def _page_scale(width: int, height: int) -> float:
    """The scale a whole image is looked for text at (see `find_text_regions`)."""
    side = max(width, height)
    if side > OCR_FIND_MAX_SIDE:
        return OCR_FIND_MAX_SIDE / side
    return min(max(OCR_FIND_SIDE / side, 1.0), OCR_FIND_MAX_SCALE)


def _same_line(a: Box, b: Box) -> bool:
    """Boxes on rows shared by at least half the shorter one, and apart by less than its
    height (a word space is narrower than a line is tall): one line seen twice, or in
    pieces."""
    height = min(a[3] - a[1], b[3] - b[1])
    rows = min(a[3], b[3]) - max(a[1], b[1])
    return a[0] <= b[2] + height and b[0] <= a[2] + height and rows * 2 >= height


def _merge_lines(lines: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """Lines found twice, or in pieces, as one: the union of their boxes, the highest
    confidence (most confident first, so a line is built around its surest piece)."""
    merged: list[tuple[Box, float]] = []
    for box, confidence in sorted(lines, key=lambda line: -line[1]):
        for i, (other, best) in enumerate(merged):
            if _same_line(box, other):
                union = (min(box[0], other[0]), min(box[1], other[1]), max(box[2], other[2]), max(box[3], other[3]))
                merged[i] = (union, max(best, confidence))
                break
        else:
            merged.append((box, confidence))
    return merged


def find_text_regions(rgba: np.ndarray, settings: OcrSettings, budget: Budget | None = None) -> BaselineText:
    """The text lines of a whole H x W x 4 image and their readings, the unsure ones left out.

    The image is scaled up so its long side is about `OCR_FIND_SIDE` (small print in a
    small image is otherwise below what Tesseract finds), and down to `OCR_FIND_MAX_SIDE`
    when it is larger (Tesseract's page analysis, which its time limit does not stop,
    grows with the page), then read whole twice: with page analysis and as sparse text.
    Of the lines found (one line seen twice counts once), the `OCR_MAX_REGIONS` most confident are
    each read as a region, the way the candidate will be, and kept, top to bottom, when
    that reading is sure enough.
    """
    from PIL import Image

    height, width = rgba.shape[:2]
    scale = _page_scale(width, height)
    page = Image.fromarray(gray_over_white(rgba))
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        page = page.resize(size, Image.Resampling.LANCZOS)
    # Each mode misses lines the other finds: page analysis takes a line scattered over a
    # picture for part of the picture, sparse text drops one that runs off the edge. Page
    # analysis binarises with a local threshold: with one threshold for the whole page, a
    # light band of body text puts a mid-tone background and the dark headline on it in
    # one class, and the headline is lost.
    found = _merge_lines(
        find_lines(page, settings, budget, adaptive=True) + find_lines(page, settings, budget, sparse=True)
    )
    del page
    likely = sorted(found, key=lambda line: -line[1])[:OCR_MAX_REGIONS]
    boxes: list[Box] = []
    reads: list[str] = []
    for (x0, y0, x1, y1), _ in sorted(likely, key=lambda line: (line[0][1], line[0][0])):
        box = (
            max(math.floor(x0 / scale), 0),
            max(math.floor(y0 / scale), 0),
            min(math.ceil(x1 / scale), width),
            min(math.ceil(y1 / scale), height),
        )
        if box[2] <= box[0] or box[3] - box[1] < OCR_MIN_LINE_PX:
            continue
        text, confidence = read_region(prepare_line(rgba, box), settings, budget)
        if confidence >= OCR_MIN_CONFIDENCE and sum(ch.isalnum() for ch in text) >= OCR_MIN_LINE_CHARS:
            boxes.append(box)
            reads.append(text)
    return BaselineText(tuple(boxes), tuple(reads))


def baseline_text(
    base: np.ndarray,
    boxes: tuple[Box, ...] | None,
    settings: OcrSettings,
    cache: OcrCache | None,
    budget: Budget | None = None,
) -> BaselineText:
    """The baseline's text regions and their readings, from the cache when it has them.

    Args:
        base: Baseline H x W x 4 uint8 pixels.
        boxes: The regions to read (a manifest's `text_boxes`), or None to find them.
        settings: How to run Tesseract.
        cache: Where baseline readings are kept between runs, or None.
        budget: The pair's OCR time.
    """
    if cache is None:
        return _read_baseline(base, boxes, settings, budget)
    key = cache_key(base, settings.version, READING_SETTINGS, boxes)
    # Pairs that share a baseline wait for the first one's reading instead of repeating it.
    return cache.get_or_read(
        key, base.shape[1], base.shape[0], boxes, lambda: _read_baseline(base, boxes, settings, budget)
    )


def baseline_reread(
    base: np.ndarray,
    box: Box,
    *,
    line_height: int,
    binarise: bool,
    settings: OcrSettings,
    cache: OcrCache | None,
    budget: Budget | None = None,
) -> str:
    """One of the baseline's regions read in another way (`prepare_line`'s `line_height`
    and `binarise`), from the cache when it has it: like the first reading, it depends only
    on the baseline's pixels, so a region that needs reading again in every run (a
    candidate that reads a little differently) is read so once per baseline.

    Args:
        base: Baseline H x W x 4 uint8 pixels.
        box: The region, in its pixels.
        line_height: As for `prepare_line`.
        binarise: As for `prepare_line`.
        settings: How to run Tesseract.
        cache: Where baseline readings are kept between runs, or None.
        budget: The pair's OCR time.

    Returns:
        The region's text, as `read_region` gives it.
    """

    def read() -> str:
        image = prepare_line(base, box, line_height=line_height, binarise=binarise)
        return read_region(image, settings, budget)[0]

    if cache is None:
        return read()
    way = {**READING_SETTINGS, "line_height": line_height, "binarise": binarise}
    key = cache_key(base, settings.version, way, (box,))
    found = cache.get_or_read(
        key, base.shape[1], base.shape[0], (box,), lambda: BaselineText((box,), (read(),)), reread=True
    )
    return found.reads[0]


def _read_baseline(
    base: np.ndarray, boxes: tuple[Box, ...] | None, settings: OcrSettings, budget: Budget | None
) -> BaselineText:
    if boxes is None:
        return find_text_regions(base, settings, budget)
    return BaselineText(tuple(boxes), tuple(read_region(prepare_line(base, b), settings, budget)[0] for b in boxes))


__all__ = [
    "BAND_PIXELS",
    "READING_SETTINGS",
    "baseline_reread",
    "baseline_text",
    "find_text_regions",
    "gray_over_white",
    "grown_box",
    "otsu_threshold",
    "padded_box",
    "prepare_line",
    "region_matches",
]
