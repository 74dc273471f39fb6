"""The Ray backend on a local Ray instance: same rows as the local backend, and a killed worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixgate.config import BATCH_INVARIANCE_ATOL
from pixgate.runs import schema
from pixgate.runs.files import journal_path, read_journal, read_run, run_metadata
from pixgate.scoring import colour, registration
from pixgate.scoring.score import ScoreConfigError, ScoreOptions, run_score
from tests.conftest import GOLDEN, GOLDEN_PAIRS, poster

ray = pytest.importorskip("ray", reason="the Ray backend is an optional extra: pip install 'pixgate[ray]'")


# Columns that measure time, not images: they differ run to run by nature.
TIMING = {schema.COMPUTE_MS.name, schema.GPU_MS.name, schema.DECODE_MS.name}
# Kernel reductions are float64 sums of float32 terms; another batch composition may sum
# in another order, far below this.
KERNEL_RTOL = 1e-7
SYNTHETIC_PAIRS = 100
KILL_PAIRS = 60
KILL_DEADLINE_S = 300.0


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance with 2 CPUs, like the CI machine, shared by this module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def _synthetic(root: Path, n: int, size: tuple[int, int] = (64, 80)) -> tuple[Path, Path]:
    base, cand = root / "baseline", root / "candidate"
    for folder in (base, cand):
        (folder / "set").mkdir(parents=True)
    rng = np.random.default_rng(5)
    for i in range(n):
        h, w = size if i % 3 else (size[0] + 16, size[1])  # two size buckets
        img = poster(h, w, seed=i, alpha=i % 4 == 0)
        noisy = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(base / "set" / f"p{i:03d}.png")
        Image.fromarray(noisy).save(cand / "set" / f"p{i:03d}.png")
    (cand / "set" / "p007.png").write_bytes(b"not a png")  # an error row
    Image.fromarray(poster(64, 64, seed=999)).save(base / "set" / "only_here.png")  # a missing candidate
    return base, cand


#: Columns computed in float32 over a whole batch (convolutions, FFTs), whose last bits
#: depend on which pairs share it: the backends batch pairs differently.
_BATCH_DEPENDENT = frozenset({schema.LPIPS.name, *registration.COLUMNS, *colour.COLUMNS})


def _compare(local: list[dict[str, object]], distributed: list[dict[str, object]]) -> None:
    assert [r[schema.PAIR_ID.name] for r in distributed] == [r[schema.PAIR_ID.name] for r in local]
    for a, b in zip(local, distributed, strict=True):
        for name in schema.COLUMN_NAMES:
            if name in TIMING:
                continue
            x, y = a[name], b[name]
            if isinstance(x, float) and isinstance(y, float):
                tol = BATCH_INVARIANCE_ATOL if name in _BATCH_DEPENDENT else 0.0
                assert y == pytest.approx(x, rel=KERNEL_RTOL, abs=tol), (a[schema.PAIR_ID.name], name)
            else:
                assert x == y, (a[schema.PAIR_ID.name], name, x, y)


def test_golden_set_matches_the_local_backend(local_ray: None, alex_weights: Path, tmp_path: Path) -> None:
    opts = ScoreOptions(GOLDEN / "baseline", GOLDEN / "candidate", tmp_path / "local.arrow", device="cpu",
                        weights=alex_weights, typography=False)  # fmt: skip
    local = run_score(opts).table
    remote = run_score(ScoreOptions(**{**opts.__dict__, "output": tmp_path / "ray.arrow"}), backend="ray")
    _compare(local.to_pylist(), remote.table.to_pylist())
    meta = run_metadata(remote.table)
    assert meta[schema.META_BACKEND].startswith("ray ")
    assert meta[schema.META_WEIGHTS_SHA256] == run_metadata(local)[schema.META_WEIGHTS_SHA256]
    assert sum(n["pairs"] for n in remote.stats["nodes"].values()) == GOLDEN_PAIRS


def test_synthetic_set_with_errors_matches_and_reads_uris(local_ray: None, alex_weights: Path, tmp_path: Path) -> None:
    base, cand = _synthetic(tmp_path, SYNTHETIC_PAIRS)
    local = run_score(
        ScoreOptions(base, cand, tmp_path / "local.arrow", device="cpu", weights=alex_weights, typography=False)
    ).table
    opts = ScoreOptions(
        base.as_uri(), cand.as_uri(), tmp_path / "ray.arrow", device="cpu", weights=alex_weights, typography=False
    )
    remote = run_score(opts, backend="ray").table.to_pylist()
    rows = local.to_pylist()
    # Paths are recorded as the URIs the run was given.
    for r in remote:
        for col in (schema.BASELINE_PATH.name, schema.CANDIDATE_PATH.name):
            if r[col] is not None:
                assert r[col].startswith("file:///"), r[col]
                r[col] = r[col].removeprefix("file://")
    _compare(rows, remote)
    statuses = {r[schema.PAIR_ID.name]: r[schema.STATUS.name] for r in remote}
    assert statuses["set/p007"] == schema.STATUS_ERROR
    assert statuses["set/only_here"] == schema.STATUS_MISSING_CANDIDATE
    assert len(remote) == SYNTHETIC_PAIRS + 1


def test_manifest_is_refused_on_ray(tmp_path: Path) -> None:
    opts = ScoreOptions(GOLDEN / "baseline", GOLDEN / "candidate", tmp_path / "r.arrow", no_lpips=True,
                        manifest=GOLDEN / "manifest.jsonl")  # fmt: skip
    with pytest.raises(ScoreConfigError, match="local backend only"):
        run_score(opts, backend="ray")


def test_typography_must_be_switched_off_on_ray(tmp_path: Path) -> None:
    opts = ScoreOptions(GOLDEN / "baseline", GOLDEN / "candidate", tmp_path / "r.arrow", no_lpips=True)
    with pytest.raises(ScoreConfigError, match=r"typography checks run on the local backend only.*typography=False"):
        run_score(opts, backend="ray")
    assert not (tmp_path / "r.arrow").exists()


def _ray_workers() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ray::" in line and "MapWorker" in line]


@pytest.mark.slow
def test_killed_ray_worker_every_pair_exactly_once(alex_weights: Path, tmp_path: Path) -> None:
    base, cand = _synthetic(tmp_path, KILL_PAIRS, size=(160, 200))
    out = tmp_path / "run.arrow"
    cmd = [sys.executable, "-m", "pixgate", "score", str(base), str(cand), "-o", str(out), "--weights",
           str(alex_weights), "--device", "cpu", "--batch-size", "2", "--backend", "ray", "--no-typography",
           "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "RAY_DEDUP_LOGS": "0"})  # fmt: skip
    deadline = time.monotonic() + KILL_DEADLINE_S
    killed = None
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        journal = journal_path(out)
        scored = read_journal(journal)[0].num_rows if journal.exists() else 0
        workers = _ray_workers()
        if scored >= 4 and workers:  # the run is under way: kill a scoring actor mid-run
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    output, _ = proc.communicate(timeout=KILL_DEADLINE_S)
    assert killed is not None, "no Ray scoring worker was seen while the run was going"
    assert proc.returncode == 1, output  # 1: the run has an error row and a missing pair, by design
    ids = read_run(out).column(schema.PAIR_ID.name).to_pylist()
    assert sorted(ids) == sorted(set(ids)) and len(ids) == KILL_PAIRS + 1
