"""`pixgate capture`: run golden prompts through a generator and keep what comes back.

Generators are HTTP endpoints (POST JSON `{"prompt", "seed", ...extra}`; the answer is
image bytes, or JSON with a base64 `image` field) or local commands (a template such as
`python gen.py --prompt {prompt} --seed {seed} --out {out}`).

Every prompt ends as one row of `DIR/capture.arrow` (pixgate.runs.schema.CAPTURE_COLUMNS), its
image as `DIR/<id>.<ext>`; a prompt that fails after its attempts is an `error` row with
the last error, never a gap. Rows are journaled as they finish, so `--resume` after a
crash or a kill skips the prompts already captured.

Retries are bounded and polite: connection errors, timeouts, 429 and 5xx are retried up
to `max_attempts` in all, after an exponential backoff with full jitter, or after the
server's `Retry-After` when it sends one; other 4xx and bodies that are not images are
not retried. An overall deadline stops new attempts; prompts it cuts off are error rows.

Generators are not trusted either:

- each attempt has one time limit for all of it (connecting, waiting, every read, or the
  whole command), `timeout_s` or what is left of the deadline if less, enforced by
  cancelling the request (HTTP) or killing the command's process group, so a server that
  drips its answer one byte at a time cannot stretch it;
- an answer larger than `max_bytes` (the body, or the file a command writes) is an error
  and is not read further; a command's output must be a regular file (a symlink is
  refused and never followed), and only the tail of its stderr is kept;
- timing headers (`X-GPU-Ms`, `X-Energy-J`) that are not finite numbers in range are
  stored as null, with a note in the row;
- seeds are checked with the rest of the prompts file before any generator runs;
- an id that is not a plain relative name (absolute, `..`, hidden, control characters,
  too long) is captured under a hashed name (`pixgate.safe_io.safe_file_name`); the row
  keeps the id and its `image` names the file;
- any failure of one prompt is that prompt's error row; only a capture file that cannot
  be written ends the capture.

One capture at a time per folder: `capture.arrow.lock` is held while it runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pixgate import __version__
from pixgate.capture.generators import Attempt, Command, Http
from pixgate.capture.prompts import CaptureConfigError, Prompt, in_sample, load_prompts
from pixgate.config import (
    CAPTURE_BACKOFF_MAX_S,
    CAPTURE_BACKOFF_S,
    CAPTURE_CONCURRENCY,
    CAPTURE_ERROR_TAIL_BYTES,
    CAPTURE_MAX_ATTEMPTS,
    CAPTURE_MAX_BYTES,
    CAPTURE_RETRY_AFTER_MAX_S,
    CAPTURE_TIMEOUT_S,
)
from pixgate.locking import holding
from pixgate.runs import schema
from pixgate.runs.files import check_journalled_output
from pixgate.safe_io import (
    OutputError,
    UnsafeInputError,
    atomic_write,
    contained,
    printable,
    safe_file_name,
)

CAPTURE_FILE = "capture.arrow"
#: Where a command writes each attempt's image before it is checked (inside --output).
STAGING_DIR = ".pixgate-staging"
_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
_HTTP_GPU_NOTE = "HTTP generators: gpu_ms and energy_j as reported in X-GPU-Ms and X-Energy-J response headers"


@dataclass(frozen=True)
class CaptureOptions:
    """Everything a capture needs; mirrors the CLI.

    Attributes:
        prompts: The prompts file.
        out: Folder for the images and capture.arrow.
        endpoint: HTTP generator URL (exclusive with `command`).
        command: Command template (exclusive with `endpoint`).
        max_attempts: Attempts per prompt, retries included.
        timeout_s: Per-request or per-command timeout.
        deadline_s: Overall time limit; None for none.
        concurrency: Requests in flight.
        sample: Fraction of prompts to capture (deterministic by id); None for all.
        resume: Skip prompts already captured in `out`.
        backoff_s: First retry's backoff cap.
        max_bytes: Largest answer accepted per attempt (body or command output).
    """

    prompts: Path
    out: Path
    endpoint: str | None = None
    command: str | None = None
    max_attempts: int = CAPTURE_MAX_ATTEMPTS
    timeout_s: float = CAPTURE_TIMEOUT_S
    deadline_s: float | None = None
    concurrency: int = CAPTURE_CONCURRENCY
    sample: float | None = None
    resume: bool = False
    backoff_s: float = CAPTURE_BACKOFF_S
    max_bytes: int = CAPTURE_MAX_BYTES


@dataclass
class CaptureResult:
    """A finished capture.

    Attributes:
        table: capture.arrow's rows, sorted by id.
        stats: Counts and timings.
    """

    table: Any
    stats: dict[str, Any]

    @property
    def all_ok(self) -> bool:
        """Every prompt produced an image."""
        return all(s == schema.STATUS_OK for s in self.table.column(schema.CAPTURE_STATUS.name).to_pylist())


def _previous(out: Path, resume: bool) -> tuple[Any, set[str]]:
    """Rows of an earlier capture into `out` (file or journal) and the ids it got.

    Raises:
        CaptureConfigError: An interrupted capture with rows, without `resume`; or an
            earlier capture that cannot be read.
    """
    from pixgate.runs.files import journal_path, read_journal, read_run

    path = out / CAPTURE_FILE
    table = None
    try:
        if journal_path(path).exists():
            table, _ = read_journal(journal_path(path), schema.CAPTURE_COLUMNS)
            if not resume and table.num_rows:
                raise CaptureConfigError.about(
                    "an interrupted capture exists in {out_folder}: pass {resume} to complete it, or delete "
                    "{journal} to start over",
                    out_folder=out,
                    journal=journal_path(path),
                )
        elif path.exists() and resume:
            table = read_run(path, check=False)  # checked just below, like the journal
        if table is not None:
            schema.check_table(table, path, "capture")  # carried rows must not repeat an id
    except (OSError, ValueError) as exc:  # schema.TableError too
        raise CaptureConfigError.about(
            "{resume}: cannot read the earlier capture in {out_folder}: {problem}", out_folder=out, problem=exc
        ) from None
    if table is None or not resume:
        return None, set()
    ok = table.filter(table.column(schema.CAPTURE_STATUS.name).to_numpy(zero_copy_only=False) == schema.STATUS_OK)
    if schema.SEED.name in ok.column_names:
        import pyarrow.compute as pc

        # Seeds were int64 before they were range-checked: a negative one's prompt cannot
        # be in a prompts file now, so its row is not carried over.
        ok = ok.filter(pc.fill_null(pc.greater_equal(ok.column(schema.SEED.name), 0), True))
    try:
        ok = ok.cast(schema.arrow_schema(ok.schema.metadata, schema.CAPTURE_COLUMNS))
    except (ValueError, TypeError) as exc:  # pyarrow's ArrowInvalid and ArrowTypeError
        raise CaptureConfigError.about(
            "{resume}: cannot carry over the rows of the earlier capture in {out_folder}: {problem}",
            out_folder=out,
            problem=exc,
        ) from None
    return ok, set(ok.column(schema.ID.name).to_pylist())


def _unstorable(row: dict[str, Any], exc: Exception) -> dict[str, Any]:
    """The error row of a prompt whose row the capture file could not hold (a value out
    of its column's range): its id and prompt, and why."""
    kept = (schema.ID.name, schema.PROMPT.name)
    error = printable(f"its row could not be stored ({type(exc).__name__}: {exc})")[:CAPTURE_ERROR_TAIL_BYTES]
    return {
        **{name: row.get(name) if name in kept else None for name in (c.name for c in schema.CAPTURE_COLUMNS)},
        schema.CAPTURE_STATUS.name: schema.STATUS_ERROR,
        schema.CAPTURE_ERROR.name: error,
    }


def _backoff(attempt: int, base: float, rng: random.Random) -> float:
    return rng.uniform(0.0, min(CAPTURE_BACKOFF_MAX_S, base * 2 ** (attempt - 1)))


def _check_options(opts: CaptureOptions) -> None:
    if (opts.endpoint is None) == (opts.command is None):
        raise CaptureConfigError.about("give exactly one generator: {endpoint} URL or {command} TEMPLATE")
    if opts.max_attempts < 1:
        raise CaptureConfigError.about("{max_attempts}: got {got}; use 1 or more", got=opts.max_attempts)
    if opts.sample is not None and not 0.0 < opts.sample <= 1.0:
        raise CaptureConfigError.about("{sample}: got {got}; use a fraction in (0, 1]", got=opts.sample)
    if opts.max_bytes < 1:
        raise CaptureConfigError.about("{max_bytes}: got {got}; use 1 or more", got=opts.max_bytes)
    if opts.endpoint is not None and not opts.endpoint.startswith(("http://", "https://")):
        raise CaptureConfigError.about("{endpoint}: got {got!r}; use an http:// or https:// URL", got=opts.endpoint)


class _Capturer:
    """Captures one prompt at a time (from several threads) into an output folder."""

    def __init__(self, opts: CaptureOptions, engine: Http | Command, started: float) -> None:
        self.opts = opts
        self.engine = engine
        self.deadline = started + opts.deadline_s if opts.deadline_s is not None else None
        self.staging = opts.out / STAGING_DIR
        self.lock = threading.Lock()
        self.requests = 0

    def _limit(self) -> tuple[float, bool]:
        """This attempt's time limit: the timeout, or what is left of the deadline if less
        (and whether the deadline is what sets it)."""
        if self.deadline is None:
            return self.opts.timeout_s, False
        left = max(0.0, self.deadline - time.monotonic())
        return min(self.opts.timeout_s, left), left < self.opts.timeout_s

    def _attempts(self, prompt: Prompt, staging: Path) -> tuple[Attempt, int, str | None]:
        """Attempts until an image, a failure not worth retrying, or the limits; returns
        the last attempt, the attempts made and the decoded image's format."""
        from pixgate.scoring.decode import DecodeError, decode_bytes

        opts = self.opts
        rng = random.Random(f"{prompt.id}\0backoff")  # noqa: S311 (jitter, not secrets)
        result = Attempt(False, False, "deadline reached before this prompt was tried")
        attempts = 0
        for attempt in range(1, opts.max_attempts + 1):
            limit, by_deadline = self._limit()
            if limit <= 0.0:
                if attempts:
                    result.error = f"{result.error}; deadline reached before attempt {attempt}"
                break
            attempts = attempt
            with self.lock:
                self.requests += 1
            try:
                result = self.engine.attempt(prompt, staging, limit)
            except Exception as exc:  # one prompt's unexpected failure is its error row, not the run's end
                result = Attempt(False, False, f"internal error: {type(exc).__name__}: {exc}")
            if by_deadline and result.error is not None and "(timeout)" in result.error:
                result.error += "; cut by --deadline"
            if result.ok:
                try:
                    return result, attempts, decode_bytes(result.image or b"").format
                except DecodeError as exc:
                    result = Attempt(False, False, f"the answer is not a decodable image: {exc}", result.http_status)
            if not result.retry or attempt == opts.max_attempts:
                break
            wait = result.retry_after if result.retry_after is not None else _backoff(attempt, opts.backoff_s, rng)
            if result.retry_after is not None and result.retry_after > CAPTURE_RETRY_AFTER_MAX_S:
                limit_s = CAPTURE_RETRY_AFTER_MAX_S
                result.error = (
                    f"{result.error}; Retry-After {result.retry_after:g} s is beyond the {limit_s:g} s honoured"
                )
                break
            if self.deadline is not None and time.monotonic() + wait >= self.deadline:
                result.error = f"{result.error}; the deadline falls before the next attempt"
                break
            time.sleep(wait)
        return result, attempts, None

    def row(self, prompt: Prompt) -> dict[str, Any]:
        """The prompt's row, its image saved; any failure becomes the row's error."""
        row: dict[str, Any] = dict.fromkeys(c.name for c in schema.CAPTURE_COLUMNS)
        row.update({schema.ID.name: prompt.id, schema.PROMPT.name: prompt.prompt, schema.SEED.name: prompt.seed})
        # A name with an image extension: generators often pick their format from it.
        digest = hashlib.sha256(prompt.id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        staging = self.staging / f"{digest}.png"
        try:
            result, attempts, fmt = self._attempts(prompt, staging)
            row.update({schema.ATTEMPTS.name: attempts, schema.HTTP_STATUS.name: result.http_status})
            if fmt is not None and result.image is not None:
                name = self._save(prompt, result.image, fmt)
                row.update(
                    {
                        schema.CAPTURE_STATUS.name: schema.STATUS_OK,
                        schema.LATENCY_MS.name: result.latency_ms,
                        schema.BYTES.name: len(result.image),
                        schema.SHA256.name: hashlib.sha256(result.image).hexdigest(),
                        schema.IMAGE.name: name,
                        schema.CAPTURE_GPU_MS.name: result.gpu_ms,
                        schema.ENERGY_J.name: result.energy_j,
                        schema.CAPTURE_ERROR.name: result.note,
                    }
                )
                return row
            error, latency = result.error or "failed", result.latency_ms
        except OutputError:
            raise  # a device, FIFO or folder where the image goes: the capture ends (exit 2), as for its files
        except Exception as exc:  # a disk error saving this image, a hostile id: this row only
            error, latency = f"{type(exc).__name__}: {exc}", 0.0
        finally:
            with contextlib.suppress(OSError):
                staging.unlink(missing_ok=True)
        row[schema.CAPTURE_STATUS.name] = schema.STATUS_ERROR
        row[schema.CAPTURE_ERROR.name] = error
        if latency:
            row[schema.LATENCY_MS.name] = latency
        return row

    def _save(self, prompt: Prompt, image: bytes, fmt: str) -> str:
        """Write the image under its safe name inside the output folder; returns the name."""
        # An id may not take the capture's own files (capture.arrow and its journal, lock).
        name = safe_file_name(prompt.id, reserved=(CAPTURE_FILE,)) + _EXTENSIONS.get(fmt, ".img")
        try:
            target = contained(self.opts.out, name)
        except UnsafeInputError as exc:
            raise OSError(f"cannot save the image as {name}: {exc}") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, image)  # replaces a link at the target itself, never what it points to
        return name


def run_capture(opts: CaptureOptions, on_row: Callable[[dict[str, Any]], None] | None = None) -> CaptureResult:
    """Capture every prompt (or the sample) into `opts.out` (see the module).

    Raises:
        CaptureConfigError: Bad options or prompts file, or another capture into the same
            folder; nothing was captured.
        pixgate.safe_io.OutputError: One of the capture's own files is something other
            than a regular file (`pixgate.runs.files.check_journalled_output`; nothing was captured), or
            capture.arrow could not be written (a full disk).
    """
    _check_options(opts)
    prompts = load_prompts(opts.prompts)
    if opts.sample is not None:
        prompts = [p for p in prompts if in_sample(p.id, opts.sample)]
    check_journalled_output(opts.out / CAPTURE_FILE)
    try:
        opts.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CaptureConfigError.about(
            "{out}: cannot create {folder}: {why}", folder=opts.out, why=exc.strerror
        ) from None
    with holding(opts.out / CAPTURE_FILE, "out", CaptureConfigError):
        return _capture_locked(opts, prompts, on_row)


def _capture_locked(
    opts: CaptureOptions, prompts: list[Prompt], on_row: Callable[[dict[str, Any]], None] | None
) -> CaptureResult:
    from pixgate.runs.files import RunJournal

    carried, done_ids = _previous(opts.out, opts.resume)
    todo = [p for p in prompts if p.id not in done_ids]
    engine: Http | Command = (
        Http(opts.endpoint, opts.max_bytes)
        if opts.endpoint is not None
        else Command(str(opts.command), opts.concurrency, opts.max_bytes)
    )
    meta = {
        schema.META_PIXGATE_VERSION: __version__,
        schema.META_SCHEMA_VERSION: schema.SCHEMA_VERSION,
        schema.META_ENGINE: opts.endpoint or f"command: {opts.command}",
        schema.META_GPU_METERING: engine.gpu_note if isinstance(engine, Command) else _HTTP_GPU_NOTE,
        schema.META_STARTED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
        schema.META_SETTINGS: json.dumps(
            {
                "max_attempts": opts.max_attempts,
                "timeout_s": opts.timeout_s,
                "deadline_s": opts.deadline_s,
                "concurrency": opts.concurrency,
                "sample": opts.sample,
                "max_bytes": opts.max_bytes,
                "prompts": str(opts.prompts),
            }
        ),
    }
    journal = RunJournal(opts.out / CAPTURE_FILE, meta, carried, columns=schema.CAPTURE_COLUMNS)
    started = time.monotonic()
    capturer = _Capturer(opts, engine, started)
    capturer.staging.mkdir(exist_ok=True)

    def capture_one(prompt: Prompt) -> dict[str, Any]:
        row = capturer.row(prompt)
        with capturer.lock:
            try:
                journal.append([row])
            except OutputError:
                raise  # the capture file cannot be written: the capture ends (exit 2)
            except Exception as exc:  # a value the file cannot hold: this prompt's error row, not the run's end
                row = _unstorable(row, exc)
                journal.append([row])
        if on_row is not None:
            on_row(row)
        return row

    try:
        with ThreadPoolExecutor(max_workers=max(1, opts.concurrency)) as pool:
            list(pool.map(capture_one, todo))
        meta[schema.META_ENDED_AT] = datetime.now(UTC).isoformat(timespec="seconds")
        table = journal.finalize(meta)
    finally:
        engine.close()
        journal.close()
        with contextlib.suppress(OSError):
            capturer.staging.rmdir()
    status = table.column(schema.CAPTURE_STATUS.name).to_pylist()
    stats = {
        "prompts": len(prompts),
        "captured_now": len(todo),
        "carried_over": len(done_ids & {p.id for p in prompts}),
        "ok": status.count(schema.STATUS_OK),
        "errors": status.count(schema.STATUS_ERROR),
        "requests": capturer.requests,
        "wall_s": round(time.monotonic() - started, 3),
    }
    return CaptureResult(table, stats)


__all__ = [
    "CAPTURE_FILE",
    "STAGING_DIR",
    "CaptureConfigError",
    "CaptureOptions",
    "CaptureResult",
    "Prompt",
    "in_sample",
    "load_prompts",
    "run_capture",
]
