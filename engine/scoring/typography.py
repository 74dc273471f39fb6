"""Typography checks: does the candidate's text read as the baseline's does?

The baseline is the reference. For each pair:

1. Text regions: the baseline's text lines and their readings (pixgate.scoring.text_lines:
   the manifest's `text_boxes`, else the lines OCR finds in it, each read as a prepared
   line; cached by the baseline's pixels). A baseline with no such line has no text to
   keep: its typography is `not_applicable`, and the row stays `ok`.
2. The candidate is read only in the baseline's regions (mapped to its own size when the
   sizes differ), never as a page. A region whose two readings differ is read again on
   both sides in the ways `OCR_REREADS` names, and the closest readings count for the
   measures per region.
3. `text_cer`: without expected text, the edit distance of each baseline reading to its
   best-matching stretch of the candidate's reading of the same region, summed and
   divided by the baseline readings' length. With the manifest's `expected_text`, the
   expected strings are the reference instead (matched against all the regions' text, so
   extra text and the order of the regions do not count), and the baseline gets the same
   measure (`text_cer_baseline`), so a string OCR misreads in both images does not count
   against the candidate. Recorded, not judged: an average hides the line that changed.
4. `text_cer_worst`: the same rate per region (closest readings, punctuation left out),
   the highest; with expected text, per expected string its rate in the candidate's
   text less its rate in the baseline's, the highest.
5. `text_numbers_changed`: the regions whose digits read differently on the two sides
   however each is read (`numbers_kept`).
6. `text_sharpness`: inside each region, the RMS Sobel magnitude (the edge kernel's, on
   luma over white) of the candidate over the baseline's; the lowest region counts, so a
   line of small print lost next to a crisp title is not averaged away. Unlike
   `edge_preservation` it does not need the strokes to sit on the same pixels, so a clean
   re-rendering that moves glyphs by a pixel keeps about 1; a blur lowers it, because it
   spreads the same step over more pixels.
7. `text_height_ratio`: per region, the size of the candidate's text over the baseline's,
   from the extent of the line's ink along it (`text_height_ratios`); the lowest region,
   since text drawn smaller is what loses legibility (text drawn larger reads as well).
8. `text_pass`: `text_cer_worst <= TEXT_CER_MAX` (with expected text: `<=
   TEXT_CER_MARGIN`), no number changed, `text_sharpness >= TEXT_SHARPNESS_MIN` and
   `text_height_ratio >= 1 - TEXT_HEIGHT_TOLERANCE`.

The checks run on threads beside decoding and scoring, each thread with its own
Tesseract engine loaded in the process (pixgate.scoring.ocr).
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pixgate.config import (
    OCR_LINE_HEIGHT,
    OCR_REREADS,
    TEXT_CER_MARGIN,
    TEXT_CER_MAX,
    TEXT_HEIGHT_TOLERANCE,
    TEXT_SHARPNESS_MIN,
)
from pixgate.runs import schema
from pixgate.scoring.ocr import Budget, OcrSettings, TextCheckError, read_region
from pixgate.scoring.ocr_cache import BaselineText, OcrCache
from pixgate.scoring.text_lines import (
    BAND_PIXELS,
    baseline_reread,
    baseline_text,
    gray_over_white,
    grown_box,
    otsu_threshold,
    padded_box,
    prepare_line,
    region_matches,
)

if TYPE_CHECKING:
    from pixgate.scoring.manifest import Box, ManifestEntry

#: Squared edge energy below which a region has no edges to compare.
_FLAT_ENERGY = 1e-9
#: Alpha levels by which the two images may differ at a pixel for its ink to count in the
#: text's size: where the alpha changed (a cut-out flattened, its edge eroded), what shows
#: is the shape's change, not the text's.
_SAME_ALPHA = 8
#: Normalised ink coverage (0 background, 1 ink) mapped onto 0..1 weights between these:
#: grain and JPEG ringing of a few levels weigh nothing, a glyph's antialiased edge part.
_INK_LOW, _INK_HIGH = 0.25, 0.75
#: Share of a line's ink left out at either end when its extent is measured, so a speck
#: or a stray pixel at the edge does not decide it.
_INK_TAIL = 0.02
#: Levels between a region's ink and background below which it holds no text to measure.
_MIN_CONTRAST = 16
#: Unicode categories of the symbols a line's error rate leaves out with its punctuation:
#: mathematical, modifier and other symbols (a bar, a caret), not currency signs.
_MARKS = frozenset({"Sm", "Sk", "So"})


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


def _words(text: str) -> str:
    """The text without punctuation and symbols other than currency signs, its whitespace
    collapsed: what a line's error rate compares. OCR of small print confuses the marks (a
    full stop read as a comma), and reads the edge of a shape beside a line as a bar or a
    bracket; they carry little of what a line says. Numbers are compared apart, digit by
    digit."""
    kept = "".join(
        " " if unicodedata.category(ch) in _MARKS or unicodedata.category(ch)[0] == "P" else ch
        for ch in _normalise(text)
    )
    return " ".join(kept.split())


def line_error_rate(reference: Sequence[str], reads: Sequence[str], budget: Budget | None = None) -> float | None:
    """One region read in several ways on each side: for the closest pair of readings, the
    edit distance of the reference reading to its best match in the candidate's, over the
    reference reading's length, punctuation left out; None when the reference read nothing
    in every way.

    OCR of small print misreads a letter in one preparation and not in another; text that
    really changed reads differently in all of them, so the closest pair is the measure.
    """
    best: float | None = None
    for r in (_words(r) for r in reference):
        if not r:
            continue
        for c in reads:
            rate = substring_distance(r, _words(c), budget) / len(r)
            best = rate if best is None else min(best, rate)
    return best


def _digits(text: str) -> str:
    return "".join(ch for ch in _normalise(text) if ch in "0123456789")


def _matched(a: str, b: str, budget: Budget | None = None) -> np.ndarray:
    """Which characters of `a` an optimal alignment (fewest edits) of `a` with `b` pairs
    with an equal character of `b`."""
    codes_a = np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32)
    codes_b = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    n, m = len(codes_a), len(codes_b)
    steps = np.arange(m + 1, dtype=np.int64)
    table = np.empty((n + 1, m + 1), dtype=np.int64)
    table[0] = steps
    for i in range(1, n + 1):  # one row at a time; the insertion chain is a running minimum
        if budget is not None:
            budget.tick()
        row = np.empty(m + 1, dtype=np.int64)
        row[0] = i
        row[1:] = np.minimum(table[i - 1, :-1] + (codes_b != codes_a[i - 1]), table[i - 1, 1:] + 1)
        table[i] = np.minimum.accumulate(row - steps) + steps
    out = np.zeros(n, dtype=bool)
    i, j = n, m
    while i > 0 and j > 0:
        same = codes_a[i - 1] == codes_b[j - 1]
        if table[i, j] == table[i - 1, j - 1] + (not same):
            out[i - 1] = same
            i, j = i - 1, j - 1
        elif table[i, j] == table[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return out


def _confirmed(digits: str, others: list[str], budget: Budget | None) -> bool:
    """Every digit of `digits` paired with an equal digit in at least one of `others`."""
    found = np.zeros(len(digits), dtype=bool)
    for other in others:
        found |= _matched(digits, other, budget)
    return bool(found.all())


def numbers_kept(reference: Sequence[str], reads: Sequence[str], budget: Budget | None = None) -> bool:
    """Whether the digits of one region read the same on both sides, each side read in
    several ways: some reading of the reference has each of its digits (all the digits of
    the line, in order) matched, when aligned, by an equal digit in some reading of the
    candidate, and the other way round.

    A price, a date or a code changed by one digit is a different offer, but only a
    character or two of a line: the digits are compared exactly, apart from the error rate.
    OCR of small print misreads one digit in one reading and another in the next; a digit
    that really changed reads differently in all of them.
    """
    digits_b = [_digits(r) for r in reference]
    digits_c = [_digits(c) for c in reads]
    return any(_confirmed(d, digits_c, budget) for d in digits_b) and any(
        _confirmed(d, digits_b, budget) for d in digits_c
    )


def expected_error_rates(
    expected: Sequence[str], texts: Sequence[str], budget: Budget | None = None
) -> list[float | None]:
    """For each expected string, its edit distance to its best match in any of `texts`
    (one image's text read in several ways), over its length, punctuation left out; None
    for a string with nothing else."""
    rates: list[float | None] = []
    for e in (_words(e) for e in expected):
        if not e:
            rates.append(None)
            continue
        rates.append(min(substring_distance(e, _words(t), budget) for t in texts) / len(e))
    return rates


def _ink_columns(rgba: np.ndarray, box: Box, keep: np.ndarray) -> np.ndarray | None:
    """How much ink each column of the region's box (padded by `padded_box`) holds,
    counting only the pixels `keep` marks (a bool mask of that box); None without contrast.

    The threshold, the polarity and the ink and background levels come from the box
    itself; each pixel weighs by how far it lies from the background towards the ink."""
    x0, y0, x1, y1 = padded_box(box, rgba.shape[1], rgba.shape[0])
    grey = gray_over_white(rgba[y0:y1, x0:x1])
    if grey.size == 0:
        return None
    threshold = otsu_threshold(grey)
    high = grey > threshold
    if high.all() or not high.any():
        return None
    bright = np.concatenate([high[0], high[-1], high[:, 0], high[:, -1]]).mean() >= 0.5
    lit, dark = float(np.median(grey[high])), float(np.median(grey[~high]))
    background, ink = (lit, dark) if bright else (dark, lit)
    if abs(background - ink) < _MIN_CONTRAST:
        return None
    cover = (background - grey.astype(np.float64)) / (background - ink)
    weight = np.where(keep, np.clip((cover - _INK_LOW) / (_INK_HIGH - _INK_LOW), 0.0, 1.0), 0.0)
    columns: np.ndarray = weight.sum(axis=0)
    return columns


def _extent(columns: np.ndarray) -> float | None:
    """The span holding all but `_INK_TAIL` of the ink at either end, in (sub-)pixels."""
    total = np.concatenate([[0.0], np.cumsum(columns)])
    if total[-1] <= 0:
        return None
    total /= total[-1]
    x = np.arange(len(total), dtype=np.float64)
    return float(np.interp(1.0 - _INK_TAIL, total, x) - np.interp(_INK_TAIL, total, x))


def text_height_ratios(base: np.ndarray, cand: np.ndarray, boxes: Sequence[Box]) -> list[float | None]:
    """Per region, the size of the candidate's text over the baseline's (1 = the same).

    The size is measured along the line: the extent of its ink from the first glyphs to
    the last, which scales with the font as its height does. At 8-12 px, hinting and other
    antialiasing move a glyph's top or bottom by a pixel, a tenth of its height, while the
    extent along the line spans dozens of glyphs and moves by well under a pixel in all;
    so the extent resolves a font 1 px smaller, the height does not. The same text in
    other words, or with a word missing, changes it too. The ink is measured inside the
    baseline's region (padded by `padded_box`), so text drawn larger measures about 1,
    and only where the alpha of the two images agrees. None where the baseline's region
    holds no ink to measure.

    Args:
        base: Baseline H x W x 4 uint8 pixels.
        cand: Candidate pixels at the baseline's size.
        boxes: The regions, in baseline pixels.
    """
    ratios: list[float | None] = []
    for box in boxes:
        x0, y0, x1, y1 = padded_box(box, base.shape[1], base.shape[0])
        alpha_b = base[y0:y1, x0:x1, 3].astype(np.int16)
        keep = np.abs(alpha_b - cand[y0:y1, x0:x1, 3]) <= _SAME_ALPHA
        columns_b = _ink_columns(base, box, keep)
        span_b = _extent(columns_b) if columns_b is not None else None
        if not span_b:
            ratios.append(None)
            continue
        columns_c = _ink_columns(cand, box, keep)
        span_c = _extent(columns_c) if columns_c is not None else None
        ratios.append(0.0 if span_c is None else span_c / span_b)
    return ratios


def text_sharpness(base: np.ndarray, cand: np.ndarray, boxes: list[Box]) -> float | None:
    """RMS edge strength of the candidate over the baseline's, per region, the lowest.

    The lowest region decides, so one line of small print rasterised to mush is not
    averaged away by a crisp title. Regions where the baseline is flat are left out;
    None when all are.
    """
    from pixgate_kernels.cpu import edge_magnitudes_cpu

    height, width = base.shape[:2]
    ratios = []
    for x0, y0, x1, y1 in (padded_box(b, width, height) for b in boxes):
        energy_b = energy_c = 0.0
        rows = max(1, BAND_PIXELS // max(x1 - x0, 1))
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


def _outside(found: BaselineText, ignore: np.ndarray | None) -> BaselineText:
    """The regions whose read area (grown as for reading) touches no ignored pixel: text
    there is allowed to change."""
    if ignore is None:
        return found
    height, width = ignore.shape
    grown = [grown_box(box, width, height) for box in found.boxes]
    keep = [i for i, (x0, y0, x1, y1) in enumerate(grown) if not ignore[y0:y1, x0:x1].any()]
    return BaselineText(tuple(found.boxes[i] for i in keep), tuple(found.reads[i] for i in keep))


def _read_candidate(
    base: np.ndarray,
    cand: np.ndarray,
    aligned: np.ndarray,
    found: BaselineText,
    settings: OcrSettings,
    budget: Budget,
    cache: OcrCache | None = None,
) -> tuple[list[str], list[list[str]], list[list[str]], int]:
    """The candidate's reading of each of the baseline's regions, and each region's
    readings on either side: the first as read (the baseline's as cached), then, where the
    two differ, the same region read again on both sides in the ways `OCR_REREADS` names
    (the baseline's from the cache when it has them). Last, how many regions matched the
    baseline's pixels (`region_matches`) and took its reading without OCR."""
    height, width = base.shape[:2]
    sx, sy = cand.shape[1] / width, cand.shape[0] / height
    reads: list[str] = []
    ways_b: list[list[str]] = []
    ways_c: list[list[str]] = []
    matched = 0
    for box, read_b in zip(found.boxes, found.reads, strict=True):
        # Compared at the candidate's own size only: resampled to the baseline's, a
        # candidate of another size is smoothed into a match it does not make.
        if region_matches(base, cand, box):
            # The same glyphs, within what a re-encode or noise moves: read the same.
            matched += 1
            reads.append(read_b)
            ways_b.append([read_b])
            ways_c.append([read_b])
            continue
        mapped = _mapped(box, sx, sy, cand.shape[1], cand.shape[0])
        read_c = read_region(prepare_line(cand, mapped), settings, budget)[0]
        reads.append(read_c)
        ways_b.append([read_b])
        ways_c.append([read_c])
        # Read again, one reading at a time, until a reading on each side says the same
        # words (no closer pair can be found): a region read alike costs one reading a side.
        # The candidate's way before the baseline's: with expected text each side is
        # scored on its own readings, and stopping on a baseline misreading that matches
        # the candidate's would leave the candidate without its better reading.
        todo = [(OCR_LINE_HEIGHT, True, ways_c[-1], aligned, box)] if cand.shape != base.shape else []
        for line_height, binarise in OCR_REREADS:
            todo.append((line_height, binarise, ways_c[-1], cand, mapped))
            if cand.shape != base.shape:
                # A candidate of another shape is also read at the baseline's size, where a
                # stretch is undone: OCR of stretched glyphs drops some.
                todo.append((line_height, binarise, ways_c[-1], aligned, box))
            todo.append((line_height, binarise, ways_b[-1], base, box))
        for line_height, binarise, ways, rgba, where in todo:
            if _agree(ways_b[-1], ways_c[-1]):
                break
            if ways is ways_b[-1]:  # the baseline's: from the cache when it has them
                ways.append(
                    baseline_reread(
                        base, where, line_height=line_height, binarise=binarise, settings=settings, cache=cache,
                        budget=budget,
                    )
                )  # fmt: skip
                continue
            image = prepare_line(rgba, where, line_height=line_height, binarise=binarise)
            ways.append(read_region(image, settings, budget)[0])
    return reads, ways_b, ways_c, matched


def _agree(reference: list[str], reads: list[str]) -> bool:
    """Some reading on each side says the same words and digits (punctuation aside): the
    region's error rate is 0 and its numbers are kept, whatever else is read."""
    return not {_words(r) for r in reference}.isdisjoint(_words(c) for c in reads)


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
    reads, ways_b, ways_c, matched = _read_candidate(base, cand, aligned, found, settings, budget, cache)
    row[schema.TEXT_REGIONS_MATCHED.name] = matched
    sharpness = text_sharpness(base, aligned, list(found.boxes))
    heights = [r for r in text_height_ratios(base, aligned, found.boxes) if r is not None]
    height_worst = min(heights) if heights else None  # text drawn smaller is what loses legibility
    numbers_changed = sum(not numbers_kept(b, c, budget) for b, c in zip(ways_b, ways_c, strict=True))
    cer_b: float | None = None
    cer_worst: float | None
    if expected:
        cer_b = char_error_rate(expected, "\n".join(found.reads), budget)
        cer_c = char_error_rate(expected, "\n".join(reads), budget)
        # Each expected string against the whole text as read, or any one re-read region.
        rates_b = expected_error_rates(expected, ["\n".join(found.reads), *(w for r in ways_b for w in r[1:])], budget)
        rates_c = expected_error_rates(expected, ["\n".join(reads), *(w for r in ways_c for w in r[1:])], budget)
        excess = [c - b for b, c in zip(rates_b, rates_c, strict=True) if b is not None and c is not None]
        cer_worst = max(0.0, *excess) if excess else None
        bound = TEXT_CER_MARGIN
    else:
        cer_c = reading_error_rate(found.reads, reads, budget)
        lines = [line_error_rate(b, c, budget) for b, c in zip(ways_b, ways_c, strict=True)]
        cer_worst = max((r for r in lines if r is not None), default=None)
        bound = TEXT_CER_MAX
    if cer_c is None and sharpness is None:
        # Regions that read as nothing on a flat background: no text to keep.
        row[schema.TEXT_STATUS.name] = schema.TEXT_NOT_APPLICABLE
        return row
    passed = (
        (cer_worst is None or cer_worst <= bound)
        and numbers_changed == 0
        and (sharpness is None or sharpness >= TEXT_SHARPNESS_MIN)
        and (height_worst is None or height_worst >= 1.0 - TEXT_HEIGHT_TOLERANCE)
    )
    row.update(
        {
            schema.TEXT_STATUS.name: schema.TEXT_CHECKED,
            schema.TEXT_BOXES.name: json.dumps([list(b) for b in found.boxes]),
            schema.OCR_BASELINE.name: "\n".join(found.reads),
            schema.OCR_CANDIDATE.name: "\n".join(reads),
            schema.TEXT_CER_BASELINE.name: cer_b,
            schema.TEXT_CER.name: cer_c,
            schema.TEXT_CER_WORST.name: cer_worst,
            schema.TEXT_NUMBERS_CHANGED.name: numbers_changed,
            schema.TEXT_SHARPNESS.name: sharpness,
            schema.TEXT_HEIGHT_RATIO.name: height_worst,
            schema.TEXT_PASS.name: passed,
        }
    )
    return row


__all__ = [
    "char_error_rate",
    "check_text",
    "expected_error_rates",
    "line_error_rate",
    "numbers_kept",
    "reading_error_rate",
    "substring_distance",
    "text_height_ratios",
    "text_sharpness",
]
