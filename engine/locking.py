"""One owner per output: an exclusive lock held for as long as a command writes a file.

`OutputLock(path)` takes `PATH.lock` with `flock`, so the lock goes with the process: a
run that is killed leaves no stale lock, only perhaps the file, which the next run takes
over. The holder writes who it is (pid, host, start time, command) into the file, so a
second run on the same output fails at once naming the holder.

The lock file is removed when the lock is released. Between another process opening the
file and locking it, the holder may remove it; so after locking, a process checks that
the path still names the file it locked, and starts again otherwise.

The lock file is a regular file or nothing: a FIFO, a device, a socket or a folder left at
its name is refused (`LockUnavailable`) before anything is written to it or removed, and a
symlink there is never followed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from pixgate.errors import UsageError
from pixgate.safe_io import file_kind


class LockBusy(Exception):
    """Another process holds the lock; the message names it."""


class LockUnavailable(Exception):
    """The lock file cannot be created (a read-only folder, no permission)."""


def lock_path(path: Path) -> Path:
    """The lock file guarding `path`."""
    return path.with_name(path.name + ".lock")


def _holder_text() -> str:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    return f"pid {os.getpid()} on {socket.gethostname()}, since {started}: {command[:300]}"


def _holder(fd: int) -> str:
    """Who holds the lock, as it wrote it; read twice, since the holder writes its name
    just after taking the lock."""
    for _ in range(2):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 1000).decode("utf-8", "replace").strip()
        if text:
            return text
        time.sleep(0.05)
    return "another process"


class OutputLock:
    """An exclusive, non-blocking lock on `path` (through `path.lock`).

    Args:
        path: The file (or folder) to own.
        what: How messages name it, e.g. "--output".
    """

    def __init__(self, path: Path, what: str) -> None:
        self.target = path
        self.path = lock_path(path)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock.

        Raises:
            LockBusy: Another process holds it.
            LockUnavailable: The lock file cannot be created.
        """
        while True:
            # Checked before opening (opening a device can act on it), and again on the
            # open descriptor (the name may have been swapped in between).
            with contextlib.suppress(OSError):  # not there, or not reachable: the open says why
                self._check_kind(os.lstat(self.path).st_mode)
            try:
                # O_NONBLOCK: a FIFO swapped in meanwhile must not block the open.
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                fd = os.open(self.path, flags, 0o644)
            except OSError as exc:
                raise LockUnavailable(f"{self.what}: cannot create the lock file {self.path}: {exc.strerror}") from None
            try:
                self._check_kind(os.fstat(fd).st_mode)
            except LockUnavailable:
                os.close(fd)
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _holder(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise LockUnavailable(f"{self.what}: cannot lock {self.path}: {exc.strerror}") from None
                raise LockBusy(
                    f"{self.what}: {self.target} is in use by another pixgate command ({holder}); "
                    "wait for it to finish, or write elsewhere"
                ) from None
            try:
                now = os.stat(self.path, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            held = os.fstat(fd)
            if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                os.close(fd)  # the previous holder removed it meanwhile: take the new one
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, _holder_text().encode("utf-8", "replace") + b"\n")
            except OSError as exc:  # a full disk: say so, naming the file
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                os.close(fd)
                raise LockUnavailable(f"{self.what}: cannot write the lock file {self.path}: {exc.strerror}") from None
            self._fd = fd
            return self

    def _check_kind(self, mode: int) -> None:
        if not stat.S_ISREG(mode):
            raise LockUnavailable(
                f"{self.what}: the lock file {self.path} is {file_kind(mode)}, not a regular file: remove it, "
                "or write elsewhere"
            )

    def release(self) -> None:
        """Remove the lock file and let go of the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


@contextlib.contextmanager
def holding(path: Path, what: str, error: type[Exception]) -> Iterator[OutputLock]:
    """Hold the lock on `path` for a `with` block; a lock that cannot be taken raises
    `error` (the command's usage error) with the message naming the holder.

    Args:
        path: The file (or folder) to own.
        what: How messages name it: an option's field name (`output`), which a
            `UsageError` names as an option, or words (`golden set DIR`).
        error: The exception to raise.
    """
    try:
        lock = OutputLock(path, what).acquire()
    except (LockBusy, LockUnavailable) as exc:
        if issubclass(error, UsageError) and what.isidentifier():
            detail = str(exc).removeprefix(f"{what}: ")
            raise error.about("{" + what + "}: {detail}", detail=detail) from None
        raise error(str(exc)) from None
    try:
        yield lock
    finally:
        lock.release()


__all__ = ["LockBusy", "LockUnavailable", "OutputLock", "holding", "lock_path"]
