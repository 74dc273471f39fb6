"""The process entry point, `pixgate.cli.run`: it ends the process without Python's slow
finalisation, and loses nothing doing so."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pixgate import __version__

_ENTRY = """
import atexit, sys, threading, time
from pixgate.cli import run

atexit.register(lambda: print("exit handler ran"))  # left in the buffer: run() flushes it
if sys.argv[1] == "thread":
    def late() -> None:
        time.sleep(2.0)  # well after the command has returned
        print("thread finished", flush=True)
    threading.Thread(target=late).start()
sys.argv = ["pixgate", *sys.argv[2:]]
run()
"""


def _entry(mode: str, *args: str, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    # Buffered standard streams, as a CI job's usually are: what is not flushed is lost.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    cmd = [sys.executable, "-c", _ENTRY, mode, *args]
    return subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, env=env)


def test_exit_handlers_run_and_buffered_output_is_flushed() -> None:
    done = _entry("plain", "--help")  # stdout is a pipe: block-buffered until flushed
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Usage: pixgate") and "exit handler ran" in lines
    assert "weights" in done.stdout  # the help's last command: the whole text came out


def test_the_status_of_the_command_is_the_process_status(tmp_path: Path) -> None:
    done = _entry("plain", "score", str(tmp_path / "missing"), str(tmp_path), "-o", str(tmp_path / "run.arrow"))
    assert done.returncode == 2
    assert "error:" in done.stderr and "exit handler ran" in done.stdout
    assert _entry("plain", "--version").stdout.startswith(f"pixgate {__version__}")


def test_a_running_thread_is_waited_for() -> None:
    done = _entry("thread", "--version")
    assert done.returncode == 0, done.stderr
    assert "thread finished" in done.stdout and "exit handler ran" in done.stdout


def test_python_dash_m_and_the_script_use_it() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "pixgate"]
    assert script.value == "pixgate.cli:run"
    main_module = Path(sys.modules["pixgate"].__file__ or "").parent / "__main__.py"
    assert "run()" in main_module.read_text()


def test_output_lost_to_a_full_disk_is_an_error(tmp_path: Path) -> None:
    """A command that succeeds quietly, with its standard output on a full device: the
    line left in the buffer cannot be written, and the process says so and exits 2."""
    for side in ("base", "cand"):
        (tmp_path / side).mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / side / "p.png")
    args = ["score", str(tmp_path / "base"), str(tmp_path / "cand"), "-o", str(tmp_path / "run.arrow"),
            "--no-lpips", "--no-typography", "--device", "cpu", "-q"]  # fmt: skip
    with open("/dev/full", "w") as full:
        done = _entry("plain", *args, stdout=full)
    assert done.returncode == 2, done.stderr
    assert "error: standard output:" in done.stderr
    assert (tmp_path / "run.arrow").exists()  # the run itself was written


# A command with a bug: a real recursion overflows, its error chained to another, so that
# the traceback would run to thousands of lines. argv[1] is the message's length.
_CRASH = """
import sys
import pixgate.cli as cli

LENGTH = int(sys.argv[1])

def deeper(n: int) -> int:
    return deeper(n + 1) + 1

def faulty() -> None:
    try:
        {}["key"]
    except KeyError:
        if LENGTH:
            raise ValueError("x" * LENGTH)
        deeper(0)

cli.app = faulty
sys.argv = ["pixgate", "gate"]
cli.run()
"""


def _crash(folder: Path, length: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIXGATE_CRASH_DIR": str(folder)}
    cmd = [sys.executable, "-c", _CRASH, str(length)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder no file can be created in: a read-only tmpfs where mounting is allowed
    (root writes through permissions), else one without write permission."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        folder.chmod(0o555)
    try:
        probe = folder / "probe"
        try:
            probe.write_text("")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("no folder can be made read-only here (root, and mounting is not permitted)")
        yield folder
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(folder)], check=False)
        folder.chmod(0o755)


@pytest.mark.parametrize("where", ["a file", "beneath a file", "a read-only folder"])
def test_a_traceback_that_cannot_be_saved_is_not_printed(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An internal error whose crash report cannot be written: one line that says why and
    where the error was raised, one hint, and no traceback."""
    file = tmp_path / "crashes"
    file.write_text("not a folder\n")
    if where == "a read-only folder":
        folder = request.getfixturevalue("read_only_folder")
    else:
        folder = file if where == "a file" else file / "sub"
    done = _crash(folder)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr[:2000]
    assert lines[0].startswith("internal error: RecursionError: maximum recursion depth exceeded"), lines[0]
    assert f"its traceback could not be saved in {folder}: " in lines[0]
    assert "raised at <string>:" in lines[0] and "in deeper" in lines[0]
    assert lines[1].startswith("hint: set PIXGATE_CRASH_DIR to a writable folder")
    assert "Traceback" not in done.stderr
    assert file.read_text() == "not a folder\n"
    if folder.is_dir():
        assert list(folder.iterdir()) == []


def test_a_long_message_stays_one_line_and_is_saved_whole(tmp_path: Path) -> None:
    from pixgate.config import INTERNAL_ERROR_MESSAGE_CHARS

    done = _crash(tmp_path / "crashes", length=1_000_000)
    assert done.returncode == 3, done.stderr[:2000]
    (line,) = done.stderr.splitlines()
    assert line.startswith("internal error: ValueError: xxx") and "(1,000,000 characters)" in line
    assert len(line) < INTERNAL_ERROR_MESSAGE_CHARS + 400
    (saved,) = (tmp_path / "crashes").glob("pixgate-crash-*.txt")
    assert str(saved) in line
    text = saved.read_text()
    assert "x" * 1_000_000 in text and "During handling of the above exception" in text
