"""Device choice, timers and process measurements for a run."""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pixgate.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


class DeviceError(UsageError):
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
        raise DeviceError.about(
            "{device} must be one of {allowed}; got {got!r}", allowed=", ".join(DEVICES), got=choice
        )
    if choice == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if choice == "cuda":
        raise DeviceError.about(
            "no usable CUDA device (torch {torch}, built for CUDA {cuda}): {device} must be cpu or auto here",
            torch=torch.__version__,
            cuda=torch.version.cuda or "none",
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


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc, to the clock tick), imports and
    all; None where it cannot be read."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            # Fields after the command name (which may hold spaces): the 20th is the start
            # time, in clock ticks since boot.
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` runs bfloat16 arithmetic natively, and why in a few words."""
    import torch

    from pixgate.config import BF16_CPU_FLAGS

    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, f"{torch.cuda.get_device_name(device)} runs bfloat16 natively"
        return False, f"{torch.cuda.get_device_name(device)} has no native bfloat16"
    found = sorted(cpu_flags() & set(BF16_CPU_FLAGS))
    if found:
        return True, f"the CPU has {' and '.join(found)}"
    return False, f"the CPU has none of {', '.join(BF16_CPU_FLAGS)} (bfloat16 would be emulated)"


@dataclass
class BatchTiming:
    """Times of one device batch, in milliseconds.

    `wall_ms` is the host's time on the batch: staging and queuing it, then waiting for
    its results (on a CPU, the whole computation). `gpu_ms` (CUDA only) is the time on
    the GPU between `start_device()` and `stop_device()`, CUDA events on the batch's
    stream: the scorer marks them after the upload is queued and after its last kernel,
    with no host synchronisation between, so inside that span the GPU waits on the host
    only for launch latency (kernels queued more slowly than they run).
    """

    wall_ms: float = 0.0
    gpu_ms: float | None = None
    _events: tuple[Any, Any] | None = None

    @classmethod
    def on(cls, device: torch.device) -> BatchTiming:
        """A timing for a batch on `device` (CUDA events only on a GPU)."""
        import torch

        timing = cls()
        if device.type == "cuda":
            timing._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        return timing

    def start_device(self) -> None:
        """Mark the start of the device work on the current stream (a no-op off CUDA)."""
        if self._events is not None:
            self._events[0].record()

    def stop_device(self) -> None:
        """Mark the end of the device work on the current stream (a no-op off CUDA)."""
        if self._events is not None:
            self._events[1].record()

    def add_host(self, seconds: float) -> None:
        """Count host time spent on the batch."""
        self.wall_ms += seconds * 1000.0

    def finish(self) -> None:
        """Read the GPU span, once the device has passed `stop_device()`."""
        if self._events is not None and self.gpu_ms is None:
            start_evt, end_evt = self._events
            end_evt.synchronize()
            self.gpu_ms = float(start_evt.elapsed_time(end_evt))


def cuda_identity(device: torch.device) -> dict[str, str]:
    """How NVML can find `device`: its UUID and PCI bus id as CUDA reports them.

    NVML numbers GPUs in PCI order and ignores `CUDA_VISIBLE_DEVICES`, while CUDA's
    index is relative to the visible devices (fastest first by default), so an index can
    name another GPU; a UUID cannot.
    """
    import torch

    props: Any = torch.cuda.get_device_properties(device)  # its PCI fields are missing from torch's stubs
    found: dict[str, str] = {}
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        found["uuid"] = str(uuid)
    if all(hasattr(props, k) for k in ("pci_domain_id", "pci_bus_id", "pci_device_id")):
        found["pci_bus_id"] = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
    return found


def nvml_uuids(uuid: str) -> list[str]:
    """The NVML spellings of a UUID as CUDA (torch) prints it: NVML prefixes a GPU's with
    `GPU-` and a MIG instance's with `MIG-`."""
    if uuid.startswith(("GPU-", "MIG-")):
        return [uuid]
    return [f"GPU-{uuid}", f"MIG-{uuid}"]


class NvmlSampler:
    """GPU telemetry from NVML (`pynvml`, from nvidia-ml-py), sampled in a background thread.

    Energy comes from the device's total-energy counter where the device supports it,
    else from power draw integrated over time. Utilisation, memory used (and its peak)
    and the SM clock are sampled every `interval_s`. Every NVML failure (no library, no
    permission, an unsupported counter) costs one field and adds a note; none stops a run.

    The device is found by its UUID (`cuda_identity`), else its PCI bus id, else (no
    identity given: a generator's GPU, say) NVML's `index`. On a MIG instance, memory
    is the instance's; utilisation is not reported per instance (null, with a note), and
    energy and the SM clock are the whole GPU's, which the instances share (a note says so).

    Args:
        identity: `cuda_identity(device)` of the CUDA device to watch.
        index: NVML's index of the GPU, used when `identity` is None.
        interval_s: Sampling period.
    """

    def __init__(self, identity: dict[str, str] | None = None, *, index: int = 0, interval_s: float = 0.05) -> None:
        self.notes: list[str] = []
        self.available = False
        self._interval = interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._summary: dict[str, Any] | None = None
        self._samples: dict[str, list[float]] = {"util": [], "mem_mb": [], "sm_mhz": []}
        self._ticks = 0
        self._start_energy: float | None = None
        self._mig = False
        self._power_j = 0.0
        self._last_power: tuple[float, float] | None = None
        self.device = self.driver = self.found_by = ""
        try:
            import pynvml

            self._nvml = pynvml
            pynvml.nvmlInit()
        except Exception as exc:  # ImportError or any NVMLError: NVML is simply not there
            self.notes.append(f"NVML unavailable ({type(exc).__name__}: {exc}): GPU energy and utilisation are null")
            return
        found = self._find(identity, index)
        if found is None:
            return
        self._handle, self.found_by = found
        self._whole = self._handle  # the physical GPU: its energy counter and clocks
        self._mig = bool(self._read("MIG check", lambda: pynvml.nvmlDeviceIsMigDeviceHandle(self._handle)))
        if self._mig:
            parent = self._read("MIG parent", lambda: pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self._handle))
            self._whole = parent if parent is not None else self._handle
            self.notes.append(
                "MIG instance: NVML reports no utilisation per instance (null); energy and the SM clock are the "
                "whole GPU's, shared with any other instance's work"
            )
        self.available = True
        self.device = self._read("device name", lambda: str(pynvml.nvmlDeviceGetName(self._handle))) or ""
        self.driver = self._read("driver version", lambda: str(pynvml.nvmlSystemGetDriverVersion())) or ""
        self._counter = self._read("energy counter", self._counter_mj) is not None
        if not self._counter:
            self.notes.append("no total-energy counter on this device: energy is power integrated over time")

    def _find(self, identity: dict[str, str] | None, index: int) -> tuple[Any, str] | None:
        nvml = self._nvml
        tried = []
        if identity is None:
            try:
                return nvml.nvmlDeviceGetHandleByIndex(index), f"NVML index {index}"
            except nvml.NVMLError as exc:
                self.notes.append(f"NVML has no device {index} ({exc})")
                return None
        for uuid in nvml_uuids(identity["uuid"]) if identity.get("uuid") else []:
            try:
                return nvml.nvmlDeviceGetHandleByUUID(uuid), f"UUID {uuid}"
            except nvml.NVMLError as exc:
                tried.append(f"UUID {uuid}: {exc}")
        if identity.get("pci_bus_id"):
            try:
                return nvml.nvmlDeviceGetHandleByPciBusId(identity["pci_bus_id"]), f"PCI bus {identity['pci_bus_id']}"
            except nvml.NVMLError as exc:
                tried.append(f"PCI bus {identity['pci_bus_id']}: {exc}")
        self.notes.append(f"NVML found no device for the CUDA device ({'; '.join(tried) or 'no UUID or PCI id'})")
        return None

    def _read(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # one NVML field failing must not stop the run
            note = f"NVML {what}: {exc}"
            if note not in self.notes:
                self.notes.append(note)
            return None

    def _counter_mj(self) -> float:
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._whole))

    def _sample(self) -> None:
        nvml, handle, whole = self._nvml, self._handle, self._whole
        util = None if self._mig else self._read("utilisation", lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        mem = self._read("memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20)
        clock = self._read("SM clock", lambda: nvml.nvmlDeviceGetClockInfo(whole, nvml.NVML_CLOCK_SM))
        power = None if self._counter else self._read("power", lambda: nvml.nvmlDeviceGetPowerUsage(whole) / 1000.0)
        now = time.perf_counter()
        with self._lock:
            self._ticks += 1
            for key, value in (("util", util), ("mem_mb", mem), ("sm_mhz", clock)):
                if value is not None:
                    self._samples[key].append(float(value))
            if power is not None:
                if self._last_power is not None:
                    t0, p0 = self._last_power
                    self._power_j += (p0 + power) / 2.0 * (now - t0)  # trapezoid rule
                self._last_power = (now, power)

    def energy_j(self) -> float | None:
        """Energy used by the device so far (counter), or integrated since `start`; None without NVML."""
        if not self.available:
            return None
        if self._counter:
            value = self._read("energy counter", self._counter_mj)
            return None if value is None else value / 1000.0
        self._sample()
        with self._lock:
            return self._power_j

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def start(self) -> NvmlSampler:
        """Start sampling (a no-op without NVML)."""
        if self.available:
            self._start_energy = self.energy_j()
            self._thread = threading.Thread(target=self._run, name="pixgate-nvml", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        """Stop sampling; the run-level summary (null fields where NVML could not say).
        Safe to call more than once (a run's clean-up calls it whatever happened): later
        calls return the first summary."""
        if self._summary is not None:
            return self._summary
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sample()  # a last reading: a run shorter than the period still has one
        summary: dict[str, Any] = {"device": self.device or None, "driver": self.driver or None}
        energy = None
        if self.available:
            end = self.energy_j()
            if end is not None and self._start_energy is not None:
                energy = end - self._start_energy
        with self._lock:
            util, mem, clock = self._samples["util"], self._samples["mem_mb"], self._samples["sm_mhz"]
            summary.update(
                {
                    "energy_j": round(energy, 3) if energy is not None else None,
                    "energy_source": None if energy is None else ("counter" if self._counter else "power integral"),
                    "utilisation_mean_pct": round(sum(util) / len(util), 1) if util else None,
                    "memory_used_peak_mb": round(max(mem), 1) if mem else None,
                    "sm_clock_mean_mhz": round(sum(clock) / len(clock)) if clock else None,
                    "samples": self._ticks,
                    "found_by": self.found_by or None,
                    "mig": self._mig,
                }
            )
        summary["notes"] = list(self.notes)
        self._summary = summary
        return summary


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
    "NvmlSampler",
    "cpu_count",
    "cuda_identity",
    "device_name",
    "nvml_uuids",
    "peak_rss_mb",
    "select_device",
]
