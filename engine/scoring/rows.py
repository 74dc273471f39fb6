"""Rows of the run file as the pipeline builds them: a pair without a partner, a decoded
pair's facts, and a scored batch's metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixgate.runs import schema
from pixgate.scoring.decode import DecodedImage, DecodedPair
from pixgate.scoring.pairing import Pair


def missing_row(pair: Pair) -> dict[str, Any]:
    """The row of a pair that cannot be scored: a side missing, or a pairing problem."""
    row = schema.empty_row()
    row[schema.PAIR_ID.name] = pair.pair_id
    row[schema.BASELINE_PATH.name] = str(pair.baseline) if pair.baseline else None
    row[schema.CANDIDATE_PATH.name] = str(pair.candidate) if pair.candidate else None
    if pair.problem:
        row[schema.STATUS.name] = schema.STATUS_ERROR
        row[schema.ERROR.name] = pair.problem
    elif pair.candidate is None:
        row[schema.STATUS.name] = schema.STATUS_MISSING_CANDIDATE
        row[schema.ERROR.name] = f"no candidate image for baseline {pair.pair_id!r}"
    else:
        row[schema.STATUS.name] = schema.STATUS_MISSING_BASELINE
        row[schema.ERROR.name] = f"no baseline image for candidate {pair.pair_id!r}"
    return row


def _side_fields(row: dict[str, Any], side: str, img: DecodedImage) -> None:
    cols = {
        "baseline": (schema.BASELINE_FORMAT, schema.BASELINE_MODE, schema.BASELINE_WIDTH,
                     schema.BASELINE_HEIGHT, schema.BASELINE_HAS_ALPHA, schema.BASELINE_ICC,
                     schema.BASELINE_FRAMES),
        "candidate": (schema.CANDIDATE_FORMAT, schema.CANDIDATE_MODE, schema.CANDIDATE_WIDTH,
                      schema.CANDIDATE_HEIGHT, schema.CANDIDATE_HAS_ALPHA, schema.CANDIDATE_ICC,
                      schema.CANDIDATE_FRAMES),
    }[side]  # fmt: skip
    values = (img.format, img.mode, img.width, img.height, img.has_alpha, img.icc_description, img.frames)
    for col, value in zip(cols, values, strict=True):
        row[col.name] = value


def decoded_row(pair: Pair, dp: DecodedPair) -> dict[str, Any]:
    """The row of a decoded pair before metrics: identity, format and shape facts."""
    row = schema.empty_row()
    row[schema.PAIR_ID.name] = pair.pair_id
    row[schema.BASELINE_PATH.name] = str(pair.baseline)
    row[schema.CANDIDATE_PATH.name] = str(pair.candidate)
    row[schema.BASELINE_SHA256.name] = pair.baseline_sha256
    row[schema.CANDIDATE_SHA256.name] = pair.candidate_sha256
    row[schema.DECODE_MS.name] = dp.decode_ms
    row[schema.STATUS.name] = schema.STATUS_ERROR if dp.error else schema.STATUS_OK
    row[schema.ERROR.name] = dp.error
    if dp.baseline is not None:
        _side_fields(row, "baseline", dp.baseline)
    if dp.candidate is not None:
        _side_fields(row, "candidate", dp.candidate)
    b, c = dp.baseline, dp.candidate
    if b is not None and c is not None:
        row[schema.SIZE_MATCH.name] = (b.width, b.height) == (c.width, c.height)
        row[schema.ASPECT_RATIO_DELTA.name] = abs((c.width / c.height) / (b.width / b.height) - 1.0)
        row[schema.FRAME_COUNT_MATCH.name] = b.frames == c.frames
        row[schema.ALPHA_PARITY.name] = b.has_alpha == c.has_alpha
        row[schema.ICC_MATCH.name] = dp.icc_match
    return row


def metric_rows(
    items: list[tuple[Pair, DecodedPair]],
    metrics: list[dict[str, Any]],
    masks: list[Any],
    wall_ms: float,
    gpu_ms: float | None,
) -> list[dict[str, Any]]:
    """Full rows of one scored batch: decode facts, metrics, and the batch's time shared out."""
    rows = []
    for (pair, dp), values, mask in zip(items, metrics, masks, strict=True):
        row = decoded_row(pair, dp)
        row.update(values)
        if mask is not None:
            row[schema.IGNORED_FRACTION.name] = float(mask.mean())
        row[schema.COMPUTE_MS.name] = wall_ms / len(items)
        row[schema.GPU_MS.name] = gpu_ms / len(items) if gpu_ms is not None else None
        rows.append(row)
    return rows


def path_text(location: Path | str, path: Path | str | None) -> str | None:
    """A file's path as a run records it: as it is in a local folder; for a folder given
    as a URI (`s3://bucket/run`), the URI of the file (a filesystem's paths drop the
    scheme)."""
    if path is None or "://" not in str(location):
        return None if path is None else str(path)
    return f"{str(location).split('://', 1)[0]}://{path}"


__all__ = ["decoded_row", "metric_rows", "missing_row", "path_text"]
