"""Decode workers: a worker killed mid-run costs no pair and does not end the run; pixels
reach the scorer intact through shared files or the pipe, and no file is left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixgate.config import SHARED_MEMORY_DIR
from pixgate.runs import schema
from pixgate.runs.files import journal_path, read_journal
from pixgate.scoring.decode import DecodedPair, decode_pair
from pixgate.scoring.pairing import Pair
from pixgate.scoring.score import ScoreOptions, ScoreResult, run_score
from pixgate.scoring.workers import DecodePool, process_token
from tests.conftest import poster

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
    # The killed worker's parked pairs, and any never collected, are gone with the run.
    assert not list(Path(SHARED_MEMORY_DIR).glob(f"pixgate-decoded-{os.getpid()}-*"))


def _mixed_pairs(tmp_path: Path) -> list[Pair]:
    """Pairs that exercise every array a decoded pair carries: alpha, a candidate of
    another size (so the aligned candidate is a third array), and a corrupt file."""
    base, cand = tmp_path / "b", tmp_path / "c"
    base.mkdir()
    cand.mkdir()
    Image.fromarray(poster(30, 40, seed=1, alpha=True)).save(base / "alpha.png")
    Image.fromarray(poster(30, 40, seed=2, alpha=True)).save(cand / "alpha.png")
    Image.fromarray(poster(32, 48, seed=3)).save(base / "resized.png")
    Image.fromarray(poster(64, 96, seed=4)).save(cand / "resized.png")
    Image.fromarray(poster(20, 20, seed=5)).save(base / "broken.png")
    (cand / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    names = ("alpha", "resized", "broken")
    return [Pair(n, base / f"{n}.png", cand / f"{n}.png") for n in names]


def _collect_all(pool: DecodePool) -> dict[str, DecodedPair]:
    got: dict[str, DecodedPair] = {}
    pool.refill()
    while pool.busy:
        got.update((pair.pair_id, dp) for pair, dp in pool.collect(block=True))
    return got


def _same(a: DecodedPair, b: DecodedPair) -> None:
    assert (a.error, a.icc_match) == (b.error, b.icc_match)
    for x, y in ((a.baseline, b.baseline), (a.candidate, b.candidate)):
        assert (x is None) == (y is None)
        if x is not None and y is not None:
            np.testing.assert_array_equal(x.rgba, y.rgba)
            assert (x.format, x.mode, x.has_alpha, x.icc_profile) == (y.format, y.mode, y.has_alpha, y.icc_profile)
    assert (a.candidate_aligned is None) == (b.candidate_aligned is None)
    if a.candidate_aligned is not None:
        np.testing.assert_array_equal(a.candidate_aligned, b.candidate_aligned)


@pytest.mark.parametrize("transport", ["shared files", "pipe"])
def test_pool_delivers_what_decoding_in_place_gives(tmp_path: Path, transport: str) -> None:
    pairs = _mixed_pairs(tmp_path)
    shared = tmp_path / "shm"
    shared.mkdir()
    pool = DecodePool(pairs, 2, 10**8, str(shared) if transport == "shared files" else None)
    try:
        got = _collect_all(pool)
        assert not list(shared.iterdir()), "every file is unlinked once received"
    finally:
        pool.close()
    assert sorted(got) == ["alpha", "broken", "resized"]
    for pair in pairs:
        assert pair.baseline is not None and pair.candidate is not None
        _same(got[pair.pair_id], decode_pair(pair.pair_id, pair.baseline, pair.candidate, 10**8))
    assert got["broken"].error is not None
    resized = got["resized"]
    assert resized.candidate is not None and resized.candidate_aligned is not None
    assert resized.candidate.rgba.shape == (64, 96, 4) and resized.candidate_aligned.shape == (32, 48, 4)
    # Received pixels are the scorer's own: writing to them touches no file or other array.
    resized.candidate_aligned[:] = 0
    assert resized.candidate.rgba.any()


def test_a_shared_dir_that_fails_sends_pixels_through_the_pipe(tmp_path: Path) -> None:
    pairs = _mixed_pairs(tmp_path)
    shared = tmp_path / "shm"
    shared.mkdir()
    pool = DecodePool(pairs, 1, 10**8, str(shared))
    try:
        shared.rmdir()  # every write from now on fails (whoever runs the tests, root too)
        got = _collect_all(pool)
    finally:
        pool.close()
    assert pool.shared_dir == str(shared)
    for pair in pairs:
        assert pair.baseline is not None and pair.candidate is not None
        _same(got[pair.pair_id], decode_pair(pair.pair_id, pair.baseline, pair.candidate, 10**8))


def test_pixels_that_cannot_be_read_back_make_an_error_row(tmp_path: Path) -> None:
    pair = _mixed_pairs(tmp_path)[0]
    parked = DecodePool._received(
        decode_pair(pair.pair_id, pair.baseline, pair.candidate),  # type: ignore[arg-type]
        str(tmp_path / "gone"),
        [("baseline", 0, (30, 40, 4), "|u1")],
    )
    assert parked.baseline is None and parked.error is not None
    assert parked.error.startswith("decoded pixels could not be read back")
    short = tmp_path / "short"
    short.write_bytes(b"\0" * 100)  # less than the 30 x 40 x 4 bytes its layout claims
    cut = DecodePool._received(
        decode_pair(pair.pair_id, pair.baseline, pair.candidate),  # type: ignore[arg-type]
        str(short),
        [("baseline", 0, (30, 40, 4), "|u1")],
    )
    assert cut.error is not None and cut.error.startswith("decoded pixels could not be read back")
    assert not short.exists()


def test_files_of_dead_runs_and_uncollected_pairs_are_removed(tmp_path: Path) -> None:
    shared = tmp_path / "shm"
    shared.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a PID that no longer runs
    parent = process_token(os.getppid())
    assert parent is not None
    pid, _, start = parent.partition(".")
    files = {
        "dead owner": (shared / f"pixgate-decoded-{gone.pid}.1-7-1", False),
        # Same pid as a running process, another start time: the pid was reused.
        "reused pid": (shared / f"pixgate-decoded-{pid}.{int(start) + 1}-7-1", False),
        "running owner": (shared / f"pixgate-decoded-{parent}-7-1", True),
        # Older names: pid only. Owner dead; or owner init (a worker whose scorer died
        # as it started) and the worker gone: both stale. Owner and worker alive: kept.
        "old, dead owner": (shared / f"pixgate-decoded-{gone.pid}-{os.getpid()}-1", False),
        "old, orphaned worker": (shared / f"pixgate-decoded-1-{gone.pid}-1", False),
        "old, running": (shared / f"pixgate-decoded-{os.getppid()}-{os.getpid()}-1", True),
        "not ours": (shared / "someone-elses-file", True),
    }
    for path, _ in files.values():
        path.write_bytes(b"x")
    pool = DecodePool(_mixed_pairs(tmp_path), 2, 10**8, str(shared))
    assert {what: path.exists() for what, (path, _) in files.items()} == {w: k for w, (_, k) in files.items()}
    assert pool.owner == process_token(os.getpid())  # fixed before the workers start
    pool.refill()
    deadline = time.monotonic() + DEADLINE_S
    while len(list(shared.glob(f"pixgate-decoded-{pool.owner}-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the workers park their pairs; nobody collects them
    assert list(shared.glob(f"pixgate-decoded-{pool.owner}-*"))
    pool.close()
    assert sorted(p.name for p in shared.iterdir()) == sorted(p.name for p, kept in files.values() if kept)


@pytest.mark.timeout(120)
def test_files_of_a_scorer_killed_while_its_workers_decode_are_swept(tmp_path: Path) -> None:
    """The scorer dies while its workers still hold pairs: what they parked names the dead
    scorer (not init, their parent once it is gone), and the next pool removes it."""
    shared = tmp_path / "shm"
    shared.mkdir()
    pairs = _mixed_pairs(tmp_path)
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from pixgate.scoring.pairing import Pair\n"
        "from pixgate.scoring.workers import DecodePool\n"
        "pairs = [Pair(p, Path(b), Path(c)) for p, b, c in (a.split('|') for a in sys.argv[2:])]\n"
        "pool = DecodePool(pairs, 2, 10**8, sys.argv[1])\n"
        "pool.refill()\n"
        "print(pool.owner, flush=True)\n"
        "while not [n for n in os.listdir(sys.argv[1]) if n.startswith('pixgate-decoded-')]:\n"
        "    time.sleep(0.01)\n"
        "os._exit(0)\n"  # killed: no close, no sweep, the workers orphaned mid-queue
    )
    args = [f"{p.pair_id}|{p.baseline}|{p.candidate}" for p in pairs]
    done = subprocess.run([sys.executable, "-c", script, str(shared), *args], check=True, timeout=60,
                          capture_output=True, text=True)  # fmt: skip
    owner = done.stdout.strip()
    time.sleep(2.0)  # the orphans finish or give up (a pair whose answer cannot be sent is unlinked)
    left = [p.name for p in shared.glob("pixgate-decoded-*")]
    assert left and all(name.startswith(f"pixgate-decoded-{owner}-") for name in left), (owner, left)
    DecodePool([], 0, 10**8, str(shared)).close()
    assert not list(shared.glob("pixgate-decoded-*"))


def scan_bomb_jpeg(scans: int) -> bytes:
    """A progressive greyscale JPEG of `scans` identical AC scans: a few kB each, each
    costing the decoder a full pass over 1208 x 29512 pixels."""
    import struct

    width, height = 151 * 8, 3689 * 8

    def segment(marker: int, payload: bytes) -> bytes:
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload

    dqt = segment(0xDB, b"\x00" + bytes([1] * 64))
    sof = segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0]))
    dht = segment(0xC4, bytes([0x10]) + bytes([1] + [0] * 15) + bytes([0xE0]))  # one code: EOBRUN r=14
    sos = segment(0xDA, bytes([1, 1, 0x00, 1, 63, 0x00]))
    bits = ("0" + "1" * 14) * 17
    bits += "1" * (-len(bits) % 8)
    data = bytearray()
    for i in range(0, len(bits), 8):
        byte = int(bits[i : i + 8], 2)
        data.append(byte)
        if byte == 0xFF:
            data.append(0)
    return b"\xff\xd8" + dqt + sof + dht + (sos + bytes(data)) * scans + b"\xff\xd9"


#: Decode time limit in the test below: far below what the scan bomb takes, far above a
#: 40 x 30 PNG's decode (milliseconds) plus a worker's start.
TEST_DECODE_TIMEOUT_S = 4.0


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("workers_without_a_scan_limit")
def test_a_pair_that_decodes_for_too_long_is_stopped_and_the_rest_go_on(tmp_path: Path) -> None:
    good = _mixed_pairs(tmp_path)[:2]
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(scan_bomb_jpeg(5000))  # minutes of decoding
    pairs = [Pair("bomb", bomb, bomb), *good]
    pool = DecodePool(pairs, 1, 10**8, decode_timeout_s=TEST_DECODE_TIMEOUT_S)
    done: dict[str, DecodedPair] = {}
    started = time.monotonic()
    pool.refill()
    try:
        while pool.busy:
            for pair, dp in pool.collect(block=True):
                done[pair.pair_id] = dp
    finally:
        pool.close()
    assert set(done) == {"bomb", *(p.pair_id for p in good)}
    assert done["bomb"].error is not None and "decoding took longer than 4 s" in done["bomb"].error
    assert all(done[p.pair_id].error is None for p in good)
    assert time.monotonic() - started < 60  # stopped, not waited out


INTERRUPT_AFTER_ROWS = 4


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_prints_one_line_and_leaves_a_run_to_resume(alex_weights: Path, tmp_path: Path) -> None:
    """Ctrl-C at a terminal sends SIGINT to the whole process group, decode workers
    included: the run says so in one line and exits 130, no worker prints a traceback,
    no process of the group is left, and --resume completes the run."""
    from tests.test_cli import KILL_PAIRS, _cli, _kill_pairs

    base, cand = _kill_pairs(tmp_path)
    out = tmp_path / "run.arrow"
    args = ["score", str(base), str(cand), "-o", str(out), "--weights", str(alex_weights), "--device", "cpu",
            "--batch-size", "2", "--workers", "2", "--progress-interval", "0", "--no-typography"]  # fmt: skip
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    done = re.compile(r"pixgate score: (\d+)/")
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any((m := done.match(line)) and int(m.group(1)) >= INTERRUPT_AFTER_ROWS for line in list(lines)):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert _spawned_children_of(proc.pid), "the decode workers are running"
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to every process of the group
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=10)
    stderr = "".join(lines)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    said = [line for line in lines if "interrupt" in line.lower()]
    assert len(said) == 1 and "--resume" in said[0], stderr
    group_gone = time.monotonic() + 10
    while _group_alive(proc.pid) and time.monotonic() < group_gone:
        time.sleep(0.05)
    assert not _group_alive(proc.pid), "a decode worker outlived the run"

    kept, _ = read_journal(journal_path(out))
    assert INTERRUPT_AFTER_ROWS <= kept.num_rows < KILL_PAIRS
    resumed = subprocess.run(_cli(*args, "--resume", "-q"), capture_output=True, text=True, timeout=500)
    assert resumed.returncode == 0, resumed.stderr
    from pixgate.runs.files import read_run

    ids = read_run(out).column(schema.PAIR_ID.name).to_pylist()
    assert ids == sorted(f"k{i:03d}" for i in range(KILL_PAIRS))


def _spawned_children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_pairs_come_back_with_the_sha256_of_the_bytes_decoded(tmp_path: Path) -> None:
    """The worker hashes what it reads (no second read): a file that reads but does not
    decode still has its digest; one that cannot be read (a FIFO) has none."""
    import hashlib

    pairs = _mixed_pairs(tmp_path)
    fifo = tmp_path / "c" / "fifo.png"
    os.mkfifo(fifo)
    pairs.append(Pair("fifo", pairs[0].baseline, fifo))
    pool = DecodePool(pairs, 2, 10**8, None)
    got: dict[str, Pair] = {}
    try:
        pool.refill()
        while pool.busy:
            got.update((pair.pair_id, pair) for pair, _ in pool.collect(block=True))
    finally:
        pool.close()
    for pair in pairs[:3]:
        assert pair.baseline is not None and pair.candidate is not None
        assert got[pair.pair_id].baseline_sha256 == hashlib.sha256(pair.baseline.read_bytes()).hexdigest()
        assert got[pair.pair_id].candidate_sha256 == hashlib.sha256(pair.candidate.read_bytes()).hexdigest()
    assert got["fifo"].baseline_sha256 == got["alpha"].baseline_sha256 and got["fifo"].candidate_sha256 is None


def test_a_decoders_warning_never_reaches_the_terminal(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """An APNG whose animation header is invalid makes Pillow warn while it decodes the
    default image: the worker keeps the warning off standard error (no gate could see it)
    and the pair decodes as the still image it is."""
    import struct

    from tests.scoring.test_decode import _animation, _chunk

    base, cand = tmp_path / "b.png", tmp_path / "c.png"
    _animation(base, 2)
    data = base.read_bytes()
    at = data.index(b"acTL") - 4
    cand.write_bytes(data[:at] + _chunk(b"acTL", struct.pack(">II", 0, 0)) + data[at + 20 :])
    pool = DecodePool([Pair("p", base, cand)], 1, 10**8)
    try:
        got = pool.collect(block=True)
        while not got:
            got = pool.collect(block=True)
    finally:
        pool.close()
    ((_, decoded),) = got
    assert decoded.error is None and decoded.candidate is not None and decoded.candidate.frames == 1
    assert "Warning" not in capfd.readouterr().err


# How long a freshly spawned worker may take to reach its first line (imports included).
_START_WAIT_S = 30.0


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX scheduling priorities")
def test_workers_run_below_the_scoring_process(tmp_path: Path) -> None:
    """Decode workers lower their priority by `DECODE_WORKER_NICE` (capped by the system's
    lowest), so that where cores are shared the batch being measured goes first."""
    from pixgate.config import DECODE_WORKER_NICE

    pool = DecodePool(_mixed_pairs(tmp_path), 2, 10**8, None)
    try:
        _collect_all(pool)
        own = os.getpriority(os.PRIO_PROCESS, 0)
        want = min(own + DECODE_WORKER_NICE, 19)
        # A worker started again (after a pair it could not finish) lowers itself as it
        # starts: give it the moment that takes.
        deadline = time.monotonic() + _START_WAIT_S
        for worker in pool._workers:
            while os.getpriority(os.PRIO_PROCESS, worker.proc.pid) != want and time.monotonic() < deadline:
                time.sleep(0.05)
            assert os.getpriority(os.PRIO_PROCESS, worker.proc.pid) == want
    finally:
        pool.close()
