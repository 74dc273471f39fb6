"""`pixgate replay`: does a generator give the same image for the same prompt and seed?

Captures the prompts `runs` times (DIR/run1, DIR/run2, ...) and writes DIR/replay.arrow
(pixgate.runs.schema.REPLAY_COLUMNS): per prompt, whether every run returned the same bytes,
the largest channel difference and the largest LPIPS between the first run and any
other. A gate rule such as `byte_identical each == true` then requires replayability.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixgate import __version__
from pixgate.capture.capture import CaptureOptions, run_capture
from pixgate.runs import schema
from pixgate.scoring.backbones import DEFAULT_NET

REPLAY_FILE = "replay.arrow"


@dataclass
class ReplayResult:
    """A finished replay: replay.arrow's table and a note on anything left out."""

    table: Any
    note: str | None

    @property
    def replayable(self) -> bool:
        """Every prompt captured and byte-identical across runs."""
        return all(v is True for v in self.table.column(schema.BYTE_IDENTICAL.name).to_pylist())


def _compare(first: np.ndarray, other: Path, model: Any) -> tuple[int | None, float | None]:
    """Largest channel difference and LPIPS between the first run's pixels and another run's file."""
    from pixgate.scoring.decode import decode_image

    b = decode_image(other).rgba
    if first.shape != b.shape:
        return None, None
    diff = int(np.abs(first.astype(np.int16) - b.astype(np.int16)).max())
    if model is None:
        return diff, None
    if diff == 0:
        return 0, 0.0  # identical pixels: 0 by definition, not the backbone's last-bit noise
    import torch

    with torch.inference_mode():
        x0, x1 = model.prepare(torch.from_numpy(first.copy())[None]), model.prepare(torch.from_numpy(b.copy())[None])
        return diff, float(model(x0, x1)[0])


def run_replay(opts: CaptureOptions, runs: int, *, weights: Path | None = None, net: str = DEFAULT_NET) -> ReplayResult:
    """Capture `runs` times into `opts.out`/runK and compare the runs (see the module).

    Raises:
        CaptureConfigError: Bad options or prompts file (`run_capture`).
        pixgate.safe_io.OutputError: replay.arrow, or one of a run's capture files, is
            something other than a regular file (checked before the first capture), or
            cannot be written.
    """
    from pixgate.capture.capture import CAPTURE_FILE, CaptureConfigError
    from pixgate.runs.files import check_journalled_output, write_file
    from pixgate.safe_io import check_output

    if runs < 2:
        raise CaptureConfigError.about("{runs}: got {got}; a replay needs at least 2", got=runs)
    # Every output up front: a FIFO at replay.arrow found after the captures would waste them.
    check_output(opts.out / REPLAY_FILE)
    for k in range(1, runs + 1):
        check_journalled_output(opts.out / f"run{k}" / CAPTURE_FILE)
    tables = []
    for k in range(1, runs + 1):
        tables.append(run_capture(dataclasses.replace(opts, out=opts.out / f"run{k}", resume=False)).table)
    from pixgate.scoring.models import load_lpips_if_available

    model, why = load_lpips_if_available(net, weights)
    note = f"lpips is null: {why}" if why else None
    by_run = [{r[schema.ID.name]: r for r in t.to_pylist()} for t in tables]
    rows = []
    for pid in sorted(by_run[0]):
        captured = [runs_rows[pid] for runs_rows in by_run]
        row: dict[str, Any] = {schema.ID.name: pid, schema.RUNS.name: runs}
        failed = [
            f"run{k}: {c[schema.CAPTURE_ERROR.name]}"
            for k, c in enumerate(captured, 1)
            if c[schema.CAPTURE_STATUS.name] != schema.STATUS_OK
        ]
        if failed:
            row.update({schema.CAPTURE_STATUS.name: schema.STATUS_ERROR, schema.CAPTURE_ERROR.name: "; ".join(failed)})
            rows.append(row)
            continue
        paths = [opts.out / f"run{k}" / c[schema.IMAGE.name] for k, c in enumerate(captured, 1)]
        diffs, distances = [], []
        from pixgate.scoring.decode import decode_image

        first = decode_image(paths[0]).rgba  # once, not once per other run
        for path in paths[1:]:
            diff, distance = _compare(first, path, model)
            diffs.append(diff)
            distances.append(distance)
        row.update(
            {
                schema.CAPTURE_STATUS.name: schema.STATUS_OK,
                schema.BYTE_IDENTICAL.name: len({c[schema.SHA256.name] for c in captured}) == 1,
                schema.MAX_PIXEL_DIFF.name: None if None in diffs else max(d for d in diffs if d is not None),
                schema.REPLAY_LPIPS.name: None if None in distances else max(d for d in distances if d is not None),
            }
        )
        if None in diffs:
            row[schema.CAPTURE_ERROR.name] = "runs returned images of different sizes"
        rows.append(row)
    meta = {
        schema.META_PIXGATE_VERSION: __version__,
        schema.META_SCHEMA_VERSION: schema.SCHEMA_VERSION,
        schema.META_SETTINGS: json.dumps({"runs": runs, "engine": opts.endpoint or opts.command}),
        schema.META_LPIPS_NOTE: note or "",
    }
    table = write_file(opts.out / REPLAY_FILE, rows, schema.REPLAY_COLUMNS, meta)
    return ReplayResult(table, note)


__all__ = ["REPLAY_FILE", "ReplayResult", "run_replay"]
