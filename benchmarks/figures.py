"""Figures as they are measured, and the GPU section of RESULTS.md.

A benchmark that reports only at its end loses every figure when it is stopped at a time
limit. `emit` prints each figure the moment it exists and appends it, as one JSON line,
to the file named by `--figures` (or `$PIXGATE_FIGURES`), so a run cut short keeps
what it measured.

`gpu_section` renders `results/throughput-cuda.json` (a `--device cuda` run of
`benchmarks.throughput`) between markers in RESULTS.md, so the CPU run that regenerates
the page keeps it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_START, _END = "<!-- gpu results -->", "<!-- /gpu results -->"
_target: Path | None = None


def record_to(path: Path | None) -> None:
    """Append figures to `path` from now on (None: `$PIXGATE_FIGURES`, else print only)."""
    global _target
    chosen = path or (Path(os.environ["PIXGATE_FIGURES"]) if os.environ.get("PIXGATE_FIGURES") else None)
    _target = chosen
    if chosen is not None:
        chosen.parent.mkdir(parents=True, exist_ok=True)


def emit(name: str, value: Any, unit: str = "", **context: Any) -> Any:
    """Print one figure and append it to the figures file; returns `value`."""
    shown = f"{value:.4g}" if isinstance(value, float) else value
    extra = "".join(f" {k}={v}" for k, v in context.items())
    print(f"figure: {name} = {shown} {unit}{extra}".rstrip(), flush=True)
    if _target is not None:
        line = {"name": name, "value": value, "unit": unit, "at": round(time.time(), 1), **context}
        with _target.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
    return value


def gpu_section(result: dict[str, Any] | None = None) -> list[str]:
    """RESULTS.md's GPU lines, from `result` or `results/throughput-cuda.json` (none
    before a GPU run)."""
    if result is None:
        path = RESULTS_DIR / "throughput-cuda.json"
        if not path.exists():
            return []
        result = json.loads(path.read_text())
    ours, parity, pre = result.get("pixgate", {}), result.get("parity", {}), result.get("preflight", {})
    lines = [
        _START,
        "## On a GPU",
        "",
        f"`python -m benchmarks.throughput --device cuda` via `bash benchmarks/gpu_check.sh`, on {result['machine']}",
        f"({result.get('cores', '?')} cores): {result['pairs']} pairs of {result['size']}x{result['size']} "
        f"{result['format'].upper()} ({result.get('unique') or result['pairs']} distinct pairs, the rest hard links "
        "to them: every file is decoded in full).",
        "",
    ]
    if result.get("note"):
        lines += [f"Note: {result['note']}", ""]
    if pre:
        lines += [
            f"- {pre['versions']}",
            f"- CUDA kernels, first batch: compiled {pre['cuda_kernels_compiled_first_batch_s']} s, from the on-disk "
            f"cache in a second process {pre['cuda_kernels_from_cache_first_batch_s']} s",
        ]
    if ours:
        phases = ", ".join(f"{k} {v} s" for k, v in (ours.get("startup_phases_s") or {}).items())
        rate = result["pairs"] / ours["wall_s"]
        lines += [
            f"- whole process: {ours['wall_s']:.2f} s for {result['pairs']} pairs, {rate:.1f} pairs/s; start-up "
            f"until the first batch {ours['startup_s']} s ({phases}); after start-up {ours['steady_pairs_per_s']} "
            "pairs/s",
            f"- GPU time {ours.get('gpu_s_per_1000_pairs')} s per 1,000 pairs (`gpu_ms`), energy "
            f"{ours.get('energy_per_pair_j')} J per pair, peak GPU memory {ours.get('gpu_memory_peak_mb')} MiB, "
            f"mean utilisation {ours.get('gpu_utilisation_mean_pct')} %",
            f"- the scoring process used {ours['scorer_cpu_s']} s of CPU; it waited for decoding "
            f"{ours['decode_wait_share']:.0%} of its wall time",
        ]
    for name, row in result.get("table", {}).items():
        lines.append(f"- {name}: {row['pairs_per_s']} pairs/s, {row['s_per_2000_pairs']} s per 2,000 pairs"
                     + (f", {row['share_of_decode_ceiling']:.0%} of the decode ceiling"
                        if row.get("share_of_decode_ceiling") is not None else ""))  # fmt: skip
    if parity:
        lines += ["", f"CUDA against CPU on {parity['pairs']} pairs, largest absolute difference per column:", ""]
        lines += ["| column | max abs diff |", "| --- | --- |"]
        lines += [f"| `{k}` | {v:.2e} |" for k, v in parity["max_abs_diff"].items()]
    if "bfloat16_max_abs_lpips_diff" in result:
        lines.append(f"\nbfloat16 against float32 on the GPU: largest LPIPS difference "
                     f"{result['bfloat16_max_abs_lpips_diff']:.2e} over {result['pairs']} pairs.")  # fmt: skip
    return [*lines, "", _END]


def splice_gpu_section(md: str, section: list[str]) -> str:
    """`md` with its GPU section replaced by `section` (appended where it had none)."""
    text = "\n".join(section)
    if _START in md and _END in md:
        return md[: md.index(_START)] + text + md[md.index(_END) + len(_END) :]
    return md.rstrip("\n") + ("\n\n" + text + "\n" if text else "\n")


__all__ = ["emit", "gpu_section", "record_to", "splice_gpu_section"]
