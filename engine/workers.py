"""Decode workers: a bounded, self-healing set of processes feeding the scoring loop.

Each worker has its own pipe, so no lock is shared between workers: a worker that dies
(a decoder crash on a hostile file, the OOM killer, a stray kill) cannot block the
others, and only the pairs sent to it are affected. Workers decode in the order pairs
were sent, so the pair being decoded when a worker dies is known: it is retried once in
a fresh worker, and if it kills that one too it becomes an error row. The pairs queued
behind it go back to the queue. No pair is lost and the run goes on.

At most `INFLIGHT_PER_WORKER` pairs per worker are in flight, so memory does not grow
with the number of pairs.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections import deque
from collections.abc import Iterable
from multiprocessing.connection import Connection, wait
from typing import Any

from engine.config import INFLIGHT_PER_WORKER
from engine.decode import DecodedPair, decode_pair
from engine.pairing import Pair

# spawn, not fork: the parent holds torch (and maybe CUDA) state that must not be
# duplicated into children.
_CTX = multiprocessing.get_context("spawn")
_STOP_TIMEOUT_S = 5.0


def _worker_main(conn: Connection, max_pixels: int) -> None:
    """A worker's loop: receive (pair_id, baseline, candidate), send back a DecodedPair."""
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        pair_id, baseline, candidate = task
        conn.send(decode_pair(pair_id, baseline, candidate, max_pixels))


class _Worker:
    def __init__(self, max_pixels: int) -> None:
        self.conn, child = _CTX.Pipe(duplex=True)
        self.proc: Any = _CTX.Process(target=_worker_main, args=(child, max_pixels), daemon=True)
        self.proc.start()
        child.close()
        self.sent: deque[Pair] = deque()  # in the order the worker will answer

    def send(self, pair: Pair) -> None:
        self.conn.send((pair.pair_id, pair.baseline, pair.candidate))
        self.sent.append(pair)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(_STOP_TIMEOUT_S)
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
    """

    def __init__(self, pairs: Iterable[Pair], workers: int, max_pixels: int) -> None:
        self._queue = iter(pairs)
        self._requeued: deque[Pair] = deque()
        self._retried: set[str] = set()
        self._max_pixels = max_pixels
        self._workers = [_Worker(max_pixels) for _ in range(workers)]
        self.restarts = 0
        self.wait_s = 0.0

    def _next(self) -> Pair | None:
        if self._requeued:
            return self._requeued.popleft()
        return next(self._queue, None)

    def refill(self) -> None:
        """Send work to every worker up to the in-flight limit."""
        for worker in self._workers:
            while len(worker.sent) < INFLIGHT_PER_WORKER:
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

    def _replace(self, index: int, out: list[tuple[Pair, DecodedPair]]) -> None:
        """A worker died: requeue what it held, retry or fail the pair it was decoding."""
        dead = self._workers[index]
        code = dead.proc.exitcode
        victim = dead.sent.popleft() if dead.sent else None
        self._requeued.extendleft(reversed(dead.sent))  # not started: back to the front
        dead.sent.clear()
        dead.conn.close()
        dead.proc.join()
        self._workers[index] = _Worker(self._max_pixels)
        self.restarts += 1
        if victim is None:
            return
        if victim.pair_id in self._retried:
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
        ready = set(wait(handles, timeout=None if block else 0))
        if block:
            self.wait_s += time.perf_counter() - t0
        for worker in busy:
            # A worker that died mid-answer raises here; its sentinel says so below.
            with contextlib.suppress(EOFError, OSError):
                while worker.sent and worker.conn.poll():
                    result = worker.conn.recv()  # first: a dead worker raises here, losing nothing
                    out.append((worker.sent.popleft(), result))
        for index, worker in enumerate(self._workers):
            if worker.proc.sentinel in ready or not worker.proc.is_alive():
                worker.proc.join()  # the sentinel is ready only once the process has exited
                self._replace(index, out)
        self.refill()
        return out

    def close(self) -> None:
        """Stop the workers."""
        for worker in self._workers:
            worker.stop()


__all__ = ["DecodePool"]
