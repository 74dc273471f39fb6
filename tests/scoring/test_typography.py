"""Typography checks with real Tesseract on drawn text: the baseline as the reference,
expected text from a manifest, regions, polarity, sizes, CER, sharpness."""

from __future__ import annotations

import io
import itertools
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pixgate.config import (
    OCR_MATCH_CONTRAST_SHARE,
    OCR_MATCH_LUMA_MAX,
    OCR_MATCH_SHIFT_PX,
    TEXT_CER_MARGIN,
    TEXT_CER_MAX,
    TEXT_HEIGHT_TOLERANCE,
    TEXT_SHARPNESS_MIN,
)
from pixgate.runs import schema
from pixgate.scoring.manifest import ManifestEntry
from pixgate.scoring.ocr import Budget, OcrSettings, OcrUnavailable, TextCheckError, find_tesseract
from pixgate.scoring.text_lines import find_text_regions, region_matches
from pixgate.scoring.typography import (
    char_error_rate,
    check_text,
    expected_error_rates,
    line_error_rate,
    numbers_kept,
    reading_error_rate,
    substring_distance,
    text_height_ratios,
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
    # Another engine: another ink, the text half a pixel to the right.
    other, _ = _render(ink=(40, 40, 40), paper=(250, 250, 245), dx=0.5)
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
    import pixgate.scoring.text_lines

    base, _ = promo_poster(8, 512, lines=5, small_size=13)
    full = _check(base, base, ocr)
    assert full[schema.TEXT_REGIONS.name] > 2
    monkeypatch.setattr(pixgate.scoring.text_lines, "OCR_MAX_REGIONS", 2)
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


# --- the worst line: one changed number, smaller print, a missing word ---

OFFER_HEADLINE = "Summer Sale 40% off"


def _offer_lines(price: str) -> tuple[str, str]:
    return (f"Now {price} EUR, was 65.00 EUR. Ends 30 Jan.", "Prices include VAT. Not combinable with other offers.")


def _offer(
    *, price: str = "45.99", small: int = 10, headline: str = OFFER_HEADLINE, supersample: int = 1
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A 420x220 offer: a dark headline on a mid-tone gradient, and two lines of small print
    (the first with `price`) on a light band below, in the poster fonts; `supersample`
    draws the text that many times larger and downsamples it (other antialiasing). Returns
    RGBA pixels and each line's box (headline, then small print)."""
    w, h, band, k = 420, 220, 120, supersample
    x = np.linspace(0.0, 1.0, w)[None, :, None]
    rgb = np.broadcast_to((90.0, 125.0, 180.0) + x * (40.0, 30.0, 10.0), (band, w, 3))
    paper = np.full((h, w, 3), (247, 246, 241), np.uint8)
    paper[:band] = np.rint(rgb).astype(np.uint8)
    layers = [((16, 30), headline, ImageFont.truetype(FONTS["bold"], 28 * k))]
    for i, text in enumerate(_offer_lines(price)):
        layers.append(((16, band + 24 + i * (small + 8)), text, ImageFont.truetype(FONTS["liberation"], small * k)))
    cover = Image.new("L", (w * k, h * k), 0)
    for (lx, ly), text, font in layers:
        ImageDraw.Draw(cover).text((lx * k, ly * k), text, font=font, fill=255)
    alpha = np.asarray(cover.resize((w, h), Image.Resampling.BOX) if k > 1 else cover, np.float64)[..., None] / 255
    out = paper * (1 - alpha) + np.array((25.0, 25.0, 30.0)) * alpha
    rgba = np.dstack([np.rint(out).astype(np.uint8), np.full((h, w), 255, np.uint8)])
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    boxes = []
    for (lx, ly), text, font in layers:
        x0, y0, x1, y1 = measure.textbbox((lx, ly), text, font=ImageFont.truetype(font.path, font.size // k))
        boxes.append((int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))))
    return rgba, boxes


def _offer_entry(boxes: list[tuple[int, int, int, int]]) -> ManifestEntry:
    return ManifestEntry("offer", (OFFER_HEADLINE, *_offer_lines("45.99")), tuple(boxes), 1)


def _shifted(rgba: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The content moved by (dx, dy), the edges repeated into the gap."""
    padded = np.pad(rgba, ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0)), mode="edge")
    h, w = rgba.shape[:2]
    return padded[abs(dy) - dy : abs(dy) - dy + h, abs(dx) - dx : abs(dx) - dx + w].copy()


def _jpeg(rgba: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGBA")).copy()


def test_line_error_rate_takes_the_closest_readings() -> None:
    assert line_error_rate(["Now 45.99 EUR"], ["Now 45.99 EUR, was"]) == 0.0
    assert line_error_rate(["Now 45.99 EUR"], ["Now 15.99 EUR"]) == pytest.approx(1 / 13)
    # A misreading in one preparation, not in the other, on either side: the closest pair.
    assert line_error_rate(["Now 45.99 EUR", "Nov 45.99 EUR"], ["N0w 45.99 EUR", "Nov 45.99 EUR"]) == 0.0
    assert line_error_rate(["", " "], ["anything"]) is None


def test_numbers_kept_compares_every_digit_across_readings() -> None:
    assert numbers_kept(["Now 45.99 EUR"], ["Now 45.99 EUR, was"])
    assert not numbers_kept(["Now 45.99 EUR"], ["Now 15.99 EUR"])  # one digit
    assert not numbers_kept(["Ends 30 Jan"], ["Ends 30 Jan 2"])  # a number added
    assert not numbers_kept(["Ends 30 Jan"], ["Ends Jan"])  # ... or gone
    assert numbers_kept(["Terms apply"], ["Terms appiy"])  # no digits: the error rate judges
    # OCR misreads a different digit in each reading of the candidate (5 as $, 3 as 2):
    # every digit of the baseline is read right in one of them.
    base = ["Now 33.90 EUR, was 53.00 EUR. Ends 30 Mar."]
    assert numbers_kept(base, ["Now 33.90 EUR, was $3.00 EUR. Ends 30 Mar.", "Now 33.90 EUR, was 53.00. Ends 20 Mar"])
    # A digit read differently in every reading has changed.
    assert not numbers_kept(base, ["Now 33.90 EUR, was 53.00. Ends 20 Mar", "Now 33.90 EUR, was 53.00. Ends 20 Mar."])


def test_expected_error_rates_per_string() -> None:
    # The best of either reading, per string; punctuation does not count, letters do.
    rates = expected_error_rates(
        ["SALE -40%", "Terms apply.", "Ends Jan", "..."], ["SALE 40%\nEnds Jun", "Terms apply"]
    )
    assert rates == [0.0, 0.0, pytest.approx(1 / 8), None]


def test_text_height_ratio_resolves_one_pixel_and_ignores_rerenders() -> None:
    base, boxes = _offer()
    for candidate in (_shifted(base, 1, 1), _shifted(base, -2, 2), _jpeg(base, 90), _offer(supersample=4)[0]):
        ratios = text_height_ratios(base, candidate, boxes)
        assert all(abs(r - 1.0) < TEXT_HEIGHT_TOLERANCE / 2 for r in ratios if r is not None), ratios
    smaller = text_height_ratios(base, _offer(small=9)[0], boxes)
    assert abs(smaller[0] - 1.0) < TEXT_HEIGHT_TOLERANCE / 2  # the headline kept its size
    assert all(r is not None and r < 1.0 - TEXT_HEIGHT_TOLERANCE for r in smaller[1:]), smaller
    # A cut-out: dark pixels under transparency just right of a word, shown once the
    # candidate is flattened. That is the alpha's change, not the text's.
    sticker = Image.new("RGBA", (120, 40), (250, 250, 245, 255))
    font = ImageFont.truetype(FONTS["bold"], 20)
    ImageDraw.Draw(sticker).text((10, 8), "SALE", font=font, fill=(20, 20, 20, 255))
    word = tuple(int(v) for v in ImageDraw.Draw(sticker).textbbox((10, 8), "SALE", font=font))
    cutout = np.asarray(sticker).copy()
    cutout[:, word[2] + 1 :] = (30, 30, 30, 0)
    flattened = cutout.copy()
    flattened[..., 3] = 255
    assert text_height_ratios(cutout, flattened, [word]) == [pytest.approx(1.0, abs=TEXT_HEIGHT_TOLERANCE / 2)]
    blank = np.full_like(base, 255)
    assert text_height_ratios(blank, base, boxes) == [None, None, None]  # no ink in the baseline to measure
    assert text_height_ratios(base, blank, boxes) == [0.0, 0.0, 0.0]  # all of it gone


@pytest.mark.parametrize("manifest", [False, True], ids=["found", "manifest"])
def test_one_digit_of_a_price_fails_though_the_summed_rate_passes(manifest: bool, ocr: OcrSettings) -> None:
    base, boxes = _offer()
    changed, _ = _offer(price="15.99")
    row = _check(base, changed, ocr, _offer_entry(boxes) if manifest else None)
    assert row[schema.TEXT_REGIONS.name] == 3, row
    assert row[schema.TEXT_PASS.name] is False, row
    assert row[schema.TEXT_NUMBERS_CHANGED.name] == 1
    # Averaged over all the text (as `text_cer` is), one digit stays far under the bound.
    bound = row[schema.TEXT_CER_BASELINE.name] + TEXT_CER_MARGIN if manifest else TEXT_CER_MAX
    assert row[schema.TEXT_CER.name] <= bound
    assert row[schema.TEXT_HEIGHT_RATIO.name] >= 1.0 - TEXT_HEIGHT_TOLERANCE
    assert row[schema.TEXT_SHARPNESS.name] >= TEXT_SHARPNESS_MIN


def test_small_print_one_pixel_smaller_fails_by_its_size(ocr: OcrSettings) -> None:
    base, boxes = _offer()
    row = _check(base, _offer(small=9)[0], ocr, _offer_entry(boxes))
    assert row[schema.TEXT_PASS.name] is False, row
    assert row[schema.TEXT_HEIGHT_RATIO.name] < 1.0 - TEXT_HEIGHT_TOLERANCE
    # Drawn a pixel larger, it reads as well: the size is not held against it.
    larger = _check(base, _offer(small=11)[0], ocr, _offer_entry(boxes))
    assert larger[schema.TEXT_PASS.name] is True, larger
    assert larger[schema.TEXT_HEIGHT_RATIO.name] == pytest.approx(1.0, abs=TEXT_HEIGHT_TOLERANCE / 2)


def test_a_headline_missing_a_word_fails(ocr: OcrSettings) -> None:
    base, boxes = _offer()
    short, _ = _offer(headline="Summer 40% off")
    for entry in (None, _offer_entry(boxes)):
        row = _check(base, short, ocr, entry)
        assert row[schema.TEXT_PASS.name] is False, row
        bound = TEXT_CER_MARGIN if entry else TEXT_CER_MAX
        assert row[schema.TEXT_CER_WORST.name] > bound


#: Re-renders a gate must pass, from the baseline's pixels.
RERENDERS = {
    "jitter1": lambda rgba: _shifted(rgba, 1, -1),
    "jitter2": lambda rgba: _shifted(rgba, -2, 2),
    "jpeg90": lambda rgba: _jpeg(rgba, 90),
    "antialiasing": lambda rgba: _offer(supersample=4)[0],  # the text drawn 4x larger, downsampled
}


@pytest.mark.parametrize("change", list(RERENDERS))
def test_legitimate_rerenders_pass_line_by_line(change: str, ocr: OcrSettings) -> None:
    base, boxes = _offer()
    candidate = RERENDERS[change](base)
    for entry in (None, _offer_entry(boxes)):
        row = _check(base, candidate, ocr, entry)
        assert row[schema.TEXT_PASS.name] is True, row
        assert row[schema.TEXT_NUMBERS_CHANGED.name] == 0


def test_eight_pixel_print_and_a_headline_on_a_mid_tone_are_found(ocr: OcrSettings) -> None:
    """Small print at 8 px, and a dark headline on a mid-tone band above a light one (one
    threshold for the whole page puts the headline in its background's class)."""
    base, boxes = _offer(small=8)
    found = find_text_regions(base, ocr)
    for want in boxes:
        assert any(
            min(want[2], got[2]) - max(want[0], got[0]) > 0.8 * (want[2] - want[0])
            and min(want[3], got[3]) - max(want[1], got[1]) > 0.5 * (want[3] - want[1])
            for got in found.boxes
        ), (want, found)
    assert char_error_rate((OFFER_HEADLINE, *_offer_lines("45.99")), "\n".join(found.reads)) < TEXT_CER_MAX


def test_region_matches_within_the_bound_and_the_offsets() -> None:
    """A region matches within its bound (`OCR_MATCH_CONTRAST_SHARE` of its line's
    contrast, at most `OCR_MATCH_LUMA_MAX`) and not one level more, at a shift of
    `OCR_MATCH_SHIFT_PX` and not one more; a candidate of another size never does, and a
    region at the image's corner tries only the offsets inside the image."""
    from pixgate.scoring.text_lines import _contrast, gray_over_white

    base, boxes = _offer()
    for ink in (1.0, 0.1):  # the offer as drawn, and its ink faded to a tenth
        # Darkened so that adding to R, G and B moves luma by as much (nothing clips).
        faded = base.copy()
        faded[..., :3] = np.rint(200.0 - (255.0 - base[..., :3]) * ink * 0.7).astype(np.uint8)
        x0, y0, x1, y1 = boxes[0]
        contrast = _contrast(gray_over_white(faded[y0:y1, x0:x1]))
        bound = math.floor(min(OCR_MATCH_LUMA_MAX, OCR_MATCH_CONTRAST_SHARE * contrast))
        for k, want in ((bound, True), (bound + 1, False)):
            brighter = faded.copy()
            brighter[..., :3] += k
            assert region_matches(faded, brighter, boxes[0]) is want, (ink, contrast, k)
    reach = OCR_MATCH_SHIFT_PX
    assert region_matches(base, _shifted(base, reach, -reach), boxes[0])
    assert not region_matches(base, _shifted(base, reach + 1, 0), boxes[0])
    assert not region_matches(base, base[:-1].copy(), boxes[0])
    corner = (0, 0, 30, 12)
    assert region_matches(base, base, corner)
    assert region_matches(base, _shifted(base, 1, 1), corner)


def test_a_changed_price_in_faint_print_never_matches() -> None:
    """The bound follows the line's own contrast: a digit changed in print a tenth as dark
    as the offer's (under `OCR_MATCH_LUMA_MAX` levels of ink) still differs by more."""

    def faint(rgba: np.ndarray) -> np.ndarray:
        out = rgba.copy()
        out[..., :3] = np.rint(255.0 - (255.0 - rgba[..., :3]) * 0.12).astype(np.uint8)
        return out

    base, boxes = _offer()
    changed = faint(_offer(price="46.99")[0])
    assert not region_matches(faint(base), changed, boxes[1])
    assert region_matches(faint(base), changed, boxes[0])  # the headline, not changed


def test_regions_that_match_take_the_baseline_reading_without_ocr(
    monkeypatch: pytest.MonkeyPatch, ocr: OcrSettings
) -> None:
    """Re-encoded, noisy or moved by a pixel or two, a region takes the baseline's reading
    and the row counts it; a changed price is read, and still fails."""
    import pixgate.scoring.typography as typography

    reads: list[int] = []
    real = typography.read_region
    monkeypatch.setattr(typography, "read_region", lambda *a, **k: (reads.append(1), real(*a, **k))[1])
    base, _ = _offer()
    rng = np.random.default_rng(0)
    noisy = base.copy()
    noisy[..., :3] = np.clip(base[..., :3] + rng.normal(0, 3, base[..., :3].shape), 0, 255).astype(np.uint8)
    for candidate in (_jpeg(base, 90), noisy, _shifted(base, -2, 1)):
        reads.clear()
        row = _check(base, candidate, ocr)
        assert row[schema.TEXT_REGIONS_MATCHED.name] == row[schema.TEXT_REGIONS.name] == 3, row
        assert row[schema.OCR_CANDIDATE.name] == row[schema.OCR_BASELINE.name]
        assert row[schema.TEXT_PASS.name] is True
        assert reads == []
    reads.clear()
    row = _check(base, _offer(price="15.99")[0], ocr)
    assert row[schema.TEXT_REGIONS_MATCHED.name] == 2, row
    assert reads, "the changed line was not read"
    assert row[schema.TEXT_PASS.name] is False
    # Another size: read at its own size (resampled, it would be smoothed into a match).
    reads.clear()
    larger = np.asarray(Image.fromarray(base).resize((428, 224), Image.Resampling.LANCZOS)).copy()
    row = check_text(base, larger, base, None, ocr)
    assert row[schema.TEXT_REGIONS_MATCHED.name] == 0, row
    assert reads
