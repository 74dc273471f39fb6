"""Device choice, timers and process measurements for a run."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


class DeviceError(Exception):
    """The requested device cannot be used."""


def cpu_count() -> int:
    """CPUs this process may run on (respects affinity masks and cgroups' cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def select_device(choice: str) -> torch.device:
    """Turn `auto|cpu|cuda` into a torch device.

    Raises:
        DeviceError: `cuda` requested but no CUDA device is usable.
    """
    import torch

    if choice not in DEVICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICES)}; got {choice!r}")
    if choice == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if choice == "cuda":
        raise DeviceError(
            f"--device cuda: no usable CUDA device (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda or 'none'}); use --device cpu or --device auto"
        )
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    """Human name of the device (GPU model, or the CPU's model name)."""
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"CPU: {line.split(':', 1)[1].strip()} ({cpu_count()} cores)"
    except OSError:
        pass
    return f"CPU ({cpu_count()} cores)"


@dataclass
class BatchTiming:
    """Times of one device batch, in milliseconds."""

    wall_ms: float = 0.0
    gpu_ms: float | None = None


@contextmanager
def time_batch(device: torch.device) -> Iterator[BatchTiming]:
    """Time a block of device work: wall clock always, CUDA events on a GPU.

    The caller must synchronise (e.g. copy the result to the host) inside the block.
    """
    import torch

    timing = BatchTiming()
    start_evt = end_evt = None
    if device.type == "cuda":
        start_evt = torch.cuda.Event(enable_timing=True)
        end_evt = torch.cuda.Event(enable_timing=True)
        start_evt.record()
    t0 = time.perf_counter()
    yield timing
    if start_evt is not None and end_evt is not None:
        end_evt.record()
        end_evt.synchronize()
        timing.gpu_ms = float(start_evt.elapsed_time(end_evt))
    timing.wall_ms = (time.perf_counter() - t0) * 1000.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MiB.

    Reads VmHWM, the high-water mark of this process's own address space. `ru_maxrss`
    is not used on Linux: it survives fork and exec, so a worker started from a large
    parent reports the parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    scale = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0  # ru_maxrss: KiB on Linux
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale, 1)


__all__ = [
    "DEVICES",
    "BatchTiming",
    "DeviceError",
    "cpu_count",
    "device_name",
    "peak_rss_mb",
    "select_device",
    "time_batch",
]
