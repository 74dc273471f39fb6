"""The CUDA path of the score pipeline: parity with the CPU path and device timings.

Runs only where a CUDA device is present; on CPU-only machines it is skipped with that
reason, and the CPU path is covered by test_score.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pixgate.config import LPIPS_PARITY_ATOL
from pixgate.runs import schema
from pixgate.runs.files import run_metadata
from pixgate.scoring.score import ScoreOptions, run_score

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

KERNEL_COLUMNS = (
    schema.DELTA_E_MEAN, schema.DELTA_E_P95, schema.CHROMA_SHIFT, schema.LIGHTNESS_SHIFT,
    schema.EDGE_PRESERVATION, schema.ALPHA_MAE, schema.ALPHA_IOU,
)  # fmt: skip
# float32 per-pixel terms from two libms (CPU and CUDA) and atomics-free float64 sums:
# per-pair values agree to float32 precision.
KERNEL_ATOL = 1e-4
KERNEL_RTOL = 1e-4

SIZES = [(37, 53), (64, 47), (256, 256), (100, 33), (512, 384), (16, 16)]


def test_cuda_matches_cpu_and_records_gpu_time(
    make_pairs: Callable[..., tuple[Path, Path]], alex_weights: Path, tmp_path: Path
) -> None:
    base, cand = make_pairs(SIZES * 3)
    runs = {}
    for device in ("cpu", "cuda"):
        # Typography is off: its OCR runs on the CPU either way (tests/scoring/test_typography.py).
        opts = ScoreOptions(
            base, cand, tmp_path / f"{device}.arrow", device=device, weights=alex_weights, typography=False
        )
        runs[device] = run_score(opts).table
    cpu = np.array(runs["cpu"].column(schema.LPIPS.name).to_pylist(), dtype=float)
    gpu = np.array(runs["cuda"].column(schema.LPIPS.name).to_pylist(), dtype=float)
    np.testing.assert_allclose(gpu, cpu, atol=LPIPS_PARITY_ATOL, rtol=LPIPS_PARITY_ATOL)
    # The kernels' columns: same bodies, compiled for each target; libm differs slightly.
    for col in KERNEL_COLUMNS:
        a = np.array(runs["cpu"].column(col.name).to_pylist(), dtype=float)
        b = np.array(runs["cuda"].column(col.name).to_pylist(), dtype=float)
        np.testing.assert_allclose(b, a, atol=KERNEL_ATOL, rtol=KERNEL_RTOL, equal_nan=True, err_msg=col.name)
    gpu_ms = runs["cuda"].column(schema.GPU_MS.name).to_pylist()
    assert all(v is not None and v > 0 for v in gpu_ms)
    # The GPU spans of the batches lie inside the run: their sum cannot exceed its wall time.
    stats = json.loads(run_metadata(runs["cuda"])[schema.META_STATS])
    assert sum(gpu_ms) / 1000.0 <= stats["wall_s"]
    assert runs["cpu"].column(schema.GPU_MS.name).null_count == len(gpu_ms)
    meta = run_metadata(runs["cuda"])
    assert meta[schema.META_DEVICE].startswith("cuda")
    assert meta[schema.META_DEVICE_NAME] == torch.cuda.get_device_name()
    assert meta[schema.META_GPU_NOTE] == ""

    from pixgate.telemetry import NvmlSampler

    if NvmlSampler().available:
        energy = runs["cuda"].column(schema.RUN_ENERGY_J.name).to_pylist()
        assert all(v is not None and v >= 0 for v in energy), json.loads(meta[schema.META_NVML])


def test_cuda_reductions_over_kept_pixels_match_cpu() -> None:
    from pixgate.scoring.metrics import pixel_terms, reduce_terms
    from tests.kernels.test_kernels import _batch

    base, cand = _batch(7, 3, 48, 40)
    keep = np.random.default_rng(3).random((3, 48, 40)) > 0.4
    rows = {}
    for device in ("cpu", "cuda"):
        tb, tc = torch.from_numpy(base).to(device), torch.from_numpy(cand).to(device)
        rows[device] = reduce_terms(pixel_terms(tb, tc), [True] * 3, torch.from_numpy(keep).to(device))
    for cpu_row, gpu_row in zip(rows["cpu"], rows["cuda"], strict=True):
        for col in KERNEL_COLUMNS:
            assert gpu_row[col.name] == pytest.approx(cpu_row[col.name], abs=KERNEL_ATOL, rel=KERNEL_RTOL), col.name


def test_cuda_registration_and_local_measures_match_cpu() -> None:
    """Registration, the moved candidate, local structure, alpha content and S-CIELAB on
    the device give the CPU's values (the GPU reads the lumas for registration with
    torch, the CPU with the kernels' first pass)."""
    from pixgate.scoring.metrics import LOCAL, measure_table, measured_rows
    from pixgate.scoring.registration import COLUMNS
    from tests.conftest import poster

    base = np.stack([poster(96, 128, seed=s, alpha=True) for s in range(3)])
    cand = base.copy()
    cand[0] = np.roll(base[0], (1, -2), axis=(0, 1))  # jitter
    cand[1, ..., 3] = 255  # flattened
    cand[2, ..., :3] = np.clip(base[2, ..., :3].astype(int) + 12, 0, 255).astype(np.uint8)  # colour cast
    keep = np.ones(base.shape[:3], dtype=bool)
    keep[:, 10:30, 20:50] = False  # an ignore region, with the jittered pair's band
    rows = {}
    for device in ("cpu", "cuda"):
        tb, tc = torch.from_numpy(base).to(device), torch.from_numpy(cand).to(device)
        table, _ = measure_table(tb, tc, torch.from_numpy(keep).to(device))
        rows[device] = measured_rows(table.cpu().tolist(), [True] * 3)
    for cpu_row, gpu_row in zip(rows["cpu"], rows["cuda"], strict=True):
        for name in (*LOCAL, *COLUMNS, *(c.name for c in KERNEL_COLUMNS)):
            if isinstance(cpu_row[name], bool) or cpu_row[name] is None:
                assert gpu_row[name] == cpu_row[name], name
            else:
                assert gpu_row[name] == pytest.approx(cpu_row[name], abs=KERNEL_ATOL, rel=KERNEL_RTOL), name
