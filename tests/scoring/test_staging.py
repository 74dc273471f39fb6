"""A batch's way to the device: stacked on a CPU; on a GPU one pinned buffer, reused,
and one non-blocking copy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixgate.scoring.staging import Staging


def _batch(seed: int, n: int, h: int, w: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    base = [rng.integers(0, 256, (h, w, 4), dtype=np.uint8) for _ in range(n)]
    cand = [rng.integers(0, 256, (h, w, 4), dtype=np.uint8) for _ in range(n)]
    return base, cand, rng.random((n, h, w)) > 0.5


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_upload_carries_every_image_and_mask_exactly(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    staging = Staging(torch.device(device))
    for seed, (n, h, w) in enumerate([(3, 17, 23), (1, 5, 7), (4, 31, 9)]):
        base, cand, keep = _batch(seed, n, h, w)
        for mask in (keep, None):
            tb, tc, kept = staging.upload(base, cand, mask)
            assert tb.device.type == device and tb.dtype == torch.uint8 and tb.is_contiguous()
            np.testing.assert_array_equal(tb.cpu().numpy(), np.stack(base))
            np.testing.assert_array_equal(tc.cpu().numpy(), np.stack(cand))
            if mask is None:
                assert kept is None
            else:
                assert kept is not None and kept.dtype == torch.bool
                np.testing.assert_array_equal(kept.cpu().numpy(), mask)


def test_two_pinned_buffers_take_turns_and_grow_only_when_needed() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    staging = Staging(torch.device("cuda"))
    staging.upload(*_batch(0, 4, 64, 64))
    first = staging._buffer
    assert first is not None and first.is_pinned()
    staging.upload(*_batch(1, 4, 64, 64))
    second = staging._buffer
    assert second is not None and second is not first and second.is_pinned()
    staging.upload(*_batch(2, 2, 64, 64))
    assert staging._buffer is first  # its turn again, and large enough
    staging.upload(*_batch(3, 4, 512, 512))
    assert staging._buffer is not second and staging._buffer.numel() >= 2 * 4 * 512 * 512 * 4
