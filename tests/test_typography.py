"""Typography checks with real Tesseract: polarity, region finding, CER, sharpness."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from engine import schema
from engine.config import TEXT_CER_MARGIN, TEXT_SHARPNESS_MIN
from engine.manifest import ManifestEntry
from engine.typography import (
    OcrUnavailable,
    TextCheckError,
    char_error_rate,
    check_text,
    find_tesseract,
    find_text_regions,
    gray_over_white,
    substring_distance,
    text_sharpness,
)
from tests.conftest import CARD_LINES as LINES
from tests.conftest import text_card as _render


@pytest.fixture(scope="module")
def ocr() -> object:
    try:
        return find_tesseract("eng")
    except OcrUnavailable as exc:
        pytest.fail(f"the typography tests need Tesseract (installed by .ci/run): {exc}")


def _entry(boxes: list[tuple[int, int, int, int]] | None) -> ManifestEntry:
    return ManifestEntry("card", LINES, tuple(boxes) if boxes is not None else None, 1)


def _blur(rgba: np.ndarray, radius: float) -> np.ndarray:
    return np.asarray(Image.fromarray(rgba).filter(ImageFilter.GaussianBlur(radius))).copy()


# --- pure functions ---


def _brute_substring_distance(pattern: str, text: str) -> int:
    def lev(a: str, b: str) -> int:
        row = list(range(len(b) + 1))
        for i, ca in enumerate(a, start=1):
            prev, row[0] = row[0], i
            for j, cb in enumerate(b, start=1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
        return row[-1]

    spans = itertools.combinations_with_replacement(range(len(text) + 1), 2)
    return min(lev(pattern, text[i:j]) for i, j in spans)


def test_substring_distance_matches_brute_force() -> None:
    rng = np.random.default_rng(5)
    for _ in range(150):
        pattern = "".join(rng.choice(list("ab c"), rng.integers(0, 6)))
        text = "".join(rng.choice(list("abc "), rng.integers(0, 9)))
        assert substring_distance(pattern, text) == _brute_substring_distance(pattern, text), (pattern, text)


def test_char_error_rate() -> None:
    expected = ["SALE -40%", "Terms apply."]
    assert char_error_rate(expected, "Terms  apply.\nSALE -40%") == 0.0  # order and spacing do not count
    assert char_error_rate(expected, "logo SALE -40% x Terms apply. (c)") == 0.0  # extra text does not count
    assert char_error_rate(expected, "") == 1.0
    assert char_error_rate(expected, "SALE 40%\nTerms apply.") == pytest.approx(1 / 21)
    assert char_error_rate([], "anything") is None


# --- OCR on rendered text ---


@pytest.mark.parametrize(
    ("ink", "paper"),
    [((20, 20, 20), (250, 250, 245)), ((255, 255, 255), (20, 30, 90)), ((250, 220, 40), (120, 0, 60))],
    ids=["dark-on-light", "light-on-dark", "yellow-on-maroon"],
)
def test_reads_both_polarities(ink: tuple[int, int, int], paper: tuple[int, int, int], ocr: object) -> None:
    img, boxes = _render(ink=ink, paper=paper)
    row = check_text(img, img, _entry(boxes), ocr)  # type: ignore[arg-type]
    assert row[schema.TEXT_CER_BASELINE.name] == 0.0, row[schema.OCR_BASELINE.name]
    assert row[schema.TEXT_PASS.name] is True
    assert row[schema.TEXT_REGIONS.name] == 2


def test_regions_found_by_ocr_when_the_manifest_gives_none(ocr: object) -> None:
    img, boxes = _render(ink=(20, 20, 20), paper=(250, 250, 245))
    found = find_text_regions(gray_over_white(img), ocr)  # type: ignore[arg-type]
    assert len(found) == 2
    for want, got in zip(boxes, found, strict=True):  # each found line covers a drawn line
        overlap_w = min(want[2], got[2]) - max(want[0], got[0])
        overlap_h = min(want[3], got[3]) - max(want[1], got[1])
        assert overlap_w > 0.8 * (want[2] - want[0]) and overlap_h > 0.5 * (want[3] - want[1]), (want, got)
    row = check_text(img, _blur(img, 2.0), _entry(None), ocr)  # type: ignore[arg-type]
    assert row[schema.TEXT_REGIONS.name] == 2
    assert row[schema.TEXT_PASS.name] is False


def test_lost_small_print_fails_and_clean_rerendering_passes(ocr: object) -> None:
    base, boxes = _render(ink=(20, 20, 20), paper=(250, 250, 245))
    # Another engine: the small print a point larger and half a pixel to the right.
    other, _ = _render(ink=(40, 40, 40), paper=(250, 250, 245), small=13, dx=0.5)
    clean = check_text(base, other, _entry(boxes), ocr)  # type: ignore[arg-type]
    assert clean[schema.TEXT_PASS.name] is True, clean
    # The small print alone re-rasterised at a quarter of its resolution.
    mush = base.copy()
    x0, y0, x1, y1 = boxes[1]
    band = Image.fromarray(base[y0:y1, x0:x1])
    small = band.resize((max(1, band.width // 4), max(1, band.height // 4)), Image.Resampling.BILINEAR)
    mush[y0:y1, x0:x1] = np.asarray(small.resize(band.size, Image.Resampling.BILINEAR))
    lost = check_text(base, mush, _entry(boxes), ocr)  # type: ignore[arg-type]
    assert lost[schema.TEXT_PASS.name] is False, lost
    assert lost[schema.TEXT_CER.name] > lost[schema.TEXT_CER_BASELINE.name] + TEXT_CER_MARGIN
    assert lost[schema.TEXT_SHARPNESS.name] < TEXT_SHARPNESS_MIN


def test_sharpness_ranks_blur_and_ignores_small_shifts() -> None:
    base, boxes = _render(ink=(20, 20, 20), paper=(250, 250, 245))
    values = [text_sharpness(base, _blur(base, r), boxes) for r in (0.0, 0.5, 1.0, 1.5, 2.5, 4.0)]
    assert values[0] == 1.0
    assert all(a > b for a, b in itertools.pairwise(values)), values  # type: ignore[operator]
    shifted = np.roll(base, (1, 2), axis=(0, 1))
    assert text_sharpness(base, shifted, boxes) == pytest.approx(1.0, abs=0.02)


def test_bad_boxes_and_textless_baselines_are_errors(ocr: object) -> None:
    img, _ = _render(ink=(20, 20, 20), paper=(250, 250, 245))
    with pytest.raises(TextCheckError, match=r"text box \[0, 0, 400, 10\] \(manifest line 1\) lies outside"):
        check_text(img, img, _entry([(0, 0, 400, 10)]), ocr)  # type: ignore[arg-type]
    blank = np.full_like(img, 255)
    with pytest.raises(TextCheckError, match="found no text in the baseline"):
        check_text(blank, blank, _entry(None), ocr)  # type: ignore[arg-type]


def test_missing_tesseract_and_language(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIXGATE_TESSERACT", str(tmp_path / "no-tesseract"))
    with pytest.raises(OcrUnavailable, match="apt-get install tesseract-ocr"):
        find_tesseract("eng")
    monkeypatch.delenv("PIXGATE_TESSERACT")
    with pytest.raises(OcrUnavailable, match=r"--ocr-lang: got 'eng\+xx', but Tesseract has no data for xx"):
        find_tesseract("eng+xx")
