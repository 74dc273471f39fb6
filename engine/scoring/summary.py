"""What a finished run says in a few lines: counts, LPIPS percentiles, findings, timings.

The command line prints it as a table; the Python API returns it. Computed from the
run's table (every row, carried over or not) and this run's statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pixgate.runs import schema
from pixgate.runs.files import run_metadata
from pixgate.scoring.options import ScoreResult

#: How a line reads: plain, a finding worth a look, or a problem.
PLAIN, NOTICE, PROBLEM = "plain", "notice", "problem"


@dataclass(frozen=True)
class SummaryLine:
    """One line of a run's summary.

    Attributes:
        label: What it measures.
        value: The figure, as text.
        level: `PLAIN`, `NOTICE` (worth a look) or `PROBLEM`.
    """

    label: str
    value: str
    level: str = PLAIN


@dataclass(frozen=True)
class RunSummary:
    """A finished run in a few lines, and its pairs that are not ok.

    Attributes:
        lines: The summary's lines, in reading order.
        problems: (pair_id, status, error) of every pair that is not ok.
    """

    lines: list[SummaryLine]
    problems: list[tuple[str, str, str]]


def _values(table: Any, column: schema.Column) -> list[Any]:
    return [v for v in table.column(column.name).to_pylist() if v is not None]


def summarize(result: ScoreResult) -> RunSummary:
    """Summarise a finished run (`pixgate.score`'s result)."""
    table, stats = result.table, result.stats
    status = table.column(schema.STATUS.name).to_pylist()
    lines = [SummaryLine("pairs", str(len(status)))]
    for s in schema.STATUSES:
        n = status.count(s)
        lines.append(SummaryLine(f"  {s}", str(n), PROBLEM if s != schema.STATUS_OK and n else PLAIN))
    lp = np.array(_values(table, schema.LPIPS), dtype=float)
    if lp.size:
        p50, p95 = np.percentile(lp, [50, 95])
        lines.append(SummaryLine("LPIPS p50 / p95 / max", f"{p50:.4f} / {p95:.4f} / {lp.max():.4f}"))
    else:
        lines.append(SummaryLine("LPIPS", run_metadata(table).get(schema.META_LPIPS_NOTE) or "no scored pairs"))
    lines += _weights(run_metadata(table))
    for label, column in (
        ("size changed", schema.SIZE_MATCH),
        ("alpha parity broken", schema.ALPHA_PARITY),
        ("colour space changed (ICC)", schema.ICC_MATCH),
        ("frame count changed (animation)", schema.FRAME_COUNT_MATCH),
    ):
        n = sum(1 for v in table.column(column.name).to_pylist() if v is False)
        lines.append(SummaryLine(label, str(n), NOTICE if n else PLAIN))
    formats = zip(
        table.column(schema.BASELINE_FORMAT.name).to_pylist(),
        table.column(schema.CANDIDATE_FORMAT.name).to_pylist(),
        strict=True,
    )
    changed = sum(1 for b, c in formats if b and c and b != c)
    lines.append(SummaryLine("format changed", str(changed), NOTICE if changed else PLAIN))
    de = np.array(_values(table, schema.DELTA_E_MEAN), dtype=float)
    if de.size:
        lines.append(SummaryLine("mean Delta E2000 p50 / max", f"{np.median(de):.2f} / {de.max():.2f}"))
    edges = _values(table, schema.EDGE_PRESERVATION)
    if edges:
        lines.append(SummaryLine("edge preservation min", f"{min(edges):.3f}"))
    lines += _typography(table, stats)
    if stats.get("manifest_ids_without_pair"):
        lines.append(SummaryLine("manifest ids without a pair", str(len(stats["manifest_ids_without_pair"])), NOTICE))
    lines += _timings(stats)
    return RunSummary(lines, _problems(table, status))


def _weights(meta: dict[str, str]) -> list[SummaryLine]:
    """Whether LPIPS ran on the published weights: other weights are worth one warning."""
    known, net = meta.get(schema.META_WEIGHTS_KNOWN, ""), meta.get(schema.META_LPIPS_NET, "")
    if known == "true":
        return [SummaryLine("backbone weights", f"torchvision's {net}")]
    if known == "false":
        sha = meta.get(schema.META_WEIGHTS_SHA256, "")[:12]
        why = f"unknown file (sha256 {sha}...), not torchvision's {net}: LPIPS is not comparable with other runs"
        return [SummaryLine("backbone weights", why, PROBLEM)]
    return []


def _typography(table: Any, stats: dict[str, Any]) -> list[SummaryLine]:
    if "text_checked" not in stats:
        return [SummaryLine("typography", "not checked (--no-typography)", NOTICE)]
    text_pass = _values(table, schema.TEXT_PASS)
    lost = text_pass.count(False)
    said = table.column(schema.TEXT_STATUS.name).to_pylist()
    lines = [
        SummaryLine("typography pass", f"{text_pass.count(True)} of {len(text_pass)}", NOTICE if lost else PLAIN),
        SummaryLine("typography not applicable (no text)", str(said.count(schema.TEXT_NOT_APPLICABLE))),
    ]
    cache = stats.get("ocr_cache")
    if cache and "error" in cache:
        lines.append(SummaryLine("OCR cache", "off: " + cache["error"], NOTICE))
    elif cache:
        lines.append(SummaryLine("OCR cache hits / misses", f"{cache['hits']} / {cache['misses']}"))
        if cache.get("reread_hits") or cache.get("reread_misses"):
            lines.append(
                SummaryLine("OCR cache, regions read again", f"{cache['reread_hits']} / {cache['reread_misses']}")
            )
    lines.append(SummaryLine("waiting for OCR", f"{stats['ocr_wait_s']:.2f} s"))
    return lines


def _timings(stats: dict[str, Any]) -> list[SummaryLine]:
    lines = []
    if "gpu_s_per_1000_pairs" in stats:
        lines.append(SummaryLine("GPU s per 1,000 pairs", f"{stats['gpu_s_per_1000_pairs']:.2f}"))
    if "energy_per_pair_j" in stats:
        lines.append(SummaryLine("GPU energy per pair", f"{stats['energy_per_pair_j']:.3f} J"))
    if stats.get("warmup_ms"):
        lines.append(SummaryLine("warm-up (not in per-pair times)", f"{stats['warmup_ms']:.0f} ms"))
    process, before = stats.get("process_s"), stats.get("before_run_s")
    if process:
        # What the user waited for: from the process's start, imports included.
        split = f" ({before:.1f} s before the run: imports, options)" if before is not None else ""
        lines.append(SummaryLine("wall time, whole process", f"{process:.2f} s{split}"))
        lines.append(SummaryLine("pairs/s, whole process", f"{stats['scored_now'] / process:.2f}"))
    lines.append(SummaryLine("wall time of the run", f"{stats['wall_s']:.2f} s"))
    lines.append(SummaryLine("pairs/s (this run)", f"{stats['pairs_per_s']:.2f}"))
    phases = stats.get("startup_phases_s") or {}
    if phases:
        shown = " · ".join(
            f"{name.removesuffix('_s').replace('_', ' ')} {value:.2f} s" for name, value in phases.items()
        )
        lines.append(SummaryLine("start-up", shown))
    if stats.get("steady_pairs_per_s"):
        steady = f"{stats['steady_pairs_per_s']:.2f} ({stats['startup_s']:.1f} s start-up)"
        lines.append(SummaryLine("pairs/s (after start-up)", steady))
    if stats.get("backend") == "ray":
        for node, figures in stats["nodes"].items():
            lines.append(SummaryLine(f"node {node}", f"{figures['pairs']} pairs, {figures['compute_s']:.1f} s compute"))
    else:
        lines.append(SummaryLine("waiting for decode", f"{100 * stats['decode_wait_share']:.1f} % of wall time"))
    if stats["carried_over"]:
        lines.append(SummaryLine("carried over (--resume)", str(stats["carried_over"])))
    if stats["ignored_files"]:
        lines.append(SummaryLine("ignored (not an image extension)", str(len(stats["ignored_files"]))))
    return lines


def _problems(table: Any, status: list[str]) -> list[tuple[str, str, str]]:
    ids = table.column(schema.PAIR_ID.name).to_pylist()
    errors = table.column(schema.ERROR.name).to_pylist()
    return [(pid, st, err or "") for pid, st, err in zip(ids, status, errors, strict=True) if st != schema.STATUS_OK]


__all__ = ["NOTICE", "PLAIN", "PROBLEM", "RunSummary", "SummaryLine", "summarize"]
