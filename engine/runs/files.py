"""Run files and verdicts: the one reader and the one writer of each.

Run files are crash-safe.

While a run is in progress its rows go to a journal, `RUN.arrow.partial`: an Arrow IPC
*stream* to which each finished batch of rows is appended and flushed to disk. A stream
can be read up to its last complete message, so a run killed at any moment (kill -9,
power loss after the fsync) keeps every row written before the kill. When the run ends
the journal is turned into the final Arrow IPC *file* `RUN.arrow` (rows sorted by
pair_id, full metadata) by an atomic rename, and the journal is removed.

The journal's schema is written when it is created, before any work, so a run killed at
any moment leaves a journal that `--resume` accepts; an empty one (a kill during its
creation) reads as no rows. A write that fails (disk full, read-only) raises
`pixgate.safe_io.OutputError` naming the file; the rows already in the journal stay.
Text that cannot be written as UTF-8 (file names that are not, see
`pixgate.safe_io.printable`) is written in its escaped form rather than failing the run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pixgate.runs.ipc import UnsafeIpcError, read_file, read_stream
from pixgate.runs.schema import COLUMNS, VERDICTS, Column, TableError, arrow_schema, check_table
from pixgate.safe_io import OutputError, atomic_write, check_output, open_regular, printable, writing

if TYPE_CHECKING:
    import pyarrow as pa


def journal_path(run_path: Path) -> Path:
    """Where the journal of `run_path` lives."""
    return run_path.with_name(run_path.name + ".partial")


def check_journalled_output(path: Path, inputs: Iterable[Path] = ()) -> None:
    """Refuse a run or capture file whose path, or a file kept beside it while it is
    written (its lock and its journal), holds something other than a regular file (a
    device, FIFO, socket or folder there would be written through, replaced, or block),
    or is one of the command's `inputs` (`pixgate.safe_io.check_output`). Call it before
    the lock is taken, so a refused output leaves nothing beside it.

    Raises:
        pixgate.safe_io.OutputError: One of them is not a regular file, or is an input.
    """
    from pixgate.locking import lock_path

    inputs = tuple(inputs)
    for own in (path, lock_path(path), journal_path(path)):
        check_output(own, inputs)


def _mapped(path: Path) -> pa.Buffer:
    """A regular file's bytes, memory-mapped (no copy, whatever its size).

    Raises:
        ValueError: Not a readable regular file.
    """
    import pyarrow as pa

    try:
        os.close(open_regular(path))
        with pa.memory_map(str(path)) as source:
            return source.read_buffer()
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it: {exc}") from None


def read_journal(path: Path, columns: tuple[Column, ...] = COLUMNS) -> tuple[pa.Table, dict[str, str]]:
    """Read every complete batch of a journal, ignoring a torn tail.

    Args:
        path: The journal.
        columns: Its columns: an empty journal (killed while it was being created) reads
            as no rows of these columns, with no metadata.

    Returns:
        The rows written before the journal was cut, and the schema metadata.

    Raises:
        ValueError: The file holds bytes but not even a complete schema message, holds
            compressed or dictionary batches (`UnsafeIpcError`), or is not a regular file.
    """
    import pyarrow as pa

    data = _mapped(path)
    if not data.size:
        return arrow_schema({}, columns).empty_table(), {}
    try:
        schema, batches = read_stream(data, path, torn_tail_ok=True)
    except UnsafeIpcError:
        raise
    except ValueError as exc:
        raise ValueError(f"{path} is not a pixgate journal ({exc})") from None
    return pa.Table.from_batches(batches, schema=schema), decode_metadata(schema.metadata)


class RunFileError(ValueError):
    """A run file (or capture, replay or verdict file) that cannot be used: missing,
    unreadable, not what it should be, or malformed; the message says which, in one line."""


def read_run(path: Path, *, check: bool = True, kind: str | None = None) -> pa.Table:
    """Read an Arrow IPC file (a run, capture or replay file), metadata included.

    The file may come from anywhere: it is memory-mapped (no copy) and read block by
    block, each checked first (`pixgate.runs.ipc.read_file`: compressed or dictionary data is
    refused, every batch is validated).

    Args:
        path: The file.
        check: Also check that it is a well-formed pixgate file
            (`pixgate.runs.schema.check_table`): its schema version, its columns' kinds,
            a unique key, known statuses.
        kind: With `check`, the kind of file wanted (`pixgate.runs.schema.FILE_KINDS`:
            "run", or "capture" for a capture or replay file); None takes any.

    Raises:
        RunFileError: Not a readable regular file, not an Arrow IPC file, holding what
            pixgate does not read (`pixgate.runs.ipc.UnsafeIpcError`), or (with `check`)
            malformed, or of another kind than `kind`.
    """
    try:
        table = read_file(_mapped(path), path)
    except ValueError as exc:
        hint = ""
        if path.name.endswith(".partial"):
            hint = " (a .partial journal is an unfinished run: complete it with `pixgate score ... --resume`)"
        raise RunFileError(f"{exc}{hint}") from None
    if check:
        try:
            check_table(table, path, kind)
        except TableError as exc:
            raise RunFileError(str(exc)) from None
    return table


#: The verdict's key for the sha256 of the run file it judged: what binds a verdict to
#: one run's bytes (a path alone names a file that can be scored again).
VERDICT_RUN_SHA256 = "run_sha256"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def read_verdict(path: Path, *, run: Path | None = None) -> dict[str, Any]:
    """Read a verdict written by `write_verdict` (`pixgate gate --json`), checked to have
    its shape and, given `run`, to be that run's (`check_verdict_run`).

    Raises:
        RunFileError: Unreadable, not JSON, or not shaped like a verdict (`verdict` one
            of pass/marginal/fail, a finite `score`, a `reason`, `rules` as a list of
            objects with a `name` and a `result`, `failing_pairs` as a list of objects
            with a `pair_id`, rule names and values, and a `run` path or null); or,
            given `run`, the verdict of another run.
    """
    from pixgate.safe_io import loads_json, read_text

    try:
        doc = loads_json(read_text(path))
    except ValueError as exc:  # pixgate.safe_io.UnsafeInputError too
        raise RunFileError(f"{path}: cannot read it as a verdict from `pixgate gate --json`: {exc}") from None

    def bad(what: str) -> RunFileError:
        return RunFileError(f"{path}: not a verdict from `pixgate gate --json`: {what}")

    if not isinstance(doc, dict):
        raise bad(f"the document is a JSON {type(doc).__name__}, not an object")
    if doc.get("verdict") not in VERDICTS:
        raise bad(f"'verdict' is {doc.get('verdict')!r}, not one of {', '.join(VERDICTS)}")
    score = doc.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise bad(f"'score' is {score!r}, not a number")
    if not isinstance(doc.get("reason", ""), str) or not isinstance(doc.get("run"), str | None):
        raise bad("'reason' and 'run' must be strings")
    rules = doc.get("rules", [])
    if not isinstance(rules, list) or not all(
        isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("result"), str) for r in rules
    ):
        raise bad("'rules' must be a list of objects with a string 'name' and 'result'")
    pairs = doc.get("failing_pairs", [])
    if not isinstance(pairs, list) or not all(
        isinstance(p, dict)
        and isinstance(p.get("pair_id"), str)
        and isinstance(p.get("rules"), list)
        and all(isinstance(name, str) for name in p["rules"])
        and isinstance(p.get("values", {}), dict)
        for p in pairs
    ):
        raise bad("'failing_pairs' must be a list of objects with a string 'pair_id', a list of rule names 'rules' "
                  "and an object 'values'")  # fmt: skip
    recorded = doc.get(VERDICT_RUN_SHA256)
    if recorded is not None and not (isinstance(recorded, str) and _SHA256_HEX.fullmatch(recorded)):
        raise bad(f"'{VERDICT_RUN_SHA256}' must be 64 lowercase hex digits or null")
    if run is not None:
        check_verdict_run(doc, path, run)
    return doc


def run_sha256(run: Path) -> str:
    """The sha256 of a run file's bytes, as a verdict records it.

    Raises:
        RunFileError: Not a readable regular file.
    """
    from pixgate.safe_io import UnsafeInputError, sha256_regular

    try:
        return sha256_regular(run)
    except UnsafeInputError as exc:
        raise RunFileError(f"{printable(str(run))}: {exc}") from None


def check_verdict_run(verdict: dict[str, Any], verdict_path: Path, run: Path, found: str | None = None) -> None:
    """Refuse a verdict that did not judge `run` as its bytes are now: the verdict of
    another run, of this run before it was scored again, or one that records no run's
    sha256 (written before verdicts recorded it, or judged from a table).

    Args:
        verdict: The verdict document (`read_verdict`).
        verdict_path: Where it was read from, for the message.
        run: The run file.
        found: The run file's sha256 when the caller hashed it already (before reading
            it, say); else it is hashed now.

    Raises:
        RunFileError: In one line naming both files and what to do.
    """
    shown, run_shown = printable(str(verdict_path)), printable(str(run))
    again = f"judge it again: `pixgate gate {run_shown} --policy POLICY --json VERDICT`"
    recorded = verdict.get(VERDICT_RUN_SHA256)
    if not isinstance(recorded, str):
        raise RunFileError(
            f"{shown} records no '{VERDICT_RUN_SHA256}', so it cannot be shown to be the verdict of {run_shown} "
            f"(a verdict from an older pixgate, or one judged from a table); {again}"
        )
    found = found or run_sha256(run)
    if found != recorded:
        raise RunFileError(
            f"{shown} is not the verdict of {run_shown} as it is now: the verdict judged a run file with sha256 "
            f"{recorded[:16]}..., {run_shown} has {found[:16]}... (another run, or this one scored "
            f"again); {again}"
        )


def verdict_json(document: dict[str, Any]) -> str:
    """A verdict document as the JSON pixgate writes (strict: no NaN or infinity)."""
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def write_verdict(verdict: Any, path: Path | str) -> None:
    """Write a verdict (a `pixgate.judging.gate.Verdict`, or its document with what acting
    on it added) atomically (`pixgate.safe_io.atomic_write`), as `pixgate gate --json` does.

    Raises:
        pixgate.safe_io.OutputError: It could not be written.
    """
    document = verdict.to_dict() if hasattr(verdict, "to_dict") else verdict
    with writing(Path(path)):
        atomic_write(Path(path), verdict_json(document).encode("utf-8"))


def decode_metadata(raw: dict[bytes, bytes] | None) -> dict[str, str]:
    """Arrow schema metadata as str -> str; bytes that are not UTF-8 (a file from
    elsewhere) become U+FFFD rather than an error."""
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in (raw or {}).items()}


def run_metadata(table: pa.Table) -> dict[str, str]:
    """A run's schema metadata as str -> str."""
    return decode_metadata(table.schema.metadata)


class RunJournal:
    """Appends rows to a journal and finalises it into the run file.

    Args:
        run_path: The final `RUN.arrow`.
        metadata: Schema metadata recorded at the start of the run.
        carried: Rows kept from an earlier, interrupted run (resume): they are written
            first, so the new journal is complete on its own.
        columns: The file's columns (the run's by default); the first is the sort key.
    """

    def __init__(
        self,
        run_path: Path,
        metadata: dict[str, str],
        carried: pa.Table | None = None,
        columns: tuple[Column, ...] = COLUMNS,
    ) -> None:
        import pyarrow as pa

        self.run_path = run_path
        self.path = journal_path(run_path)
        self._schema = arrow_schema(metadata, columns)
        self._key = columns[0].name
        # Build the new journal beside the old one and swap it in, so that a crash during
        # resume still leaves one complete journal on disk.
        tmp = self.path.with_name(self.path.name + ".new")
        self.rows_written = 0
        with writing(tmp):
            tmp.unlink(missing_ok=True)  # a link left there is removed, never written through
            self._sink = pa.OSFile(str(tmp), "wb")
            self._writer = pa.ipc.new_stream(self._sink, self._schema)
            # An empty batch makes the writer put the schema on disk now (it would wait
            # for the first rows): a kill before them leaves a journal --resume reads.
            self._writer.write_batch(pa.RecordBatch.from_pylist([], schema=self._schema))
            if carried is not None and carried.num_rows:
                self._write_table(carried.cast(self._schema))
            self._sync()
        with writing(self.path):
            os.replace(tmp, self.path)

    def _write_table(self, table: pa.Table) -> None:
        for batch in table.to_batches():
            self._writer.write_batch(batch)
        self.rows_written += table.num_rows

    def _sync(self) -> None:
        self._sink.flush()
        os.fsync(self._sink.fileno())

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Write rows as one record batch and flush them to disk.

        Raises:
            pixgate.safe_io.OutputError: The journal could not be written.
        """
        if not rows:
            return
        batch = _batch(rows, self._schema)
        with writing(self.path):
            self._writer.write_batch(batch)
            self._sync()
        self.rows_written += len(rows)

    def finalize(self, metadata: dict[str, str]) -> pa.Table:
        """Close the journal and write the file, sorted by its key column, atomically.

        Args:
            metadata: Full metadata for the run file (replaces the journal's).

        Returns:
            The final table.
        """
        with writing(self.path):
            self._writer.close()
            self._sink.close()
        table, _ = read_journal(self.path)
        if table.num_rows != self.rows_written:
            # Never a run file short of rows: the journal stays for --resume to complete.
            raise OutputError(self.path, f"holds {table.num_rows} of the {self.rows_written} rows written to it")
        table = table.sort_by(self._key).replace_schema_metadata(metadata)
        _write_ipc_file(self.run_path, table)
        self.path.unlink()
        return table

    def close(self) -> None:
        """Close without finalising (the journal stays for --resume).

        Never raises: it runs while an error is already on its way out (a full disk fails
        the end-of-stream marker too, and a journal without one still reads).
        """
        if not self._sink.closed:
            with contextlib.suppress(Exception):
                self._writer.close()
            with contextlib.suppress(Exception):
                self._sink.close()


def _clean(value: Any) -> Any:
    return printable(value) if isinstance(value, str) else value


def _batch(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Rows as a record batch; text that is not valid UTF-8 is written escaped."""
    import pyarrow as pa

    try:
        return pa.RecordBatch.from_pylist(rows, schema=schema)
    except UnicodeEncodeError:
        return pa.RecordBatch.from_pylist([{k: _clean(v) for k, v in row.items()} for row in rows], schema=schema)


def _write_ipc_file(path: Path, table: pa.Table) -> None:
    """Write an Arrow IPC file durably and atomically (`pixgate.safe_io.atomic_write`)."""
    import pyarrow as pa

    def write(fh: BinaryIO) -> None:
        with pa.ipc.new_file(pa.PythonFile(fh, mode="w"), table.schema) as writer:
            writer.write_table(table)

    with writing(path):
        atomic_write(path, write)


def write_file(
    path: Path, rows: list[dict[str, Any]], columns: tuple[Column, ...], metadata: dict[str, str]
) -> pa.Table:
    """Write rows as an Arrow IPC file, sorted by the first column, atomically."""
    import pyarrow as pa

    table = pa.Table.from_batches([_batch(rows, arrow_schema(metadata, columns))]).sort_by(columns[0].name)
    _write_ipc_file(path, table)
    return table


def dumps_meta(value: Any) -> str:
    """Encode a structured metadata value (settings, stats) as JSON."""
    return json.dumps(value, sort_keys=True, default=str)


__all__ = [
    "VERDICT_RUN_SHA256",
    "RunFileError",
    "RunJournal",
    "check_journalled_output",
    "check_verdict_run",
    "decode_metadata",
    "dumps_meta",
    "journal_path",
    "read_journal",
    "read_run",
    "read_verdict",
    "run_metadata",
    "run_sha256",
    "verdict_json",
    "write_file",
    "write_verdict",
]
