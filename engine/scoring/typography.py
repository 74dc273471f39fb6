"""Typography checks: does the candidate's text read as the baseline's does?

The baseline is the reference. For each pair:

1. Text regions: the manifest's `text_boxes` when it gives them, else the lines OCR finds
   in the whole baseline (scaled so its long side is about `OCR_FIND_SIDE`), kept when
   their own reading is at least `OCR_MIN_CONFIDENCE` sure. A baseline with no such line
   has no text to keep: its typography is `not_applicable`, and the row stays `ok`.
2. Each region is cropped with room around it (`OCR_GROW_X`, `OCR_GROW_Y`), scaled so a
   line is about `OCR_LINE_HEIGHT` pixels tall, binarised with Otsu's threshold of the
   line's own box and turned dark text on light (the background is the class that holds
   most of the box's border), so light-on-dark and dark-on-light text read alike, then
   read by Tesseract.
   The baseline's regions and readings are cached by its pixels (pixgate.scoring.ocr_cache), so a
   baseline is read once however many runs use it; the candidate is read only in the
   baseline's regions (mapped to its own size when the sizes differ), never as a page.
3. `text_cer`: without expected text, the edit distance of each baseline reading to its
   best-matching stretch of the candidate's reading of the same region, summed and
   divided by the baseline readings' length. With the manifest's `expected_text`, the
   expected strings are the reference instead (matched against all the regions' text, so
   extra text and the order of the regions do not count), and the baseline gets the same
   measure (`text_cer_baseline`), so a string OCR misreads in both images does not count
   against the candidate.
4. `text_sharpness`: inside each region, the RMS Sobel magnitude (the edge kernel's, on
   luma over white) of the candidate over the baseline's; the lowest region counts, so a
   line of small print lost next to a crisp title is not averaged away. Unlike
   `edge_preservation` it does not need the strokes to sit on the same pixels, so a clean
   re-rendering that moves glyphs by a pixel keeps about 1; a blur lowers it, because it
   spreads the same step over more pixels.
5. `text_pass`: `text_cer <= TEXT_CER_MAX` (with expected text: `text_cer <=
   text_cer_baseline + TEXT_CER_MARGIN`) and `text_sharpness >= TEXT_SHARPNESS_MIN`.

The checks run on threads beside decoding and scoring, each thread with its own
Tesseract engine loaded in the process (pixgate.scoring.ocr).
"""

from __future__ import annotations

import json
import math
import unicodedata
from typing import TYPE_CHECKING, Any

import numpy as np

from pixgate.config import (
    OCR_FIND_MAX_SCALE,
    OCR_FIND_MAX_SIDE,
    OCR_FIND_SIDE,
    OCR_GROW_X,
    OCR_GROW_Y,
    OCR_LINE_HEIGHT,
    OCR_MAX_REGIONS,
    OCR_MAX_SCALE,
    OCR_MIN_CONFIDENCE,
    OCR_MIN_LINE_CHARS,
    OCR_MIN_LINE_PX,
    OCR_REGION_MAX_PIXELS,
    TESSERACT_MAX_SIDE,
    TEXT_CER_MARGIN,
    TEXT_CER_MAX,
    TEXT_SHARPNESS_MIN,
)
from pixgate.runs import schema
from pixgate.scoring.ocr import Budget, OcrSettings, TextCheckError, find_lines, read_region
from pixgate.scoring.ocr_cache import BaselineText, OcrCache, cache_key

if TYPE_CHECKING:
    from PIL import Image

    from pixgate.scoring.manifest import Box, ManifestEntry

#: Pixels added around each text region: a blurred stroke spreads beyond a tight box, and
#: Tesseract needs a little background around a line.
_MARGIN = 3
#: White border added around a prepared line before OCR (Tesseract expects margins).
_PAD = 16
#: Squared edge energy below which a region has no edges to compare.
_FLAT_ENERGY = 1e-9
#: Pixels converted to luma, or to edge magnitudes, at a time (bounds the temporaries).
_BAND_PIXELS = 1 << 20

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
}


def gray_over_white(rgba: np.ndarray) -> np.ndarray:
    """Rec.709 luma of an H x W x 4 uint8 image composited over white, as uint8.

    Computed a band of rows at a time, so the float temporaries stay small whatever the
    image's size.
    """
    out = np.empty(rgba.shape[:2], np.uint8)
    weights = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    rows = max(1, _BAND_PIXELS // max(rgba.shape[1], 1))
    for top in range(0, rgba.shape[0], rows):
        band = rgba[top : top + rows]
        a = band[..., 3:4].astype(np.float32) / 255.0
        rgb = band[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
        out[top : top + rows] = np.clip(np.rint(rgb @ weights), 0, 255).astype(np.uint8)
    return out


def _otsu(values: np.ndarray) -> int:
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    p = hist / max(hist.sum(), 1.0)
    w = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * w - mu) ** 2 / (w * (1.0 - w))
    between[~np.isfinite(between)] = -1.0
    return int(np.argmax(between))


def _padded(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    return max(x0 - _MARGIN, 0), max(y0 - _MARGIN, 0), min(x1 + _MARGIN, width), min(y1 + _MARGIN, height)


def _grown(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    gx = max(_MARGIN, round(OCR_GROW_X * (x1 - x0)))
    gy = max(_MARGIN, round(OCR_GROW_Y * (y1 - y0)))
    return max(x0 - gx, 0), max(y0 - gy, 0), min(x1 + gx, width), min(y1 + gy, height)


def prepare_line(rgba: np.ndarray, box: Box) -> Image.Image:
    """One text region of an H x W x 4 image, ready for Tesseract: grown, scaled (within
    `TESSERACT_MAX_SIDE` and `OCR_REGION_MAX_PIXELS`), binarised, dark text on white."""
    from PIL import Image, ImageOps

    x0, y0, x1, y1 = _grown(box, rgba.shape[1], rgba.shape[0])
    crop = Image.fromarray(gray_over_white(rgba[y0:y1, x0:x1]))
    scale = min(max(OCR_LINE_HEIGHT / max(y1 - y0, 1), 1.0), OCR_MAX_SCALE)
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
    px0, py0, px1, py1 = _padded(box, rgba.shape[1], rgba.shape[0])
    core = a[
        round((py0 - y0) * sy) : max(round((py1 - y0) * sy), 1), round((px0 - x0) * sx) : max(round((px1 - x0) * sx), 1)
    ]
    if core.size == 0:
        core = a
    threshold = _otsu(core)
    edge = core > threshold
    background_bright = np.concatenate([edge[0], edge[-1], edge[:, 0], edge[:, -1]]).mean() >= 0.5
    text = a <= threshold if background_bright else a > threshold
    return ImageOps.expand(Image.fromarray(np.where(text, 0, 255).astype(np.uint8)), border=_PAD, fill=255)


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
    # picture for part of the picture, sparse text drops one that runs off the edge.
    found = _merge_lines(find_lines(page, settings, budget) + find_lines(page, settings, budget, sparse=True))
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


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def substring_distance(pattern: str, text: str, budget: Budget | None = None) -> int:
    """Fewest edits that turn `pattern` into some substring of `text` (Sellers, 1980).

    One NumPy pass per character of `pattern`: the insertion chain along a row of the
    edit table is a running minimum, `row[j] = min over k <= j of (a[k] + j - k)`.

    Raises:
        TextCheckError: The pair's `budget` is spent (counted per character of `pattern`).
    """
    if not pattern:
        return 0
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    steps = np.arange(len(codes) + 1, dtype=np.int64)
    previous = np.zeros(len(codes) + 1, dtype=np.int64)  # matching may start anywhere for free
    for i, ch in enumerate(pattern, start=1):
        if budget is not None:
            budget.tick()
        a = np.empty_like(previous)
        a[0] = i
        a[1:] = np.minimum(previous[:-1] + (codes != ord(ch)), previous[1:] + 1)
        previous = np.minimum.accumulate(a - steps) + steps
    return int(previous.min())  # and end anywhere


def char_error_rate(expected: tuple[str, ...] | list[str], read: str, budget: Budget | None = None) -> float | None:
    """Edit distance of each expected string to its best match in `read`, over their length."""
    strings = [_normalise(s) for s in expected]
    total = sum(len(s) for s in strings)
    if total == 0:
        return None
    text = _normalise(read)
    return sum(substring_distance(s, text, budget) for s in strings) / total


def reading_error_rate(
    reference: tuple[str, ...] | list[str], reads: tuple[str, ...] | list[str], budget: Budget | None = None
) -> float | None:
    """Region by region: edit distance of the reference reading to its best match in the
    candidate's reading of the same region, summed, over the reference's length; None
    when the reference read nothing."""
    pairs = [(_normalise(r), _normalise(c)) for r, c in zip(reference, reads, strict=True)]
    total = sum(len(r) for r, _ in pairs)
    if total == 0:
        return None
    return sum(substring_distance(r, c, budget) for r, c in pairs) / total


def text_sharpness(base: np.ndarray, cand: np.ndarray, boxes: list[Box]) -> float | None:
    """RMS edge strength of the candidate over the baseline's, per region, the lowest.

    The lowest region decides, so one line of small print rasterised to mush is not
    averaged away by a crisp title. Regions where the baseline is flat are left out;
    None when all are.
    """
    from pixgate_kernels.cpu import edge_magnitudes_cpu

    height, width = base.shape[:2]
    ratios = []
    for x0, y0, x1, y1 in (_padded(b, width, height) for b in boxes):
        energy_b = energy_c = 0.0
        rows = max(1, _BAND_PIXELS // max(x1 - x0, 1))
        # A band of rows at a time, with one pixel more on each side (all the Sobel
        # operator reads): the magnitudes are the whole image's, the memory a band's.
        for top in range(y0, y1, rows):
            bottom = min(top + rows, y1)
            cx0, cy0, cx1, cy1 = max(x0 - 1, 0), max(top - 1, 0), min(x1 + 1, width), min(bottom + 1, height)
            edges = edge_magnitudes_cpu(
                np.ascontiguousarray(base[None, cy0:cy1, cx0:cx1]), np.ascontiguousarray(cand[None, cy0:cy1, cx0:cx1])
            )
            gb = edges[0, 0, top - cy0 : bottom - cy0, x0 - cx0 : x1 - cx0].astype(np.float64)
            gc = edges[1, 0, top - cy0 : bottom - cy0, x0 - cx0 : x1 - cx0].astype(np.float64)
            energy_b += float(np.sum(gb * gb))
            energy_c += float(np.sum(gc * gc))
        if energy_b > _FLAT_ENERGY:
            ratios.append(math.sqrt(energy_c / energy_b))
    return min(ratios) if ratios else None


def _mapped(box: Box, sx: float, sy: float, width: int, height: int) -> Box:
    """A baseline box in the pixels of an image `sx` times as wide and `sy` as tall."""
    x0, y0, x1, y1 = box
    mx0, my0 = min(math.floor(x0 * sx), width - 1), min(math.floor(y0 * sy), height - 1)
    mx1, my1 = min(math.ceil(x1 * sx), width), min(math.ceil(y1 * sy), height)
    return mx0, my0, max(mx1, mx0 + 1), max(my1, my0 + 1)


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
    with cache.reading(key):
        found = cache.get(key, base.shape[1], base.shape[0], boxes)
        if found is None:
            found = _read_baseline(base, boxes, settings, budget)
            cache.put(key, found)
    return found


def _read_baseline(
    base: np.ndarray, boxes: tuple[Box, ...] | None, settings: OcrSettings, budget: Budget | None
) -> BaselineText:
    if boxes is None:
        return find_text_regions(base, settings, budget)
    return BaselineText(tuple(boxes), tuple(read_region(prepare_line(base, b), settings, budget)[0] for b in boxes))


def _outside(found: BaselineText, ignore: np.ndarray | None) -> BaselineText:
    """The regions whose read area (grown as for reading) touches no ignored pixel: text
    there is allowed to change."""
    if ignore is None:
        return found
    height, width = ignore.shape
    grown = [_grown(box, width, height) for box in found.boxes]
    keep = [i for i, (x0, y0, x1, y1) in enumerate(grown) if not ignore[y0:y1, x0:x1].any()]
    return BaselineText(tuple(found.boxes[i] for i in keep), tuple(found.reads[i] for i in keep))


def check_text(
    base: np.ndarray,
    cand: np.ndarray,
    aligned: np.ndarray,
    entry: ManifestEntry | None,
    settings: OcrSettings,
    cache: OcrCache | None = None,
    ignore: np.ndarray | None = None,
    budget: Budget | None = None,
) -> dict[str, Any]:
    """The typography columns of one pair.

    Args:
        base: Baseline H x W x 4 uint8 sRGB pixels.
        cand: Candidate pixels at the candidate's own size.
        aligned: Candidate pixels at the baseline's size.
        entry: The pair's manifest entry (expected text, text boxes), or None.
        settings: How to run Tesseract.
        cache: Where baseline readings are kept between runs, or None.
        ignore: The pair's ignored pixels (H x W bool, baseline coordinates), or None:
            regions that touch them are not read.
        budget: The pair's OCR time (a fresh one when None).

    Raises:
        TextCheckError: A box outside the image, no text found where the manifest expects
            some, or OCR past its time limits (`OCR_TIMEOUT_S` a call,
            `OCR_PAIR_TIMEOUT_S` the pair).
    """
    height, width = base.shape[:2]
    given = entry.text_boxes if entry is not None else None
    expected = entry.expected_text if entry is not None else ()
    for box in given or ():
        if box[2] > width or box[3] > height:
            raise TextCheckError(
                f"typography: text box {list(box)} (manifest line {entry.line if entry else '?'}) lies outside the "
                f"{width}x{height} baseline"
            )
    budget = budget or Budget()
    found = _outside(baseline_text(base, given, settings, cache, budget), ignore)
    row: dict[str, Any] = {schema.TEXT_REGIONS.name: len(found.boxes)}
    if not found.boxes:
        if expected and entry is not None:
            advice = (
                "its `text_boxes` all touch its ignore regions"
                if given
                else f"give `text_boxes` for {entry.pair_id!r} in the manifest"
            )
            where = " outside its ignore regions" if ignore is not None else ""
            raise TextCheckError(
                f"typography: OCR found no text in the baseline{where} to compare with the expected text; "
                f"{advice} (manifest line {entry.line})"
            )
        row[schema.TEXT_STATUS.name] = schema.TEXT_NOT_APPLICABLE
        return row
    sx, sy = cand.shape[1] / width, cand.shape[0] / height
    reads = []
    for box, read_b in zip(found.boxes, found.reads, strict=True):
        if cand.shape == base.shape:
            x0, y0, x1, y1 = _grown(box, width, height)
            if np.array_equal(cand[y0:y1, x0:x1], base[y0:y1, x0:x1]):
                reads.append(read_b)  # the same pixels read the same: OCR is deterministic
                continue
        region = prepare_line(cand, _mapped(box, sx, sy, cand.shape[1], cand.shape[0]))
        reads.append(read_region(region, settings, budget)[0])
    sharpness = text_sharpness(base, aligned, list(found.boxes))
    cer_b: float | None = None
    if expected:
        cer_b = char_error_rate(expected, "\n".join(found.reads), budget)
        cer_c = char_error_rate(expected, "\n".join(reads), budget)
        bound = None if cer_b is None else cer_b + TEXT_CER_MARGIN
    else:
        cer_c = reading_error_rate(found.reads, reads, budget)
        bound = TEXT_CER_MAX
    if cer_c is None and sharpness is None:
        # Regions that read as nothing on a flat background: no text to keep.
        row[schema.TEXT_STATUS.name] = schema.TEXT_NOT_APPLICABLE
        return row
    passed = (cer_c is None or bound is None or cer_c <= bound) and (
        sharpness is None or sharpness >= TEXT_SHARPNESS_MIN
    )
    row.update(
        {
            schema.TEXT_STATUS.name: schema.TEXT_CHECKED,
            schema.TEXT_BOXES.name: json.dumps([list(b) for b in found.boxes]),
            schema.OCR_BASELINE.name: "\n".join(found.reads),
            schema.OCR_CANDIDATE.name: "\n".join(reads),
            schema.TEXT_CER_BASELINE.name: cer_b,
            schema.TEXT_CER.name: cer_c,
            schema.TEXT_SHARPNESS.name: sharpness,
            schema.TEXT_PASS.name: passed,
        }
    )
    return row


__all__ = [
    "READING_SETTINGS",
    "baseline_text",
    "char_error_rate",
    "check_text",
    "find_text_regions",
    "gray_over_white",
    "prepare_line",
    "reading_error_rate",
    "substring_distance",
    "text_sharpness",
]
