"""Per-pair reductions of the kernels' terms, and what the metrics say about real edits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageFilter

from pixgate.config import BATCH_INVARIANCE_ATOL, DELTA_E_QUANTILE, OPAQUE_ALPHA
from pixgate.runs import schema
from pixgate.scoring.metrics import measure_table, measured_rows, pixel_terms, reduce_terms
from tests.conftest import poster, promo_poster
from tests.kernels.test_kernels import _batch, reference_terms

# Reductions run in float64 over float32 terms; the reference reduces float64 terms.
REDUCTION_RTOL = 1e-5


def _metrics(base: np.ndarray, cand: np.ndarray, both_alpha: list[bool]) -> list[dict[str, object]]:
    return reduce_terms(pixel_terms(torch.from_numpy(base), torch.from_numpy(cand)), both_alpha)


def test_reductions_match_numpy() -> None:
    base, cand = _batch(3, 3, 40, 56)
    rows = _metrics(base, cand, [True, True, False])
    ref = reference_terms(base, cand, OPAQUE_ALPHA)
    for i, row in enumerate(rows):
        de = ref[0, i][~np.isnan(ref[0, i])]
        want = {
            schema.DELTA_E_MEAN.name: de.mean(),
            schema.DELTA_E_P95.name: np.quantile(de, DELTA_E_QUANTILE, method="inverted_cdf"),
            schema.LIGHTNESS_SHIFT.name: np.nanmean(ref[1, i]),
            schema.CHROMA_SHIFT.name: np.nanmean(ref[2, i]),
            schema.EDGE_PRESERVATION.name: ref[4, i].sum() / ref[3, i].sum(),
        }
        if i < 2:
            want[schema.ALPHA_MAE.name] = ref[5, i].mean()
            want[schema.ALPHA_IOU.name] = ref[6, i].sum() / ref[7, i].sum()
        else:
            assert row[schema.ALPHA_MAE.name] is None and row[schema.ALPHA_IOU.name] is None
        for key, value in want.items():
            assert row[key] == pytest.approx(value, rel=REDUCTION_RTOL, abs=1e-6), (i, key)


@pytest.mark.parametrize("pixels", [1, 2, 19, 20, 21, 4000])
def test_batched_quantile_equals_selection_per_row(pixels: int) -> None:
    """The GPU's quantile (one sort of every row, no host sync) against the CPU's
    selection per row, including rows with no value and rows of one."""
    from pixgate.scoring.metrics import quantiles, quantiles_batched

    rng = np.random.default_rng(pixels)
    de = torch.from_numpy(rng.gamma(2.0, 3.0, (5, pixels)).astype(np.float32))
    de[1, rng.random(pixels) < 0.5] = math.nan
    de[2] = math.nan  # nothing opaque in both
    de[3, : pixels // 2] = 7.0  # ties
    count = (~torch.isnan(de)).sum(dim=1).to(torch.float64)
    batched, selected = quantiles_batched(de, count), quantiles(de, count)
    np.testing.assert_array_equal(batched.numpy(), selected.numpy())
    assert math.isnan(float(batched[2]))
    for i in (0, 1, 3, 4):
        values = de[i][~torch.isnan(de[i])].double().numpy()
        if values.size:
            assert float(batched[i]) == np.quantile(values, DELTA_E_QUANTILE, method="inverted_cdf")


def test_reductions_over_kept_pixels_match_numpy() -> None:
    base, cand = _batch(5, 2, 40, 56)
    rng = np.random.default_rng(9)
    keep = rng.random((2, 40, 56)) > 0.3
    keep[1] = False  # a fully ignored image
    terms = pixel_terms(torch.from_numpy(base), torch.from_numpy(cand))
    rows = reduce_terms(terms, [True, True], torch.from_numpy(keep))
    ref = reference_terms(base, cand, OPAQUE_ALPHA)
    k = keep[0]
    de = ref[0, 0][k & ~np.isnan(ref[0, 0])]
    want = {
        schema.DELTA_E_MEAN.name: de.mean(),
        schema.DELTA_E_P95.name: np.quantile(de, DELTA_E_QUANTILE, method="inverted_cdf"),
        schema.LIGHTNESS_SHIFT.name: np.nanmean(ref[1, 0][k]),
        schema.CHROMA_SHIFT.name: np.nanmean(ref[2, 0][k]),
        schema.EDGE_PRESERVATION.name: ref[4, 0][k].sum() / ref[3, 0][k].sum(),
        schema.ALPHA_MAE.name: ref[5, 0][k].mean(),
        schema.ALPHA_IOU.name: ref[6, 0][k].sum() / ref[7, 0][k].sum(),
    }
    for name, value in want.items():
        assert rows[0][name] == pytest.approx(value, rel=REDUCTION_RTOL), name
    empty = rows[1]
    assert empty[schema.DELTA_E_MEAN.name] is None and empty[schema.EDGE_PRESERVATION.name] == 1.0
    assert empty[schema.ALPHA_MAE.name] == 0.0


def test_no_opaque_pixels_gives_null_colour_and_flat_image_keeps_edges() -> None:
    base = np.zeros((1, 8, 8, 4), np.uint8)  # fully transparent, flat
    (row,) = _metrics(base, base.copy(), [True])
    assert row[schema.DELTA_E_MEAN.name] is None and row[schema.DELTA_E_P95.name] is None
    assert row[schema.EDGE_PRESERVATION.name] == 1.0
    assert row[schema.ALPHA_IOU.name] == 1.0 and row[schema.ALPHA_MAE.name] == 0.0


def _edit(img: np.ndarray, fn: object) -> np.ndarray:
    out = fn(Image.fromarray(img))  # type: ignore[operator]
    return np.asarray(out.convert("RGBA"))


def test_edge_preservation_ranks_blur_monotonically() -> None:
    img = np.asarray(Image.fromarray(poster(96, 128, seed=3)).convert("RGBA"))
    radii = [0.0, 0.5, 1.0, 2.0, 4.0]
    base = np.stack([img] * len(radii))
    cand = np.stack([_edit(img, lambda im, r=r: im.filter(ImageFilter.GaussianBlur(r))) for r in radii])
    values = [r[schema.EDGE_PRESERVATION.name] for r in _metrics(base, cand, [False] * len(radii))]
    assert values[0] == 1.0
    assert all(a > b for a, b in itertools.pairwise(values)), values


def test_saturation_boost_raises_chroma_and_desaturation_lowers_it() -> None:
    img = np.asarray(Image.fromarray(poster(64, 64, seed=4)).convert("RGBA"))
    more = _edit(img, lambda im: ImageEnhance.Color(im.convert("RGB")).enhance(1.5))
    less = _edit(img, lambda im: ImageEnhance.Color(im.convert("RGB")).enhance(0.5))
    rows = _metrics(np.stack([img, img]), np.stack([more, less]), [False, False])
    assert rows[0][schema.CHROMA_SHIFT.name] > 0 > rows[1][schema.CHROMA_SHIFT.name]
    assert rows[0][schema.DELTA_E_MEAN.name] > 0


# --- local structure, alpha content, measure_table ---


def _measured(base: np.ndarray, cand: np.ndarray, both_alpha: bool = True) -> dict[str, object]:
    table, _ = measure_table(torch.from_numpy(base[None].copy()), torch.from_numpy(cand[None].copy()))
    return measured_rows(table.tolist(), [both_alpha])[0]


def _moved(rgba: np.ndarray, dx: int, dy: int) -> np.ndarray:
    h, w = rgba.shape[:2]
    padded = np.pad(rgba, ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0)), mode="edge")
    return np.ascontiguousarray(padded[abs(dy) - dy : abs(dy) - dy + h, abs(dx) - dx : abs(dx) - dx + w])


def test_jitter_is_registered_away() -> None:
    base, _ = promo_poster(7, 256)
    for dx, dy in ((1, -1), (-2, 2)):
        row = _measured(base, _moved(base, dx, dy), both_alpha=False)
        assert (row[schema.SHIFT_X.name], row[schema.SHIFT_Y.name]) == pytest.approx((dx, dy), abs=0.02)
        # Compared after moving back: what is left is the filled-in band, left out.
        assert row[schema.EDGE_PRESERVATION.name] == pytest.approx(1.0, abs=1e-6)
        assert row[schema.STRUCTURE_WORST.name] == pytest.approx(1.0, abs=1e-6)
        assert row[schema.DELTA_E_MEAN.name] == pytest.approx(0.0, abs=1e-6)
    # Unregistered, the same jitter costs whole-image edge preservation a lot.
    (plain,) = _metrics(base[None].copy(), _moved(base, -2, 2)[None].copy(), [False])
    assert plain[schema.EDGE_PRESERVATION.name] < 0.9


def test_structure_worst_sees_one_blurred_line_that_the_whole_image_hides() -> None:
    base, boxes = promo_poster(8, 512, lines=4)
    small = boxes[-1]
    blurred = base.copy()
    x0, y0, x1, y1 = small
    region = Image.fromarray(np.ascontiguousarray(base[y0:y1, x0:x1]))
    blurred[y0:y1, x0:x1] = np.asarray(region.filter(ImageFilter.GaussianBlur(1.0)))
    aa, _ = promo_poster(8, 512, lines=4, coverage_gamma=0.6)
    broken = _measured(base, blurred, both_alpha=False)
    legit = _measured(base, aa, both_alpha=False)
    assert broken[schema.EDGE_PRESERVATION.name] > 0.9  # a small share of the image's edges
    assert broken[schema.STRUCTURE_WORST.name] < legit[schema.STRUCTURE_WORST.name]
    assert broken[schema.STRUCTURE_WORST.name] < 0.8 < legit[schema.STRUCTURE_WORST.name]


def test_structure_worst_sees_a_missing_word_and_added_text() -> None:
    from PIL import ImageDraw, ImageFont

    def card(text: str) -> np.ndarray:
        img = Image.new("RGBA", (320, 96), (240, 236, 228, 255))
        ImageDraw.Draw(img).text((16, 30), text, font=ImageFont.load_default(size=20), fill=(20, 20, 20, 255))
        return np.asarray(img).copy()

    full, short = card("Summer Sale 40% off"), card("Summer Sale off")
    assert _measured(full, short, both_alpha=False)[schema.STRUCTURE_WORST.name] < 0.5
    assert _measured(short, full, both_alpha=False)[schema.STRUCTURE_WORST.name] < 0.5
    assert _measured(full, full.copy(), both_alpha=False)[schema.STRUCTURE_WORST.name] == 1.0


def _cut_out(size: int = 128) -> np.ndarray:
    img = poster(size, size, seed=9, alpha=True)
    # Soft edges, as a real cut-out has.
    alpha = Image.fromarray(img[..., 3]).filter(ImageFilter.GaussianBlur(0.7))
    return np.dstack([img[..., :3], np.asarray(alpha)])


@pytest.mark.parametrize("px", [1, 2, 3])
def test_alpha_edge_px_reads_an_eroded_edge_in_pixels(px: int) -> None:
    base = _cut_out()
    alpha = Image.fromarray(np.ascontiguousarray(base[..., 3])).filter(ImageFilter.MinFilter(2 * px + 1))
    row = _measured(base, np.dstack([base[..., :3], np.asarray(alpha)]))
    # A square min filter moves a curved outline by px along the axes and up to px * sqrt(2)
    # along the diagonals: between the two.
    assert px * 0.9 <= row[schema.ALPHA_EDGE_PX.name] <= px * math.sqrt(2)
    assert row[schema.ALPHA_FLATTENED.name] is False


def test_flattened_cut_out_is_flagged_and_alpha_columns_need_both_alphas() -> None:
    base = _cut_out()
    flat = base.copy()
    flat[..., 3] = 255
    row = _measured(base, flat)
    assert row[schema.ALPHA_FLATTENED.name] is True
    assert row[schema.ALPHA_EDGE_PX.name] > 5
    assert _measured(base, base.copy())[schema.ALPHA_FLATTENED.name] is False
    assert _measured(base, base.copy())[schema.ALPHA_EDGE_PX.name] == 0.0
    none = _measured(base, flat, both_alpha=False)
    assert none[schema.ALPHA_FLATTENED.name] is None and none[schema.ALPHA_EDGE_PX.name] is None
    # An opaque baseline has no outline to move: no value.
    opaque = np.dstack([base[..., :3], np.full(base.shape[:2], 255, np.uint8)])
    assert _measured(opaque, opaque.copy())[schema.ALPHA_EDGE_PX.name] is None


def test_measure_table_batch_equals_one_by_one() -> None:
    base, _ = promo_poster(10, 192)
    cands = [_moved(base, 1, 2), promo_poster(10, 192, coverage_gamma=0.6)[0], base.copy()]
    table, _ = measure_table(torch.from_numpy(np.stack([base] * 3)), torch.from_numpy(np.stack(cands)))
    together = measured_rows(table.tolist(), [True] * 3)
    for cand, row in zip(cands, together, strict=True):
        alone = _measured(base, cand)
        assert row.keys() == alone.keys()
        for key, value in row.items():
            if value is None or isinstance(value, bool):
                assert value is alone[key], key
            else:
                assert value == pytest.approx(alone[key], rel=REDUCTION_RTOL, abs=BATCH_INVARIANCE_ATOL), key


def test_spatial_colour_of_a_large_image_is_s_cielab_seen_from_further() -> None:
    from pixgate.config import SCIELAB_SAMPLES_PER_DEGREE, SCIELAB_WORK_SIDE
    from pixgate.scoring.colour import spatial_colour
    from pixgate.scoring.scielab import scielab_table

    side = 2 * SCIELAB_WORK_SIDE  # averaged by 2, filtered at half the rate
    base = poster(side, side, seed=11, alpha=True)
    colour = _edit(base, lambda im: ImageEnhance.Color(im.convert("RGB")).enhance(1.3))
    cand = np.dstack([colour[..., :3], base[..., 3]])

    def by_hand(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Composited over white once, averaged 2 x 2; opaque, with the averaged alpha
        saying which pixels count."""
        a = img[..., 3:].astype(np.float64) / 255.0
        over = np.concatenate([img[..., :3] * a + 255.0 * (1.0 - a), img[..., 3:]], axis=-1)
        small = over.reshape(side // 2, 2, side // 2, 2, 4).mean(axis=(1, 3))
        counts = small[..., 3] >= OPAQUE_ALPHA
        small[..., 3] = 255.0
        return np.clip(np.rint(small), 0, 255).astype(np.uint8)[None], counts[None]

    (small_base, counts_base), (small_cand, counts_cand) = by_hand(base), by_hand(cand)
    got = spatial_colour(torch.from_numpy(base[None].copy()), torch.from_numpy(cand[None].copy()))
    want = scielab_table(
        torch.from_numpy(small_base),
        torch.from_numpy(small_cand),
        torch.from_numpy(counts_base & counts_cand),
        samples_per_degree=SCIELAB_SAMPLES_PER_DEGREE / 2,
        with_colour=True,
    )
    # Rounding the averaged pixels to 8 bits may land one level apart at a half: far
    # below a visible difference.
    torch.testing.assert_close(got[:, :3], want, atol=0.02, rtol=0.01)
    assert float(got[0, 0]) > 1.0  # the saturation change survives


def test_jitter_leaves_nothing_for_the_colour_filter() -> None:
    """The band a move fills in takes the baseline's pixels: the wide S-CIELAB filter
    reads no colour change from it."""
    base, _ = promo_poster(12, 512)
    row = _measured(base, _moved(base, -2, 2), both_alpha=False)
    assert row[schema.SCIELAB_MEAN.name] == pytest.approx(0.0, abs=1e-3)


def test_a_pairs_measures_do_not_depend_on_its_batch() -> None:
    """Every measured column of a pair is the same, to the bit, scored alone, in a pair
    or in a batch of five: a resumed run rescores pairs in other batches than a fresh
    run, and the two runs must agree."""
    import torch

    from pixgate.scoring.metrics import MEASURED, measure_table
    from tests.conftest import poster

    base = np.stack([poster(96, 128, seed=s, alpha=True) for s in range(5)])
    cand = base.copy()
    cand[0] = np.roll(base[0], (1, -2), axis=(0, 1))
    cand[1, ..., :3] = np.clip(base[1, ..., :3].astype(int) + 9, 0, 255).astype(np.uint8)
    cand[2] = np.roll(base[2], 3, axis=1)
    cand[3, ..., 3] = 255
    cand[4] = poster(96, 128, seed=40, alpha=True)
    tb, tc = torch.from_numpy(base), torch.from_numpy(cand)
    batch = measure_table(tb, tc)[0]
    for size in (1, 2):
        for start in range(0, 5 - size + 1, size):
            part = measure_table(tb[start : start + size].contiguous(), tc[start : start + size].contiguous())[0]
            for i in range(size):
                for name, a, b in zip(MEASURED, batch[start + i].tolist(), part[i].tolist(), strict=True):
                    assert a == b or (math.isnan(a) and math.isnan(b)), (name, start + i, size)
