"""Decode workers: a bounded, self-healing set of processes feeding the scoring loop.

Each worker has its own pipe, so no lock is shared between workers: a worker that dies
(a decoder crash on a hostile file, the OOM killer, a stray kill) cannot block the
others, and only the pairs sent to it are affected. Workers decode in the order pairs
were sent, so the pair being decoded when a worker dies is known: it is retried once in
a fresh worker, and if it kills that one too it becomes an error row. The pairs queued
behind it go back to the queue. No pair is lost and the run goes on.

At most `INFLIGHT_PER_WORKER` pairs per worker are in flight, so memory does not grow
with the number of pairs. A pair that takes longer than `DECODE_TIMEOUT_S` to decode (a
progressive JPEG of thousands of scans takes hours) has its worker stopped and becomes
an error row; the pairs queued behind it go back to the queue.

Decoded pixels do not go through the pipe: a worker writes them to one file per pair in
`SHARED_MEMORY_DIR` (RAM-backed), sends its name, and the scoring process maps the file
and unlinks it at once, so the pixels are read in place and nothing is left behind once
the arrays are gone. Where that directory is missing, not writable or full, pixels
travel through the pipe as before. Files of a worker that died before its answer was
read are removed when the pool closes; those of a run that was killed outright, by the
next pool to start.

Each worker hands back, with the decoded pair, the sha256 of the bytes it read of each
file (`decode_hashed`): the row records them, and `--resume` keeps a row only while its
files still hash the same, at the cost of no extra read.

Workers start with SIGINT blocked: a Ctrl-C at a terminal reaches every process of its
group, and only the scoring process acts on it (it stops the workers as it unwinds);
workers neither print a traceback nor die under a pair that would then be retried.

Each file's name carries its owner, the scoring process, as its pid and start time
(`/proc/PID/stat`), fixed before any worker starts: a pid reused by another process
does not keep a dead run's files alive, and neither does a worker whose parent died (its
parent is then init). The sweep at the start of every pool removes files whose owner is
gone, and files named in the older pid-only form whose owner or worker is gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import mmap
import multiprocessing
import os
import signal
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from pixgate.config import (
    DECODE_TIMEOUT_S,
    DECODE_WORKER_NICE,
    DEFAULT_MAX_PIXELS,
    INFLIGHT_PER_WORKER,
    SHARED_MEMORY_DIR,
)
from pixgate.scoring.decode import DecodedImage, DecodedPair, decode_pair, read_image_file
from pixgate.scoring.pairing import Pair

# spawn, not fork: the parent holds torch (and maybe CUDA) state that must not be
# duplicated into children.
_CTX = multiprocessing.get_context("spawn")
_STOP_TIMEOUT_S = 5.0


_FILE_PREFIX = "pixgate-decoded"
# (baseline sha256, candidate sha256) of the bytes a worker read.
_Digests = tuple[str | None, str | None]
_NO_PIXELS = np.empty((0, 0, 4), np.uint8)
# (field, offset, shape, dtype) of each array in a parked pair's file.
_Layout = list[tuple[str, int, tuple[int, ...], str]]


def _park(dp: DecodedPair, path: str) -> tuple[DecodedPair, str | None, _Layout]:
    """Worker side: write the pair's pixel arrays into the file `path`.

    Returns:
        The pair with its arrays emptied, the file's path and where each array lies in
        it; or, when the file cannot be written (no space, no permission), the pair as
        it is and no path: its pixels then travel through the pipe.
    """
    fields = {
        "baseline": dp.baseline.rgba if dp.baseline is not None else None,
        "candidate": dp.candidate.rgba if dp.candidate is not None else None,
        "candidate_aligned": dp.candidate_aligned,
    }
    layout: _Layout = []
    written: dict[int, int] = {}  # id(array) -> offset: the aligned candidate is often the candidate
    chunks: list[np.ndarray] = []
    offset = 0
    for field, array in fields.items():
        if array is None:
            continue
        if id(array) not in written:
            written[id(array)] = offset
            chunks.append(np.ascontiguousarray(array))
            offset += array.nbytes
        layout.append((field, written[id(array)], tuple(array.shape), array.dtype.str))
    if not layout:
        return dp, None, []
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            for chunk in chunks:
                view = chunk.data.cast("B")
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        return dp, None, []
    parked = dataclasses.replace(
        dp,
        baseline=_with_rgba(dp.baseline, _NO_PIXELS),
        candidate=_with_rgba(dp.candidate, _NO_PIXELS),
        candidate_aligned=_NO_PIXELS if dp.candidate_aligned is not None else None,
    )
    return parked, path, layout


def _unpark(dp: DecodedPair, path: str, layout: _Layout) -> DecodedPair:
    """Scoring side: map a parked pair's file and unlink it; the arrays read it in place.

    The mapping is private (copy-on-write) and lives as long as the arrays do.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        pages = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
        os.unlink(path)
    arrays = {
        field: np.frombuffer(pages, dtype=np.dtype(dtype), count=math.prod(shape), offset=offset).reshape(shape)
        for field, offset, shape, dtype in layout
    }
    return dataclasses.replace(
        dp,
        baseline=_with_rgba(dp.baseline, arrays.get("baseline")),
        candidate=_with_rgba(dp.candidate, arrays.get("candidate")),
        candidate_aligned=arrays.get("candidate_aligned", dp.candidate_aligned),
    )


def decode_hashed(pair: Pair, max_pixels: int, read: Callable[[Path], bytes] | None = None) -> tuple[Pair, DecodedPair]:
    """Decode a scorable pair (`pixgate.scoring.decode.decode_pair`), hashing each file's
    bytes as they are read for it.

    Args:
        pair: The pair; both files are set.
        max_pixels: Decompression-bomb limit.
        read: Reads a file's bytes (an object store's); local files by default
            (`pixgate.scoring.decode.read_image_file`).

    Returns:
        The pair with `baseline_sha256` and `candidate_sha256` set (None for a file that
        could not be read), and the decoded pair.
    """
    assert pair.baseline is not None and pair.candidate is not None, "only scorable pairs are decoded"
    digests: dict[Path, str] = {}

    def read_and_hash(path: Path) -> bytes:
        data = read_image_file(path, max_pixels) if read is None else read(path)
        digests[path] = hashlib.sha256(data).hexdigest()
        return data

    dp = decode_pair(pair.pair_id, pair.baseline, pair.candidate, max_pixels, read_and_hash)
    hashed = dataclasses.replace(
        pair, baseline_sha256=digests.get(pair.baseline), candidate_sha256=digests.get(pair.candidate)
    )
    return hashed, dp


def _with_rgba(image: DecodedImage | None, rgba: np.ndarray | None) -> DecodedImage | None:
    return dataclasses.replace(image, rgba=rgba) if image is not None and rgba is not None else image


def process_token(pid: int) -> str | None:
    """`PID.START`, the pid and the process's start time in clock ticks since boot (field
    22 of /proc/PID/stat): unique for as long as the machine runs, unlike a pid. None when
    the process does not exist or /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return f"{pid}.{int(stat[stat.rindex(b')') + 2 :].split()[19])}"
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _stale(name: str) -> bool:
    """Whether a parked file's owner is gone (see the module)."""
    if not name.startswith(_FILE_PREFIX + "-"):
        return False
    parts = name.removeprefix(_FILE_PREFIX + "-").split("-")
    owner = parts[0]
    if "." in owner:  # PID.START
        pid, _, start = owner.partition(".")
        if not (pid.isdigit() and start.isdigit()):
            return False
        if os.path.isdir("/proc/self"):
            return process_token(int(pid)) != owner
        return not _alive(int(pid))
    if not owner.isdigit():
        return False
    # The older form named the owner by `os.getppid()` in the worker, which is init once the
    # scoring process has died: the worker's own pid tells whether anyone still reads it.
    worker = parts[1] if len(parts) > 1 else ""
    return not _alive(int(owner)) or (worker.isdigit() and not _alive(int(worker)))


def _sweep(directory: str, owner: str | None) -> None:
    """Remove parked files of `owner` (a process token), or (None) of owners that are gone."""
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            mine = owner is not None and name.startswith(f"{_FILE_PREFIX}-{owner}-")
            if mine or (owner is None and _stale(name)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, name))


def _usable(directory: str | None) -> str | None:
    if directory is None or not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
        return None
    return directory


def _worker_main(conn: Connection, max_pixels: int, directory: str | None, owner: str) -> None:
    """A worker's loop: receive (pair_id, baseline, candidate), send back the decoded pair
    as (DecodedPair, parked file or None, layout, digests). `owner` names the scoring
    process in parked files' names; it is fixed by that process before the worker starts."""
    # Blocked from the start (`_start`); ignored too, so that nothing this process runs
    # can unblock it into a KeyboardInterrupt: the scoring process ends the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A decoder's warning about a malformed file (Pillow's "Invalid APNG", say) would reach
    # the terminal from here, where no gate sees it: what the file is gets recorded in its
    # row (its frame count, its format), or the file is an error row.
    warnings.simplefilter("ignore")
    # Below the scoring process in the scheduler: where the cores are shared, decoding
    # ahead must not slow the batch being measured, which every pair waits on. The
    # workers still get every core the scoring process leaves idle.
    if DECODE_WORKER_NICE and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(DECODE_WORKER_NICE)
    serial = 0
    try:
        conn.send(None)  # started: the time limit on its first pair counts from here
    except OSError:
        return
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        pair_id, baseline, candidate = task
        hashed, dp = decode_hashed(Pair(pair_id, baseline, candidate), max_pixels)
        digests: _Digests = (hashed.baseline_sha256, hashed.candidate_sha256)
        if directory is None:
            message: tuple[DecodedPair, str | None, _Layout, _Digests] = (dp, None, [], digests)
        else:
            serial += 1
            parked = _park(dp, os.path.join(directory, f"{_FILE_PREFIX}-{owner}-{os.getpid()}-{serial}"))
            message = (*parked, digests)
        try:
            conn.send(message)
        except OSError:  # the scoring process is gone: nobody will read the file
            if message[1] is not None:
                with contextlib.suppress(OSError):
                    os.unlink(message[1])
            return


def _start(proc: Any) -> None:
    """Start a worker process with SIGINT blocked in it from its first instruction.

    The blocked set is inherited through fork and exec, so the fresh interpreter that
    spawn starts never sees a Ctrl-C, not even while it imports (where a handler set in
    the worker would come too late). The scoring process blocks SIGINT only while it
    starts the worker: one that arrives meanwhile is delivered when it is unblocked.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _Worker:
    def __init__(self, max_pixels: int, directory: str | None, owner: str) -> None:
        self.conn, child = _CTX.Pipe(duplex=True)
        self.proc: Any = _CTX.Process(target=_worker_main, args=(child, max_pixels, directory, owner), daemon=True)
        _start(self.proc)
        child.close()
        self.sent: deque[Pair] = deque()  # in the order the worker will answer
        self.head_since = 0.0  # when the worker began the pair at the head of `sent`

    def send(self, pair: Pair) -> None:
        self.conn.send((pair.pair_id, pair.baseline, pair.candidate))
        if not self.sent:
            self.head_since = time.monotonic()
        self.sent.append(pair)

    def ask_to_stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)

    def stop(self, deadline: float) -> None:
        """Wait for the worker to end until `deadline` (`time.monotonic()`), then kill it."""
        self.proc.join(max(0.0, deadline - time.monotonic()))
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _failed(pair: Pair, message: str) -> DecodedPair:
    return DecodedPair(pair.pair_id, None, None, None, message, 0.0)


class DecodePool:
    """Decodes pairs in worker processes, in any order, with bounded memory.

    Args:
        pairs: Scorable pairs to decode.
        workers: Worker processes.
        max_pixels: Decompression-bomb limit passed to the decoder.
        shared_dir: RAM-backed directory the decoded pixels pass through (see the module
            docstring), or None to send them through the pipes.
        decode_timeout_s: Longest time one pair may take to decode; past it its worker is
            stopped and the pair is an error row (not retried: the same file would take as
            long again). By default `DECODE_TIMEOUT_S`, scaled up with a pixel limit above
            the default.
        inflight: Pairs sent to each worker ahead of its answers (decoded pairs can wait
            for collection, so this bounds their memory).
    """

    def __init__(
        self,
        pairs: Iterable[Pair],
        workers: int,
        max_pixels: int,
        shared_dir: str | None = SHARED_MEMORY_DIR,
        decode_timeout_s: float | None = None,
        inflight: int = INFLIGHT_PER_WORKER,
    ) -> None:
        # The time limit grows with the pixel limit: decoding is linear in pixels.
        self._decode_timeout_s = decode_timeout_s or DECODE_TIMEOUT_S * max(1.0, max_pixels / DEFAULT_MAX_PIXELS)
        self._inflight = inflight
        self._queue = iter(pairs)
        self._requeued: deque[Pair] = deque()
        self._retried: set[str] = set()
        self._max_pixels = max_pixels
        self.shared_dir = _usable(shared_dir)
        #: This process, as parked files name their owner; fixed before any worker starts.
        self.owner = process_token(os.getpid()) or str(os.getpid())
        if self.shared_dir is not None:
            _sweep(self.shared_dir, None)  # left by runs that were killed
        self._workers = [_Worker(max_pixels, self.shared_dir, self.owner) for _ in range(workers)]
        self.restarts = 0
        self.wait_s = 0.0

    def _next(self) -> Pair | None:
        if self._requeued:
            return self._requeued.popleft()
        return next(self._queue, None)

    def refill(self) -> None:
        """Send work to every worker up to the in-flight limit."""
        for worker in self._workers:
            while len(worker.sent) < self._inflight:
                pair = self._next()
                if pair is None:
                    return
                try:
                    worker.send(pair)
                except OSError:  # the worker died; `collect` replaces it
                    self._requeued.appendleft(pair)
                    break

    @property
    def busy(self) -> bool:
        """Work is in flight or waiting to be sent."""
        return bool(self._requeued or any(w.sent for w in self._workers))

    def _replace(self, index: int, out: list[tuple[Pair, DecodedPair]], timed_out: bool = False) -> None:
        """A worker died (or was stopped for taking too long): requeue what it held, retry
        or fail the pair it was decoding."""
        dead = self._workers[index]
        code = dead.proc.exitcode
        victim = dead.sent.popleft() if dead.sent else None
        self._requeued.extendleft(reversed(dead.sent))  # not started: back to the front
        dead.sent.clear()
        dead.conn.close()
        dead.proc.join()
        self._workers[index] = _Worker(self._max_pixels, self.shared_dir, self.owner)
        self.restarts += 1
        if victim is None:
            return
        if timed_out:
            limit = self._decode_timeout_s
            out.append((victim, _failed(victim, f"decoding took longer than {limit:g} s: stopped (a hostile file?)")))
        elif victim.pair_id in self._retried:
            out.append((victim, _failed(victim, f"the decode worker died twice on this pair (exit code {code})")))
        else:
            self._retried.add(victim.pair_id)
            self._requeued.appendleft(victim)

    def collect(self, *, block: bool) -> list[tuple[Pair, DecodedPair]]:
        """Finished pairs; with `block`, wait for at least one (time counted in `wait_s`)."""
        self.refill()
        out: list[tuple[Pair, DecodedPair]] = []
        busy = [w for w in self._workers if w.sent]
        if not busy:
            return out
        handles: list[Any] = [w.conn for w in busy] + [w.proc.sentinel for w in busy]
        t0 = time.perf_counter()
        # Blocking waits no longer than the first worker's time limit on its current pair.
        due = min(w.head_since for w in busy) + self._decode_timeout_s - time.monotonic()
        ready = set(wait(handles, timeout=max(0.0, due) if block else 0))
        if block:
            self.wait_s += time.perf_counter() - t0
        for worker in busy:
            # A worker that died mid-answer raises here; its sentinel says so below.
            with contextlib.suppress(EOFError, OSError):
                while worker.sent and worker.conn.poll():
                    message = worker.conn.recv()  # first: a dead worker raises here, losing nothing
                    if message is not None:  # None: the worker has started
                        dp, path, layout, (base_sha, cand_sha) = message
                        pair = dataclasses.replace(
                            worker.sent.popleft(), baseline_sha256=base_sha, candidate_sha256=cand_sha
                        )
                        out.append((pair, self._received(dp, path, layout)))
                    worker.head_since = time.monotonic()  # it starts on the (next) pair now
        now = time.monotonic()
        for index, worker in enumerate(self._workers):
            if worker.proc.sentinel in ready or not worker.proc.is_alive():
                worker.proc.join()  # the sentinel is ready only once the process has exited
                self._replace(index, out)
            elif worker.sent and now - worker.head_since > self._decode_timeout_s:
                worker.proc.kill()
                worker.proc.join()
                self._replace(index, out, timed_out=True)
        self.refill()
        return out

    @staticmethod
    def _received(dp: DecodedPair, path: str | None, layout: _Layout) -> DecodedPair:
        if path is None:
            return dp
        try:
            return _unpark(dp, path, layout)
        except (OSError, ValueError) as exc:  # gone, or shorter than its layout says
            return DecodedPair(dp.pair_id, None, None, None, f"decoded pixels could not be read back: {exc}", 0.0)

    def close(self, *, at_once: bool = False) -> None:
        """Stop the workers and remove decoded pairs that were never collected.

        Args:
            at_once: Kill the workers rather than let them finish the pair in hand (a run
                that is interrupted or failed: nobody will read what they decode).
        """
        for worker in self._workers:
            worker.ask_to_stop()
        # One deadline for them all: workers stopping one after another would each wait.
        deadline = time.monotonic() + (0.0 if at_once else _STOP_TIMEOUT_S)
        for worker in self._workers:
            worker.stop(deadline)
        if self.shared_dir is not None:
            _sweep(self.shared_dir, self.owner)


__all__ = ["DecodePool", "decode_hashed", "process_token"]
