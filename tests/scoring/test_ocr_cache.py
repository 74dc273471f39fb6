"""The OCR cache: keys, reuse, and entries that must not be trusted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pixgate.config import OCR_CACHE_ENTRY_MAX_BYTES, OCR_CACHE_FORMAT, OCR_MAX_READ_CHARS, OCR_MAX_REGIONS
from pixgate.runs import schema
from pixgate.scoring.ocr import OcrSettings, find_tesseract
from pixgate.scoring.ocr_cache import BaselineText, OcrCache, OcrCacheError, cache_key, default_cache_dir
from pixgate.scoring.text_lines import READING_SETTINGS
from pixgate.scoring.typography import check_text
from tests.conftest import promo_poster


@pytest.fixture(scope="module")
def ocr() -> OcrSettings:
    return find_tesseract("eng")


def test_key_covers_pixels_engine_settings_and_boxes() -> None:
    img, _ = promo_poster(1, 128, lines=2)
    key = cache_key(img, "tesseract 5", READING_SETTINGS, None)
    assert key == cache_key(img.copy(), "tesseract 5", READING_SETTINGS, None)
    changed = img.copy()
    changed[0, 0, 0] ^= 1
    others = {
        cache_key(changed, "tesseract 5", READING_SETTINGS, None),
        cache_key(img, "tesseract 5.1", READING_SETTINGS, None),
        cache_key(img, "tesseract 5", {**READING_SETTINGS, "line_height": 1}, None),
        cache_key(img, "tesseract 5", READING_SETTINGS, ((0, 0, 10, 10),)),
        cache_key(np.ascontiguousarray(img[:, :64]), "tesseract 5", READING_SETTINGS, None),
    }
    assert key not in others and len(others) == 5


def test_default_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "pixgate" / "ocr"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "pixgate" / "ocr"


def test_a_baseline_is_read_once(tmp_path: Path, ocr: OcrSettings) -> None:
    base, _ = promo_poster(2, 384, lines=3, small_size=13)
    cand, _ = promo_poster(2, 384, lines=3, small_size=13, coverage_gamma=0.6)
    cache = OcrCache(tmp_path / "cache")
    first = check_text(base, cand, cand, None, ocr, cache)
    assert (cache.hits, cache.misses) == (0, 1)
    entries = list((tmp_path / "cache").rglob("*.json"))
    assert len(entries) == 1 and entries[0].parent.name == entries[0].name[:2]
    second = check_text(base, cand, cand, None, ocr, cache)
    assert (cache.hits, cache.misses) == (1, 1)
    assert second == first
    # What a hit returns is what the entry says: the baseline is not read again.
    doc = json.loads(entries[0].read_text())
    doc["reads"] = [r.upper() for r in doc["reads"]]
    entries[0].write_text(json.dumps(doc))
    assert check_text(base, base, base, None, ocr, cache)[schema.OCR_BASELINE.name] == "\n".join(doc["reads"])


def _entry_path(tmp_path: Path, base: np.ndarray, ocr: OcrSettings) -> Path:
    key = cache_key(base, ocr.version, READING_SETTINGS, None)
    return tmp_path / "cache" / key[:2] / f"{key}.json"


def _good_entry(key: str) -> dict[str, object]:
    return {"format": OCR_CACHE_FORMAT, "key": key, "boxes": [[0, 0, 10, 10]], "reads": ["x"]}


# Each case spoils one part of a well-formed entry (see _good_entry).
MALFORMED = {
    "not-json": lambda key: b"{not json",
    "box-outside": lambda key: {**_good_entry(key), "boxes": [[0, 0, 9999, 10]]},
    "empty-box": lambda key: {**_good_entry(key), "boxes": [[10, 0, 10, 10]]},
    "float-box": lambda key: {**_good_entry(key), "boxes": [[0, 0, 10.5, 10]]},
    "unpaired": lambda key: {**_good_entry(key), "reads": []},
    "not-a-string": lambda key: {**_good_entry(key), "reads": [7]},
    "two-lines": lambda key: {**_good_entry(key), "reads": ["a\nb"]},
    "long-read": lambda key: {**_good_entry(key), "reads": ["x" * (OCR_MAX_READ_CHARS + 1)]},
    "many-boxes": lambda key: {
        **_good_entry(key),
        "boxes": [[0, 0, 10, 10]] * (OCR_MAX_REGIONS + 1),
        "reads": ["x"] * (OCR_MAX_REGIONS + 1),
    },
    "other-format": lambda key: {**_good_entry(key), "format": OCR_CACHE_FORMAT - 1},
    "other-key": lambda key: {**_good_entry(key), "key": "0" * 64},
    "deep": lambda key: b"[" * 100_000,
    "huge": lambda key: b" " * (OCR_CACHE_ENTRY_MAX_BYTES + 1),
}


def test_a_well_formed_entry_is_used(tmp_path: Path) -> None:
    cache = OcrCache(tmp_path / "cache")
    key = "ab" + "1" * 62
    path = tmp_path / "cache" / key[:2] / f"{key}.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_good_entry(key)))
    assert cache.get(key, 64, 64) == BaselineText(((0, 0, 10, 10),), ("x",))


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_entries_are_read_anew(case: str, tmp_path: Path, ocr: OcrSettings) -> None:
    base, _ = promo_poster(3, 256, lines=2, small_size=14)
    path = _entry_path(tmp_path, base, ocr)
    path.parent.mkdir(parents=True)
    content = MALFORMED[case](path.stem)
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    cache = OcrCache(tmp_path / "cache")
    row = check_text(base, base, base, None, ocr, cache)
    assert cache.misses == 1 and cache.hits == 0 and row[schema.TEXT_REGIONS.name] == 2
    assert json.loads(path.read_text())["reads"]  # replaced by a good entry


def test_fifo_and_links_in_the_cache_are_not_followed(tmp_path: Path, ocr: OcrSettings) -> None:
    base, _ = promo_poster(4, 256, lines=2, small_size=14)
    path = _entry_path(tmp_path, base, ocr)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)  # reading it would block forever
    cache = OcrCache(tmp_path / "cache")
    assert check_text(base, base, base, None, ocr, cache)[schema.TEXT_REGIONS.name] == 2
    assert path.is_file()  # replaced by rename, never opened for writing
    # A shard that is a link out of the cache is not written through.
    outside = tmp_path / "outside"
    outside.mkdir()
    other, _ = promo_poster(5, 256, lines=2, small_size=14)
    shard = _entry_path(tmp_path, other, ocr).parent
    shard.symlink_to(outside, target_is_directory=True)
    check_text(other, other, other, None, ocr, cache)
    assert list(outside.iterdir()) == [] and cache.write_errors == 1


def test_links_are_not_read(tmp_path: Path, ocr: OcrSettings) -> None:
    base, _ = promo_poster(6, 256, lines=2, small_size=14)
    cache = OcrCache(tmp_path / "cache")
    first = check_text(base, base, base, None, ocr, cache)
    path = _entry_path(tmp_path, base, ocr)
    # An entry that is a link (to a good entry, even) is not followed.
    moved = tmp_path / "elsewhere.json"
    path.rename(moved)
    path.symlink_to(moved)
    assert check_text(base, base, base, None, ocr, cache) == first
    assert cache.hits == 0 and cache.misses == 2 and not path.is_symlink()
    # Nor is a shard folder that is a link.
    shard = path.parent
    away = tmp_path / "shard-elsewhere"
    shard.rename(away)
    shard.symlink_to(away, target_is_directory=True)
    check_text(base, base, base, None, ocr, cache)
    assert cache.hits == 0 and cache.misses == 3


def test_entries_are_bound_to_their_key_and_boxes(tmp_path: Path, ocr: OcrSettings) -> None:
    from pixgate.scoring.manifest import ManifestEntry

    one, _ = promo_poster(7, 256, lines=2, small_size=14)
    other, _ = promo_poster(8, 256, lines=2, small_size=14)
    cache = OcrCache(tmp_path / "cache")
    check_text(one, one, one, None, ocr, cache)
    # Another baseline's entry copied under this baseline's key is not used.
    _entry_path(tmp_path, other, ocr).parent.mkdir(parents=True, exist_ok=True)
    _entry_path(tmp_path, other, ocr).write_bytes(_entry_path(tmp_path, one, ocr).read_bytes())
    check_text(other, other, other, None, ocr, cache)
    assert cache.misses == 2 and cache.hits == 0
    # An entry for given boxes must hold exactly those boxes.
    boxes = ((0, 0, 128, 40),)
    key = cache_key(one, ocr.version, READING_SETTINGS, boxes)
    cache.put(key, BaselineText(((0, 0, 10, 10),), ("forged",)))
    check_text(one, one, one, ManifestEntry("p", (), boxes, 1), ocr, cache)
    read_anew = cache.get(key, 256, 256)
    assert read_anew is not None and read_anew.boxes == boxes and read_anew.reads != ("forged",)


def test_unusable_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(OcrCacheError, match=r"ocr_cache: cannot use .*file.*no_ocr_cache"):
        OcrCache(tmp_path / "file")
    cache = OcrCache(tmp_path / "ok")
    cache.put("ab" + "0" * 62, BaselineText(((0, 0, 1, 1),), ("x",)))
    assert cache.get("ab" + "0" * 62, 1, 1) == BaselineText(((0, 0, 1, 1),), ("x",))
    assert cache.get("ab" + "0" * 62, 0, 0) is None  # the box does not fit that image


def test_pairs_sharing_a_baseline_read_it_once(tmp_path: Path, ocr: OcrSettings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    base, _ = promo_poster(9, 384, lines=3, small_size=13)
    cands = [promo_poster(9, 384, lines=3, small_size=13, coverage_gamma=g)[0] for g in (0.6, 0.8, 1.3, 1.6)]
    cache = OcrCache(tmp_path / "cache")
    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(lambda c: check_text(base, c, c, None, ocr, cache), cands))
    assert (cache.misses, cache.hits) == (1, 3)
    assert len({r[schema.OCR_BASELINE.name] for r in rows}) == 1
