"""Kernels against NumPy references, and the CPU compilation against the CUDA simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage.color import deltaE_ciede2000, rgb2lab

import pixgate_kernels as K
from pixgate.config import OPAQUE_ALPHA
from pixgate_kernels.cpu import network_input_cpu, pixel_terms_cpu
from tests.conftest import ROOT, poster

# The kernels store float32; the references compute in float64. Relative error of one
# float32 rounding (6e-8) on values up to ~100 (Delta E, L*), plus the accumulated error
# of a few dozen float64 operations, stays far below these.
TERM_ATOL = 2e-4
TERM_RTOL = 1e-5
# scikit-image's sRGB->XYZ matrix has 6 digits (0.412453 ...), the kernels' the 7 digits
# of IEC 61966-2-1 (0.4124564 ...): their CIELAB values differ by up to ~0.01.
SKIMAGE_LAB_ATOL = 0.02
# The kernel's hue difference is computed without angles, from |da', db|^2 - dC'^2; where
# hues coincide that loses half the digits (sqrt(eps) * |delta|, ~1e-6 for Delta E ~100),
# still far below float32 storage and a just-noticeable difference (~1).
CIEDE2000_ATOL = 1e-5
# The vectorisable CIEDE2000 against the libm form: its polynomial atan2 (< 7e-11 rad),
# exp (< 1e-9 relative) and sin (< 2e-12) move Delta E by ~1e-10 relative; float32
# storage alone rounds at 6e-8.
FAST_CIEDE2000_RTOL = 1e-9
FAST_CIEDE2000_ATOL = 1e-8
# The series' own bounds (see kernels/_bodies.py), as measured on dense grids.
ATAN2_ATOL = 7e-11
EXP_RTOL = 1e-9
SIN_ATOL = 2e-12
# Seeded cube root after two Halley steps: float64 rounding of the last steps only.
CBRT_RTOL = 1e-14
# The fused network input (float64 arithmetic, one float32 rounding) against NumPy's
# float64 formula: one rounding of values up to ~2.7 (float32 spacing there: 2.4e-7).
INPUT_ATOL = 3e-7
# The CUDA simulator runs the same bodies in Python float64 and stores float32 like the
# CPU path; only libm differences remain.
SIM_ATOL = 1e-4

_M = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def _lab(rgb: np.ndarray) -> np.ndarray:
    c = rgb.astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = lin @ _M.T / _WHITE
    d = 6.0 / 29.0
    f = np.where(t > d**3, np.cbrt(t), t / (3 * d * d) + 4.0 / 29.0)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def _luma_on_white(img: np.ndarray) -> np.ndarray:
    a = img[..., 3:4].astype(np.float64) / 255.0
    rgb = img[..., :3] * a + 255.0 * (1 - a)
    return (rgb @ np.array([0.2126, 0.7152, 0.0722])) / 255.0


def reference_terms(base: np.ndarray, cand: np.ndarray, opaque: int) -> np.ndarray:
    """NumPy/SciPy/scikit-image version of every per-pixel term, N_TERMS x N x H x W."""
    out = np.empty((K.N_TERMS, *base.shape[:3]))
    for n in range(base.shape[0]):
        b, c = base[n], cand[n]
        both = (b[..., 3] >= opaque) & (c[..., 3] >= opaque)
        lb, lc = _lab(b[..., :3]), _lab(c[..., :3])
        de = deltaE_ciede2000(lb, lc)
        chroma_b, chroma_c = np.hypot(lb[..., 1], lb[..., 2]), np.hypot(lc[..., 1], lc[..., 2])
        out[K.DE, n] = np.where(both, de, np.nan)
        out[K.L_SHIFT, n] = np.where(both, lc[..., 0] - lb[..., 0], np.nan)
        out[K.C_SHIFT, n] = np.where(both, chroma_c - chroma_b, np.nan)
        grads = []
        for img in (b, c):
            luma = _luma_on_white(img)
            grads.append(
                np.hypot(ndimage.sobel(luma, axis=0, mode="nearest"), ndimage.sobel(luma, axis=1, mode="nearest"))
            )
        out[K.EDGE_BASE, n] = grads[0]
        out[K.EDGE_KEPT, n] = np.minimum(grads[0], grads[1])
        out[K.ALPHA_ABS, n] = np.abs(b[..., 3].astype(float) - c[..., 3]) / 255.0
        out[K.ALPHA_INTER, n] = both
        out[K.ALPHA_UNION, n] = (b[..., 3] >= opaque) | (c[..., 3] >= opaque)
    return out


def _batch(seed: int, n: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Structured pictures with alpha, plus candidates with noise, shifts and alpha edits."""
    rng = np.random.default_rng(seed)
    base = np.stack([poster(h, w, seed=seed * 10 + i, alpha=True) for i in range(n)])
    cand = base.copy()
    cand[..., :3] = np.clip(cand[..., :3] + rng.normal(0, 12, cand[..., :3].shape), 0, 255).astype(np.uint8)
    cand[..., 3] = np.roll(base[..., 3], 3, axis=2)
    cand[0, : h // 3] = base[0, : h // 3]  # an identical region
    base[-1, ..., 3] = rng.integers(0, 256, (h, w))  # soft alpha everywhere
    return base, cand


@pytest.mark.parametrize(("n", "h", "w"), [(1, 1, 1), (1, 3, 2), (2, 7, 5), (3, 33, 47)])
def test_cpu_kernel_matches_reference(n: int, h: int, w: int) -> None:
    base, cand = _batch(n + h, n, h, w)
    got = pixel_terms_cpu(base, cand, OPAQUE_ALPHA)[: K.N_TERMS]
    want = reference_terms(base, cand, OPAQUE_ALPHA)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, atol=TERM_ATOL, rtol=TERM_RTOL, equal_nan=True)


@pytest.mark.parametrize(("n", "h", "w"), [(1, 1, 1), (2, 9, 4), (2, 40, 31)])
def test_edge_magnitudes_match_reference_and_the_terms(n: int, h: int, w: int) -> None:
    from pixgate_kernels.cpu import edge_magnitudes_cpu

    base, cand = _batch(n * h + w, n, h, w)
    got = edge_magnitudes_cpu(base, cand)
    want = reference_terms(base, cand, OPAQUE_ALPHA)
    np.testing.assert_allclose(got[0], want[K.EDGE_BASE], atol=TERM_ATOL, rtol=TERM_RTOL)
    np.testing.assert_allclose(np.minimum(got[0], got[1]), want[K.EDGE_KEPT], atol=TERM_ATOL, rtol=TERM_RTOL)
    # The same bodies as the full kernel: equal, not merely close.
    terms = pixel_terms_cpu(base, cand, OPAQUE_ALPHA)
    np.testing.assert_array_equal(got[0], terms[K.EDGE_BASE])
    np.testing.assert_array_equal(np.minimum(got[0], got[1]), terms[K.EDGE_KEPT])


def test_edge_magnitudes_from_many_threads_at_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pixgate_kernels.cpu import edge_magnitudes_cpu

    batches = [_batch(seed, 1, 64, 48) for seed in range(8)]
    alone = [edge_magnitudes_cpu(b, c) for b, c in batches]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda bc: edge_magnitudes_cpu(*bc), batches))
    for a, t in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, t)


def test_identical_images_give_zero_difference() -> None:
    base, _ = _batch(5, 2, 20, 30)
    out = pixel_terms_cpu(base, base.copy(), OPAQUE_ALPHA)
    opaque = base[..., 3] >= OPAQUE_ALPHA
    assert np.all(out[K.DE][opaque] == 0) and np.all(np.isnan(out[K.DE][~opaque]))
    np.testing.assert_array_equal(out[K.EDGE_KEPT], out[K.EDGE_BASE])
    assert np.all(out[K.ALPHA_ABS] == 0)


def test_lab_agrees_with_scikit_image() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(_lab(rgb), rgb2lab(rgb / 255.0), atol=SKIMAGE_LAB_ATOL)


def _compiled(name: str) -> object:
    """One per-pixel body, compiled for the CPU on its own."""
    import numba

    from pixgate_kernels._bodies import build

    compiled: dict[str, object] = {}

    def jit(fn: object) -> object:
        compiled[fn.__name__] = numba.njit(fn)  # type: ignore[attr-defined]
        return compiled[fn.__name__]

    build(jit)
    return compiled[name]


def test_ciede2000_matches_scikit_image_on_hard_cases() -> None:
    import numba

    body = _compiled("_ciede2000")

    @numba.njit
    def run(v: np.ndarray, out: np.ndarray) -> None:
        for i in range(v.shape[0]):
            out[i] = body(v[i, 0], v[i, 1], v[i, 2], v[i, 3], v[i, 4], v[i, 5])  # type: ignore[operator]

    rng = np.random.default_rng(0)
    k = 20_000
    lab = np.column_stack([rng.uniform(0, 100, 6 * k), rng.uniform(-110, 110, 6 * k), rng.uniform(-110, 110, 6 * k)])
    other = np.column_stack([rng.uniform(0, 100, 6 * k), rng.uniform(-110, 110, 6 * k), rng.uniform(-110, 110, 6 * k)])
    other[:k, 1:] = 0.0  # grey candidate
    lab[k : 2 * k, 1:] = 0.0  # grey baseline
    other[2 * k : 3 * k] = lab[2 * k : 3 * k] + rng.normal(0, 0.01, (k, 3))  # just noticeable and below
    other[3 * k : 4 * k, 1:] = lab[3 * k : 4 * k, 1:] * rng.uniform(0.1, 2, (k, 1))  # same hue
    turn = np.radians(180 + rng.choice([-1, 1], k) * rng.uniform(0.01, 5, k))  # nearly opposite hues
    a, b = lab[4 * k : 5 * k, 1], lab[4 * k : 5 * k, 2]
    other[4 * k : 5 * k, 1] = a * np.cos(turn) - b * np.sin(turn)
    other[4 * k : 5 * k, 2] = a * np.sin(turn) + b * np.cos(turn)
    # (Exactly opposite hues are left out: CIEDE2000 is discontinuous there, and which side
    # an implementation lands on depends on the last bit of its arctangent.)
    out = np.empty(len(lab))
    run(np.hstack([lab, other]), out)
    np.testing.assert_allclose(out, deltaE_ciede2000(lab, other), atol=CIEDE2000_ATOL, rtol=0)


def test_table_free_cube_root_and_polynomial_transcendentals_match_libm() -> None:
    import math

    import numba

    from pixgate_kernels._bodies import _DELTA, _ROTATION_ARG_MAX, _atan2, _cbrt, _exp_neg, _sin_small

    atan2, exp_neg, sin_small, cbrt = (numba.njit(f) for f in (_atan2, _exp_neg, _sin_small, _cbrt))
    # Over CIELAB's whole cube-root range, both range reductions and the seed's edges.
    for t in np.concatenate([np.linspace(_DELTA**3, 1.1, 20_001), [1 / 64, 1 / 8, 1.0, 1.0888]]):
        assert abs(cbrt(t) - np.cbrt(t)) <= CBRT_RTOL * np.cbrt(t), t
    rng = np.random.default_rng(3)
    angles = np.linspace(-math.pi, math.pi, 20_001)
    radii = rng.uniform(1e-6, 200.0, angles.size)
    for t, r in zip(angles, radii, strict=True):
        y, x = r * math.sin(t), r * math.cos(t)
        assert abs(atan2(y, x) - math.atan2(y, x)) < ATAN2_ATOL, (y, x)
    for y, x in [(0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0), (0.0, 0.0), (1.0, 1.0), (-2.0, -2.0)]:
        assert abs(atan2(y, x) - math.atan2(y, x)) < ATAN2_ATOL, (y, x)
    for v in np.linspace(0.0, _ROTATION_ARG_MAX, 20_001):
        assert abs(exp_neg(v) - math.exp(-v)) <= EXP_RTOL * math.exp(-v), v
    for v in np.linspace(0.0, math.pi / 3.0, 20_001):
        assert abs(sin_small(v) - math.sin(v)) < SIN_ATOL, v


def test_vectorisable_ciede2000_matches_the_libm_form_and_defers_opposite_hues() -> None:
    import numba

    fast, exact, whole = _compiled("_ciede2000_fast"), _compiled("_ciede2000_exact"), _compiled("_ciede2000")

    @numba.njit
    def run(v: np.ndarray, out: np.ndarray) -> None:
        for i in range(v.shape[0]):
            args = (v[i, 0], v[i, 1], v[i, 2], v[i, 3], v[i, 4], v[i, 5])
            out[0, i], out[1, i], out[2, i] = fast(*args), exact(*args), whole(*args)  # type: ignore[operator]

    rng = np.random.default_rng(4)
    k = 20_000
    lab = np.column_stack([rng.uniform(0, 100, 5 * k), rng.uniform(-110, 110, 5 * k), rng.uniform(-110, 110, 5 * k)])
    other = lab + rng.normal(0, 3, lab.shape)
    other[:k] = np.column_stack([rng.uniform(0, 100, k), rng.uniform(-110, 110, k), rng.uniform(-110, 110, k)])
    other[k : 2 * k, 1:] = 0.0  # grey candidate
    lab[2 * k : 3 * k, 1:] = 0.0  # grey baseline
    other[3 * k : 3 * k + 100] = lab[3 * k : 3 * k + 100]  # identical
    other[4 * k :, 1:] = -lab[4 * k :, 1:] * rng.uniform(0.2, 3.0, (k, 1))  # exactly opposite hues
    other[4 * k :, 0] = lab[4 * k :, 0]
    out = np.empty((3, len(lab)))
    run(np.hstack([lab, other]), out)
    deferred = out[0] == K.NEEDS_EXACT
    assert deferred[4 * k :].mean() > 0.99 and not deferred[: 4 * k].any()
    np.testing.assert_allclose(out[0][~deferred], out[1][~deferred], rtol=FAST_CIEDE2000_RTOL, atol=FAST_CIEDE2000_ATOL)
    assert np.all(out[0][3 * k : 3 * k + 100] == 0.0)
    np.testing.assert_array_equal(out[2], np.where(deferred, out[1], out[0]))  # the exact form decides


def test_network_input_composites_scales_and_stacks_both_batches() -> None:
    base, cand = _batch(5, 3, 9, 13)  # soft alpha, shifted alpha, opaque regions
    gain, offset, background = np.array([4.4, 4.5, 4.4]), np.array([-2.1, -2.0, -1.8]), np.array([1.0, 0.5, 0.0])
    got = network_input_cpu(base, cand, gain, offset, background)
    assert got.dtype == np.float32 and got.shape == (6, 9, 13, 3)
    for half, img in ((got[:3], base), (got[3:], cand)):
        a = img[..., 3:].astype(np.float64) / 255.0
        want = (img[..., :3] / 255.0 * a + background * (1.0 - a)) * gain + offset
        np.testing.assert_allclose(half, want, atol=INPUT_ATOL, rtol=0)
    # Opaque pixels carry their own colour alone, whatever the background.
    opaque = base[..., 3] == 255
    assert opaque.any()
    black = network_input_cpu(base, cand, gain, offset, np.zeros(3))[:3]
    np.testing.assert_array_equal(black[opaque], got[:3][opaque])


def test_network_input_refuses_bad_channel_values() -> None:
    a = np.zeros((1, 2, 2, 4), np.uint8)
    with pytest.raises(ValueError, match=r"gain must hold 3 channel values; got shape \(4,\)"):
        network_input_cpu(a, a, np.ones(4), np.zeros(3), np.ones(3))


def test_bad_shapes_are_refused() -> None:
    a = np.zeros((1, 4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="N x H x W x 4"):
        pixel_terms_cpu(a, np.zeros((1, 4, 5, 4), np.uint8), OPAQUE_ALPHA)
    with pytest.raises(ValueError, match="uint8"):
        pixel_terms_cpu(a, a.astype(np.float32), OPAQUE_ALPHA)  # type: ignore[arg-type]


_SIM_SCRIPT = """
import sys
import numpy as np
import torch
from pixgate_kernels import N_PLANES
from pixgate_kernels import cuda as kc

class Tensor:
    # What a torch CUDA tensor hands numba: its __cuda_array_interface__ (version 2, no
    # strides when contiguous); here over host memory, the simulator's device memory.
    def __init__(self, t):
        self.t = t
        self.__cuda_array_interface__ = {"shape": tuple(t.shape), "typestr": t.numpy().__array_interface__["typestr"],
                                         "data": (t.data_ptr(), False), "strides": None, "version": 2}

assert kc.SIMULATED
base = torch.from_numpy(np.load(sys.argv[1])); cand = torch.from_numpy(np.load(sys.argv[2]))
out = torch.full((N_PLANES, *base.shape[:3]), -7.0, dtype=torch.float32)
# The scorer's call: tensors as they are, a stream handle (torch's), the device's index.
kc.launch(Tensor(base), Tensor(cand), int(sys.argv[3]), Tensor(out), stream_handle=0x5EED, device_index=0)
assert kc.device_lut() is kc.device_lut()  # one table per device, copied once
np.save(sys.argv[4], out.numpy())
"""


def test_cuda_simulator_matches_cpu(tmp_path: Path) -> None:
    """The simulator runs the CUDA bodies through the scorer's own entry point
    (`pixgate_kernels.cuda.launch`) and writes into the caller's tensor."""
    base, cand = _batch(7, 2, 9, 11)
    np.save(tmp_path / "b.npy", base)
    np.save(tmp_path / "c.npy", cand)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}  # must be set before numba is imported
    proc = subprocess.run(
        [sys.executable, "-c", _SIM_SCRIPT, str(tmp_path / "b.npy"), str(tmp_path / "c.npy"), str(OPAQUE_ALPHA),
         str(tmp_path / "out.npy")],
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sim = np.load(tmp_path / "out.npy")[: K.N_TERMS]
    cpu = pixel_terms_cpu(base, cand, OPAQUE_ALPHA)[: K.N_TERMS]
    np.testing.assert_allclose(sim, cpu, atol=SIM_ATOL, rtol=0, equal_nan=True)
    assert 0 < np.isnan(sim).sum() < sim.size  # masked and unmasked pixels were both compared
