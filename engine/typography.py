"""Typography checks: does the candidate's text read as well as the baseline's?

For each pair whose manifest entry lists `expected_text`:

1. Text regions come from the entry's `text_boxes`, else from OCR of the baseline (line
   boxes of the words Tesseract reads with enough confidence, in both polarities). The
   same regions are read in both images, so the candidate is judged where the baseline
   had text.
2. Each region is cropped with room around it (`OCR_GROW_X`, `OCR_GROW_Y`), scaled so a line is about
   `OCR_LINE_HEIGHT` pixels tall, binarised with Otsu's threshold and turned dark text
   on light (the background is the class that holds most of the crop's border), so
   light-on-dark and dark-on-light text read alike, then read by Tesseract.
3. `text_cer`: for each expected string, the edit distance to its best-matching stretch
   of the OCR text (approximate substring matching, so extra text and the order of the
   regions do not count), summed over the strings and divided by their total length.
   The baseline gets the same measure, so a string the OCR misreads in both images does
   not count against the candidate.
4. `text_sharpness`: inside each region, the RMS Sobel magnitude (the edge kernel's, on
   luma over white) of the candidate over the baseline's; the lowest region counts, so a
   line of small print lost next to a crisp title is not averaged away. Unlike `edge_preservation` it
   does not need the strokes to sit on the same pixels, so a clean re-rendering that
   moves glyphs by a pixel keeps about 1; unlike a sum of magnitudes (which a blur
   leaves unchanged across an isolated edge) a blur lowers it, because it spreads the
   same step over more pixels.
5. `text_pass`: `text_cer <= text_cer_baseline + TEXT_CER_MARGIN` and
   `text_sharpness >= TEXT_SHARPNESS_MIN`.

Tesseract runs as separate processes (through pytesseract), one per worker thread, so the
checks use as many cores as there are workers and never hold up the device batches.
"""

from __future__ import annotations

import os
import unicodedata
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import schema
from engine.config import (
    OCR_GROW_X,
    OCR_GROW_Y,
    OCR_INFLIGHT_PER_WORKER,
    OCR_LINE_HEIGHT,
    OCR_MAX_SCALE,
    OCR_MIN_CONFIDENCE,
    OCR_TIMEOUT_S,
    TEXT_CER_MARGIN,
    TEXT_SHARPNESS_MIN,
)
from engine.manifest import Box, ManifestEntry

if TYPE_CHECKING:
    from PIL import Image

#: Pixels added around each text region: a blurred stroke spreads beyond a tight box, and
#: Tesseract needs a little background around a line.
_MARGIN = 3
#: White border added around a prepared line before OCR (Tesseract expects margins).
_PAD = 16
#: Upscaling used to look for text in a whole baseline.
_FIND_SCALE = 3
#: Squared edge energy below which a region has no edges to compare.
_FLAT_ENERGY = 1e-9


class OcrUnavailable(RuntimeError):
    """Tesseract (or the requested language data) is not installed."""


class TextCheckError(ValueError):
    """A pair whose text cannot be checked (bad box, no text found, OCR failure)."""


@dataclass(frozen=True)
class OcrSettings:
    """How Tesseract is run.

    Attributes:
        cmd: The Tesseract executable.
        lang: Tesseract language(s), e.g. `eng` or `eng+deu`.
        version: Tesseract's version, recorded in the run's metadata.
    """

    cmd: str
    lang: str
    version: str


def find_tesseract(lang: str) -> OcrSettings:
    """Locate Tesseract (`PIXGATE_TESSERACT`, else `tesseract` on PATH) and check `lang`.

    Raises:
        OcrUnavailable: No Tesseract, or no data for a requested language.
    """
    import pytesseract

    cmd = os.environ.get("PIXGATE_TESSERACT", "tesseract")
    pytesseract.pytesseract.tesseract_cmd = cmd
    try:
        version = str(pytesseract.get_tesseract_version())
        installed = pytesseract.get_languages(config="")
    except (pytesseract.TesseractNotFoundError, pytesseract.TesseractError, OSError) as exc:
        raise OcrUnavailable(
            f"--manifest: the text checks need Tesseract, and {cmd!r} could not be run ({exc}). Install it "
            "(Debian/Ubuntu: apt-get install tesseract-ocr; macOS: brew install tesseract) or set "
            "PIXGATE_TESSERACT to its path"
        ) from None
    missing = [code for code in lang.split("+") if code not in installed]
    if missing:
        raise OcrUnavailable(
            f"--ocr-lang: got {lang!r}, but Tesseract has no data for {', '.join(missing)}; installed: "
            f"{', '.join(sorted(installed))} (Debian: apt-get install tesseract-ocr-<code>)"
        )
    return OcrSettings(cmd, lang, version)


def gray_over_white(rgba: np.ndarray) -> np.ndarray:
    """Rec.709 luma of an H x W x 4 uint8 image composited over white, as uint8."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
    luma = rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


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


def prepare_line(gray: np.ndarray, box: Box) -> Image.Image:
    """One text region, ready for Tesseract: grown, scaled, binarised, dark text on white."""
    from PIL import Image, ImageOps

    x0, y0, x1, y1 = _grown(box, gray.shape[1], gray.shape[0])
    crop = Image.fromarray(gray[y0:y1, x0:x1])
    scale = min(max(OCR_LINE_HEIGHT / max(y1 - y0, 1), 1.0), OCR_MAX_SCALE)
    crop = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.Resampling.LANCZOS)
    a = np.asarray(crop)
    bright = a > _otsu(a)
    border = np.concatenate([bright[0], bright[-1], bright[:, 0], bright[:, -1]])
    text = ~bright if border.mean() >= 0.5 else bright
    return ImageOps.expand(Image.fromarray(np.where(text, 0, 255).astype(np.uint8)), border=_PAD, fill=255)


def _stack(lines: list[Image.Image]) -> Image.Image:
    """Prepared lines one under the other on white: one Tesseract call reads them all."""
    from PIL import Image

    sheet = Image.new("L", (max(im.width for im in lines), sum(im.height for im in lines)), 255)
    top = 0
    for im in lines:
        sheet.paste(im, (0, top))
        top += im.height
    return sheet


def read_lines(lines: list[Image.Image], settings: OcrSettings) -> str:
    """Tesseract's reading of prepared lines, one output line per text line found."""
    import pytesseract

    pytesseract.pytesseract.tesseract_cmd = settings.cmd
    try:
        text = pytesseract.image_to_string(_stack(lines), lang=settings.lang, config="--psm 6", timeout=OCR_TIMEOUT_S)
    except (RuntimeError, pytesseract.TesseractError, OSError) as exc:
        raise TextCheckError(f"typography: Tesseract failed: {exc}") from None
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def find_text_regions(gray: np.ndarray, settings: OcrSettings) -> list[Box]:
    """Line boxes of the text Tesseract finds in a whole image, in both polarities."""
    import pytesseract
    from PIL import Image, ImageOps

    height, width = gray.shape
    big = Image.fromarray(gray).resize((width * _FIND_SCALE, height * _FIND_SCALE), Image.Resampling.LANCZOS)
    lines: list[Box] = []
    for variant in (big, ImageOps.invert(big)):
        try:
            data = pytesseract.image_to_data(
                variant,
                lang=settings.lang,
                config="--psm 3",
                output_type=pytesseract.Output.DICT,
                timeout=OCR_TIMEOUT_S,
            )
        except (RuntimeError, pytesseract.TesseractError, OSError) as exc:
            raise TextCheckError(f"typography: Tesseract failed while looking for text: {exc}") from None
        found: dict[tuple[int, int, int], list[int]] = {}
        for i, word in enumerate(data["text"]):
            if not str(word).strip() or float(data["conf"][i]) < OCR_MIN_CONFIDENCE:
                continue
            key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
            x0, y0 = data["left"][i], data["top"][i]
            x1, y1 = x0 + data["width"][i], y0 + data["height"][i]
            box = found.setdefault(key, [x0, y0, x1, y1])
            box[:] = [min(box[0], x0), min(box[1], y0), max(box[2], x1), max(box[3], y1)]
        for x0, y0, x1, y1 in found.values():
            lines.append(
                (
                    x0 // _FIND_SCALE,
                    y0 // _FIND_SCALE,
                    min(-(-x1 // _FIND_SCALE), width),
                    min(-(-y1 // _FIND_SCALE), height),
                )
            )
    return _merge(lines)


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _merge(boxes: list[Box]) -> list[Box]:
    """Union boxes that overlap (the same line found in both polarities), top to bottom."""
    merged: list[Box] = []
    for box in sorted(boxes, key=lambda b: (b[1], b[0])):
        for i, other in enumerate(merged):
            if _overlap(box, other):
                merged[i] = (min(box[0], other[0]), min(box[1], other[1]), max(box[2], other[2]), max(box[3], other[3]))
                break
        else:
            merged.append(box)
    return merged


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def substring_distance(pattern: str, text: str) -> int:
    """Fewest edits that turn `pattern` into some substring of `text` (Sellers, 1980)."""
    if not pattern:
        return 0
    previous = [0] * (len(text) + 1)  # matching may start anywhere in the text for free
    for i, p in enumerate(pattern, start=1):
        current = [i] + [0] * len(text)
        for j, t in enumerate(text, start=1):
            current[j] = min(previous[j - 1] + (p != t), previous[j] + 1, current[j - 1] + 1)
        previous = current
    return min(previous)  # and end anywhere


def char_error_rate(expected: tuple[str, ...] | list[str], read: str) -> float | None:
    """Edit distance of each expected string to its best match in `read`, over their length."""
    strings = [_normalise(s) for s in expected]
    total = sum(len(s) for s in strings)
    if total == 0:
        return None
    text = _normalise(read)
    return sum(substring_distance(s, text) for s in strings) / total


def text_sharpness(base: np.ndarray, cand: np.ndarray, boxes: list[Box]) -> float | None:
    """RMS edge strength of the candidate over the baseline's, per region, the lowest.

    The lowest region decides, so one line of small print rasterised to mush is not
    averaged away by a crisp title. Regions where the baseline is flat are left out;
    None when all are.
    """
    from kernels.cpu import edge_magnitudes_cpu

    edges = edge_magnitudes_cpu(np.ascontiguousarray(base[None]), np.ascontiguousarray(cand[None]))
    ratios = []
    for x0, y0, x1, y1 in (_padded(b, base.shape[1], base.shape[0]) for b in boxes):
        gb = edges[0, 0, y0:y1, x0:x1].astype(np.float64)
        gc = edges[1, 0, y0:y1, x0:x1].astype(np.float64)
        energy = float(np.sum(gb * gb))
        if energy > _FLAT_ENERGY:
            ratios.append(float(np.sqrt(np.sum(gc * gc) / energy)))
    return min(ratios) if ratios else None


def check_text(base: np.ndarray, cand: np.ndarray, entry: ManifestEntry, settings: OcrSettings) -> dict[str, Any]:
    """The typography columns of one pair.

    Args:
        base: Baseline H x W x 4 uint8 sRGB pixels.
        cand: Candidate pixels aligned to the baseline's size.
        entry: The pair's manifest entry (with expected text).
        settings: How to run Tesseract.

    Raises:
        TextCheckError: A box outside the image, no text found in the baseline, or a
            Tesseract failure.
    """
    height, width = base.shape[:2]
    if entry.text_boxes is not None:
        for box in entry.text_boxes:
            if box[2] > width or box[3] > height:
                raise TextCheckError(
                    f"typography: text box {list(box)} (manifest line {entry.line}) lies outside the "
                    f"{width}x{height} baseline"
                )
        boxes = list(entry.text_boxes)
    gray_b, gray_c = gray_over_white(base), gray_over_white(cand)
    if entry.text_boxes is None:
        boxes = find_text_regions(gray_b, settings)
        if not boxes:
            raise TextCheckError(
                f"typography: OCR found no text in the baseline to compare; give `text_boxes` for "
                f"{entry.pair_id!r} in the manifest (line {entry.line})"
            )
    read_b = read_lines([prepare_line(gray_b, box) for box in boxes], settings)
    read_c = read_lines([prepare_line(gray_c, box) for box in boxes], settings)
    cer_b = char_error_rate(entry.expected_text, read_b)
    cer_c = char_error_rate(entry.expected_text, read_c)
    sharpness = text_sharpness(base, cand, boxes)
    passed = None
    if cer_b is not None and cer_c is not None:
        passed = cer_c <= cer_b + TEXT_CER_MARGIN and (sharpness is None or sharpness >= TEXT_SHARPNESS_MIN)
    return {
        schema.OCR_BASELINE.name: read_b,
        schema.OCR_CANDIDATE.name: read_c,
        schema.TEXT_REGIONS.name: len(boxes),
        schema.TEXT_CER_BASELINE.name: cer_b,
        schema.TEXT_CER.name: cer_c,
        schema.TEXT_SHARPNESS.name: sharpness,
        schema.TEXT_PASS.name: passed,
    }


class TextChecker:
    """Runs `check_text` on worker threads, each driving its own Tesseract processes.

    Args:
        settings: How to run Tesseract.
        workers: Checks run at once.
    """

    def __init__(self, settings: OcrSettings, workers: int) -> None:
        # Tesseract's own OpenMP threads would fight the other workers for the same cores.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        self.settings = settings
        self.workers = workers
        self.capacity = workers * OCR_INFLIGHT_PER_WORKER
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pixgate-ocr")

    def submit(self, base: np.ndarray, cand: np.ndarray, entry: ManifestEntry) -> Future[dict[str, Any]]:
        """Start checking one pair."""
        return self._pool.submit(check_text, base, cand, entry, self.settings)

    def close(self) -> None:
        """Stop: queued checks are dropped, running ones finish."""
        self._pool.shutdown(wait=True, cancel_futures=True)


__all__ = [
    "OcrSettings",
    "OcrUnavailable",
    "TextCheckError",
    "TextChecker",
    "char_error_rate",
    "check_text",
    "find_tesseract",
    "find_text_regions",
    "gray_over_white",
    "prepare_line",
    "read_lines",
    "substring_distance",
    "text_sharpness",
]
