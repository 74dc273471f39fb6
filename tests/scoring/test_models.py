"""LPIPS parity with the `lpips` package, loaded with the same seeded random weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pixgate.config import LPIPS_PARITY_ATOL
from pixgate.scoring.backbones import BACKBONES, NETS
from pixgate.scoring.models import WeightsFormatError, load_lpips
from tests.conftest import poster

# Odd, non-square and small (but above every backbone's minimum side) sizes.
AWKWARD_SIZES = [(31, 31), (37, 53), (64, 47), (100, 33), (129, 130)]


def _batch(h: int, w: int, seeds: list[int], shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    x0 = np.stack([poster(h, w, seed=s) for s in seeds]).astype(np.float32) / 127.5 - 1
    rng = np.random.default_rng(sum(seeds) + h * w)
    x1 = np.clip(x0 + rng.normal(0, shift, x0.shape).astype(np.float32), -1, 1)
    return torch.from_numpy(x0).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(x1).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("net", NETS)
def test_parity_with_lpips_package(
    net: str, weights_for: Callable[[str], Path], lpips_reference: Callable[[str, Path], torch.nn.Module]
) -> None:
    weights = weights_for(net)
    ours = load_lpips(net, weights)
    ref = lpips_reference(net, weights)
    sizes = AWKWARD_SIZES if net != "vgg" else AWKWARD_SIZES[:3]  # VGG is slow on two CPU cores
    for h, w in sizes:
        x0, x1 = _batch(h, w, [h, w, h + w], shift=0.2)
        with torch.inference_mode():
            got = ours(x0, x1).numpy()
            want = ref(x0, x1).flatten().numpy()
        assert np.all(want > 0)
        np.testing.assert_allclose(got, want, atol=LPIPS_PARITY_ATOL, rtol=LPIPS_PARITY_ATOL, err_msg=f"{net} {h}x{w}")


@pytest.mark.parametrize(("h", "w"), [(64, 47), (96, 128)])
def test_spatial_map_matches_lpips_package(
    h: int, w: int, alex_weights: Path, lpips_reference: Callable[..., torch.nn.Module]
) -> None:
    ours = load_lpips("alex", alex_weights)
    ref = lpips_reference("alex", alex_weights, spatial=True)
    x0, x1 = _batch(h, w, [h, w], shift=0.2)
    with torch.inference_mode():
        got = ours.spatial(x0, x1).numpy()
        want = ref(x0, x1)[:, 0].numpy()
        distance = ours(x0, x1).numpy()
    assert got.shape == (2, h, w)
    np.testing.assert_allclose(got, want, atol=LPIPS_PARITY_ATOL, rtol=LPIPS_PARITY_ATOL)
    # The map is for looking at: its mean is close to the distance, but not equal, since
    # upsampling each layer's map before averaging weights its border cells differently.
    assert np.all(np.abs(got.mean(axis=(1, 2)) - distance) < 0.2 * distance)


def test_identical_images_score_zero(alex_weights: Path) -> None:
    model = load_lpips("alex", alex_weights)
    x0, _ = _batch(45, 61, [1, 2], shift=0.0)
    with torch.inference_mode():
        assert model(x0, x0.clone()).abs().max().item() == 0.0


def test_prepare_composites_alpha_over_white(alex_weights: Path) -> None:
    model = load_lpips("alex", alex_weights)
    rgba = torch.zeros(1, 2, 2, 4, dtype=torch.uint8)
    rgba[..., 0] = 255  # red, fully transparent ...
    rgba[0, 0, 0, 3] = 255  # ... except one opaque pixel
    x = model.prepare(rgba)
    assert x[0, :, 0, 0].tolist() == [1.0, -1.0, -1.0]  # opaque red
    assert x[0, :, 1, 1].tolist() == [1.0, 1.0, 1.0]  # transparent: white background


def test_fused_cpu_input_matches_the_prepare_path(alex_weights: Path) -> None:
    model = load_lpips("alex", alex_weights)
    base = np.stack([poster(40, 52, seed=s, alpha=True) for s in (1, 2)])
    base[1, ..., 3] = np.random.default_rng(1).integers(0, 256, (40, 52))  # soft alpha
    cand = np.stack([np.dstack([poster(40, 52, seed=s), np.full((40, 52), 255, np.uint8)]) for s in (3, 4)])
    base, cand = torch.from_numpy(base), torch.from_numpy(cand)
    with torch.inference_mode():
        fused = model.inputs(base, cand)
        torch_path = model._scaled(model.prepare(base), model.prepare(cand))
        assert fused.shape == torch_path.shape == (4, 3, 40, 52)
        assert fused.is_contiguous(memory_format=torch.channels_last)
        # Float32 rounding of a few operations on values up to ~2.7 (spacing 2.4e-7).
        torch.testing.assert_close(fused, torch_path, atol=1e-6, rtol=0)
        torch.testing.assert_close(model.distances(fused), model.distances(torch_path), atol=LPIPS_PARITY_ATOL, rtol=0)


def test_distances_from_uint8_match_the_lpips_package(
    alex_weights: Path, lpips_reference: Callable[[str, Path], torch.nn.Module]
) -> None:
    ref = lpips_reference("alex", alex_weights)
    model = load_lpips("alex", alex_weights)
    base = np.stack([np.dstack([poster(64, 80, seed=s), np.full((64, 80), 255, np.uint8)]) for s in (5, 6, 7)])
    cand = np.clip(base.astype(int) + np.random.default_rng(0).integers(-30, 30, base.shape), 0, 255).astype(np.uint8)
    cand[..., 3] = 255
    with torch.inference_mode():
        got = model.distances(model.inputs(torch.from_numpy(base), torch.from_numpy(cand)))
        to_ref = [torch.from_numpy(x[..., :3].astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2) for x in (base, cand)]
        want = ref(*to_ref).flatten()
    torch.testing.assert_close(got, want, atol=LPIPS_PARITY_ATOL, rtol=0)
    # Below the minimum side the inputs are resampled up first, on the same path as `prepare`.
    with torch.inference_mode():
        small = torch.from_numpy(base[:, :20, :24].copy()), torch.from_numpy(cand[:, :20, :24].copy())
        resized = model.inputs(*small, (40, 48))
    assert resized.shape == (6, 3, 40, 48)


@pytest.mark.parametrize("net", NETS)
def test_min_side_matches_the_backbone(
    net: str, weights_for: Callable[[str], Path], lpips_reference: Callable[[str, Path], torch.nn.Module]
) -> None:
    ref = lpips_reference(net, weights_for(net))
    side = BACKBONES[net].min_side
    with torch.inference_mode():
        ref(torch.zeros(1, 3, side, side), torch.zeros(1, 3, side, side))
        with pytest.raises(RuntimeError):
            ref(torch.zeros(1, 3, side - 1, side - 1), torch.zeros(1, 3, side - 1, side - 1))


def test_wrong_weights_file_is_named(tmp_path: Path, weights_for: Callable[[str], Path]) -> None:
    with pytest.raises(WeightsFormatError, match="not a torchvision alex state_dict"):
        load_lpips("alex", weights_for("squeeze"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsFormatError, match="not a readable torch file"):
        load_lpips("alex", junk)
    with pytest.raises(ValueError, match="net must be one of alex, vgg, squeeze"):
        load_lpips("resnet", junk)


def test_bfloat16_stays_within_the_reduced_precision_bound(alex_weights: Path) -> None:
    """Measured here: the largest difference over these pairs is printed with `pytest -s`."""
    from pixgate.config import REDUCED_PRECISION_ATOL

    model = load_lpips("alex", alex_weights)
    worst = 0.0
    for (h, w), shift in zip([(64, 64), (100, 133), (256, 256)], [0.05, 0.2, 0.5], strict=True):
        x0, x1 = _batch(h, w, [h, w, h + w], shift=shift)
        with torch.inference_mode():
            exact = model(x0, x1)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                reduced = model(x0, x1).float()
        worst = max(worst, float((reduced - exact).abs().max()))
    print(f"largest |bfloat16 - float32| LPIPS: {worst:.2e}")
    assert worst <= REDUCED_PRECISION_ATOL
