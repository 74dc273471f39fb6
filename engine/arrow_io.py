"""Crash-safe run files.

While a run is in progress its rows go to a journal, `RUN.arrow.partial`: an Arrow IPC
*stream* to which each finished batch of rows is appended and flushed to disk. A stream
can be read up to its last complete message, so a run killed at any moment (kill -9,
power loss after the fsync) keeps every row written before the kill. When the run ends
the journal is turned into the final Arrow IPC *file* `RUN.arrow` (rows sorted by
pair_id, full metadata) by an atomic rename, and the journal is removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.schema import COLUMNS, Column, arrow_schema

if TYPE_CHECKING:
    import pyarrow as pa


def journal_path(run_path: Path) -> Path:
    """Where the journal of `run_path` lives."""
    return run_path.with_name(run_path.name + ".partial")


def read_journal(path: Path) -> tuple[pa.Table, dict[str, str]]:
    """Read every complete batch of a journal, ignoring a torn tail.

    Returns:
        The rows written before the journal was cut, and the schema metadata.

    Raises:
        ValueError: The file does not even hold a complete schema message.
    """
    import pyarrow as pa

    data = path.read_bytes()
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path} is not a pixgate journal (no readable Arrow schema): {exc}") from None
    batches = []
    while True:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError):
            break  # the torn last message of a killed run
    schema = reader.schema
    meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    return pa.Table.from_batches(batches, schema=schema), meta


def read_run(path: Path) -> pa.Table:
    """Read a finished run file (Arrow IPC file format), metadata included."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def run_metadata(table: pa.Table) -> dict[str, str]:
    """A run's schema metadata as str -> str."""
    return {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}


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
        self._sink = pa.OSFile(str(tmp), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self._schema)
        self.rows_written = 0
        if carried is not None and carried.num_rows:
            self._write_table(carried.cast(self._schema))
        self._sync()
        os.replace(tmp, self.path)

    def _write_table(self, table: pa.Table) -> None:
        for batch in table.to_batches():
            self._writer.write_batch(batch)
        self.rows_written += table.num_rows

    def _sync(self) -> None:
        self._sink.flush()
        os.fsync(self._sink.fileno())

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Write rows as one record batch and flush them to disk."""
        import pyarrow as pa

        if not rows:
            return
        self._writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=self._schema))
        self.rows_written += len(rows)
        self._sync()

    def finalize(self, metadata: dict[str, str]) -> pa.Table:
        """Close the journal and write the file, sorted by its key column, atomically.

        Args:
            metadata: Full metadata for the run file (replaces the journal's).

        Returns:
            The final table.
        """
        import pyarrow as pa

        self._writer.close()
        self._sink.close()
        table, _ = read_journal(self.path)
        table = table.sort_by(self._key).replace_schema_metadata(metadata)
        tmp = self.run_path.with_name(self.run_path.name + ".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.run_path)
        self.path.unlink()
        return table

    def close(self) -> None:
        """Close without finalising (the journal stays for --resume)."""
        if not self._sink.closed:
            self._writer.close()
            self._sink.close()


def write_file(
    path: Path, rows: list[dict[str, Any]], columns: tuple[Column, ...], metadata: dict[str, str]
) -> pa.Table:
    """Write rows as an Arrow IPC file, sorted by the first column, atomically."""
    import pyarrow as pa

    table = pa.Table.from_pylist(rows, schema=arrow_schema(metadata, columns)).sort_by(columns[0].name)
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)
    return table


def dumps_meta(value: Any) -> str:
    """Encode a structured metadata value (settings, stats) as JSON."""
    return json.dumps(value, sort_keys=True, default=str)


__all__ = ["RunJournal", "dumps_meta", "journal_path", "read_journal", "read_run", "run_metadata", "write_file"]
