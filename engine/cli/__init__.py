"""The `pixgate` command line: a command per module, sharing `common`.

Each command parses its options, calls one function of the core and renders the result.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import tempfile
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from pixgate import __version__
from pixgate.cli import capture, export, gate, golden, report, score
from pixgate.cli.common import app, command, new_app, print_error
from pixgate.config import EXIT_INTERNAL, EXIT_USAGE

golden_app = new_app(help="Golden set tools.", no_args_is_help=True)
demo_app = new_app(
    help="The demo generator: deterministic posters, with switchable failure modes.", no_args_is_help=True
)
# The commands, in the order the help lists them: the pipeline's.
for _group, _name, _function in (
    (app, "score", score.score),
    (app, "gate", gate.gate),
    (app, "report", report.report),
    (app, "export", export.export),
    (app, "approve", golden.approve),
    (app, "capture", capture.capture),
    (app, "replay", capture.replay),
    (app, "canary", capture.canary),
    (app, "weights", score.weights_cmd),
    (golden_app, "verify", golden.golden_verify),
    (demo_app, "serve", capture.demo_serve),
    (demo_app, "generate", capture.demo_generate),
):
    command(_group, _name)(_function)
app.add_typer(golden_app, name="golden")
app.add_typer(demo_app, name="demo-engine")


def _save_traceback(exc: BaseException) -> Path | None:
    """Write the traceback of an unexpected error to a file; its path, or None."""

    folder = Path(os.environ.get("PIXGATE_CRASH_DIR") or tempfile.gettempdir())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    header = f"pixgate {__version__}, Python {sys.version.split()[0]}\ncommand: {sys.argv!r}\n\n"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A new file of its own: never written through a link left in a shared folder.
        fd, name = tempfile.mkstemp(prefix=f"pixgate-crash-{stamp}-", suffix=".txt", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(header + "".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return Path(name)


def main() -> None:
    """Console-script entry point: every exit code is documented (pixgate.config).

    Errors the commands do not handle themselves end here: a file that cannot be written
    (disk full, read-only) is one line naming it (exit 2); anything else is a bug,
    reported in one line with the file its traceback was saved to (exit 3).
    """
    from pixgate.safe_io import WRITE_ERRNOS, OutputError

    try:
        code = app()
    except SystemExit:
        raise
    except OutputError as exc:
        print_error(str(exc), "free space, or write elsewhere")
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            _internal_error(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        print_error(f"{where}{exc.strerror or exc}", "free space, or write elsewhere")
        sys.exit(EXIT_USAGE)
    except Exception as exc:
        _internal_error(exc)
    sys.exit(code)


def run() -> NoReturn:
    """The process's entry point (the `pixgate` script, `python -m pixgate`): `main()`,
    then the process ends as soon as everything it wrote is closed.

    Python's own finalisation then tears down torch, numba's compiler and their thread
    pools object by object, a noticeable share of a short run's time that no output
    waits for: every file pixgate writes is closed before its command returns. So the exit
    handlers run (atexit's, multiprocessing's, weakref finalizers), the standard streams
    are flushed, and the process exits with `main()`'s status. While a thread that Python
    would wait for is still running, the process exits the usual way, waiting for it. A
    flush that fails for want of space is an error (exit 2, unless the command failed
    already); one whose reader has gone is not.
    """
    try:
        main()
        code: str | int | None = 0
    except SystemExit as exc:
        code = exc.code
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # as SystemExit does with a message: printed, status 1
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader that went away, or a closed stream
            pass
        except OSError as exc:  # a full disk: what was left to write is lost, and says so
            with contextlib.suppress(OSError):
                print_error(f"standard output: {exc.strerror or exc}", "free space, or write elsewhere")
            status = status or EXIT_USAGE
    os._exit(status)


def _internal_error(exc: BaseException) -> NoReturn:
    saved = _save_traceback(exc)
    where = f"traceback saved to {saved}" if saved else "the traceback follows"
    message = " ".join(str(exc).split())  # one line, whatever the exception says
    if "score" in sys.argv[1:2]:
        where += "; the rows scored so far are kept: complete the run with --resume"
    print(
        f"internal error: {type(exc).__name__}: {message} ({where}). This is a bug in pixgate: "
        "please report it with that file.",
        file=sys.stderr,
    )
    if saved is None:
        traceback.print_exception(exc, file=sys.stderr)
    sys.exit(EXIT_INTERNAL)
