"""Before the GPU checks spend their minutes: versions, a trivial numba kernel on a torch
tensor, then pixgate's own launch path against the CPU, each reported as it happens.

    python -m benchmarks.gpu_preflight            # exits 1 at the first step that fails
    python -m benchmarks.gpu_preflight --cached   # second process: the kernels from the cache

The first process compiles the CUDA kernels (timed) and the second loads them from the
on-disk cache (timed), which is what every later run on the machine pays.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time

from benchmarks.figures import emit, record_to


def _versions() -> None:
    import numba
    import numpy
    import torch

    print(f"python {platform.python_version()}; torch {torch.__version__} (CUDA {torch.version.cuda}); "
          f"numba {numba.__version__}; numpy {numpy.__version__}", flush=True)  # fmt: skip
    try:
        from importlib.metadata import version

        print(f"numba-cuda {version('numba-cuda')}", flush=True)
    except Exception as exc:
        print(f"numba-cuda version unknown: {exc}", flush=True)
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,uuid", "--format=csv,noheader"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    print(f"nvidia-smi: {smi.stdout.strip() or smi.stderr.strip()}", flush=True)
    if not torch.cuda.is_available():
        raise SystemExit("preflight: torch sees no CUDA device")
    props = torch.cuda.get_device_properties(0)
    print(f"device 0: {props.name}, compute capability {props.major}.{props.minor}, "
          f"{props.total_memory / 2**30:.0f} GiB, uuid {props.uuid}", flush=True)  # fmt: skip


def _trivial_launch() -> None:
    """A one-line kernel on a torch tensor, on torch's stream: what pixgate relies on."""
    import torch
    from numba import cuda

    @cuda.jit
    def add_one(x):  # type: ignore[no-untyped-def]
        i = cuda.grid(1)
        if i < x.shape[0]:
            x[i] += 1.0

    started = time.perf_counter()
    t = torch.zeros(1000, device="cuda")
    stream = cuda.external_stream(torch.cuda.current_stream().cuda_stream)
    add_one[4, 256, stream](cuda.as_cuda_array(t, sync=False))
    torch.cuda.synchronize()
    if float(t.sum()) != 1000.0:
        raise SystemExit(f"preflight: the trivial kernel wrote {float(t.sum())}, expected 1000")
    emit("preflight: trivial numba kernel on a torch tensor (compile + launch)", time.perf_counter() - started, "s")


def _pixgate_kernels(cached: bool) -> None:
    """pixgate's launch path (pixgate.scoring.metrics) on a small batch against the CPU."""
    import numpy as np
    import torch

    from pixgate.scoring.metrics import pixel_terms, reduce_terms

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (3, 64, 48, 4), dtype=np.uint8)
    cand = np.clip(base.astype(int) + rng.integers(-9, 10, base.shape), 0, 255).astype(np.uint8)
    started = time.perf_counter()
    gpu = reduce_terms(pixel_terms(torch.from_numpy(base).cuda(), torch.from_numpy(cand).cuda()), [True] * 3)
    label = "from the cache" if cached else "compiled"
    emit(f"preflight: pixgate CUDA kernels, first batch ({label})", time.perf_counter() - started, "s")
    cpu = reduce_terms(pixel_terms(torch.from_numpy(base), torch.from_numpy(cand)), [True] * 3)
    worst = max(abs(g[k] - c[k]) for g, c in zip(gpu, cpu, strict=True) for k in g if g[k] is not None)
    emit("preflight: pixgate kernels CUDA vs CPU, max abs diff (3 pairs)", worst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached", action="store_true", help="a second process: kernels from the cache")
    args = parser.parse_args()
    record_to(None)
    if not args.cached:
        _versions()
        _trivial_launch()
    _pixgate_kernels(args.cached)


if __name__ == "__main__":
    main()
