"""The process entry point, `pixgate.cli.run`: it ends the process without Python's slow
finalisation, and loses nothing doing so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
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
