"""Progress lines for a run without a terminal: due every interval, with an honest rate."""

from __future__ import annotations

from pixgate.scoring.progress import ProgressLog


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_every_interval_with_rate_and_time_left() -> None:
    lines: list[str] = []
    clock = _Clock()
    log = ProgressLog(lines.append, interval=10.0, clock=clock)
    log.pairs(1000, 100)  # a resume: 100 carried over
    clock.now += 30.0  # start-up (model, workers) does not count toward the rate
    log.begin()
    for _ in range(9):  # 9 x 10 pairs, one batch a second
        clock.now += 1.0
        log.advance(10)
    assert len(lines) == 1  # the pairs line; nothing is due yet
    clock.now += 1.0
    log.advance(10)  # 10 s since scoring began: a line is due
    assert lines[-1] == "pixgate score: 200/1000 pairs (20 %), 10.00 pairs/s, elapsed 10s, about 1m20s left"
    assert lines[0] == "pixgate score: 1000 pairs, 100 already done (--resume)"
    clock.now += 3.0
    log.advance(5)
    assert len(lines) == 2  # 3 s later: not yet
    log.finish()
    assert lines[-1].startswith("pixgate score: 205/1000 pairs (20 %), 8.08 pairs/s")


def test_interval_zero_writes_every_update_and_a_finished_run_has_no_time_left() -> None:
    lines: list[str] = []
    clock = _Clock()
    log = ProgressLog(lines.append, interval=0.0, clock=clock)
    log.pairs(3, 0)
    log.begin()
    for _ in range(3):
        clock.now += 2.0
        log.advance(1)
    assert len(lines) == 4 and lines[-1] == "pixgate score: 3/3 pairs (100 %), 0.50 pairs/s, elapsed 6s"
