"""`pixgate report`: one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixgate.cli.common import Net, QuietOpt, console, output_folder, usage_error, whole_number
from pixgate.config import REPORT_MAX_TOP, REPORT_TOP


def report(
    run: Annotated[Path, typer.Argument(help="Run file to show.", dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.", dir_okay=False)],
    verdict: Annotated[
        Path | None, typer.Option(help="Verdict from `pixgate gate --json`, shown as the banner.", dir_okay=False)
    ] = None,
    capture: Annotated[
        list[Path] | None,
        typer.Option(
            help="Capture file (repeatable): its latency and GPU time drawn as ECDFs, a line per file.",
            dir_okay=False,
            metavar="FILE",
        ),
    ] = None,
    top: Annotated[
        int,
        typer.Option(
            callback=whole_number("--top", 0, REPORT_MAX_TOP), help="Worst pairs shown with pictures and maps."
        ),
    ] = REPORT_TOP,
    weights: Annotated[
        Path | None,
        typer.Option(
            help="Backbone weights for the LPIPS maps.  [default: the run's, checked against its sha256]",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    net: Annotated[Net | None, typer.Option(help="LPIPS backbone of the maps.  [default: the run's]")] = None,
    files_under: Annotated[
        Path | None,
        typer.Option(
            help="Read pictures only under this folder (the run file's paths are data).  [default: the current folder]",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Write one self-contained HTML page: verdict, worst pairs with maps, distributions, a table of pairs.

    Exit codes: 0 written; 2 an unreadable run, verdict or capture file, a verdict of
    another run (or of this one before it was scored again), or a missing output folder.
    """
    from pixgate.report.html import ReportError, build_report

    output_folder("--output", output, inputs=tuple(p for p in (run, verdict, weights, *(capture or [])) if p))
    try:
        stats = build_report(
            run, output, verdict=verdict, captures=capture or [], top=top, weights=weights,
            net=net.value if net is not None else None, files_under=files_under,
        )  # fmt: skip
    except ReportError as exc:
        raise usage_error(exc) from None
    out = console()
    for note in stats.notes if not quiet else []:
        out.print(f"note: {note}")
    out.print(
        f"{output}: {stats.bytes / 1e6:.1f} MB, {stats.pairs} pairs, {stats.shown} with pictures, {stats.seconds:.1f} s"
    )
