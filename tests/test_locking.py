"""One owner per output: the lock between real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pixgate.locking import LockBusy, OutputLock, lock_path

pytestmark = pytest.mark.timeout(60)

_HOLD = """
import sys, time
from pathlib import Path
from pixgate.locking import OutputLock
lock = OutputLock(Path(sys.argv[1]), "--output").acquire()
print("held", flush=True)
sys.stdin.readline()  # until the test says so
"""


def test_a_second_owner_is_refused_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "run.arrow"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockBusy, match=rf"run.arrow is in use by another pixgate command \(pid {holder.pid} on "):
        OutputLock(out, "--output").acquire()
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(timeout=30)
    with OutputLock(out, "--output"):  # free once its holder is gone
        assert lock_path(out).exists()
    assert not lock_path(out).exists()  # removed on release


def test_a_killed_holder_leaves_a_lock_file_the_next_owner_takes(tmp_path: Path) -> None:
    out = tmp_path / "run.arrow"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait(timeout=30)
    assert lock_path(out).exists()  # stale file, no holder
    lock = OutputLock(out, "--output").acquire()
    assert f"pid {__import__('os').getpid()} " in lock_path(out).read_text()
    lock.release()


def test_a_lock_file_removed_by_its_holder_is_not_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The holder removes the file between another process opening it and locking it: the
    late one must lock the file now at the path, not the removed one (else a third
    process would take the path's new file and both would write)."""
    import fcntl
    import os

    from pixgate import locking

    out = tmp_path / "run.arrow"
    real_flock = fcntl.flock
    calls = 0

    def flock_after_removal(fd: int, op: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            os.unlink(lock_path(out))  # what the previous holder's release does
        real_flock(fd, op)

    monkeypatch.setattr(locking.fcntl, "flock", flock_after_removal)
    lock = OutputLock(out, "--output").acquire()
    monkeypatch.setattr(locking.fcntl, "flock", real_flock)
    assert calls == 2  # it noticed and started again
    assert lock._fd is not None and os.fstat(lock._fd).st_ino == os.stat(lock_path(out)).st_ino
    with pytest.raises(LockBusy):
        OutputLock(out, "--output").acquire()
    lock.release()


def test_a_lock_file_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    """A full disk (here the file-size limit) while the holder writes its name: one clear
    error naming the lock file, and no lock left behind."""
    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from pixgate.locking import LockUnavailable, OutputLock\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "try:\n"
        "    OutputLock(Path(sys.argv[1]), '--output').acquire()\n"
        "except LockUnavailable as exc:\n"
        "    print(exc)\n"
    )
    out = tmp_path / "run.arrow"
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=30)
    assert f"cannot write the lock file {lock_path(out)}: File too large" in done.stdout, done
    assert not lock_path(out).exists()


@pytest.mark.parametrize("kind", ["fifo", "socket", "folder", "link to /dev/null"])
def test_a_lock_name_taken_by_something_else_is_refused_and_left_alone(kind: str, tmp_path: Path) -> None:
    """A FIFO, a socket, a folder or a link to a device at the lock file's name: refused,
    naming it, before anything is written to it or removed; nothing blocks on the FIFO."""
    import os
    import socket
    import stat

    from pixgate.locking import LockUnavailable

    out = tmp_path / "run.arrow"
    taken = lock_path(out)
    server = socket.socket(socket.AF_UNIX)
    if kind == "fifo":
        os.mkfifo(taken)
    elif kind == "socket":
        server.bind(str(taken))
    elif kind == "folder":
        taken.mkdir()
    else:
        taken.symlink_to("/dev/null")
    before = os.lstat(taken)
    with pytest.raises(LockUnavailable, match=f"the lock file {taken} is .*not a regular file"):
        OutputLock(out, "--output").acquire()
    server.close()
    after = os.lstat(taken)
    assert (after.st_ino, after.st_mode, after.st_size) == (before.st_ino, before.st_mode, before.st_size)
    if kind == "fifo":  # nothing was written into it
        fd = os.open(taken, os.O_RDONLY | os.O_NONBLOCK)
        try:
            assert os.read(fd, 100) == b""
        finally:
            os.close(fd)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == [taken.name]
