"""Decode workers: a worker killed mid-run costs no pair and does not end the run."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine import schema
from engine.arrow_io import journal_path, read_journal
from engine.score import ScoreOptions, ScoreResult, run_score

PAIRS = 120
KILL_AFTER_ROWS = 4
DEADLINE_S = 120.0


def _spawned_children() -> list[int]:
    """PIDs of this process's multiprocessing spawn children (the decode workers)."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    workers = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(pid)
    return workers


def test_killed_worker_is_replaced_and_every_pair_is_scored(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    base, cand = make_pairs([(160, 200)] * PAIRS)
    out = tmp_path / "run.arrow"
    result: list[ScoreResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            opts = ScoreOptions(base, cand, out, device="cpu", no_lpips=True, workers=2, batch_size=1)
            result.append(run_score(opts))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.monotonic() + DEADLINE_S
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        rows = 0
        if journal_path(out).exists():
            try:
                rows = read_journal(journal_path(out))[0].num_rows
            except ValueError:
                rows = 0
        workers = _spawned_children()
        if rows >= KILL_AFTER_ROWS and workers:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.005)
    thread.join(DEADLINE_S)
    assert not errors, errors
    assert killed is not None, "the run finished before a worker could be killed"
    (res,) = result
    ids = res.table.column(schema.PAIR_ID.name).to_pylist()
    assert ids == sorted(f"p{i:03d}" for i in range(PAIRS))
    statuses = res.table.column(schema.STATUS.name).to_pylist()
    assert statuses == [schema.STATUS_OK] * PAIRS, [e for e in res.table.column(schema.ERROR.name).to_pylist() if e]
    assert res.stats["worker_restarts"] >= 1
