"""The CPU kernels of `pixgate_kernels.local` against the torch code the GPU runs, on
real images: posters with cut-outs, of sizes that leave partial tiles and blocks, with
and without ignore masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

import pixgate_kernels as kernels
from pixgate.config import OPAQUE_ALPHA
from pixgate.scoring import colour, metrics
from tests.conftest import poster

# float32 planes summed in float64 in another order: equal to far below any bound.
SUM_RTOL = 1e-9
# A tile's share from float32 sums in one and float64 in the other.
SHARE_ATOL = 1e-5
# CIELAB from exact integer block sums and float64 decoding against float32 throughout:
# a block on a rounding tie moves by one 8-bit code (under one CIELAB unit once
# filtered), the rest by float32 rounding.
LAB_ATOL = 1.0
LAB_MEAN_ATOL = 1e-3


def _pairs(height: int, width: int, first: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Baselines and candidates: unchanged, blurred, moved by a pixel, a cut-out eroded,
    flattened, and noisy; every one a poster with alpha (seeded from `first` on)."""
    bases, cands = [], []
    for seed, change in enumerate(("same", "blur", "moved", "eroded", "flattened", "noise"), start=first):
        base = poster(height, width, seed, alpha=True)
        cand = base.copy()
        if change == "blur":
            cand[..., :3] = ndimage.gaussian_filter(base[..., :3].astype(np.float32), (1.5, 1.5, 0)).round()
        elif change == "moved":
            cand = np.roll(base, 1, axis=1)
        elif change == "eroded":
            cand[..., 3] = ndimage.grey_erosion(base[..., 3], size=(5, 5))
        elif change == "flattened":
            cand[..., 3] = 255
        elif change == "noise":
            rng = np.random.default_rng(seed)
            cand[..., :3] = np.clip(base[..., :3] + rng.normal(0, 3, base[..., :3].shape), 0, 255)
        bases.append(base)
        cands.append(cand)
    return torch.from_numpy(np.stack(bases)), torch.from_numpy(np.stack(cands))


def _keep(shape: tuple[int, ...]) -> torch.Tensor:
    keep = torch.ones(shape, dtype=torch.bool)
    keep[:, 5:40, 10:50] = False
    keep[1::2, -20:, :] = False
    return keep


SIZES = [(96, 128), (131, 97), (200, 180)]


def _measured(height: int, width: int, masked: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The kernels' planes of `_pairs`, the baselines, and the mask when `masked`."""
    base, cand = _pairs(height, width)
    return metrics.pixel_terms(base, cand), base, _keep(base.shape[:3]) if masked else None


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("masked", [False, True])
def test_structure_worst_matches_torch(height: int, width: int, masked: bool) -> None:
    terms, _, keep = _measured(height, width, masked)
    got = metrics.structure_worst(terms, keep)
    want = metrics._structure_worst_torch(terms.clone(), keep)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=SHARE_ATOL)
    # The measure sees the damage: unchanged is 1, blur is well below.
    assert got[0] == 1.0 and got[1] < 0.95


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("masked", [False, True])
def test_alpha_counts_match_torch(height: int, width: int, masked: bool) -> None:
    base, cand = _pairs(height, width)
    terms = metrics.pixel_terms(base, cand)
    keep = _keep(base.shape[:3]) if masked else None
    got = metrics.alpha_table(terms, base, cand, keep)
    want = torch.stack(metrics._alpha_counts_torch(terms, base[..., 3], cand[..., 3], keep), dim=1)
    from pixgate_kernels.local import alpha_outline_cpu

    counts = alpha_outline_cpu(
        base[..., 3].numpy(), cand[..., 3].numpy(), terms[kernels.ALPHA_ABS].numpy(),
        None if keep is None else keep.numpy(), opaque=OPAQUE_ALPHA,
    )  # fmt: skip
    pixels = height * width
    np.testing.assert_allclose(counts[:, :2], want[:, :2].numpy(), rtol=SUM_RTOL)
    np.testing.assert_allclose(counts[:, 2:] / pixels, want[:, 2:].numpy(), rtol=SUM_RTOL)
    # The table the rules read, from the torch path's counts.
    outline, moved = want[:, 0], want[:, 1]
    edge_px = torch.where(outline > 0, moved / outline.clamp_min(1.0), float("nan"))
    np.testing.assert_allclose(got[:, 0].numpy(), edge_px.numpy(), rtol=SUM_RTOL)
    assert got[:, 1].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert got[3, 0] > 1.0  # eroded by two pixels


@pytest.mark.parametrize(("height", "width", "k"), [(96, 128, 1), (131, 97, 3), (200, 180, 4), (64, 70, 8)])
def test_working_lab_matches_torch(height: int, width: int, k: int) -> None:
    """S-CIELAB's working-size CIELAB from numba's one pass equals torch's (8-bit image,
    then decoding and the opponent transform in float32)."""
    base, cand = _pairs(height, width)
    rate = 50.0 / k
    got = colour._working_lab_cpu(base, cand, k, rate)
    want = colour._working_lab_torch(base, cand, k, rate)
    assert torch.equal(got[2], want[2])
    for a, b in zip(got[:2], want[:2], strict=True):
        assert a.shape == b.shape
        # A block's average rounds to the other 8-bit code on a float32 tie now and then.
        assert float((a - b).abs().max()) < LAB_ATOL
        assert float((a - b).abs().mean()) < LAB_MEAN_ATOL


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("masked", [False, True])
def test_plane_sums_match_torch(height: int, width: int, masked: bool) -> None:
    terms, _, keep = _measured(height, width, masked)
    got = metrics._plane_sums_cpu(terms, keep)
    want = metrics._plane_sums_torch(terms, keep)
    for a, b in zip(got, want, strict=True):
        b = torch.as_tensor(b, dtype=a.dtype).expand_as(a)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=SUM_RTOL, equal_nan=True)
    # Some pixels are clear in these posters: the colour planes counted fewer than all.
    assert bool((got[1] < got[2]).all())
    assert got[0].shape[1] == kernels.N_TERMS


def test_wrappers_refuse_mismatched_shapes() -> None:
    """The compiled loops read without bounds checks: a mask or plane of another size is
    refused before they run."""
    from pixgate_kernels.local import plane_sums_cpu, structure_worst_cpu

    planes = np.zeros((2, 40, 40), np.float32)
    with pytest.raises(ValueError, match="keep must be"):
        structure_worst_cpu(
            planes, planes, np.ones((2, 10, 10), bool), floor=0.1, radius=2, tile=32, min_edge=1.0
        )  # fmt: skip
    with pytest.raises(ValueError, match="edge_cand must be"):
        structure_worst_cpu(planes, planes[:1], None, floor=0.1, radius=2, tile=32, min_edge=1.0)
    with pytest.raises(ValueError, match="keep must be"):
        plane_sums_cpu(np.zeros((8, 2, 40, 40), np.float32), np.ones((1, 40, 40), bool), (0, 1, 2))


def test_terms_from_lumas_already_read_equal_the_whole_pass() -> None:
    """`pixel_terms` given `luma_cpu`'s array (registration's, when nothing moved) fills
    the same planes, to the bit, as the kernels' whole pass."""
    from pixgate_kernels.cpu import luma_cpu

    base, cand = _pairs(131, 97)
    lumas = torch.from_numpy(luma_cpu(base.numpy(), cand.numpy()))
    whole = metrics.pixel_terms(base, cand)
    torch.testing.assert_close(
        metrics.pixel_terms(base, cand, lumas, luma_ready=True), whole, rtol=0, atol=0, equal_nan=True
    )


def test_terms_into_a_kept_buffer_equal_fresh_ones() -> None:
    """Planes written over a buffer that held another batch (the scoring thread's kept
    one, or lumas of images that have moved since) equal fresh ones, to the bit: no
    plane keeps a value from before."""
    from pixgate_kernels.cpu import luma_cpu

    base, cand = _pairs(131, 97)
    other, _ = _pairs(131, 97, first=5)
    kept = torch.from_numpy(luma_cpu(other.numpy(), other.numpy()))
    metrics.pixel_terms(other, other.flip(1).contiguous(), kept)
    whole = metrics.pixel_terms(base, cand)
    torch.testing.assert_close(metrics.pixel_terms(base, cand, kept), whole, rtol=0, atol=0, equal_nan=True)
    with pytest.raises(ValueError, match="out must be"):
        luma_cpu(base.numpy(), cand.numpy(), np.zeros((1, 2, 3), np.float32))


def test_a_batch_measured_twice_in_a_thread_gives_the_same_table() -> None:
    """`measure_table` keeps its planes from batch to batch: a batch measured after
    another of the same size (whose pixels differ) gives the table it gives alone."""
    base, cand = _pairs(120, 96)
    alone, _ = metrics.measure_table(base, cand)
    other, _ = _pairs(120, 96, first=9)
    metrics.measure_table(other, other.roll(3, dims=2).contiguous())
    again, _ = metrics.measure_table(base, cand)
    torch.testing.assert_close(again, alone, rtol=0, atol=0, equal_nan=True)
    assert metrics._BUFFERS.planes is not None
    metrics.release_buffers()  # as a run's end does: nothing kept past it
    assert metrics._BUFFERS.planes is None
    torch.testing.assert_close(metrics.measure_table(base, cand)[0], alone, rtol=0, atol=0, equal_nan=True)
