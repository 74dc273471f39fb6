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
from pixgate.config import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, INTERNAL_ERROR_MESSAGE_CHARS

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


def _crash_folder() -> Path:
    """Where internal errors' tracebacks are saved: $PIXGATE_CRASH_DIR, else the system's
    temporary folder."""
    return Path(os.environ.get("PIXGATE_CRASH_DIR") or tempfile.gettempdir())


def _save_traceback(exc: BaseException) -> Path:
    """Write the traceback of an unexpected error to a new file in `_crash_folder()`.

    Returns:
        The file's path.

    Raises:
        OSError: The folder cannot be made or the file written (a read-only folder, a
            file where the folder should be, a full disk); no partial file is left.
    """
    folder = _crash_folder()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    header = f"pixgate {__version__}, Python {sys.version.split()[0]}\ncommand: {sys.argv!r}\n\n"
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception as failure:  # a bug report still gets the error's name
        text = f"{type(exc).__name__}: its traceback could not be formatted ({type(failure).__name__})\n"
    folder.mkdir(parents=True, exist_ok=True)
    # A new file of its own: never written through a link left in a shared folder.
    fd, name = tempfile.mkstemp(prefix=f"pixgate-crash-{stamp}-", suffix=".txt", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(header + text)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def main() -> None:
    """Console-script entry point: every exit code is documented (pixgate.config).

    Errors the commands do not handle themselves end here: a file that cannot be written
    (disk full, read-only) is one line naming it (exit 2); anything else is a bug,
    reported in one line with the file its traceback was saved to (exit 3).
    """
    from pixgate.safe_io import WRITE_ERRNOS, OutputError, printable, write_hint

    try:
        code = app()
    except SystemExit:
        raise
    except KeyboardInterrupt:  # Ctrl-C outside a command's own handling: one line, no traceback
        print_error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except OutputError as exc:
        print_error(str(exc), exc.hint)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            _internal_error(exc)
        where = f"{printable(os.fsdecode(exc.filename))}: " if exc.filename else ""
        print_error(f"{where}{exc.strerror or exc}", write_hint(exc.errno))
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


def _origin(exc: BaseException) -> str:
    """Where an exception was raised, as `file.py:LINE in function`: the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__, limit=-1)
    if not frames:
        return "at an unknown place"
    return f"at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}"


def _internal_error(exc: BaseException) -> NoReturn:
    """Report a bug on standard error and exit 3: one line naming the file its traceback
    was saved to or, when it cannot be saved, one line saying why and where the error was
    raised and a hint. The terminal never gets the traceback itself (a RecursionError's
    runs to thousands of lines)."""
    from pixgate.safe_io import shown

    hint = None
    try:
        where = f"traceback saved to {shown(str(_save_traceback(exc)))}"
        report = "please report it with that file"
    except OSError as failure:
        # mkdir says "File exists" of a file where the folder should be
        reason = "not a folder" if isinstance(failure, FileExistsError) else failure.strerror or str(failure)
        where = f"its traceback could not be saved in {shown(str(_crash_folder()))}: {reason}; raised {_origin(exc)}"
        report = "please report it with this line"
        hint = "set PIXGATE_CRASH_DIR to a writable folder and run the command again to save the traceback"
    try:
        message = str(exc)
    except Exception:  # an exception whose message fails is still reported
        message = "(its message cannot be shown)"
    message = shown(" ".join(message.split()), backslashes=False)  # one line, whatever it says
    if len(message) > INTERNAL_ERROR_MESSAGE_CHARS:
        message = f"{message[:INTERNAL_ERROR_MESSAGE_CHARS]}... ({len(message):,} characters)"
    if "score" in sys.argv[1:2]:
        where += "; the rows scored so far are kept: complete the run with --resume"
    print(
        f"internal error: {type(exc).__name__}: {message} ({where}). This is a bug in pixgate: {report}.",
        file=sys.stderr,
    )
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    sys.exit(EXIT_INTERNAL)
