"""`pixgate score` and `pixgate weights`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pixgate.cli.common import (
    DEFAULT_NET_CHOICE,
    Backend,
    Device,
    NetOpt,
    NoOcrCacheOpt,
    OcrCacheOpt,
    OcrLangOpt,
    Precision,
    QuietOpt,
    TypographyOpt,
    WeightsOpt,
    console,
    number_in,
    usage_error,
    whole_number,
)
from pixgate.config import (
    BATCH_SIZE_MAX,
    DEFAULT_MAX_PIXELS,
    EXIT_INTERRUPTED,
    MAX_PIXELS_CEILING,
    OCR_LANG,
    PROGRESS_INTERVAL_S,
    SECONDS_OPTION_MAX_S,
    SUMMARY_MAX_PROBLEMS,
    WORKERS_MAX,
)

if TYPE_CHECKING:
    from pixgate.scoring.score import ScoreResult

_LEVEL_STYLE = {"plain": None, "notice": "yellow", "problem": "red"}


def _summary(result: ScoreResult, output: Path) -> None:
    from rich.table import Table

    from pixgate.scoring.summary import summarize

    found = summarize(result)
    summary = Table(title=f"pixgate score -> {output}", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    for line in found.lines:
        summary.add_row(line.label, line.value, style=_LEVEL_STYLE[line.level])
    out = console()
    out.print(summary)
    if found.problems:
        listing = Table(title=f"pairs not ok ({len(found.problems)})")
        for col in ("pair_id", "status", "error"):
            listing.add_column(col, overflow="fold")
        for pid, st, err in found.problems[:SUMMARY_MAX_PROBLEMS]:
            listing.add_row(pid, st, err)
        if len(found.problems) > SUMMARY_MAX_PROBLEMS:
            listing.add_row("...", f"{len(found.problems) - SUMMARY_MAX_PROBLEMS} more", "see the run file")
        out.print(listing)


def score(
    baseline: Annotated[
        str,
        typer.Argument(
            metavar="BASELINE_DIR", help="Folder of baseline images (with --backend ray also a URI, e.g. s3://b/run)."
        ),
    ],
    candidate: Annotated[
        str,
        typer.Argument(metavar="CANDIDATE_DIR", help="Folder of candidate images (or a URI, with --backend ray)."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Run file to write (Arrow IPC).", dir_okay=False, metavar="FILE")
    ],
    device: Annotated[Device, typer.Option(help="Where LPIPS runs.")] = Device.auto,
    batch_size: Annotated[
        int | None,
        typer.Option(
            callback=whole_number("--batch-size", 1, BATCH_SIZE_MAX),
            help="Pairs per device batch.  [default: 4 on CPU, 32 on CUDA]",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            callback=whole_number("--workers", 1, WORKERS_MAX),
            help="Decode worker processes.  [default: from the core count]",
        ),
    ] = None,
    weights: WeightsOpt = None,
    net: NetOpt = DEFAULT_NET_CHOICE,
    resume: Annotated[bool, typer.Option("--resume", help="Complete an interrupted run.")] = False,
    no_lpips: Annotated[bool, typer.Option("--no-lpips", help="Skip LPIPS; score everything else.")] = False,
    precision: Annotated[
        Precision,
        typer.Option(
            help="LPIPS arithmetic: auto picks bfloat16 where the hardware runs it natively (CUDA with bfloat16, "
            "CPUs with AMX or AVX-512 BF16) and float32 elsewhere; the run records the choice."
        ),
    ] = Precision.auto,
    max_pixels: Annotated[
        int,
        typer.Option(
            callback=whole_number("--max-pixels", 1, MAX_PIXELS_CEILING),
            help="Decompression-bomb limit: largest width*height accepted.",
        ),
    ] = DEFAULT_MAX_PIXELS,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="Golden manifest (JSONL): expected text and text boxes for the typography checks, ignore regions.",
            exists=True,
            dir_okay=False,
            metavar="FILE",
        ),
    ] = None,
    ocr_workers: Annotated[
        int | None,
        typer.Option(
            callback=whole_number("--ocr-workers", 1, WORKERS_MAX),
            help="Typography checks run at once.  [default: one per core]",
        ),
    ] = None,
    ocr_lang: OcrLangOpt = OCR_LANG,
    typography: TypographyOpt = True,
    ocr_cache: OcrCacheOpt = None,
    no_ocr_cache: NoOcrCacheOpt = False,
    backend: Annotated[Backend, typer.Option(help="Where the pipeline runs.")] = Backend.local,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to use with --backend ray.  [default: start a local one]", metavar="ADDRESS"),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an existing run file, or start an interrupted run over."),
    ] = False,
    progress_interval: Annotated[
        float,
        typer.Option(
            callback=number_in("--progress-interval", 0.0, SECONDS_OPTION_MAX_S),
            help="Seconds between progress lines when there is no terminal (a CI log); 0: one per batch.",
            metavar="SECONDS",
        ),
    ] = PROGRESS_INTERVAL_S,
    quiet: QuietOpt = False,
) -> None:
    """Score every image pair of two folders into an Arrow run file.

    Exit codes: 0 every pair ok; 1 some pair is not ok (listed in the summary);
    2 usage, configuration or environment error (an output in use, a full disk);
    3 internal error.

    Image decoders: $PIXGATE_DECODER (auto, the default, or pillow).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pixgate.scoring.progress import ProgressLog
    from pixgate.scoring.score import ScoreConfigError, ScoreOptions, run_score

    out = console()
    show = not quiet and out.is_terminal
    # Without a terminal (a CI log) the bar draws nothing: lines every few seconds instead.
    log = (
        None if quiet or show else ProgressLog(lambda line: print(line, file=sys.stderr, flush=True), progress_interval)
    )
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=out,
        disable=not show,
    )
    task = progress.add_task("starting", total=None, rate="")
    download = progress.add_task("downloading weights", total=None, visible=False, rate="")

    def on_pairs(total: int, done: int) -> None:
        # The total from the start, while the model and workers start.
        progress.update(task, total=total, completed=done)
        if log is not None:
            log.pairs(total, done)

    def on_start(total: int, done: int) -> None:
        # The rate and time left count from here: start-up is not scoring.
        progress.reset(task, description="scoring", total=total, completed=done, rate="")
        if log is not None:
            log.begin()

    def on_rows(rows: list[dict[str, Any]]) -> None:
        progress.advance(task, len(rows))
        speed = progress.tasks[task].speed
        progress.update(task, rate=f"{speed:.1f} pairs/s" if speed else "")
        if log is not None:
            log.advance(len(rows))

    def on_download(done: int, total: int | None) -> None:
        progress.update(download, completed=done, total=total, visible=True)

    opts = ScoreOptions(
        baseline=baseline if "://" in baseline else Path(baseline),
        candidate=candidate if "://" in candidate else Path(candidate),
        output=output,
        device=device.value,
        batch_size=batch_size,
        workers=workers,
        weights=weights,
        net=net.value,
        resume=resume,
        no_lpips=no_lpips,
        precision=precision.value,
        max_pixels=max_pixels,
        manifest=manifest,
        ocr_workers=ocr_workers,
        ocr_lang=ocr_lang,
        typography=typography,
        ocr_cache=ocr_cache,
        no_ocr_cache=no_ocr_cache,
        overwrite=overwrite,
        download_progress=on_download,
    )
    try:
        with progress:
            result = run_score(
                opts,
                on_rows=on_rows,
                on_start=on_start,
                backend=backend.value,
                ray_address=ray_address,
                on_pairs=on_pairs,
            )
    except ScoreConfigError as exc:
        raise usage_error(exc) from None
    except KeyboardInterrupt:
        # One line, whatever was running: the decode workers ignore the terminal's SIGINT
        # and were stopped as the run unwound (`pixgate.scoring.workers`).
        from pixgate.runs.files import journal_path

        journal = journal_path(output)
        if journal.is_file():
            out.print(f"interrupted: finished pairs are kept in {journal}; rerun with --resume to complete the run")
        else:
            out.print(f"interrupted: no unfinished run is left beside {output} to resume")
        raise typer.Exit(code=EXIT_INTERRUPTED) from None
    if log is not None:
        log.finish()
    if not quiet:
        _summary(result, output)
    raise typer.Exit(code=0 if result.all_ok else 1)


def weights_cmd(
    net: NetOpt = DEFAULT_NET_CHOICE,
    weights: Annotated[
        Path | None, typer.Option(help="An explicit weights file to check first.", dir_okay=False, metavar="FILE")
    ] = None,
    download: Annotated[bool, typer.Option("--download", help="Download when nothing is found locally.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Show where backbone weights resolve, in order, and their sha256.

    Exit 0 when weights resolve, 2 when none do (the message says how to provide them).
    """
    from rich.table import Table

    from pixgate.scoring.weights import WeightsError, candidates, published, resolve_weights, weights_url

    out = console()
    table = Table(title=f"{net.value} backbone weights, in resolution order")
    for col in ("step", "where", "found"):
        table.add_column(col, overflow="fold")
    steps = candidates(net.value, weights)
    for step in steps:
        table.add_row(step.origin, step.detail, "yes" if step.found else "no")
    local = any(step.found for step in steps)
    table.add_row("download", weights_url(net.value), "not needed" if local else ("trying" if download else "no"))
    if not quiet:
        out.print(table)
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=out)
    task = bar.add_task("downloading", total=None)

    def progress_cb(done: int, total: int | None) -> None:
        bar.start()  # shown only once bytes arrive; a no-op after the first call
        bar.update(task, completed=done, total=total)

    try:
        resolved = resolve_weights(net.value, weights, allow_download=download, progress=progress_cb)
    except WeightsError as exc:
        failure: WeightsError | None = exc
    else:
        failure = None
    finally:
        bar.stop()
    if failure is not None:
        raise usage_error(failure)
    if quiet:
        typer.echo(str(resolved.path))
        return
    typer.echo(f"{resolved.origin}: {resolved.path}")
    typer.echo(f"sha256: {resolved.sha256}")
    if published(net.value, resolved.sha256):
        typer.echo(f"known: torchvision's published {net.value} weights")
    else:
        typer.echo(f"known: no, not torchvision's published {net.value} file: LPIPS from it is not comparable")
