"""`pixgate export`: a run as Parquet or CSV, for other tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixgate.cli.common import QuietOpt, console, output_folder, usage_error


def export(
    run: Annotated[Path, typer.Argument(help="Run file to export (Arrow IPC, from `pixgate score`).", dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write: .parquet or .csv.", dir_okay=False)],
    format: Annotated[
        str | None,
        typer.Option("--format", help="parquet or csv.  [default: from the output's suffix]", metavar="parquet|csv"),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Write a run as Parquet (Spark, warehouses, DuckDB by file name) or CSV (spreadsheets), metadata kept.

    Parquet carries the run's metadata and each column's description and unit; a CSV's
    go beside it in FILE.metadata.json. Exit codes: 0 written; 2 an unreadable run, an
    unknown format or a missing output folder.
    """
    from pixgate.runs.export import ExportError, export_run
    from pixgate.runs.files import RunFileError

    output_folder("--output", output, inputs=(run,))
    try:
        done = export_run(run, output, format)
    except (ExportError, RunFileError) as exc:
        raise usage_error(exc) from None
    if not quiet:
        beside = f" (metadata in {done.metadata_path})" if done.metadata_path else ""
        console().print(f"{done.path}: {done.rows} rows as {done.format}{beside}")
