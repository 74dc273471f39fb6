"""Typography checks with real Tesseract on drawn text: the baseline as the reference,
expected text from a manifest, regions, polarity, sizes, CER, sharpness."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from pixgate.config import TEXT_CER_MARGIN, TEXT_CER_MAX, TEXT_SHARPNESS_MIN
from pixgate.runs import schema
from pixgate.scoring.manifest import ManifestEntry
from pixgate.scoring.ocr import Budget, OcrSettings, OcrUnavailable, TextCheckError, find_tesseract
from pixgate.scoring.typography import (
    char_error_rate,
    check_text,
    find_text_regions,
    reading_error_rate,
    substring_distance,
    text_sharpness,
)
from tests.conftest import CARD_LINES as LINES
from tests.conftest import FONTS, mush, poster, promo_poster
from tests.conftest import text_card as _render


@pytest.fixture(scope="module")
def ocr() -> OcrSettings:
    try:
        return find_tesseract("eng")
    except OcrUnavailable as exc:
        pytest.fail(f"the typography tests need Tesseract's English data (installed by .ci/run): {exc}")


def _entry(boxes: list[tuple[int, int, int, int]] | None, text: tuple[str, ...] = LINES) -> ManifestEntry:
    return ManifestEntry("card", text, tuple(boxes) if boxes is not None else None, 1)


def _blur(rgba: np.ndarray, radius: float) -> np.ndarray:
    return np.asarray(Image.fromarray(rgba).filter(ImageFilter.GaussianBlur(radius))).copy()


def _check(base: np.ndarray, cand: np.ndarray, ocr: OcrSettings, entry: ManifestEntry | None = None) -> dict:
    """A pair of the same size (the candidate is its own aligned copy)."""
    return check_text(base, cand, cand, entry, ocr)


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
    for _ in range(300):
        pattern = "".join(rng.choice(list("ab cé"), rng.integers(0, 7)))
        text = "".join(rng.choice(list("abc é"), rng.integers(0, 10)))
        assert substring_distance(pattern, text) == _brute_substring_distance(pattern, text), (pattern, text)


def test_char_error_rate() -> None:
    expected = ["SALE -40%", "Terms apply."]
    assert char_error_rate(expected, "Terms  apply.\nSALE -40%") == 0.0  # order and spacing do not count
    assert char_error_rate(expected, "logo SALE -40% x Terms apply. (c)") == 0.0  # extra text does not count
    assert char_error_rate(expected, "") == 1.0
    assert char_error_rate(expected, "SALE 40%\nTerms apply.") == pytest.approx(1 / 21)
    assert char_error_rate([], "anything") is None


def test_reading_error_rate_goes_region_by_region() -> None:
    reference = ["SALE -40%", "Terms apply."]
    assert reading_error_rate(reference, ["SALE -40%", "Terms apply."]) == 0.0
    assert reading_error_rate(reference, ["x SALE -40%", "Terms apply. y"]) == 0.0  # extra text does not count
    # Swapped regions: each baseline line is looked for in its own region only.
    assert reading_error_rate(reference, ["Terms apply.", "SALE -40%"]) > 0.5  # type: ignore[operator]
    assert reading_error_rate(reference, ["SALE 40%", ""]) == pytest.approx(13 / 21)
    assert reading_error_rate(["", ""], ["a", "b"]) is None


# --- the baseline as the reference (no manifest) ---


@pytest.mark.parametrize(
    ("ink", "paper"),
    [((20, 20, 20), (250, 250, 245)), ((255, 255, 255), (20, 30, 90)), ((250, 220, 40), (120, 0, 60))],
    ids=["dark-on-light", "light-on-dark", "yellow-on-maroon"],
)
def test_finds_and_reads_both_polarities(
    ink: tuple[int, int, int], paper: tuple[int, int, int], ocr: OcrSettings
) -> None:
    img, boxes = _render(ink=ink, paper=paper)
    found = find_text_regions(img, ocr)
    assert len(found.boxes) == 2, found
    for want, got in zip(boxes, found.boxes, strict=True):  # each found line covers a drawn line
        overlap_w = min(want[2], got[2]) - max(want[0], got[0])
        overlap_h = min(want[3], got[3]) - max(want[1], got[1])
        assert overlap_w > 0.8 * (want[2] - want[0]) and overlap_h > 0.5 * (want[3] - want[1]), (want, got)
    assert char_error_rate(LINES, "\n".join(found.reads)) == 0.0, found.reads
    row = _check(img, img, ocr)
    assert row[schema.TEXT_STATUS.name] == schema.TEXT_CHECKED
    assert row[schema.TEXT_CER.name] == 0.0 and row[schema.TEXT_PASS.name] is True
    assert row[schema.TEXT_CER_BASELINE.name] is None  # the baseline is the reference


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_promo_posters_identical_antialiased_and_mush(seed: int, ocr: OcrSettings) -> None:
    lines = 1 + seed  # 2 to 5 lines
    base, boxes = promo_poster(seed, 512, lines=lines, small_size=12 + seed)
    same = _check(base, base.copy(), ocr)
    assert same[schema.TEXT_REGIONS.name] == lines, same
    assert same[schema.TEXT_CER.name] == 0.0 and same[schema.TEXT_SHARPNESS.name] == 1.0
    assert same[schema.TEXT_PASS.name] is True
    # The same copy antialiased another way: only the glyphs' edge pixels differ.
    other, _ = promo_poster(seed, 512, lines=lines, small_size=12 + seed, coverage_gamma=0.6)
    assert not np.array_equal(other, base)
    rerendered = _check(base, other, ocr)
    assert rerendered[schema.TEXT_PASS.name] is True, rerendered
    assert rerendered[schema.TEXT_CER.name] <= TEXT_CER_MAX
    # The last line of small print rasterised at a quarter of its resolution.
    lost = _check(base, mush(base, boxes[-1]), ocr)
    assert lost[schema.TEXT_PASS.name] is False, lost
    assert lost[schema.TEXT_CER.name] > TEXT_CER_MAX or lost[schema.TEXT_SHARPNESS.name] < TEXT_SHARPNESS_MIN
    assert lost[schema.TEXT_SHARPNESS.name] < TEXT_SHARPNESS_MIN


def test_blurred_small_print_is_caught_without_a_manifest(ocr: OcrSettings) -> None:
    base, _ = promo_poster(7, 512, lines=4, small_size=12)
    caught = [_check(base, _blur(base, r), ocr)[schema.TEXT_PASS.name] for r in (1.2, 1.6, 2.0)]
    assert caught == [False, False, False]


def test_candidate_of_another_size_is_read_in_mapped_regions(ocr: OcrSettings) -> None:
    base, _ = promo_poster(5, 400, lines=3, small_size=14)
    img = Image.fromarray(base)
    bigger = np.asarray(img.resize((600, 600), Image.Resampling.LANCZOS)).copy()
    aligned = np.asarray(Image.fromarray(bigger).resize((400, 400), Image.Resampling.BICUBIC)).copy()
    row = check_text(base, bigger, aligned, None, ocr)
    assert row[schema.TEXT_REGIONS.name] == 3
    assert row[schema.TEXT_PASS.name] is True, row
    assert row[schema.TEXT_CER.name] <= TEXT_CER_MAX


def test_no_text_is_not_applicable(ocr: OcrSettings) -> None:
    photo = poster(256, 256, 3)  # gradients, blobs and grain, no letters
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    for base in (rgba, np.full_like(rgba, 255)):
        row = _check(base, _blur(base, 3.0), ocr)
        assert row[schema.TEXT_STATUS.name] == schema.TEXT_NOT_APPLICABLE, row
        assert row[schema.TEXT_REGIONS.name] == 0
        assert row.get(schema.TEXT_PASS.name) is None


# --- expected text from a manifest ---


def test_expected_text_takes_precedence(ocr: OcrSettings) -> None:
    base, boxes = _render(ink=(20, 20, 20), paper=(250, 250, 245))
    row = _check(base, base, ocr, _entry(boxes))
    assert row[schema.TEXT_CER_BASELINE.name] == 0.0 and row[schema.TEXT_PASS.name] is True
    # Text the manifest expects but neither image shows costs both sides alike.
    wrong = _check(base, base, ocr, _entry(boxes, (*LINES, "Only today")))
    assert wrong[schema.TEXT_CER.name] == wrong[schema.TEXT_CER_BASELINE.name] > 0.0
    assert wrong[schema.TEXT_PASS.name] is True


def test_lost_small_print_fails_and_clean_rerendering_passes_with_expected_text(ocr: OcrSettings) -> None:
    base, boxes = _render(ink=(20, 20, 20), paper=(250, 250, 245))
    # Another engine: the small print a point larger and half a pixel to the right.
    other, _ = _render(ink=(40, 40, 40), paper=(250, 250, 245), small=13, dx=0.5)
    clean = _check(base, other, ocr, _entry(boxes))
    assert clean[schema.TEXT_PASS.name] is True, clean
    lost = _check(base, mush(base, boxes[1]), ocr, _entry(boxes))
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


def test_bad_boxes_and_missing_expected_text_are_errors(ocr: OcrSettings) -> None:
    img, _ = _render(ink=(20, 20, 20), paper=(250, 250, 245))
    with pytest.raises(TextCheckError, match=r"text box \[0, 0, 400, 10\] \(manifest line 1\) lies outside"):
        _check(img, img, ocr, _entry([(0, 0, 400, 10)]))
    blank = np.full_like(img, 255)
    with pytest.raises(TextCheckError, match="found no text in the baseline"):
        _check(blank, blank, ocr, _entry(None))


# --- the engine ---


def test_missing_language_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(OcrUnavailable, match=r"no Tesseract language data for 'eng\+xx'"):
        find_tesseract("eng+xx")
    with pytest.raises(OcrUnavailable, match=r"ocr_lang: expected Tesseract language codes.*got '../eng'"):
        find_tesseract("../eng")
    # TESSDATA_PREFIX, when set, is the only place looked in: the system's data is not
    # taken instead of the data asked for.
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    with pytest.raises(OcrUnavailable, match=r"apt-get install tesseract-ocr.*typography=False"):
        find_tesseract("eng")


def test_engine_version_names_the_data(ocr: OcrSettings) -> None:
    assert ocr.version.startswith("tesseract ") and "tesserocr" in ocr.version
    assert ocr.version.split()[-2] == "eng" and len(ocr.version.split()[-1]) == 12


def test_ocr_time_and_regions_are_bounded_per_pair(monkeypatch: pytest.MonkeyPatch, ocr: OcrSettings) -> None:
    import pixgate.scoring.ocr
    import pixgate.scoring.typography

    base, _ = promo_poster(8, 512, lines=5, small_size=13)
    full = _check(base, base, ocr)
    assert full[schema.TEXT_REGIONS.name] > 2
    monkeypatch.setattr(pixgate.scoring.typography, "OCR_MAX_REGIONS", 2)
    row = _check(base, base, ocr)
    assert row[schema.TEXT_REGIONS.name] == 2  # the two most confident lines, top to bottom
    kept, every = json.loads(row[schema.TEXT_BOXES.name]), json.loads(full[schema.TEXT_BOXES.name])
    assert all(box in every for box in kept) and kept == sorted(kept, key=lambda b: (b[1], b[0]))
    monkeypatch.setattr(pixgate.scoring.ocr, "OCR_PAIR_TIMEOUT_S", 0.0)
    with pytest.raises(TextCheckError, match=r"the pair's OCR took longer than 0 s in all"):
        _check(base, base, ocr)
    monkeypatch.undo()
    # A run that is stopping ends its checks at their next call.
    stop = threading.Event()
    stop.set()
    with pytest.raises(TextCheckError, match="the run is stopping"):
        check_text(base, base, base, None, ocr, budget=Budget(stop))


def test_a_huge_candidate_is_read_scaled_down(ocr: OcrSettings) -> None:
    base, _ = promo_poster(10, 400, lines=3, small_size=14)
    huge = np.asarray(Image.fromarray(base).resize((4000, 4000), Image.Resampling.LANCZOS)).copy()
    aligned = np.asarray(Image.fromarray(huge).resize((400, 400), Image.Resampling.BICUBIC)).copy()
    row = check_text(base, huge, aligned, None, ocr)
    assert row[schema.TEXT_STATUS.name] == schema.TEXT_CHECKED and row[schema.TEXT_PASS.name] is True, row


def test_ignored_regions_are_not_read(ocr: OcrSettings) -> None:
    base, boxes = promo_poster(6, 512, lines=3, small_size=14)
    changed = mush(base, boxes[-1])  # the last line may change: a timestamp, say
    ignore = np.zeros(base.shape[:2], bool)
    x0, y0, _, y1 = boxes[-1]
    ignore[y0 + 2 : y1 - 2, x0 + 10 : x0 + 40] = True  # touching part of the line is enough
    assert _check(base, changed, ocr)[schema.TEXT_PASS.name] is False
    row = check_text(base, changed, changed, None, ocr, ignore=ignore)
    assert row[schema.TEXT_PASS.name] is True and row[schema.TEXT_REGIONS.name] == 2
    everything = np.ones(base.shape[:2], bool)
    assert check_text(base, changed, changed, None, ocr, ignore=everything)[schema.TEXT_STATUS.name] == (
        schema.TEXT_NOT_APPLICABLE
    )


def test_manifest_boxes_without_expected_text(ocr: OcrSettings) -> None:
    base, boxes = _render(ink=(20, 20, 20), paper=(250, 250, 245))
    entry = _entry(boxes, ())
    same = _check(base, base, ocr, entry)
    assert json.loads(same[schema.TEXT_BOXES.name]) == [list(b) for b in boxes]
    assert same[schema.TEXT_CER.name] == 0.0 and same[schema.TEXT_CER_BASELINE.name] is None
    lost = _check(base, mush(base, boxes[1]), ocr, entry)
    assert lost[schema.TEXT_PASS.name] is False


def test_images_wider_than_tesseract_takes(ocr: OcrSettings) -> None:
    from PIL import ImageDraw, ImageFont

    strip = Image.new("RGBA", (34_000, 64), (250, 250, 245, 255))
    font = ImageFont.truetype(FONTS["sans"], 40)
    text = "Offer valid while stocks last. " * 40
    ImageDraw.Draw(strip).text((10, 8), text, font=font, fill=(20, 20, 20, 255))
    rgba = np.asarray(strip).copy()
    box = (0, 0, 34_000, 64)
    row = _check(rgba, rgba.copy(), ocr, ManifestEntry("strip", (), (box,), 1))
    assert row[schema.TEXT_STATUS.name] == schema.TEXT_CHECKED, row
    assert "Offer valid" in row[schema.OCR_BASELINE.name]  # the region was scaled to fit, and read
    # Found by OCR of the page (scaled down to the largest side looked at): no error either.
    assert _check(rgba, rgba.copy(), ocr)[schema.TEXT_STATUS.name] in (schema.TEXT_CHECKED, schema.TEXT_NOT_APPLICABLE)


def test_language_data_that_does_not_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "eng.traineddata").write_bytes(b"not a model" * 100)
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    with pytest.raises(OcrUnavailable, match=r"its data does not load"):
        find_tesseract("eng")


def test_lines_over_pictures_and_off_the_edge_are_found(ocr: OcrSettings) -> None:
    """Lines that one way of looking at a page misses: a white headline over shapes with a
    body line alone on a light band (page analysis takes the band for a picture), and a
    line running off the edge (sparse-text search drops it)."""
    for seed, size, lines in ((124, 1024, 2), (3, 256, 2)):
        base, boxes = promo_poster(seed, size, lines=lines)
        found = find_text_regions(base, ocr)
        for want in boxes:
            assert any(
                min(want[2], got[2]) > max(want[0], got[0]) and min(want[3], got[3]) > max(want[1], got[1])
                for got in found.boxes
            ), (seed, want, found)
