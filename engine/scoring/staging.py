"""A device batch's way to the device: on a GPU, one pinned staging buffer and one
non-blocking copy per batch; on a CPU, the arrays stacked where they are.

Why pinned: a copy from pageable memory is staged by the driver through a pinned bounce
buffer and blocks the host; from pinned memory it is one DMA the host does not wait
for, queued on the stream ahead of the batch's kernels. Why one copy: a batch's images,
its candidates and its ignore masks go as one contiguous range instead of 2N (or 3N)
small copies, each with its own launch and latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

# The buffer grows in steps of this many bytes, so batches of nearby sizes reuse it.
_GROWTH_STEP = 1 << 20


class Staging:
    """Uploads batches to `device`: `upload(base, cand, keep)` -> device tensors.

    Two pinned buffers take turns, so the host fills one while the other's copy waits
    behind the batch the GPU is running. Each is reused from batch to batch (as large as
    the largest batch it carried, bounded by `pixgate.config.MAX_BATCH_PIXELS`). Before a
    buffer is refilled the host waits for the copy out of it, which was queued a batch
    earlier.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._buffers: list[torch.Tensor | None] = [None, None]
        self._copied: list[Any] = [None, None]  # per buffer, a CUDA event after its last copy
        self._turn = 0

    @property
    def _buffer(self) -> torch.Tensor | None:
        """The buffer the last upload used."""
        return self._buffers[1 - self._turn]

    def _host(self, size: int) -> torch.Tensor:
        import torch

        turn = self._turn
        if self._copied[turn] is not None:
            self._copied[turn].synchronize()
        buffer = self._buffers[turn]
        if buffer is None or buffer.numel() < size:
            # torch's pinned-memory cache keeps the outgrown block for later requests
            # (and rounds sizes up): at most a few batches' worth, as batches are bounded.
            self._buffers[turn] = None
            buffer = torch.empty(-(-size // _GROWTH_STEP) * _GROWTH_STEP, dtype=torch.uint8, pin_memory=True)
            self._buffers[turn] = buffer
        return buffer

    def upload(
        self, base: Sequence[np.ndarray], cand: Sequence[np.ndarray], keep: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The batch on the device.

        Args:
            base: N baseline images, H x W x 4 uint8 each.
            cand: N candidate images of the same shape.
            keep: Optional N x H x W bool array: the pixels that count.

        Returns:
            N x H x W x 4 uint8 tensors for both sides, and the N x H x W bool mask (or
            None), on the device; on a GPU their copy is queued, not finished.
        """
        import torch

        n, (h, w) = len(base), base[0].shape[:2]
        if self.device.type != "cuda":
            return (
                torch.from_numpy(np.stack(base)),
                torch.from_numpy(np.stack(cand)),
                None if keep is None else torch.from_numpy(np.ascontiguousarray(keep, dtype=bool)),
            )
        image = n * h * w * 4
        total = 2 * image + (n * h * w if keep is not None else 0)
        pinned = self._host(total)[:total]
        host = pinned.numpy()
        np.stack(base, out=host[:image].reshape(n, h, w, 4))
        np.stack(cand, out=host[image : 2 * image].reshape(n, h, w, 4))
        if keep is not None:
            host[2 * image :] = keep.reshape(-1)
        on_device = pinned.to(self.device, non_blocking=True)
        self._copied[self._turn] = torch.cuda.Event()
        self._copied[self._turn].record()
        self._turn = 1 - self._turn
        tb = on_device[:image].view(n, h, w, 4)
        tc = on_device[image : 2 * image].view(n, h, w, 4)
        mask = on_device[2 * image :].view(n, h, w).view(torch.bool) if keep is not None else None
        return tb, tc, mask


__all__ = ["Staging"]
