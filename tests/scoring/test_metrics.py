"""Per-pair reductions of the kernels' terms, and what the metrics say about real edits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageFilter

from pixgate.config import DELTA_E_QUANTILE, OPAQUE_ALPHA
from pixgate.runs import schema
from pixgate.scoring.metrics import pixel_terms, reduce_terms
from tests.conftest import poster
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
    from pixgate.scoring.metrics import _quantiles, _quantiles_batched

    rng = np.random.default_rng(pixels)
    de = torch.from_numpy(rng.gamma(2.0, 3.0, (5, pixels)).astype(np.float32))
    de[1, rng.random(pixels) < 0.5] = math.nan
    de[2] = math.nan  # nothing opaque in both
    de[3, : pixels // 2] = 7.0  # ties
    count = (~torch.isnan(de)).sum(dim=1).to(torch.float64)
    batched, selected = _quantiles_batched(de, count), _quantiles(de, count)
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
