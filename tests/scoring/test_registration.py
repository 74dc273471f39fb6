"""Registration: shifts against scikit-image's phase correlation, stretches found, small
shifts undone before the metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from pixgate.config import REGISTRATION_ALIGN_MAX_PX
from pixgate.runs import schema
from pixgate.scoring import registration
from pixgate.scoring.registration import COLUMNS, align, estimate, luma_on_white, phase_shift
from tests.conftest import poster, promo_poster

# scikit-image refines its peak by an upsampled DFT, pixgate by a parabola through the
# correlation peak: on smooth content the two agree to well under a quarter pixel.
SUBPIXEL_ATOL = 0.15
# A whole-pixel shift of real content is found exactly, up to float32 rounding of the
# parabola's offset.
WHOLE_PIXEL_ATOL = 0.02
# The scale search's fine step is 0.05 %; interpolation of the edge profiles adds less
# than this on a 512 px poster.
SCALE_ATOL = 0.002
# torch samples the profiles at float32 positions, numba at float64: their correlations
# differ in the float32 rounding of an interpolation weight.
NCC_ATOL = 1e-5


def _shifted(rgba: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The content moved right by dx and down by dy, edge pixels repeated into the gap."""
    h, w = rgba.shape[:2]
    padded = np.pad(rgba, ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0)), mode="edge")
    return np.ascontiguousarray(padded[abs(dy) - dy : abs(dy) - dy + h, abs(dx) - dx : abs(dx) - dx + w])


def _stretched(rgba: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """The content stretched about the centre inside the same canvas."""
    h, w = rgba.shape[:2]
    out = np.asarray(Image.fromarray(rgba).resize((round(w * sx), round(h * sy)), Image.Resampling.LANCZOS))
    # Shrunk content: its edge pixels repeated out to the canvas; grown: the canvas cut out.
    grow_y, grow_x = max(h - out.shape[0], 0), max(w - out.shape[1], 0)
    out = np.pad(out, ((grow_y // 2, grow_y - grow_y // 2), (grow_x // 2, grow_x - grow_x // 2), (0, 0)), mode="edge")
    top, left = (out.shape[0] - h) // 2, (out.shape[1] - w) // 2
    return np.ascontiguousarray(out[top : top + h, left : left + w])


def _estimate(base: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    found = estimate(torch.from_numpy(base[None].copy()), torch.from_numpy(cand[None].copy()))
    return dict(zip(COLUMNS, found[0].tolist(), strict=True))


@pytest.mark.parametrize(("dx", "dy"), [(1, -1), (-2, 2), (3, 0), (0, -7), (11, 5)])
def test_whole_pixel_shift_matches_scikit_image(dx: int, dy: int) -> None:
    base, _ = promo_poster(3, 256)
    # A circular shift is exact for both methods.
    rolled = np.ascontiguousarray(np.roll(base, (dy, dx), axis=(0, 1)))
    found = _estimate(base, rolled)
    lb = luma_on_white(torch.from_numpy(base[None].copy()))[0].numpy()
    lc = luma_on_white(torch.from_numpy(rolled[None].copy()))[0].numpy()
    # scikit-image gives the shift that registers the moving image onto the reference,
    # (row, col): the opposite of where the content went.
    ref, _, _ = phase_cross_correlation(lb, lc, upsample_factor=20)
    assert found[schema.SHIFT_X.name] == pytest.approx(-ref[1], abs=WHOLE_PIXEL_ATOL)
    assert found[schema.SHIFT_Y.name] == pytest.approx(-ref[0], abs=WHOLE_PIXEL_ATOL)
    # Content moved with its edge pixels repeated into the gap, as a re-render does: found
    # to the pixel (scikit-image, without a window, is pulled by the repeated edge).
    moved = _estimate(base, _shifted(base, dx, dy))
    assert moved[schema.SHIFT_X.name] == pytest.approx(dx, abs=WHOLE_PIXEL_ATOL)
    assert moved[schema.SHIFT_Y.name] == pytest.approx(dy, abs=WHOLE_PIXEL_ATOL)


@pytest.mark.parametrize(("dx", "dy"), [(0.3, -1.6), (-0.45, 0.25), (2.5, 1.2)])
def test_subpixel_shift_matches_scikit_image(dx: float, dy: float) -> None:
    luma = poster(192, 224, seed=5)[..., 1].astype(np.float64) / 255.0
    smooth = ndimage.gaussian_filter(luma, 1.5)
    moved = np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(smooth), (dy, dx))).real
    found = phase_shift(torch.from_numpy(smooth[None]), torch.from_numpy(moved[None]))[0].tolist()
    ref, _, _ = phase_cross_correlation(smooth, moved, upsample_factor=50)
    assert found[0] == pytest.approx(-ref[1], abs=SUBPIXEL_ATOL)
    assert found[1] == pytest.approx(-ref[0], abs=SUBPIXEL_ATOL)
    assert found == pytest.approx([dx, dy], abs=SUBPIXEL_ATOL)


@pytest.mark.parametrize(("sx", "sy"), [(1.02, 1.0), (1.0, 1.01), (0.95, 1.0), (1.05, 1.05), (1.1, 0.97)])
def test_stretch_inside_the_canvas_is_found(sx: float, sy: float) -> None:
    base, _ = promo_poster(1, 512)
    found = _estimate(base, _stretched(base, sx, sy))
    assert found[schema.SCALE_X.name] == pytest.approx(sx, abs=SCALE_ATOL)
    assert found[schema.SCALE_Y.name] == pytest.approx(sy, abs=SCALE_ATOL)
    assert found[schema.ASPECT_CHANGE.name] == pytest.approx(sx / sy - 1.0, abs=2 * SCALE_ATOL)
    assert found[schema.SCALE_CHANGE.name] == pytest.approx(max(abs(sx - 1), abs(sy - 1)), abs=SCALE_ATOL)


@pytest.mark.parametrize("change", ["jitter", "antialiasing", "jpeg", "noise"])
def test_legitimate_changes_keep_the_scale(change: str) -> None:
    base, _ = promo_poster(2, 512)
    if change == "jitter":
        cand = _shifted(base, -2, 1)
    elif change == "antialiasing":
        cand, _ = promo_poster(2, 512, coverage_gamma=0.6)
    elif change == "jpeg":
        import io

        buf = io.BytesIO()
        Image.fromarray(base[..., :3]).save(buf, "JPEG", quality=90)
        cand = np.dstack([np.asarray(Image.open(buf).convert("RGB")), base[..., 3]])
    else:
        noise = np.random.default_rng(4).normal(0, 2.0, base[..., :3].shape)
        cand = np.dstack([np.clip(np.rint(base[..., :3] + noise), 0, 255).astype(np.uint8), base[..., 3]])
    found = _estimate(base, cand)
    # Half the 1 % stretch the shipped policy fails: legitimate changes stay well inside.
    assert found[schema.SCALE_CHANGE.name] < 0.005 / 2


def test_identical_pair_is_exact() -> None:
    base, _ = promo_poster(0, 128)
    assert list(_estimate(base, base.copy()).values()) == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]


def test_flat_image_has_no_scale() -> None:
    flat = np.full((64, 80, 4), 200, np.uint8)
    other = flat.copy()
    other[..., 0] = 190
    found = _estimate(flat, other)
    assert math.isnan(found[schema.SCALE_X.name]) and math.isnan(found[schema.SCALE_Y.name])


def test_batch_equals_one_by_one() -> None:
    base, _ = promo_poster(4, 256)
    cands = [_shifted(base, 2, -1), _stretched(base, 1.03, 1.0), base.copy()]
    together = estimate(torch.from_numpy(np.stack([base] * 3)), torch.from_numpy(np.stack(cands)))
    for i, cand in enumerate(cands):
        alone = estimate(torch.from_numpy(base[None].copy()), torch.from_numpy(cand[None].copy()))
        torch.testing.assert_close(together[i], alone[0], equal_nan=True)


def test_align_undoes_a_small_shift_and_leaves_the_filled_band_out() -> None:
    base, _ = promo_poster(5, 160)
    cands = [_shifted(base, 2, -3), _shifted(base, REGISTRATION_ALIGN_MAX_PX + 3, 0)]
    tb = torch.from_numpy(np.stack([base, base]))
    tc = torch.from_numpy(np.stack(cands))
    moved, keep = align(tc, None, estimate(tb, tc))
    assert keep is not None
    # The small shift is undone: every kept pixel is the baseline's.
    assert torch.equal(moved[0][keep[0]], tb[0][keep[0]])
    # Exactly the rows and columns the move filled in, and one beside them, are left out:
    # 2 + 1 columns, 3 + 1 rows.
    out = ~keep[0]
    assert int(out.all(dim=0).sum()) == 3 and int(out.all(dim=1).sum()) == 4
    assert int(out.sum()) == 3 * 160 + 4 * 160 - 3 * 4
    # A shift beyond the bound is a change of layout: left where it is.
    assert torch.equal(moved[1], tc[1]) and bool(keep[1].all())


def test_align_keeps_the_given_mask_and_leaves_the_band_out_of_it() -> None:
    base, _ = promo_poster(6, 96)
    tb = torch.from_numpy(base[None].copy())
    given = torch.ones((1, 96, 96), dtype=torch.bool)
    given[0, 40:50, 40:50] = False
    # Nothing moves: the mask comes back as given (no copy on a CPU), and no mask is made.
    moved, keep = align(tb.clone(), given.clone(), estimate(tb, tb))
    assert keep is not None and torch.equal(keep, given) and torch.equal(moved, tb)
    assert align(tb.clone(), None, estimate(tb, tb))[1] is None
    # A move: the given region stays out, and so does the band the move filled in.
    tc = torch.from_numpy(_shifted(base, 2, 0)[None].copy())
    moved, keep = align(tc, given.clone(), estimate(tb, tc))
    assert keep is not None and not bool(keep[0, 40:50, 40:50].any())
    # Content moved right is moved back left: the last 2 columns are filled, 1 beside them.
    assert not bool(keep[0, :, -3:].any()) and bool(keep[0, :, 50:-3].all())


def test_fine_periodic_content_is_not_aliased() -> None:
    """A hairline grid on a 400 px canvas, moved by a pixel, is found moved by a pixel:
    the correlation runs at full resolution, where lumas pooled first would alias the
    grid into a peak ten pixels off."""
    grid = np.full((400, 400, 4), 255, np.uint8)
    grid[::7, :, :3] = 0
    grid[:, ::11, :3] = 0
    found = _estimate(grid, _shifted(grid, 1, 0))
    assert round(found[schema.SHIFT_X.name]) == 1 and round(found[schema.SHIFT_Y.name]) == 0


def test_gpu_path_is_torch_only() -> None:
    """On a GPU, registration runs where the batch lives: no numpy (no host round trip)
    in the functions its device path runs."""
    import inspect

    for function in (
        registration.luma_on_white,
        registration._filled,
        registration._phase_shift_torch,
        registration._profiles,
        registration._search_torch,
        registration._scale,
        registration.estimate_luma,
        registration.whole_shift,
    ):
        assert "numpy" not in inspect.getsource(function), function.__name__


#: Pixels by which the CPU's phase correlation (numba passes around torch's transforms) may
#: differ from torch's whole-batch one: the images' means are summed in float64 rather
#: than float32, which moves the surface in its last bits; a broad peak (smooth content)
#: turns that into up to about 1e-3 px of its sub-pixel refinement, far below what `align`
#: or any bound reads.
PHASE_ATOL_PX = 1e-3


def test_phase_shift_on_the_cpu_matches_the_torch_path() -> None:
    """The CPU's phase correlation finds the shift torch's finds, to `PHASE_ATOL_PX`, on
    real posters moved by whole and fractional pixels, at odd sizes (transforms padded)."""
    base, _ = promo_poster(3, 301)
    lb = luma_on_white(torch.from_numpy(base[None].copy()))
    moved = [
        torch.from_numpy(ndimage.shift(lb[0].numpy(), (dy, dx), order=3, mode="nearest"))
        for dx, dy in ((0.0, 0.0), (1.0, -2.0), (0.4, 0.7), (-3.25, 1.5))
    ]
    cands = torch.stack(moved)
    bases = lb.expand(len(moved), -1, -1).contiguous()
    got = phase_shift(bases, cands)
    want = torch.cat([registration._phase_shift_torch(bases[i : i + 1], cands[i : i + 1]) for i in range(len(moved))])
    torch.testing.assert_close(got, want, rtol=0, atol=PHASE_ATOL_PX)
    assert got[1].round().tolist() == [1.0, -2.0]


def test_phase_correlation_passes_check_their_arguments() -> None:
    """The numba passes read without bounds checks: shapes, dtypes and sizes are checked
    before they run."""
    from pixgate_kernels.registration import correlation_peak_cpu, whitened_cross_cpu, windowed_cpu

    luma = np.zeros((1, 6, 5), np.float32)
    with pytest.raises(ValueError, match="wy and wx"):
        windowed_cpu(luma, luma, np.ones(5, np.float32), np.ones(5, np.float32), (6, 5))
    with pytest.raises(ValueError, match="size"):
        windowed_cpu(luma, luma, np.ones(6, np.float32), np.ones(5, np.float32), (5, 5))
    with pytest.raises(ValueError, match="float32"):
        windowed_cpu(luma.astype(np.float64), luma, np.ones(6, np.float32), np.ones(5, np.float32), (6, 5))
    with pytest.raises(ValueError, match="complex64"):
        whitened_cross_cpu(np.zeros((3, 4, 3), np.complex64))
    with pytest.raises(ValueError, match="non-empty"):
        correlation_peak_cpu(np.zeros((1, 0, 4), np.float32))


def test_profile_search_on_the_cpu_matches_the_torch_search() -> None:
    """numba's search (the CPU's) finds the scale and shift torch's finds, on the edge
    profiles of real images stretched by known factors."""
    from pixgate_kernels.registration import profile_search_cpu

    base, _ = promo_poster(5, 512)
    for sx, sy in ((1.0, 1.0), (1.013, 1.0), (0.97, 1.02)):
        cand = _stretched(base, sx, sy)
        lb = registration.luma_on_white(torch.from_numpy(base[None].copy()))
        lc = registration.luma_on_white(torch.from_numpy(cand[None].copy()))
        (bx, _), (cx, _) = registration._profiles(lb), registration._profiles(lc)
        scales = (1.0 + torch.arange(-24, 25, dtype=torch.float64) * 0.005)[None]
        shifts = (torch.arange(-2, 3, dtype=torch.float64) * 0.5)[None]
        margin = 12
        want = registration._search_torch(bx, cx, scales, shifts, margin)
        got = profile_search_cpu(bx.numpy(), cx.numpy(), scales.numpy(), shifts.numpy(), margin)
        assert float(got[0][0]) == float(want[0][0]) and float(got[1][0]) == float(want[1][0])
        assert abs(float(got[2][0]) - float(want[2][0])) < NCC_ATOL


def test_a_small_image_has_no_scale_to_misread() -> None:
    """A thumbnail re-encoded moves its edge profile as much as a 1 % stretch would: no
    scale is estimated below `REGISTRATION_SCALE_MIN_SIDE`."""
    import io

    from pixgate.config import REGISTRATION_SCALE_MIN_SIDE

    small, _ = promo_poster(5, REGISTRATION_SCALE_MIN_SIDE // 4)
    buf = io.BytesIO()
    Image.fromarray(small[..., :3]).save(buf, "JPEG", quality=90)
    cand = np.dstack([np.asarray(Image.open(buf).convert("RGB")), small[..., 3]])
    found = _estimate(small, cand)
    assert math.isnan(found[schema.SCALE_X.name]) and math.isnan(found[schema.SCALE_CHANGE.name])


def test_a_stretch_along_the_only_axis_with_edges_is_still_read() -> None:
    """Horizontal stripes have no edges along x: `scale_change` comes from y alone."""
    y = np.arange(256)[:, None]
    stripes = np.where((y // 9) % 3 == 0, 30, 220).astype(np.uint8) * np.ones((1, 256), np.uint8)
    base = np.dstack([stripes] * 3 + [np.full_like(stripes, 255)])
    found = _estimate(base, _stretched(base, 1.0, 1.04))
    assert math.isnan(found[schema.SCALE_X.name])
    assert found[schema.SCALE_CHANGE.name] == pytest.approx(0.04, abs=SCALE_ATOL)


def test_a_flat_candidate_has_no_scale() -> None:
    base, _ = promo_poster(6, 256)
    flat = np.full_like(base, 128)
    found = _estimate(base, flat)
    assert math.isnan(found[schema.SCALE_X.name]) and math.isnan(found[schema.SCALE_Y.name])


def test_no_scale_when_most_of_the_picture_is_ignored() -> None:
    """The filled borders of a large ignore region would shape the edge profiles; a small
    one leaves the scale as it was."""
    from pixgate.config import REGISTRATION_SCALE_MAX_IGNORED
    from pixgate.scoring.registration import estimate_luma

    base, _ = promo_poster(8, 480)
    cand = _shifted(base, 1, 2)
    lb = luma_on_white(torch.from_numpy(base[None].copy()))
    lc = luma_on_white(torch.from_numpy(cand[None].copy()))
    same = torch.zeros(1, dtype=torch.bool)
    rows = round(480 * (REGISTRATION_SCALE_MAX_IGNORED + 0.1))
    keep = torch.ones((1, 480, 480), dtype=torch.bool)
    keep[0, :rows] = False
    large = dict(zip(COLUMNS, estimate_luma(lb, lc, same, keep)[0].tolist(), strict=True))
    assert math.isnan(large[schema.SCALE_CHANGE.name])
    assert (large[schema.SHIFT_X.name], large[schema.SHIFT_Y.name]) == pytest.approx((1, 2), abs=WHOLE_PIXEL_ATOL)
    keep = torch.ones((1, 480, 480), dtype=torch.bool)
    keep[0, 10:40, 300:420] = False  # a timestamp's box
    small = dict(zip(COLUMNS, estimate_luma(lb, lc, same, keep)[0].tolist(), strict=True))
    assert small[schema.SCALE_CHANGE.name] < 0.005 / 2
