"""CUDA compilation of the per-pixel bodies: `numba.cuda.jit(device=True)`.

The kernel reads and writes device arrays in place: torch CUDA tensors passed through
`__cuda_array_interface__` (see `numba.cuda.as_cuda_array`), so the batch LPIPS used
never returns to the host. `launch` is what the scorer calls: the tensors as they are,
torch's stream handle and the device's index.

With `NUMBA_ENABLE_CUDASIM=1` (set before numba is imported) the same code runs on the
CPU simulator, which is how it is tested without a GPU. The simulator has no
`as_cuda_array` and no external streams; there (and only there) `launch` reads the
interface as host memory, which is what the simulator's device memory is, and runs on a
stream of its own (the simulator runs every launch synchronously).

The kernels are cached on disk like the CPU ones (`pixgate_kernels._cache`): numba-cuda
keys the cache on the GPU's compute capability, so a folder serves several GPUs.
"""

from __future__ import annotations

from typing import Any

import numba
from numba import cuda

from pixgate_kernels._bodies import N_PLANES, build, lookup_table
from pixgate_kernels._cache import use_kernel_cache

use_kernel_cache(cuda=True)  # before the decorators, which read the cache folder

THREADS_PER_BLOCK = 256
#: True under numba's CUDA simulator (`NUMBA_ENABLE_CUDASIM=1`).
SIMULATED = bool(getattr(numba.config, "ENABLE_CUDASIM", 0))
_passes = build(cuda.jit(device=True))
_luma_terms, _pixel_terms, _exact_where_needed = _passes.luma_terms, _passes.pixel_terms, _passes.exact_where_needed


@cuda.jit(cache=not SIMULATED)
def _luma_kernel(base: Any, cand: Any, out: Any) -> None:
    n_img, h, w = base.shape[0], base.shape[1], base.shape[2]
    for i in range(cuda.grid(1), n_img * h * w, cuda.gridsize(1)):
        n = i // (h * w)
        y = (i - n * h * w) // w
        x = i - n * h * w - y * w
        _luma_terms(base, cand, n, y, x, out)


@cuda.jit(cache=not SIMULATED)
def _terms_kernel(base: Any, cand: Any, opaque: int, lut: Any, out: Any) -> None:
    n_img, h, w = base.shape[0], base.shape[1], base.shape[2]
    for i in range(cuda.grid(1), n_img * h * w, cuda.gridsize(1)):
        n = i // (h * w)
        y = (i - n * h * w) // w
        x = i - n * h * w - y * w
        _pixel_terms(base, cand, n, y, x, opaque, lut, out)
        _exact_where_needed(base, cand, n, y, x, lut, out)


# One table per device: a table on another GPU would be read across the bus, or not at all.
_LUTS: dict[int, Any] = {}


def _current_device_id() -> int:
    return 0 if SIMULATED else int(cuda.current_context().device.id)


def device_lut() -> Any:
    """The lookup table on the current device, copied there once per device."""
    key = _current_device_id()
    if key not in _LUTS:
        _LUTS[key] = cuda.to_device(lookup_table())
    return _LUTS[key]


def pixel_terms_cuda(base: Any, cand: Any, opaque: int, out: Any, *, stream: Any = 0, max_blocks: int = 4096) -> Any:
    """Per-pixel terms of a batch on the GPU (or the CUDA simulator), on the current device.

    Args:
        base: N x H x W x 4 uint8 device array.
        cand: Candidate pixels of the same shape.
        opaque: Alpha at or above which a pixel is opaque.
        out: N_PLANES x N x H x W float32 device array to fill; the first N_TERMS
            planes are the terms, the rest scratch.
        stream: CUDA stream to launch on (0: the default stream).
        max_blocks: Upper bound on the grid; a grid-stride loop covers the rest.

    Returns:
        `out`, filled (asynchronously on `stream`).
    """
    if tuple(base.shape) != tuple(cand.shape) or len(base.shape) != 4 or base.shape[3] != 4:
        raise ValueError(f"base and cand must both be N x H x W x 4; got {tuple(base.shape)} and {tuple(cand.shape)}")
    if tuple(out.shape) != (N_PLANES, *tuple(base.shape[:3])):
        raise ValueError(f"out must be {(N_PLANES, *tuple(base.shape[:3]))}; got {tuple(out.shape)}")
    total = int(base.shape[0]) * int(base.shape[1]) * int(base.shape[2])
    blocks = max(1, min(max_blocks, (total + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK))
    # Two launches on one stream: the second reads neighbours' luma written by the first.
    _luma_kernel[blocks, THREADS_PER_BLOCK, stream](base, cand, out)
    _terms_kernel[blocks, THREADS_PER_BLOCK, stream](base, cand, opaque, device_lut(), out)
    return out


class _HostInterface:
    """Host memory described by a `__cuda_array_interface__` (the simulator's device memory)."""

    def __init__(self, interface: dict[str, Any]) -> None:
        self.__array_interface__ = {k: interface[k] for k in ("shape", "typestr", "data", "strides")} | {"version": 3}


def _device_view(obj: Any) -> Any:
    if SIMULATED:
        import numpy as np

        return np.asarray(_HostInterface(obj.__cuda_array_interface__))
    # sync=False: were the interface to name a stream, numba would otherwise make the host
    # wait for it; the kernels are queued on the caller's stream, which orders them anyway.
    return cuda.as_cuda_array(obj, sync=False)


def launch(base: Any, cand: Any, opaque: int, out: Any, *, stream_handle: int, device_index: int) -> None:
    """Fill `out` with the per-pixel terms on device `device_index`, queued on the CUDA
    stream `stream_handle`, with no host synchronisation.

    Args:
        base: N x H x W x 4 uint8, anything exposing `__cuda_array_interface__` (a torch
            CUDA tensor), contiguous.
        cand: Candidate pixels, same shape and device.
        opaque: Alpha at or above which a pixel is opaque.
        out: N_PLANES x N x H x W float32, same device.
        stream_handle: The stream's handle (torch: `torch.cuda.current_stream().cuda_stream`),
            so the kernels are ordered after the upload and before the reductions.
        device_index: The device the arrays live on.
    """
    with cuda.gpus[device_index]:
        if SIMULATED:
            stream = cuda.stream()
        elif stream_handle == 0:  # torch's default stream is CUDA's legacy default stream
            stream = cuda.default_stream()
        else:
            stream = cuda.external_stream(stream_handle)
        pixel_terms_cuda(_device_view(base), _device_view(cand), opaque, _device_view(out), stream=stream)


__all__ = ["SIMULATED", "THREADS_PER_BLOCK", "device_lut", "launch", "pixel_terms_cuda"]
