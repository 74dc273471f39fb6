"""Decode workers: a bounded, self-healing process pool feeding the scoring loop.

At most `INFLIGHT_PER_WORKER` decodes per worker are in flight, so memory does not grow
with the number of pairs. If a worker dies (a decoder crash on a hostile file, the OOM
killer), the pool is rebuilt and the pairs that were in flight are decoded again one at
a time: the innocent ones succeed, and the one that kills a worker on its own becomes an
error row. No pair is lost and the run goes on.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from engine.config import INFLIGHT_PER_WORKER
from engine.decode import DecodedPair, decode_pair
from engine.pairing import Pair


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
        self._suspects: deque[Pair] = deque()  # in flight when a worker died
        self._isolated: set[str] = set()  # decoded alone after a crash
        self._workers = workers
        self._max_pixels = max_pixels
        self._max_inflight = workers * INFLIGHT_PER_WORKER
        self._inflight: dict[Future[DecodedPair], tuple[Pair, int]] = {}
        self._generation = 0
        self._pool = self._new_pool()
        self.restarts = 0
        self.wait_s = 0.0

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent holds torch (and maybe CUDA) state that must not be
        # duplicated into children.
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"))

    def _restart(self, generation: int) -> None:
        if generation != self._generation:
            return  # this pool was already replaced
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
        self._generation += 1
        self.restarts += 1

    def _submit(self, pair: Pair) -> None:
        assert pair.baseline is not None and pair.candidate is not None  # scorable pairs only
        for _ in range(2):
            try:
                fut = self._pool.submit(decode_pair, pair.pair_id, pair.baseline, pair.candidate, self._max_pixels)
            except BrokenProcessPool:
                self._restart(self._generation)
                continue
            self._inflight[fut] = (pair, self._generation)
            return
        raise RuntimeError("decode workers cannot be started")

    def refill(self) -> None:
        """Submit work up to the in-flight limit (suspects one at a time, alone)."""
        if self._suspects:
            if not self._inflight:
                suspect = self._suspects.popleft()
                self._isolated.add(suspect.pair_id)
                self._submit(suspect)
            return
        while len(self._inflight) < self._max_inflight:
            pair = next(self._queue, None)
            if pair is None:
                return
            self._submit(pair)

    @property
    def busy(self) -> bool:
        """Work is in flight or waiting to be resubmitted."""
        return bool(self._inflight or self._suspects)

    def collect(self, *, block: bool) -> list[tuple[Pair, DecodedPair]]:
        """Finished pairs; with `block`, wait for at least one (time counted in `wait_s`)."""
        self.refill()
        done = [f for f in self._inflight if f.done()]
        if not done and block and self._inflight:
            t0 = time.perf_counter()
            done = list(wait(self._inflight, return_when=FIRST_COMPLETED)[0])
            self.wait_s += time.perf_counter() - t0
        out = []
        for fut in done:
            pair, generation = self._inflight.pop(fut)
            try:
                out.append((pair, fut.result()))
            except BrokenProcessPool:
                self._restart(generation)
                if pair.pair_id in self._isolated:
                    out.append((pair, _failed(pair, "the decode worker died while decoding this pair alone")))
                else:
                    self._suspects.append(pair)
            except Exception as exc:
                out.append((pair, _failed(pair, f"decode worker failed: {type(exc).__name__}: {exc}")))
        self.refill()
        return out

    def close(self) -> None:
        """Stop the workers; queued work is cancelled."""
        self._pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["DecodePool"]
