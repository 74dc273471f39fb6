"""The score pipeline end to end, in process: parity, batching, bad input, resume."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixgate.config import BATCH_INVARIANCE_ATOL, LPIPS_PARITY_ATOL
from pixgate.runs import schema
from pixgate.runs.files import RunJournal, journal_path, read_journal, read_run, run_metadata
from pixgate.safe_io import OutputError
from pixgate.scoring.score import ScoreConfigError, ScoreOptions, run_score
from tests.conftest import GOLDEN, poster, promo_poster
from tests.scoring.test_decode import _bomb

SIZES = [(37, 53), (64, 47), (37, 53), (100, 33), (64, 47), (37, 53), (48, 48)]


def _opts(base: Path, cand: Path, out: Path, weights: Path | None, **kw: object) -> ScoreOptions:
    return ScoreOptions(baseline=base, candidate=cand, output=out, device="cpu", weights=weights, **kw)  # type: ignore[arg-type]


def _column(table: object, col: schema.Column) -> list[object]:
    return table.column(col.name).to_pylist()  # type: ignore[attr-defined]


def _reference_lpips(ref: torch.nn.Module, base: Path, cand: Path) -> float:
    def load(p: Path) -> torch.Tensor:
        arr = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 127.5 - 1
        return torch.from_numpy(arr).permute(2, 0, 1)[None]

    with torch.inference_mode():
        return float(ref(load(base), load(cand)).item())


def test_pipeline_matches_lpips_package(
    make_pairs: Callable[..., tuple[Path, Path]],
    alex_weights: Path,
    lpips_reference: Callable[[str, Path], torch.nn.Module],
    tmp_path: Path,
) -> None:
    base, cand = make_pairs(SIZES)
    result = run_score(_opts(base, cand, tmp_path / "run.arrow", alex_weights))
    ref = lpips_reference("alex", alex_weights)
    table = read_run(tmp_path / "run.arrow")
    assert table.num_rows == len(SIZES)
    assert set(_column(table, schema.STATUS)) == {schema.STATUS_OK}
    for pid, value in zip(_column(table, schema.PAIR_ID), _column(table, schema.LPIPS), strict=True):
        want = _reference_lpips(ref, base / f"{pid}.png", cand / f"{pid}.png")
        assert want > 0
        assert abs(value - want) <= LPIPS_PARITY_ATOL, pid
    assert result.all_ok


def test_streaming_equals_one_shot(
    make_pairs: Callable[..., tuple[Path, Path]], alex_weights: Path, tmp_path: Path
) -> None:
    base, cand = make_pairs(SIZES * 3)
    values = {}
    for batch_size, workers in ((1, 1), (3, 2), (16, 1)):
        out = tmp_path / f"run-{batch_size}.arrow"
        result = run_score(_opts(base, cand, out, alex_weights, batch_size=batch_size, workers=workers))
        values[batch_size] = np.array(_column(result.table, schema.LPIPS), dtype=float)
        assert result.stats["batch_size"] == batch_size
    np.testing.assert_allclose(values[1], values[3], atol=BATCH_INVARIANCE_ATOL, rtol=0)
    np.testing.assert_allclose(values[1], values[16], atol=BATCH_INVARIANCE_ATOL, rtol=0)


def test_pngsuite_valid_files_score_and_corrupt_files_become_error_rows(
    data_dir: Path, alex_weights: Path, tmp_path: Path
) -> None:
    suite = data_dir / "pngsuite" / "png"
    result = run_score(_opts(suite, suite, tmp_path / "run.arrow", alex_weights, batch_size=8))
    files = sorted(suite.glob("*.png"))
    assert result.table.num_rows == len(files)
    for pid, status, error, lp in zip(
        _column(result.table, schema.PAIR_ID),
        _column(result.table, schema.STATUS),
        _column(result.table, schema.ERROR),
        _column(result.table, schema.LPIPS),
        strict=True,
    ):
        if pid.startswith("x"):
            assert status == schema.STATUS_ERROR and error and "baseline" in error, pid
        else:
            assert status == schema.STATUS_OK and error is None, (pid, error)
            assert lp == 0.0, pid  # each file against itself
    upscaled = dict(
        zip(_column(result.table, schema.PAIR_ID), _column(result.table, schema.LPIPS_UPSCALED), strict=True)
    )
    assert upscaled["s01n3p01"] is True and upscaled["basn2c08"] is False
    assert not result.all_ok


def test_bad_files_become_rows_and_good_pairs_still_score(alex_weights: Path, tmp_path: Path) -> None:
    base, cand = tmp_path / "b", tmp_path / "c"
    base.mkdir()
    cand.mkdir()
    img = poster(64, 64, seed=1)
    for name in ("good1", "good2", "empty", "truncated", "text", "bomb", "only_base"):
        Image.fromarray(img).save(base / f"{name}.png")
    for name in ("good1", "good2"):
        Image.fromarray(img).save(cand / f"{name}.png")
    Image.fromarray(img).save(cand / "only_cand.png")
    (cand / "empty.png").write_bytes(b"")
    (cand / "truncated.png").write_bytes((base / "good1.png").read_bytes()[:300])
    (cand / "text.png").write_text("hello, I am text\n")
    (cand / "bomb.png").write_bytes(_bomb(20_000, 20_000))
    result = run_score(_opts(base, cand, tmp_path / "run.arrow", alex_weights))
    rows = {r[schema.PAIR_ID.name]: r for r in result.table.to_pylist()}
    assert set(rows) == {"good1", "good2", "empty", "truncated", "text", "bomb", "only_base", "only_cand"}
    expect = {
        "empty": "empty file",
        "truncated": "truncated PNG",
        "text": "not a PNG, JPEG or WebP",
        "bomb": "decompression-bomb",
        "only_base": "no candidate image",
        "only_cand": "no baseline image",
    }
    for pid, fragment in expect.items():
        assert fragment in rows[pid][schema.ERROR.name], pid
    assert rows["only_base"][schema.STATUS.name] == schema.STATUS_MISSING_CANDIDATE
    assert rows["only_cand"][schema.STATUS.name] == schema.STATUS_MISSING_BASELINE
    assert rows["empty"][schema.STATUS.name] == schema.STATUS_ERROR
    assert rows["empty"][schema.BASELINE_WIDTH.name] == 64  # the good side is still described
    for pid in ("good1", "good2"):
        assert rows[pid][schema.STATUS.name] == schema.STATUS_OK and rows[pid][schema.LPIPS.name] == 0.0


def test_size_format_and_alpha_facts(alex_weights: Path, tmp_path: Path) -> None:
    base, cand = tmp_path / "b", tmp_path / "c"
    base.mkdir()
    cand.mkdir()
    rgba = poster(60, 80, seed=2, alpha=True)
    Image.fromarray(rgba, "RGBA").save(base / "stretched.png")
    Image.fromarray(rgba, "RGBA").resize((100, 60)).save(cand / "stretched.png")
    Image.fromarray(rgba, "RGBA").save(base / "alpha_dropped.png")
    Image.fromarray(rgba[..., :3]).save(cand / "alpha_dropped.jpg", quality=95)
    result = run_score(_opts(base, cand, tmp_path / "run.arrow", alex_weights))
    rows = {r[schema.PAIR_ID.name]: r for r in result.table.to_pylist()}
    s = rows["stretched"]
    assert s[schema.SIZE_MATCH.name] is False
    assert s[schema.ASPECT_RATIO_DELTA.name] == pytest.approx((100 / 60) / (80 / 60) - 1)
    assert s[schema.LPIPS.name] > 0 and s[schema.ALPHA_PARITY.name] is True
    a = rows["alpha_dropped"]
    assert a[schema.BASELINE_HAS_ALPHA.name] is True and a[schema.CANDIDATE_HAS_ALPHA.name] is False
    assert a[schema.ALPHA_PARITY.name] is False
    assert (a[schema.BASELINE_FORMAT.name], a[schema.CANDIDATE_FORMAT.name]) == ("PNG", "JPEG")
    assert a[schema.SIZE_MATCH.name] is True and a[schema.ASPECT_RATIO_DELTA.name] == 0.0


def test_metadata(make_pairs: Callable[..., tuple[Path, Path]], alex_weights: Path, tmp_path: Path) -> None:
    base, cand = make_pairs(SIZES[:2])
    run_score(_opts(base, cand, tmp_path / "run.arrow", alex_weights))
    meta = run_metadata(read_run(tmp_path / "run.arrow"))
    assert meta[schema.META_SCHEMA_VERSION] == schema.SCHEMA_VERSION
    assert meta[schema.META_LPIPS_NET] == "alex"
    assert meta[schema.META_WEIGHTS_SHA256] and len(meta[schema.META_WEIGHTS_SHA256]) == 64
    assert meta[schema.META_DEVICE] == "cpu" and "no CUDA" in meta[schema.META_GPU_NOTE]
    for key in (schema.META_STARTED_AT, schema.META_ENDED_AT, schema.META_TORCH_VERSION, schema.META_PIXGATE_VERSION):
        assert meta[key], key


def test_no_lpips(make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path) -> None:
    base, cand = make_pairs(SIZES[:3])
    result = run_score(_opts(base, cand, tmp_path / "run.arrow", None, no_lpips=True))
    assert _column(result.table, schema.LPIPS) == [None] * 3
    assert set(_column(result.table, schema.STATUS)) == {schema.STATUS_OK}
    assert "--no-lpips" in run_metadata(result.table)[schema.META_LPIPS_NOTE]


def test_no_weights_is_a_config_error(make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path) -> None:
    base, cand = make_pairs(SIZES[:1])
    with pytest.raises(ScoreConfigError, match="pass weights PATH"):
        run_score(_opts(base, cand, tmp_path / "run.arrow", None))
    assert not (tmp_path / "run.arrow").exists() and not journal_path(tmp_path / "run.arrow").exists()


def test_resume_scores_each_pair_once_and_equals_a_fresh_run(
    make_pairs: Callable[..., tuple[Path, Path]], alex_weights: Path, tmp_path: Path
) -> None:
    base, cand = make_pairs(SIZES * 2)
    fresh = run_score(_opts(base, cand, tmp_path / "fresh.arrow", alex_weights)).table
    # An interrupted run: a journal holding the first five rows, written under the same settings.
    out = tmp_path / "run.arrow"
    partial = fresh.slice(0, 5)
    RunJournal(out, run_metadata(fresh), partial).close()
    with pytest.raises(ScoreConfigError, match="pass resume=True to complete it"):
        run_score(_opts(base, cand, out, alex_weights))
    result = run_score(_opts(base, cand, out, alex_weights, resume=True))
    assert result.stats["carried_over"] == 5 and result.stats["scored_now"] == len(SIZES) * 2 - 5
    ids = _column(result.table, schema.PAIR_ID)
    assert len(ids) == len(set(ids)) == fresh.num_rows
    np.testing.assert_allclose(
        _column(result.table, schema.LPIPS), _column(fresh, schema.LPIPS), atol=BATCH_INVARIANCE_ATOL, rtol=0
    )
    assert run_metadata(result.table)[schema.META_RESUMED_AT]


def test_resume_refuses_other_weights(
    make_pairs: Callable[..., tuple[Path, Path]], alex_weights: Path, tmp_path: Path
) -> None:
    base, cand = make_pairs(SIZES[:2])
    out = tmp_path / "run.arrow"
    run_score(_opts(base, cand, out, alex_weights))
    other = tmp_path / "other.pth"
    shutil.copy(alex_weights, other)
    with other.open("ab") as fh:
        fh.write(b"\0")  # same tensors, different file: a different sha256
    with pytest.raises(ScoreConfigError, match="weights_sha256"):
        run_score(_opts(base, cand, out, other, resume=True))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ScoreConfigError, match=r"^baseline: "):
        run_score(_opts(tmp_path / "nope", tmp_path, tmp_path / "run.arrow", None, no_lpips=True))


def test_output_folder_is_created(make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path) -> None:
    base, cand = make_pairs(SIZES[:1])
    out = tmp_path / "new" / "deeper" / "run.arrow"
    run_score(_opts(base, cand, out, None, no_lpips=True))
    assert read_run(out).num_rows == 1
    with pytest.raises(ScoreConfigError, match="is a folder"):
        run_score(_opts(base, cand, tmp_path, None, no_lpips=True))


def _text_pairs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Cards with text (one blurred in the candidate), a picture without, and a manifest."""
    import json

    from PIL import ImageFilter

    from tests.conftest import CARD_LINES, text_card

    base, cand = tmp_path / "baseline", tmp_path / "candidate"
    base.mkdir()
    cand.mkdir()
    card, boxes = text_card(ink=(20, 20, 20), paper=(250, 250, 245))
    for name, candidate in (
        ("clean", Image.fromarray(card)),
        ("blurred", Image.fromarray(card).filter(ImageFilter.GaussianBlur(2.0))),
        ("badbox", Image.fromarray(card)),
    ):
        Image.fromarray(card).save(base / f"{name}.png")
        candidate.save(cand / f"{name}.png")
    Image.fromarray(poster(64, 64, seed=1)).save(base / "picture.png")
    Image.fromarray(poster(64, 64, seed=1)).save(cand / "picture.png")
    entries = [
        {"id": "clean", "expected_text": list(CARD_LINES), "text_boxes": [list(b) for b in boxes]},
        {"id": "blurred", "expected_text": list(CARD_LINES), "text_boxes": [list(b) for b in boxes]},
        {"id": "badbox", "expected_text": list(CARD_LINES), "text_boxes": [[0, 0, 999, 20]]},
        {"id": "picture", "prompt": "no text here"},
        {"id": "not_in_the_run", "expected_text": ["x"]},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    return base, cand, manifest


def test_manifest_adds_typography_columns(tmp_path: Path) -> None:
    base, cand, manifest = _text_pairs(tmp_path)
    out = tmp_path / "run.arrow"
    result = run_score(ScoreOptions(base, cand, out, device="cpu", no_lpips=True, manifest=manifest, ocr_workers=2))
    rows = {r[schema.PAIR_ID.name]: r for r in read_run(out).to_pylist()}
    assert rows["clean"][schema.TEXT_PASS.name] is True
    assert rows["clean"][schema.TEXT_EXPECTED.name] == "SPRING SALE\nFree delivery on orders over 50 EUR."
    assert rows["blurred"][schema.TEXT_PASS.name] is False
    assert rows["blurred"][schema.STATUS.name] == schema.STATUS_OK
    # A bad box is an error row that keeps every other measurement.
    bad = rows["badbox"]
    assert bad[schema.STATUS.name] == schema.STATUS_ERROR
    assert "lies outside the 320x120 baseline" in bad[schema.ERROR.name]
    assert bad[schema.EDGE_PRESERVATION.name] == 1.0
    # No text in the baseline: typography does not apply, and the row is ok.
    picture = rows["picture"]
    assert picture[schema.STATUS.name] == schema.STATUS_OK
    assert picture[schema.TEXT_STATUS.name] == schema.TEXT_NOT_APPLICABLE
    assert all(picture[c.name] is None for c in (schema.TEXT_EXPECTED, schema.TEXT_PASS, schema.TEXT_CER))
    assert result.stats["manifest_ids_without_pair"] == ["not_in_the_run"]
    assert result.stats["text_checked"] == 2 and result.stats["text_not_applicable"] == 1
    meta = run_metadata(result.table)
    assert meta[schema.META_MANIFEST_SHA256] and meta[schema.META_OCR].startswith("tesseract ")
    assert meta[schema.META_TYPOGRAPHY] == "on"


def _promo_pairs(tmp_path: Path) -> tuple[Path, Path]:
    """Promo posters without a manifest: identical, antialiased another way, small print
    rasterised to mush, a candidate of another size, a picture without text."""
    from tests.conftest import mush, promo_poster

    base, cand = tmp_path / "baseline", tmp_path / "candidate"
    base.mkdir()
    cand.mkdir()
    poster_b, boxes = promo_poster(11, 320, lines=3, small_size=13)
    other, _ = promo_poster(11, 320, lines=3, small_size=13, coverage_gamma=0.6)
    picture = np.dstack([poster(96, 96, seed=2), np.full((96, 96), 255, np.uint8)])
    for name, b, c in (
        ("identical", poster_b, poster_b),
        ("antialiased", poster_b, other),
        ("mush", poster_b, mush(poster_b, boxes[-1])),
        ("larger", poster_b, np.asarray(Image.fromarray(poster_b).resize((480, 480), Image.Resampling.LANCZOS))),
        ("picture", picture, picture),
    ):
        Image.fromarray(b).save(base / f"{name}.png")
        Image.fromarray(c).save(cand / f"{name}.png")
    return base, cand


def test_typography_without_a_manifest(tmp_path: Path) -> None:
    base, cand = _promo_pairs(tmp_path)
    cache = tmp_path / "ocr-cache"
    first = run_score(ScoreOptions(base, cand, tmp_path / "a.arrow", device="cpu", no_lpips=True, ocr_cache=cache))
    rows = {r[schema.PAIR_ID.name]: r for r in first.table.to_pylist()}
    assert all(r[schema.STATUS.name] == schema.STATUS_OK for r in rows.values())
    verdicts = {pid: (r[schema.TEXT_STATUS.name], r[schema.TEXT_PASS.name]) for pid, r in rows.items()}
    assert verdicts == {
        "identical": (schema.TEXT_CHECKED, True),
        "antialiased": (schema.TEXT_CHECKED, True),
        "mush": (schema.TEXT_CHECKED, False),
        "larger": (schema.TEXT_CHECKED, True),
        "picture": (schema.TEXT_NOT_APPLICABLE, None),
    }
    assert rows["identical"][schema.OCR_BASELINE.name] == rows["identical"][schema.OCR_CANDIDATE.name]
    assert rows["identical"][schema.TEXT_BOXES.name] == rows["mush"][schema.TEXT_BOXES.name]
    # Four pairs share one baseline picture: a cold cache reads two baselines, once each.
    assert first.stats["ocr_cache"]["misses"] == 2 and first.stats["ocr_cache"]["hits"] == 3
    # A warm cache gives the same rows without reading a baseline again.
    second = run_score(ScoreOptions(base, cand, tmp_path / "b.arrow", device="cpu", no_lpips=True, ocr_cache=cache))
    assert second.stats["ocr_cache"]["hits"] == 5 and second.stats["ocr_cache"]["misses"] == 0
    # The mushed line reads differently whatever the way: its baseline region is read
    # again (in the first run), and taken from the cache in the second.
    assert first.stats["ocr_cache"]["reread_misses"] >= 1
    assert second.stats["ocr_cache"]["reread_misses"] == 0
    assert second.stats["ocr_cache"]["reread_hits"] == first.stats["ocr_cache"]["reread_misses"]
    text_columns = [c.name for c in schema.COLUMNS if c.name.startswith(("text_", "ocr_"))]
    assert second.table.select(text_columns).equals(first.table.select(text_columns))


def test_ignore_regions_reach_the_typography_check(tmp_path: Path) -> None:
    import json

    from tests.conftest import mush, promo_poster

    base, cand = tmp_path / "baseline", tmp_path / "candidate"
    base.mkdir()
    cand.mkdir()
    poster_b, boxes = promo_poster(12, 320, lines=3, small_size=13)
    Image.fromarray(poster_b).save(base / "p.png")
    Image.fromarray(mush(poster_b, boxes[-1])).save(cand / "p.png")
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "p", "ignore": [list(boxes[-1])]}) + "\n")
    plain = run_score(ScoreOptions(base, cand, tmp_path / "a.arrow", device="cpu", no_lpips=True)).table
    assert plain.column(schema.TEXT_PASS.name).to_pylist() == [False]
    masked = run_score(
        ScoreOptions(base, cand, tmp_path / "b.arrow", device="cpu", no_lpips=True, manifest=manifest)
    ).table.to_pylist()[0]
    assert masked[schema.TEXT_PASS.name] is True and masked[schema.TEXT_REGIONS.name] == 2


def test_typography_switched_off_is_not_checked(tmp_path: Path) -> None:
    base, cand = _promo_pairs(tmp_path)
    (base / "only_here.png").write_bytes((base / "picture.png").read_bytes())
    result = run_score(ScoreOptions(base, cand, tmp_path / "run.arrow", device="cpu", no_lpips=True, typography=False))
    rows = {r[schema.PAIR_ID.name]: r for r in result.table.to_pylist()}
    assert rows.pop("only_here")[schema.TEXT_STATUS.name] is None  # not ok: no typography at all
    assert {r[schema.TEXT_STATUS.name] for r in rows.values()} == {schema.TEXT_NOT_CHECKED}
    assert all(r[schema.TEXT_PASS.name] is None for r in rows.values())
    assert run_metadata(result.table)[schema.META_TYPOGRAPHY] == "off"
    assert "text_checked" not in result.stats and "ocr_cache" not in result.stats


def test_unusable_ocr_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, cand = _promo_pairs(tmp_path)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(ScoreConfigError, match="ocr_cache: cannot use"):
        run_score(ScoreOptions(base, cand, tmp_path / "a.arrow", device="cpu", no_lpips=True, ocr_cache=blocker))
    assert not (tmp_path / "a.arrow").exists()
    # The default folder only saves time: a run goes on without it, and says so.
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    result = run_score(ScoreOptions(base, cand, tmp_path / "b.arrow", device="cpu", no_lpips=True))
    assert "cannot use" in result.stats["ocr_cache"]["error"]
    assert result.table.column(schema.TEXT_PASS.name).to_pylist().count(True) == 3
    # --no-ocr-cache keeps nothing.
    empty = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(empty))
    run_score(ScoreOptions(base, cand, tmp_path / "c.arrow", device="cpu", no_lpips=True, no_ocr_cache=True))
    assert not empty.exists()


def test_resume_refuses_typography_switched(tmp_path: Path) -> None:
    base, cand = _promo_pairs(tmp_path)
    out = tmp_path / "run.arrow"
    run_score(ScoreOptions(base, cand, out, device="cpu", no_lpips=True, typography=False))
    with pytest.raises(ScoreConfigError, match=re.escape(f"{schema.META_TYPOGRAPHY}='off'")):
        run_score(ScoreOptions(base, cand, out, device="cpu", no_lpips=True, resume=True))


def test_resume_refuses_another_manifest(tmp_path: Path) -> None:
    base, cand, manifest = _text_pairs(tmp_path)
    out = tmp_path / "run.arrow"
    run_score(ScoreOptions(base, cand, out, device="cpu", no_lpips=True, manifest=manifest))
    with manifest.open("a") as fh:
        fh.write('{"id": "late_addition", "expected_text": ["NEW"]}\n')
    with pytest.raises(ScoreConfigError, match="manifest_sha256"):
        run_score(ScoreOptions(base, cand, out, device="cpu", no_lpips=True, manifest=manifest, resume=True))


def _stamped_pair(tmp_path: Path) -> tuple[Path, Path, tuple[int, int, int, int]]:
    """A poster and its copy with a timestamp box drawn in; returns folders and the box."""
    from PIL import ImageDraw

    base, cand = tmp_path / "baseline", tmp_path / "candidate"
    base.mkdir()
    cand.mkdir()
    img = poster(96, 128, seed=4)
    Image.fromarray(img).save(base / "stamp.png")
    stamped = Image.fromarray(img.copy())
    box = (80, 70, 124, 90)
    ImageDraw.Draw(stamped).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(0, 0, 0))
    ImageDraw.Draw(stamped).text((box[0] + 2, box[1] + 4), "12:34", fill=(255, 255, 255))
    stamped.save(cand / "stamp.png")
    return base, cand, box


@pytest.mark.parametrize("form", ["boxes", "mask"])
def test_change_inside_an_ignored_region_scores_clean(form: str, alex_weights: Path, tmp_path: Path) -> None:
    import json

    base, cand, box = _stamped_pair(tmp_path)
    manifest = tmp_path / "manifest.jsonl"
    if form == "boxes":
        manifest.write_text(json.dumps({"id": "stamp", "ignore": [list(box)]}) + "\n")
    else:
        mask = np.zeros((96, 128), np.uint8)
        mask[box[1] : box[3], box[0] : box[2]] = 255
        Image.fromarray(mask).save(tmp_path / "stamp-mask.png")
        manifest.write_text(json.dumps({"id": "stamp", "ignore": "stamp-mask.png"}) + "\n")
    plain = run_score(ScoreOptions(base, cand, tmp_path / "plain.arrow", device="cpu", weights=alex_weights))
    masked = run_score(
        ScoreOptions(base, cand, tmp_path / "masked.arrow", device="cpu", weights=alex_weights, manifest=manifest)
    )
    before, after = plain.table.to_pylist()[0], masked.table.to_pylist()[0]
    # Without the manifest the stamp is flagged by all three measures ...
    assert before[schema.LPIPS.name] > 0.001
    assert before[schema.DELTA_E_MEAN.name] > 0.5
    assert before[schema.EDGE_PRESERVATION.name] < 0.99
    assert before[schema.IGNORED_FRACTION.name] is None
    # ... and with it the pair is clean.
    assert after[schema.LPIPS.name] == 0.0
    assert after[schema.DELTA_E_MEAN.name] == 0.0
    assert after[schema.EDGE_PRESERVATION.name] == 1.0
    area = (box[2] - box[0]) * (box[3] - box[1])
    assert after[schema.IGNORED_FRACTION.name] == pytest.approx(area / (96 * 128))


def test_ignore_region_that_does_not_fit_is_an_error_row(tmp_path: Path) -> None:
    import json

    base, cand, _ = _stamped_pair(tmp_path)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "stamp", "ignore": [[0, 0, 500, 10]]}) + "\n")
    result = run_score(ScoreOptions(base, cand, tmp_path / "run.arrow", device="cpu", no_lpips=True, manifest=manifest))
    row = result.table.to_pylist()[0]
    assert row[schema.STATUS.name] == schema.STATUS_ERROR
    assert "ignore box [0, 0, 500, 10] (manifest line 1) lies outside the 128x96 baseline" in row[schema.ERROR.name]
    assert row[schema.BASELINE_WIDTH.name] == 128  # what was decoded is kept


def test_cpu_run_records_why_gpu_telemetry_is_missing_and_its_warm_up(
    make_pairs: Callable[..., tuple[Path, Path]], alex_weights: Path, tmp_path: Path
) -> None:
    import json

    base, cand = make_pairs([(48, 48), (48, 48), (40, 56)])
    result = run_score(ScoreOptions(base, cand, tmp_path / "run.arrow", device="cpu", weights=alex_weights))
    meta = run_metadata(result.table)
    nvml = json.loads(meta[schema.META_NVML])
    assert nvml["notes"] == ["no CUDA device: no GPU telemetry; compute_ms is CPU time"]
    assert result.table.column(schema.RUN_ENERGY_J.name).null_count == 3
    assert result.stats["warmup_ms"] > 0  # the first batch's one-off cost, kept out of its pairs
    assert "energy_per_pair_j" not in result.stats
    # Start-up (model load here) is measured, and the steady rate leaves it out.
    assert 0 < result.stats["startup_s"] < result.stats["wall_s"]
    assert result.stats["steady_pairs_per_s"] > result.stats["pairs_per_s"]
    # CPU seconds of this process alone: some, and at most every core for the whole run.
    assert 0 < result.stats["scorer_cpu_s"] <= result.stats["wall_s"] * (os.cpu_count() or 1)
    assert "imagecodecs" in meta[schema.META_DECODERS]


def test_bfloat16_run_is_recorded_and_close_to_float32(
    make_pairs: Callable[..., tuple[Path, Path]], alex_weights: Path, tmp_path: Path
) -> None:
    from pixgate.config import REDUCED_PRECISION_ATOL

    base, cand = make_pairs(SIZES[:3])
    exact = run_score(_opts(base, cand, tmp_path / "f32.arrow", alex_weights)).table
    reduced = run_score(
        ScoreOptions(base, cand, tmp_path / "bf16.arrow", device="cpu", weights=alex_weights, precision="bfloat16")
    ).table
    assert run_metadata(reduced)[schema.META_PRECISION] == "bfloat16"
    assert run_metadata(exact)[schema.META_PRECISION] == "float32"
    a = np.array(exact.column(schema.LPIPS.name).to_pylist())
    b = np.array(reduced.column(schema.LPIPS.name).to_pylist())
    np.testing.assert_allclose(b, a, atol=REDUCED_PRECISION_ATOL)
    with pytest.raises(ScoreConfigError, match=r"^precision must be one of auto, float32, bfloat16"):
        run_score(ScoreOptions(base, cand, tmp_path / "x.arrow", device="cpu", no_lpips=True, precision="fp8"))


# --- hostile inputs, one owner per output, what resume checks ---


def test_an_existing_run_is_replaced_only_with_overwrite(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    base, cand = make_pairs(SIZES[:2])
    out = tmp_path / "run.arrow"
    first = run_score(_opts(base, cand, out, None, no_lpips=True)).table
    before = out.read_bytes()
    with pytest.raises(ScoreConfigError, match="already exists: pass overwrite=True"):
        run_score(_opts(base, cand, out, None, no_lpips=True))
    assert out.read_bytes() == before
    again = run_score(_opts(base, cand, out, None, no_lpips=True, overwrite=True)).table
    assert again.num_rows == first.num_rows
    assert run_metadata(again)[schema.META_STARTED_AT] >= run_metadata(first)[schema.META_STARTED_AT]
    with pytest.raises(ScoreConfigError, match="contradict"):
        run_score(_opts(base, cand, out, None, no_lpips=True, overwrite=True, resume=True))


def test_an_interrupted_run_is_started_over_only_with_overwrite(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    base, cand = make_pairs(SIZES[:3])
    fresh = run_score(_opts(base, cand, tmp_path / "fresh.arrow", None, no_lpips=True)).table
    out = tmp_path / "run.arrow"
    RunJournal(out, run_metadata(fresh), fresh.slice(0, 2)).close()
    with pytest.raises(ScoreConfigError, match=r"\(2 rows\): pass resume=True to complete it, or overwrite=True"):
        run_score(_opts(base, cand, out, None, no_lpips=True))
    result = run_score(_opts(base, cand, out, None, no_lpips=True, overwrite=True))
    assert result.stats["carried_over"] == 0 and result.table.num_rows == 3


@pytest.mark.parametrize("journal", ["empty", "schema-only"])
@pytest.mark.parametrize("resume", [False, True])
def test_a_run_killed_before_its_first_batch_can_be_run_again(
    journal: str, resume: bool, make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    """The issue's case: a kill between the journal's creation and its first batch left a
    0-byte journal that both a plain run and --resume refused until deleted by hand. Now
    the journal is written with its schema at once; either form holds nothing to lose."""
    base, cand = make_pairs(SIZES[:2])
    out = tmp_path / "run.arrow"
    if journal == "empty":
        journal_path(out).write_bytes(b"")
    else:
        RunJournal(out, {"pixgate.max_pixels": "1"}).close()  # other settings, but no rows
    result = run_score(_opts(base, cand, out, None, no_lpips=True, resume=resume))
    assert result.table.num_rows == 2 and result.stats["carried_over"] == 0
    assert not journal_path(out).exists()


def test_the_journal_is_on_disk_before_any_pair_is_decoded(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pixgate.scoring import local

    base, cand = make_pairs(SIZES[:1])
    out = tmp_path / "run.arrow"
    seen: list[int] = []

    class Spy(local.DecodePool):  # the first work a run does
        def __init__(self, *args: object, **kwargs: object) -> None:
            table, meta = read_journal(journal_path(out))
            seen.append(table.num_rows)
            assert meta[schema.META_MAX_PIXELS]
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(local, "DecodePool", Spy)
    run_score(_opts(base, cand, out, None, no_lpips=True))
    assert seen == [0]


@pytest.mark.parametrize(
    ("change", "key"),
    [({"max_pixels": 10**6}, schema.META_MAX_PIXELS), ({"precision": "bfloat16"}, schema.META_PRECISION)],
)
def test_resume_refuses_settings_that_change_values(
    change: dict[str, object], key: str, make_pairs: Callable[..., tuple[Path, Path]], alex_weights: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    base, cand = make_pairs(SIZES[:2])
    fresh = run_score(_opts(base, cand, tmp_path / "fresh.arrow", alex_weights)).table
    out = tmp_path / "run.arrow"
    RunJournal(out, run_metadata(fresh), fresh.slice(0, 1)).close()
    with pytest.raises(ScoreConfigError, match=f"{key}="):
        run_score(_opts(base, cand, out, alex_weights, resume=True, **change))
    assert set(schema.RESUME_KEYS) >= {
        schema.META_MAX_PIXELS, schema.META_DEVICE_TYPE, schema.META_OCR_ENGINE, schema.META_PIXGATE_VERSION
    }  # fmt: skip


@pytest.mark.timeout(180)
def test_hostile_inputs_are_error_rows_and_the_run_completes(tmp_path: Path) -> None:
    """FIFOs, devices, symlink loops, links out of the folder, a folder named like an
    image, a file larger than any image within the limit, names that are not UTF-8: each
    is a row naming its problem, nothing hangs, and the good pairs are scored."""
    base, cand = tmp_path / "b", tmp_path / "c"
    base.mkdir()
    cand.mkdir()
    for name in ("good", os.fsdecode(b"caf\xe9")):
        Image.fromarray(poster(32, 40, seed=1)).save(base / f"{name}.png")
        Image.fromarray(poster(32, 40, seed=2)).save(cand / f"{name}.png")
    for side in (base, cand):
        os.mkfifo(side / "fifo.png")
        (side / "zero.png").symlink_to("/dev/zero")
        (side / "loop.png").symlink_to(side / "loop.png")
        (side / "folder.png").mkdir()
        (side / "folder.png" / "x.txt").write_text("not an image")
        with (side / "huge.png").open("wb") as fh:
            fh.truncate(10**12)  # sparse: a terabyte that must not be read
    out = tmp_path / "run.arrow"
    result = run_score(_opts(base, cand, out, None, no_lpips=True, max_pixels=10_000))
    rows = {r[schema.PAIR_ID.name]: r for r in result.table.to_pylist()}
    assert rows["good"][schema.STATUS.name] == rows["caf\\xe9"][schema.STATUS.name] == schema.STATUS_OK
    expect = {
        "fifo": "FIFO (named pipe)",
        "zero": "leads outside the baseline folder (to /dev/zero)",
        "loop": "a symlink loop",
        "huge": "over the",
        "folder": "baseline folder.png: a folder, not an image file",
    }
    for pair_id, words in expect.items():
        assert rows[pair_id][schema.STATUS.name] == schema.STATUS_ERROR
        assert words in rows[pair_id][schema.ERROR.name], rows[pair_id]
    assert "caf\\xe9" in str(rows["caf\\xe9"][schema.BASELINE_PATH.name])
    # The same run resumed from a journal holding only the non-UTF-8 row.
    again = tmp_path / "again.arrow"
    RunJournal(again, run_metadata(result.table), result.table.filter(
        result.table.column(schema.PAIR_ID.name).to_numpy(zero_copy_only=False) == "caf\\xe9")).close()  # fmt: skip
    resumed = run_score(_opts(base, cand, again, None, no_lpips=True, max_pixels=10_000, resume=True))
    assert resumed.stats["carried_over"] == 1
    assert resumed.table.column(schema.PAIR_ID.name).to_pylist() == result.table.column(schema.PAIR_ID.name).to_pylist()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_scoring_memory_per_pixel_stays_under_the_stated_bound(alex_weights: Path, tmp_path: Path) -> None:
    """docs/score.md states the scoring process's memory per pixel of the pair being scored
    (`SCORER_BYTES_PER_PIXEL`): the peak's growth from a small pair to a large one, in
    fresh processes, stays under it."""
    import json
    import subprocess
    import sys

    from pixgate.config import SCORER_BYTES_PER_PIXEL

    peaks = {}
    for side in (512, 3000):
        base, cand = tmp_path / f"b{side}", tmp_path / f"c{side}"
        base.mkdir()
        cand.mkdir()
        # A poster with text, so that the typography checks (on, as by default) read it.
        img = np.asarray(Image.fromarray(promo_poster(3, 512, lines=4, small_size=12)[0]).resize((side, side)))
        Image.fromarray(img).save(base / "p.png", compress_level=1)
        Image.fromarray(np.roll(img, 3, axis=1)).save(cand / "p.png", compress_level=1)
        out = tmp_path / f"run{side}.arrow"
        args = ["score", str(base), str(cand), "-o", str(out), "--weights", str(alex_weights), "--device", "cpu", "-q"]
        done = subprocess.run([sys.executable, "-m", "pixgate", *args], capture_output=True, text=True, timeout=500)
        assert done.returncode == 0, done.stderr
        stats = json.loads(run_metadata(read_run(out))[schema.META_STATS])
        peaks[side] = stats["peak_rss_mb"]["main"] * 2**20
    per_pixel = (peaks[3000] - peaks[512]) / (3000**2 - 512**2)
    assert 0 < per_pixel <= SCORER_BYTES_PER_PIXEL, per_pixel


def test_resume_refuses_ignore_masks_that_changed(tmp_path: Path) -> None:
    import json

    base, cand, box = _stamped_pair(tmp_path)
    mask = np.zeros((96, 128), np.uint8)
    mask[box[1] : box[3], box[0] : box[2]] = 255
    Image.fromarray(mask).save(tmp_path / "stamp-mask.png")
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "stamp", "ignore": "stamp-mask.png"}) + "\n")
    fresh = run_score(_opts(base, cand, tmp_path / "fresh.arrow", None, no_lpips=True, manifest=manifest)).table
    out = tmp_path / "run.arrow"
    RunJournal(out, run_metadata(fresh), fresh.slice(0, 1)).close()
    mask[:10] = 255  # same manifest, another mask: other rows
    Image.fromarray(mask).save(tmp_path / "stamp-mask.png")
    with pytest.raises(ScoreConfigError, match=schema.META_MASKS_SHA256):
        run_score(_opts(base, cand, out, None, no_lpips=True, manifest=manifest, resume=True))


def test_resume_refuses_a_run_file_whose_rows_are_malformed(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    """Rows carried by --resume are checked like any run file: a repeated pair id would
    otherwise become two rows of this run."""
    import pyarrow as pa

    base, cand = make_pairs(SIZES[:2])
    fresh = run_score(_opts(base, cand, tmp_path / "fresh.arrow", None, no_lpips=True)).table
    out = tmp_path / "run.arrow"
    doubled = pa.concat_tables([fresh.slice(0, 1), fresh.slice(0, 1)])
    RunJournal(out, run_metadata(fresh), doubled).close()
    with pytest.raises(ScoreConfigError, match="pair_id values appear more than once"):
        run_score(_opts(base, cand, out, None, no_lpips=True, resume=True))


def test_resume_keeps_only_rows_whose_files_are_unchanged(tmp_path: Path) -> None:
    """A row is kept only while its pair exists with the bytes it was scored from: a pair
    gone from both folders loses its row, a candidate rewritten (or a missing one that
    appeared) is scored again, a file only touched is kept; the metadata counts each."""
    import hashlib
    import json

    base, cand = tmp_path / "b", tmp_path / "c"
    base.mkdir()
    cand.mkdir()
    for i, name in enumerate(("same", "touched", "changed", "gone", "late")):
        Image.fromarray(poster(24, 32, seed=i)).save(base / f"{name}.png")
        if name != "late":
            Image.fromarray(poster(24, 32, seed=10 + i)).save(cand / f"{name}.png")
    fresh = run_score(_opts(base, cand, tmp_path / "fresh.arrow", None, no_lpips=True)).table
    rows = {r[schema.PAIR_ID.name]: r for r in fresh.to_pylist()}
    for name in ("same", "changed"):
        for side, folder, col in (("b", base, schema.BASELINE_SHA256), ("c", cand, schema.CANDIDATE_SHA256)):
            assert rows[name][col.name] == hashlib.sha256((folder / f"{name}.png").read_bytes()).hexdigest(), side
    assert rows["late"][schema.STATUS.name] == schema.STATUS_MISSING_CANDIDATE
    assert rows["late"][schema.CANDIDATE_SHA256.name] is None

    out = tmp_path / "run.arrow"
    RunJournal(out, run_metadata(fresh), fresh).close()  # every row, as a run killed at its end
    (base / "gone.png").unlink()
    (cand / "gone.png").unlink()
    Image.fromarray(poster(24, 32, seed=99)).save(cand / "changed.png")
    Image.fromarray(poster(24, 32, seed=98)).save(cand / "late.png")
    os.utime(cand / "touched.png", ns=(1, 1))  # another time, the same bytes
    result = run_score(_opts(base, cand, out, None, no_lpips=True, resume=True))

    counts = {"kept": 2, "dropped": 1, "rescored": 2}
    assert json.loads(run_metadata(result.table)[schema.META_RESUME]) == counts
    assert result.stats["resume"] == counts and result.stats["carried_over"] == 2
    after = {r[schema.PAIR_ID.name]: r for r in result.table.to_pylist()}
    assert sorted(after) == ["changed", "late", "same", "touched"]
    assert after["same"] == rows["same"] and after["touched"] == rows["touched"]  # carried as they were
    changed = hashlib.sha256((cand / "changed.png").read_bytes()).hexdigest()
    assert after["changed"][schema.CANDIDATE_SHA256.name] == changed != rows["changed"][schema.CANDIDATE_SHA256.name]
    assert after["changed"][schema.DELTA_E_MEAN.name] != rows["changed"][schema.DELTA_E_MEAN.name]
    assert after["late"][schema.STATUS.name] == schema.STATUS_OK
    # The same rows from a fresh run of the folders as they are now.
    now = run_score(_opts(base, cand, tmp_path / "now.arrow", None, no_lpips=True)).table
    skip = {schema.DECODE_MS.name, schema.COMPUTE_MS.name}
    assert [{k: v for k, v in r.items() if k not in skip} for r in now.to_pylist()] == [
        {k: v for k, v in r.items() if k not in skip} for r in result.table.to_pylist()
    ]


def test_resume_scores_again_a_row_without_digests(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    """A row that records no digest (a file not read whole, or a journal whose digests were
    removed) cannot be shown to match its files: it is scored again."""
    import pyarrow as pa

    base, cand = make_pairs(SIZES[:2])
    fresh = run_score(_opts(base, cand, tmp_path / "fresh.arrow", None, no_lpips=True)).table
    index = fresh.schema.get_field_index(schema.CANDIDATE_SHA256.name)
    blanked = fresh.set_column(index, fresh.schema.field(index), pa.nulls(fresh.num_rows, pa.string()))
    out = tmp_path / "run.arrow"
    RunJournal(out, run_metadata(fresh), blanked.slice(0, 1)).close()
    result = run_score(_opts(base, cand, out, None, no_lpips=True, resume=True))
    assert result.stats["resume"] == {"kept": 0, "dropped": 0, "rescored": 1}
    assert None not in result.table.column(schema.CANDIDATE_SHA256.name).to_pylist()


@pytest.mark.parametrize("pair_id", ["../outside", "/etc/passwd", "a/../../b", "a//b", "./a", "a\\..\\b", "\\x2e\\x2e"])
def test_resume_refuses_a_row_whose_pair_id_leaves_the_folders(
    pair_id: str, make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    import pyarrow as pa

    base, cand = make_pairs(SIZES[:2])
    fresh = run_score(_opts(base, cand, tmp_path / "fresh.arrow", None, no_lpips=True)).table
    ids = fresh.column(schema.PAIR_ID.name).to_pylist()
    hostile = fresh.set_column(0, fresh.schema.field(0), pa.array([pair_id, *ids[1:]], pa.string()))
    out = tmp_path / "run.arrow"
    RunJournal(out, run_metadata(fresh), hostile).close()
    with pytest.raises(ScoreConfigError) as caught:
        run_score(_opts(base, cand, out, None, no_lpips=True, resume=True))
    message = str(caught.value)
    assert message.startswith(f"resume=True: {journal_path(out)} holds a row for pair id {pair_id!r}"), message
    assert not out.exists() and read_journal(journal_path(out))[0].num_rows == fresh.num_rows  # left as it was


def test_resume_keeps_rows_of_names_that_are_escaped(tmp_path: Path) -> None:
    """Pair ids with escapes (a name that is not UTF-8, a backslash) are relative paths."""
    base, cand = tmp_path / "b", tmp_path / "c"
    base.mkdir()
    cand.mkdir()
    for name in (os.fsdecode(b"caf\xe9"), "back\\slash"):
        Image.fromarray(poster(20, 20, seed=1)).save(base / f"{name}.png")
        Image.fromarray(poster(20, 20, seed=2)).save(cand / f"{name}.png")
    fresh = run_score(_opts(base, cand, tmp_path / "fresh.arrow", None, no_lpips=True)).table
    assert sorted(fresh.column(schema.PAIR_ID.name).to_pylist()) == ["back\\\\slash", "caf\\xe9"]
    out = tmp_path / "run.arrow"
    RunJournal(out, run_metadata(fresh), fresh).close()
    result = run_score(_opts(base, cand, out, None, no_lpips=True, resume=True))
    assert result.stats["resume"] == {"kept": 2, "dropped": 0, "rescored": 0}


# --- outputs that are not regular files ---


def _special(kind: str, path: Path) -> Callable[[], bool]:
    """Put a `kind` at `path`; returns a check that it is still there, as it was."""
    import socket
    import stat

    if kind == "fifo":
        os.mkfifo(path)
        return lambda: stat.S_ISFIFO(os.lstat(path).st_mode)
    if kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        return lambda: stat.S_ISSOCK(os.lstat(path).st_mode)
    if kind == "folder":
        path.mkdir()
        return lambda: path.is_dir() and not any(path.iterdir())
    path.symlink_to("/dev/null")  # a device, through a link made here
    return lambda: os.readlink(path) == "/dev/null" and stat.S_ISCHR(os.stat("/dev/null").st_mode)


SPECIAL_KINDS = ["fifo", "socket", "folder", "link to /dev/null"]


@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_score_refuses_an_output_that_is_not_a_regular_file(
    kind: str, make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    """`score -o PATH --overwrite` with a device, FIFO, socket or folder at PATH: exit 2,
    one error line, and nothing written beside it (no lock, journal or temporary file)."""
    import subprocess
    import sys

    base, cand = make_pairs(SIZES[:1])
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "run.arrow"
    intact = _special(kind, out)
    args = ["score", str(base), str(cand), "-o", str(out), "--overwrite", "--no-lpips", "--no-typography", "-q"]
    done = subprocess.run([sys.executable, "-m", "pixgate", *args], capture_output=True, text=True, timeout=240)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), done.stderr
    assert str(out) in lines[0] and "Traceback" not in done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["run.arrow"]
    assert intact()


@pytest.mark.parametrize("side", ["lock", "partial"])
@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_score_refuses_a_lock_or_journal_name_taken_by_something_else(
    side: str, kind: str, make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    """The files a run keeps beside its output are regular files or nothing: a FIFO or a
    link to a device at their names is refused before anything is written or removed."""
    from pixgate.safe_io import OutputError

    base, cand = make_pairs(SIZES[:1])
    out = tmp_path / "run.arrow"
    taken = tmp_path / f"run.arrow.{side}"
    intact = _special(kind, taken)
    for resume in (False, True):
        with pytest.raises(OutputError, match="not a regular file"):
            run_score(_opts(base, cand, out, None, no_lpips=True, typography=False, resume=resume))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("run.arrow")) == [taken.name]
    assert intact()


@pytest.mark.timeout(300)
def test_ray_resume_keeps_and_rescores_rows_as_the_local_backend_does(tmp_path: Path) -> None:
    """The Ray backend goes through the same resume: folders given as URIs are hashed
    through their filesystem, and a changed candidate is scored again."""
    ray = pytest.importorskip("ray", reason="the Ray backend is an optional extra: pip install 'pixgate[ray]'")
    import json

    base, cand = tmp_path / "b", tmp_path / "c"
    base.mkdir()
    cand.mkdir()
    for i in range(3):
        Image.fromarray(poster(24, 32, seed=i)).save(base / f"p{i}.png")
        Image.fromarray(poster(24, 32, seed=10 + i)).save(cand / f"p{i}.png")
    out = tmp_path / "run.arrow"
    opts = ScoreOptions(base.as_uri(), cand.as_uri(), out, device="cpu", no_lpips=True, typography=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        fresh = run_score(opts, backend="ray").table
        assert None not in fresh.column(schema.CANDIDATE_SHA256.name).to_pylist()
        RunJournal(out, run_metadata(fresh), fresh).close()
        out.unlink()
        Image.fromarray(poster(24, 32, seed=99)).save(cand / "p1.png")
        result = run_score(ScoreOptions(**{**opts.__dict__, "resume": True}), backend="ray")
    finally:
        ray.shutdown()
    assert json.loads(run_metadata(result.table)[schema.META_RESUME]) == {"kept": 2, "dropped": 0, "rescored": 1}
    rows = {r[schema.PAIR_ID.name]: r for r in result.table.to_pylist()}
    assert rows["p1"][schema.CANDIDATE_SHA256.name] != fresh.to_pylist()[1][schema.CANDIDATE_SHA256.name]


def test_resume_refuses_a_carried_value_its_column_cannot_hold(tmp_path: Path) -> None:
    """A journal from elsewhere whose width is a 64-bit number past 32 bits: exit 2 in one
    line naming the column, never an Arrow error (exit 3)."""
    import pyarrow as pa

    base, cand = tmp_path / "b", tmp_path / "c"
    base.mkdir()
    cand.mkdir()
    for i in range(2):
        Image.fromarray(poster(24, 32, seed=i)).save(base / f"p{i}.png")
        Image.fromarray(poster(24, 32, seed=10 + i)).save(cand / f"p{i}.png")
    fresh = run_score(_opts(base, cand, tmp_path / "fresh.arrow", None, no_lpips=True)).table
    width = schema.BASELINE_WIDTH.name
    wide = pa.array([2**40] * fresh.num_rows, pa.int64())
    hostile = fresh.set_column(fresh.column_names.index(width), pa.field(width, pa.int64()), wide)
    out = tmp_path / "run.arrow"
    hostile = hostile.replace_schema_metadata(fresh.schema.metadata)
    with pa.OSFile(str(journal_path(out)), "wb") as sink, pa.ipc.new_stream(sink, hostile.schema) as writer:
        writer.write_table(hostile)  # as another tool would write a journal; pixgate's writer casts
    with pytest.raises(
        ScoreConfigError, match=rf"resume=True: the earlier run's column '{width}' does not fit this run's int32"
    ):
        run_score(_opts(base, cand, out, None, no_lpips=True, resume=True))


@pytest.mark.parametrize("where", ["a baseline image", "a candidate image", "new file in a folder", "the manifest"])
def test_score_never_writes_over_what_it_reads(tmp_path: Path, where: str) -> None:
    """The run may not land inside the folders it scores, nor on its manifest: refused
    before anything is written, the input as it was."""
    base, cand = tmp_path / "b", tmp_path / "c"
    shutil.copytree(GOLDEN / "baseline", base)
    shutil.copytree(GOLDEN / "candidate", cand)
    manifest = tmp_path / "manifest.jsonl"
    shutil.copy(GOLDEN / "manifest.jsonl", manifest)
    out = {
        "a baseline image": base / "stretched.png",
        "a candidate image": cand / "stretched.png",
        "new file in a folder": base / "run.arrow",
        "the manifest": manifest,
    }[where]
    before = out.read_bytes() if out.exists() else None
    opts = _opts(base, cand, out, None, no_lpips=True, overwrite=True, manifest=manifest, typography=False)
    with pytest.raises((ScoreConfigError, OutputError), match=r"lies inside the|it is the input"):
        run_score(opts)
    assert (out.read_bytes() if out.exists() else None) == before
