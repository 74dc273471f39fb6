"""Progress as log lines, for a run that has no terminal (a CI job).

CI services stop a job that prints nothing for minutes, and a progress bar drawn for a
terminal prints nothing to a log. `ProgressLog` writes one line every `interval`
seconds instead: pairs done of the total, the rate and the time left. The rate counts
only pairs scored since scoring began (not those a resume carried over, nor the
start-up), so the first estimate is already a fair one.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressLog:
    """Progress lines every `interval` seconds.

    Args:
        write: Called with each line (no newline).
        interval: Seconds between two lines at least; 0 writes one per update.
        clock: Seconds from some start (`time.monotonic`; tests give their own).
    """

    def __init__(
        self, write: Callable[[str], None], interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._write = write
        self._interval = interval
        self._clock = clock
        self.total: int | None = None
        self.done = 0
        self._carried = 0
        self._began: float | None = None
        self._last: float | None = None

    def pairs(self, total: int, done: int) -> None:
        """The run's pairs are known: `total`, of which `done` carried over."""
        self.total, self.done, self._carried = total, done, done
        self._write(f"pixgate score: {total} pairs" + (f", {done} already done (--resume)" if done else ""))

    def begin(self) -> None:
        """Scoring starts: the rate counts from here."""
        self._began = self._last = self._clock()

    def advance(self, n: int) -> None:
        """`n` more pairs are done; a line is written if one is due."""
        self.done += n
        now = self._clock()
        if self._last is None or now - self._last >= self._interval:
            self._last = now
            self._write(self.line(now))

    def finish(self) -> None:
        """The last line, whenever the previous one was written."""
        self._write(self.line(self._clock()))

    def line(self, now: float) -> str:
        """The progress line at time `now`."""
        total = self.total if self.total is not None else self.done
        share = f" ({100 * self.done / total:.0f} %)" if total else ""
        text = f"pixgate score: {self.done}/{total} pairs{share}"
        elapsed = now - self._began if self._began is not None else 0.0
        scored = self.done - self._carried
        if elapsed > 0 and scored > 0:
            rate = scored / elapsed
            text += f", {rate:.2f} pairs/s, elapsed {_duration(elapsed)}"
            if total > self.done:
                text += f", about {_duration((total - self.done) / rate)} left"
        return text


__all__ = ["ProgressLog"]
