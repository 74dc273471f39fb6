"""A run as Parquet (for Spark, warehouses and DuckDB by file name) or CSV (for
spreadsheets), its metadata kept.

Parquet keeps everything: the schema's `pixgate.*` metadata and each column's
description and unit ride in the file's key-value metadata, as pyarrow writes them. CSV
cannot hold metadata, so it goes beside the file, as JSON (`<file>.metadata.json`: the
run's metadata and every column's type, unit and description). Text cells that a
spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage
return: pair ids, errors and OCR readings come from files nobody controls) are written
with a leading `'`, which spreadsheets show as text. Both hold the columns of the run
schema (pixgate.runs.schema), each as its declared type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

from pixgate.errors import UsageError
from pixgate.runs import schema
from pixgate.runs.files import read_run, run_metadata
from pixgate.safe_io import atomic_write, check_output, writing

if TYPE_CHECKING:
    import pyarrow as pa

#: Formats a run exports to, by name; a file's suffix names its format too.
EXPORT_FORMATS: Final = ("parquet", "csv")
#: Suffix of the JSON file that carries a CSV export's metadata.
CSV_METADATA_SUFFIX: Final = ".metadata.json"
#: First characters that make a spreadsheet read a cell as a formula (OWASP's list).
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


class ExportError(UsageError):
    """An export that cannot be made as asked (a format that is not known)."""

    options = frozenset({"format", "output"})


@dataclass(frozen=True)
class Exported:
    """What an export wrote.

    Attributes:
        path: The file.
        format: `parquet` or `csv`.
        rows: Rows written.
        metadata_path: The CSV's metadata file (None for Parquet, which holds its own).
    """

    path: Path
    format: str
    rows: int
    metadata_path: Path | None = None


def export_format(output: Path, fmt: str | None = None) -> str:
    """The format to write: `fmt`, else the output's suffix.

    Raises:
        ExportError: Neither names a known format.
    """
    chosen = (fmt or output.suffix.lstrip(".")).lower()
    if chosen not in EXPORT_FORMATS:
        allowed = ", ".join(EXPORT_FORMATS)
        if fmt:
            raise ExportError.about("{format} must be one of {allowed}; got {got!r}", allowed=allowed, got=fmt)
        raise ExportError.about(
            "{output} {path} does not end in .parquet or .csv; name the format with {format} ({allowed})",
            path=str(output),
            allowed=allowed,
        )
    return chosen


def export_run(run: Path | str, output: Path | str, fmt: str | None = None) -> Exported:
    """Write the run file `run` as Parquet or CSV at `output`, atomically.

    Args:
        run: A run file (from `pixgate score`), checked as `read_run` checks it.
        output: The file to write.
        fmt: `parquet` or `csv`; else `output`'s suffix says.

    Raises:
        ExportError: No known format.
        pixgate.runs.files.RunFileError: The run cannot be read.
        pixgate.safe_io.OutputError: The output cannot be written: not a regular file, the
            run itself, or a write that failed.
    """
    output, run = Path(output), Path(run)
    chosen = export_format(output, fmt)
    sidecar = output.with_name(output.name + CSV_METADATA_SUFFIX) if chosen == "csv" else None
    # Every file the export writes is checked before any is read or written: a CSV over
    # a device must not leave its metadata file behind, and no output may be the run.
    for target in (output, sidecar):
        if target is not None:
            check_output(target, inputs=(run,))
    table = _declared(read_run(run, kind="run"))
    if sidecar is None:
        with writing(output):
            atomic_write(output, lambda fh: _parquet(table, fh))
        return Exported(output, chosen, table.num_rows)
    with writing(output):
        atomic_write(output, lambda fh: _csv(table, fh))
    with writing(sidecar):
        atomic_write(sidecar, (json.dumps(_described(table), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return Exported(output, chosen, table.num_rows, sidecar)


def _declared(table: pa.Table) -> pa.Table:
    """The run's columns of the run schema, each as its declared type (a run from
    elsewhere may hold large strings, or columns pixgate never writes: those are left
    out), with the run's metadata.

    Raises:
        ExportError: A column that does not convert to its declared type.
    """
    import pyarrow as pa

    fields = {f.name: f for f in schema.arrow_schema()}
    names = [name for name in table.column_names if name in fields]
    try:
        columns = [table.column(name).cast(fields[name].type) for name in names]
    except (pa.ArrowException, ValueError) as exc:
        raise ExportError(f"a column does not hold its declared type: {exc}") from None
    return pa.table(columns, schema=pa.schema([fields[n] for n in names], metadata=table.schema.metadata))


def _parquet(table: pa.Table, fh: BinaryIO) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, fh)


def _csv(table: pa.Table, fh: BinaryIO) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = [_inert(table.column(i)) if pa.types.is_string(table.field(i).type) else table.column(i)
               for i in range(table.num_columns)]  # fmt: skip
    pacsv.write_csv(pa.table(columns, names=table.column_names), fh)


def _inert(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Text cells a spreadsheet would run as formulas, prefixed with `'`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    risky = pc.starts_with(column, _FORMULA_START[0])
    for start in _FORMULA_START[1:]:
        risky = pc.or_(risky, pc.starts_with(column, start))
    return pc.if_else(risky, pc.binary_join_element_wise(pa.scalar("'"), column, ""), column)


def _described(table: pa.Table) -> dict[str, object]:
    """A CSV's metadata: the run's, and each column's type, unit and description."""
    known = {c.name: c for c in schema.COLUMNS}
    columns = {}
    for field in table.schema:
        column = known.get(field.name)
        columns[field.name] = {
            "type": str(field.type),
            "unit": column.unit if column else "",
            "description": column.doc if column else "",
        }
    return {"metadata": run_metadata(table), "columns": columns}


__all__ = ["CSV_METADATA_SUFFIX", "EXPORT_FORMATS", "ExportError", "Exported", "export_format", "export_run"]
