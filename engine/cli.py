"""The `pixgate` command line.

Heavy libraries (torch, numba, pyarrow) are imported inside the commands, so that
`pixgate --help` and usage errors answer at once.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from pixgate import __version__
from pixgate.config import (
    CAPTURE_BACKOFF_S,
    CAPTURE_CONCURRENCY,
    CAPTURE_MAX_ATTEMPTS,
    CAPTURE_MAX_BYTES,
    CAPTURE_TIMEOUT_S,
    DEFAULT_MAX_PIXELS,
    EXIT_INTERNAL,
    EXIT_USAGE,
    GATE_MAX_LISTED_PAIRS,
    NO_TTY_WIDTH,
    OCR_CACHE_ENV,
    OCR_LANG,
    PROGRESS_INTERVAL_S,
    REPORT_TOP,
    SUMMARY_MAX_PROBLEMS,
)
from pixgate.scoring.backbones import DEFAULT_NET, NETS

if TYPE_CHECKING:
    from pixgate.judging.gate import Verdict
    from pixgate.scoring.score import ScoreResult

app = typer.Typer(
    name="pixgate",
    help="Score image pairs from two generators and gate model changes on the result.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Device(StrEnum):
    """Where LPIPS runs."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Backend(StrEnum):
    """Where the score pipeline runs."""

    local = "local"
    ray = "ray"


class Precision(StrEnum):
    """LPIPS arithmetic."""

    float32 = "float32"
    bfloat16 = "bfloat16"


if TYPE_CHECKING:
    Net = StrEnum
else:
    #: LPIPS backbone: the registry's names (pixgate.scoring.backbones), so a backbone is
    #: added in one place. mypy cannot type an enum built from a variable.
    Net = StrEnum("Net", {name: name for name in NETS})


_DEFAULT_NET = Net(DEFAULT_NET)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pixgate {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """pixgate: automated, measurable gates for image-generator changes."""


def _whole_number(option: str, low: int, high: int | None = None) -> Any:
    """A typer callback that names the bad value and the accepted range."""

    def check(value: int | None) -> int | None:
        if value is None:
            return value
        if value < low or (high is not None and value > high):
            allowed = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise typer.BadParameter(f"got {value}; use a whole number {allowed}", param_hint=option)
        return value

    return check


def _console(*, stderr: bool = True) -> Any:
    """A console for messages (standard error) or reports (`stderr=False`). Without a
    terminal (a CI log) it is as wide as its widest line: a table never folds a pair id."""
    from rich.console import Console

    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=NO_TTY_WIDTH)


def _output_folder(option: str, path: Path | None) -> None:
    """A file option's folder must exist ('-' is standard output): a typo is an error,
    not a new folder."""
    if path is not None and str(path) != "-" and not path.parent.is_dir():
        raise _usage_error(f"{option}: the folder {path.parent} does not exist; create it, or write elsewhere")


def _emit(path: Path, text: str) -> None:
    """Write `text` to a file option's file, or to standard output for '-'."""
    from pixgate.safe_io import atomic_write, writing

    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with writing(path):
        atomic_write(path, text.encode("utf-8"))


#: Options whose flag is not `--` and the field's name with dashes.
_FLAG_SPELLING = {"baseline": "BASELINE_DIR", "candidate": "CANDIDATE_DIR", "backend_ray": "--backend ray"}


def _flag(field: str) -> str:
    """How the command line gives an option that a core error names by field."""
    return _FLAG_SPELLING.get(field) or "--" + field.replace("_", "-")


def _usage_error(error: str | BaseException, **spelling: str) -> typer.Exit:
    """Print a usage error and return the exit to raise. Core errors name options by
    field: spelt here as flags, or as `spelling` says (a command whose argument is
    another command's option)."""
    from rich.text import Text

    from pixgate.errors import UsageError

    def spell(field: str) -> str:
        return spelling.get(field) or _flag(field)

    message = error.render(spell) if isinstance(error, UsageError) else str(error)
    # The message is data (paths, ids, TOML): never read as markup.
    _console().print(Text.assemble(("error:", "bold red"), " ", message), highlight=False)
    return typer.Exit(code=EXIT_USAGE)


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
    console = _console()
    console.print(summary)
    if found.problems:
        listing = Table(title=f"pairs not ok ({len(found.problems)})")
        for col in ("pair_id", "status", "error"):
            listing.add_column(col, overflow="fold")
        for pid, st, err in found.problems[:SUMMARY_MAX_PROBLEMS]:
            listing.add_row(pid, st, err)
        if len(found.problems) > SUMMARY_MAX_PROBLEMS:
            listing.add_row("...", f"{len(found.problems) - SUMMARY_MAX_PROBLEMS} more", "see the run file")
        console.print(listing)


_OcrLangOpt = Annotated[str, typer.Option(help="Tesseract language(s), e.g. eng or eng+deu.")]
_TypographyOpt = Annotated[
    bool,
    typer.Option(
        "--typography/--no-typography",
        help="Check that each candidate's text reads as its baseline's (needs Tesseract's language data); "
        "off, every row's typography is 'not_checked'.",
    ),
]
_OcrCacheOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder of cached baseline readings, e.g. one a golden set or a CI cache carries "
        f"[default: ${OCR_CACHE_ENV}, else $XDG_CACHE_HOME/pixgate/ocr].",
        file_okay=False,
    ),
]
_NoOcrCacheOpt = Annotated[bool, typer.Option("--no-ocr-cache", help="Read every baseline anew and keep no readings.")]


@app.command()
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
    output: Annotated[Path, typer.Option("--output", "-o", help="Run file to write (Arrow IPC).", dir_okay=False)],
    device: Annotated[Device, typer.Option(help="Where LPIPS runs.")] = Device.auto,
    batch_size: Annotated[
        int | None,
        typer.Option(
            callback=_whole_number("--batch-size", 1, 4096),
            help="Pairs per device batch [default: 4 on CPU, 32 on CUDA].",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            callback=_whole_number("--workers", 1, 256), help="Decode worker processes [default: from the core count]."
        ),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(help="Backbone weights: a torchvision state_dict file.", exists=True, dir_okay=False),
    ] = None,
    net: Annotated[Net, typer.Option(help="LPIPS backbone.")] = _DEFAULT_NET,
    resume: Annotated[bool, typer.Option("--resume", help="Complete an interrupted run.")] = False,
    no_lpips: Annotated[bool, typer.Option("--no-lpips", help="Skip LPIPS; score everything else.")] = False,
    precision: Annotated[
        Precision, typer.Option(help="LPIPS arithmetic: bfloat16 is ~2x faster on AMX CPUs and tensor-core GPUs.")
    ] = Precision.float32,
    max_pixels: Annotated[
        int,
        typer.Option(
            callback=_whole_number("--max-pixels", 1), help="Decompression-bomb limit: largest width*height accepted."
        ),
    ] = DEFAULT_MAX_PIXELS,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="Golden manifest (JSONL): expected text and text boxes for the typography checks, ignore regions.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    ocr_workers: Annotated[
        int | None,
        typer.Option(
            callback=_whole_number("--ocr-workers", 1, 256),
            help="Typography checks run at once [default: one per core].",
        ),
    ] = None,
    ocr_lang: _OcrLangOpt = OCR_LANG,
    typography: _TypographyOpt = True,
    ocr_cache: _OcrCacheOpt = None,
    no_ocr_cache: _NoOcrCacheOpt = False,
    backend: Annotated[Backend, typer.Option(help="Where the pipeline runs.")] = Backend.local,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to use with --backend ray [default: start a local one].")
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an existing run file, or start an interrupted run over."),
    ] = False,
    progress_interval: Annotated[
        float,
        typer.Option(
            min=0.0, help="Seconds between progress lines when there is no terminal (a CI log); 0: one per batch."
        ),
    ] = PROGRESS_INTERVAL_S,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary.")] = False,
) -> None:
    """Score every image pair of two folders into an Arrow run file.

    Exit codes: 0 every pair ok; 1 some pair is not ok (listed in the summary);
    2 usage, configuration or environment error (an output in use, a full disk);
    3 internal error.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pixgate.scoring.progress import ProgressLog
    from pixgate.scoring.score import ScoreConfigError, ScoreOptions, run_score

    console = _console()
    show = not quiet and console.is_terminal
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
        console=console,
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
        raise _usage_error(exc) from None
    except KeyboardInterrupt:
        from pixgate.runs.files import journal_path

        console.print(f"interrupted: finished pairs are kept in {journal_path(output)}; rerun with --resume")
        raise typer.Exit(code=130) from None
    if log is not None:
        log.finish()
    if not quiet:
        _summary(result, output)
    raise typer.Exit(code=0 if result.all_ok else 1)


@app.command("weights")
def weights_cmd(
    net: Annotated[Net, typer.Option(help="LPIPS backbone.")] = _DEFAULT_NET,
    weights: Annotated[
        Path | None, typer.Option(help="An explicit weights file to check first.", dir_okay=False)
    ] = None,
    download: Annotated[bool, typer.Option("--download", help="Download when nothing is found locally.")] = False,
) -> None:
    """Show where backbone weights resolve, in order, and their sha256.

    Exit 0 when weights resolve, 2 when none do (the message says how to provide them).
    """
    from rich.table import Table

    from pixgate.scoring.weights import WeightsError, candidates, resolve_weights, weights_url

    console = _console()
    table = Table(title=f"{net.value} backbone weights, in resolution order")
    for col in ("step", "where", "found"):
        table.add_column(col, overflow="fold")
    steps = candidates(net.value, weights)
    for step in steps:
        table.add_row(step.origin, step.detail, "yes" if step.found else "no")
    local = any(step.found for step in steps)
    table.add_row("download", weights_url(net.value), "not needed" if local else ("trying" if download else "no"))
    console.print(table)
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=console)
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
        raise _usage_error(str(failure))
    typer.echo(f"{resolved.origin}: {resolved.path}")
    typer.echo(f"sha256: {resolved.sha256}")


_RESULT_STYLE = {"pass": "green", "marginal": "yellow", "fail": "bold red", "skipped": "dim"}


def _gate_report(verdict: Verdict, top: int, *, stderr: bool = False) -> None:
    from rich.table import Table

    from pixgate.judging.gate import format_bound, format_observed

    console = _console(stderr=stderr)
    rules = Table(title=f"pixgate gate: {verdict.context['policy']['name']}")
    rules.add_column("rule", overflow="fold")
    rules.add_column("observed", justify="right", overflow="fold")
    rules.add_column("bound", overflow="fold")
    rules.add_column("n", justify="right")
    rules.add_column("result")
    for res in verdict.rules:
        name = res.rule.name + (" [critical]" if res.rule.critical else "")
        observed = format_observed(res) + (f"\n{res.note}" if res.note else "")
        style = _RESULT_STYLE[res.result]
        rules.add_row(name, observed, format_bound(res.rule), f"{res.n}/{res.n_rows}", f"[{style}]{res.result}[/]")
    console.print(rules)
    if verdict.failing_pairs:
        listing = Table(title=f"pairs to look at first ({len(verdict.failing_pairs)})")
        for col in ("pair_id", "status", "rules broken", "values"):
            listing.add_column(col, overflow="fold")
        for pair in verdict.failing_pairs[:top]:
            values = ", ".join(f"{k}={_short(v)}" for k, v in pair["values"].items())
            status = pair["status"] or ""
            if pair["error"]:
                status += f": {pair['error']}"
            listing.add_row(pair["pair_id"], status, ", ".join(pair["rules"]), values)
        if len(verdict.failing_pairs) > top:
            listing.add_row("...", "", f"{len(verdict.failing_pairs) - top} more", "see --json")
        console.print(listing)
    style = _RESULT_STYLE[verdict.verdict]
    console.print(
        f"verdict: [{style}]{verdict.verdict.upper()}[/] (score {verdict.score:.1f}/100; {verdict.reason})",
        highlight=False,
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command()
def gate(
    run: Annotated[Path, typer.Argument(help="Run file to judge (Arrow IPC, from `pixgate score`).", dir_okay=False)],
    policy: Annotated[
        Path, typer.Option("--policy", "-p", help="Policy (TOML), e.g. golden/policy.toml.", dir_okay=False)
    ],
    against: Annotated[
        Path | None,
        typer.Option(help="Earlier run to compare with, for median_change rules (e.g. GPU time).", dir_okay=False),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the verdict as JSON here ('-': standard output).", dir_okay=False),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option(help="Write JUnit XML here, a test case per rule ('-': standard output).", dir_okay=False),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(
            help="Write a Markdown summary here, e.g. $GITHUB_STEP_SUMMARY ('-': standard output).", dir_okay=False
        ),
    ] = None,
    annotations: Annotated[
        str | None,
        typer.Option(
            help="Print one error annotation per failed critical rule for this CI system's log: github.",
        ),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="A marginal verdict exits 1 too.")] = False,
    on_fail: Annotated[
        str | None,
        typer.Option(
            help="Shell command to run when the gate fails (e.g. a rollback); it gets PIXGATE_VERDICT, "
            "PIXGATE_SCORE, PIXGATE_RUN and PIXGATE_VERDICT_JSON in its environment."
        ),
    ] = None,
    top: Annotated[
        int,
        typer.Option(callback=_whole_number("--top", 0), help="Failing pairs listed in the table."),
    ] = GATE_MAX_LISTED_PAIRS,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the verdict line.")] = False,
) -> None:
    """Judge a run against a policy: pass, marginal or fail.

    Exit codes: 0 pass (and marginal unless --strict); 1 fail; 2 a bad policy, a missing
    or unreadable file, or a run whose schema does not fit the policy.
    """
    from pixgate.judging.decision import decide, judge_run
    from pixgate.judging.formats import ANNOTATIONS, junit_xml, markdown_summary
    from pixgate.judging.gate import GateInputError
    from pixgate.judging.policy import PolicyError
    from pixgate.runs.files import RunFileError, verdict_json

    if annotations is not None and annotations not in ANNOTATIONS:
        raise _usage_error(f"--annotations must be one of {', '.join(ANNOTATIONS)}; got {annotations!r}")
    files = {"--json": json_out, "--junit": junit, "--markdown": markdown}
    for option, path in files.items():
        _output_folder(option, path)
    to_stdout = [option for option, path in files.items() if path is not None and str(path) == "-"]
    to_stdout += ["--annotations"] if annotations is not None else []
    if len(to_stdout) > 1:
        raise _usage_error(f"{' and '.join(to_stdout)}: only one of them can write to standard output")
    try:
        verdict = judge_run(run, policy, against)
    except (PolicyError, GateInputError, RunFileError) as exc:
        raise _usage_error(exc) from None
    # A format on standard output owns it: the tables go to standard error.
    machine = bool(to_stdout)
    if quiet:
        typer.echo(f"verdict: {verdict.verdict} (score {verdict.score:.1f}; {verdict.reason})", err=machine)
    else:
        _gate_report(verdict, top, stderr=machine)
    console = _console()
    decision = decide(
        verdict,
        strict=strict,
        json_path=json_out if json_out is not None and str(json_out) != "-" else None,
        on_fail=on_fail,
        say=lambda text: console.print(text, highlight=False, markup=False),
    )
    if json_out is not None and str(json_out) == "-":
        _emit(json_out, verdict_json(decision.document))
    if junit is not None:
        _emit(junit, junit_xml(verdict, strict=strict))
    if markdown is not None:
        _emit(markdown, markdown_summary(verdict, top=top))
    if annotations is not None:
        _emit(Path("-"), ANNOTATIONS[annotations](verdict))
    raise typer.Exit(code=1 if decision.blocked else 0)


@app.command()
def approve(
    run: Annotated[Path, typer.Argument(help="Run whose candidates become the new baselines.", dir_okay=False)],
    golden: Annotated[Path, typer.Option(help="The golden set's folder (manifest.jsonl, baseline/).", file_okay=False)],
    ids: Annotated[
        list[str] | None,
        typer.Option("--ids", help="Pairs to approve (repeat, or separate with commas) [default: every pair]."),
    ] = None,
    verdict: Annotated[
        Path | None, typer.Option(help="The run's verdict from `pixgate gate --json`.", dir_okay=False)
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Approve without a verdict, or despite a fail.")] = False,
    by: Annotated[
        str | None, typer.Option(help="Who approves [default: $PIXGATE_APPROVER, else the login name].")
    ] = None,
    files_under: Annotated[
        Path | None,
        typer.Option(
            help="Read candidates only under this folder (run files are data) [default: the current folder].",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Make a reviewed run's candidates the golden baselines, atomically.

    Exit codes: 0 approved; 1 refused (a failed or missing verdict without --force, rows
    that are not ok); 2 a missing or malformed run, verdict or golden set, or unknown ids.
    """
    from rich.table import Table

    from pixgate.golden.approval import approve as run_approval
    from pixgate.golden.golden_set import ApprovalRefused, GoldenError

    console = _console()
    chosen = [i for value in ids or [] for i in value.split(",") if i.strip()] or None

    def staged(done: int, total: int, pair_id: str) -> None:
        console.print(f"staged {done}/{total}: {pair_id}", highlight=False, markup=False)

    try:
        approvals = run_approval(
            run, golden, ids=chosen, verdict_path=verdict, force=force, by=by, on_staged=staged, files_under=files_under
        )
    except GoldenError as exc:
        raise _usage_error(exc) from None
    except ApprovalRefused as exc:
        from rich.text import Text

        # The message is data (ids, paths, a verdict's reason): never read as markup.
        console.print(Text.assemble(("refused:", "bold red"), " ", exc.render(_flag)), highlight=False)
        raise typer.Exit(code=1) from None
    table = Table(title=f"approved into {golden}")
    for col in ("pair_id", "baseline", "sha256", "replaced"):
        table.add_column(col, overflow="fold")
    for a in approvals:
        table.add_row(a.pair_id, a.baseline, a.sha256[:16], a.previous or "(new entry)")
    console.print(table)


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run file to show.", dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.", dir_okay=False)],
    verdict: Annotated[
        Path | None, typer.Option(help="Verdict from `pixgate gate --json`, shown as the banner.", dir_okay=False)
    ] = None,
    capture: Annotated[
        list[Path] | None,
        typer.Option(help="Capture file (repeatable): latency and GPU time plotted against each other."),
    ] = None,
    top: Annotated[
        int, typer.Option(callback=_whole_number("--top", 0, 1000), help="Worst pairs shown with pictures and maps.")
    ] = REPORT_TOP,
    weights: Annotated[
        Path | None,
        typer.Option(help="Backbone weights for the LPIPS maps (found like score's otherwise).", exists=True),
    ] = None,
    net: Annotated[Net, typer.Option(help="LPIPS backbone of the maps.")] = _DEFAULT_NET,
    files_under: Annotated[
        Path | None,
        typer.Option(
            help="Read pictures only under this folder (the run file's paths are data) [default: the current folder].",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Write one self-contained HTML page: verdict, worst pairs with maps, distributions, every pair.

    Exit codes: 0 written; 2 an unreadable run, verdict or capture file.
    """
    from pixgate.report.html import ReportError, build_report

    try:
        stats = build_report(
            run, output, verdict=verdict, captures=capture or [], top=top, weights=weights, net=net.value,
            files_under=files_under,
        )  # fmt: skip
    except ReportError as exc:
        raise _usage_error(exc) from None
    console = _console()
    for note in stats.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    console.print(
        f"{output}: {stats.bytes / 1e6:.1f} MB, {stats.pairs} pairs, {stats.shown} with pictures, "
        f"{stats.seconds:.1f} s",
        highlight=False,
    )


def _positive(option: str) -> Any:
    def check(value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise typer.BadParameter(f"got {value}; use a number of seconds above 0", param_hint=option)
        return value

    return check


def _fraction(value: float | None) -> float | None:
    if value is not None and not 0.0 < value <= 1.0:
        raise typer.BadParameter(f"got {value}; use a fraction above 0 and at most 1, e.g. 0.01", param_hint="--sample")
    return value


_PromptsOpt = Annotated[
    Path, typer.Option("--prompts", help="Prompts (JSONL: id, prompt, optional seed, extra keys).", dir_okay=False)
]
_MaxAttemptsOpt = Annotated[
    int, typer.Option(callback=_whole_number("--max-attempts", 1, 100), help="Attempts per prompt, retries included.")
]
_TimeoutOpt = Annotated[
    float,
    typer.Option(
        callback=_positive("--timeout"),
        help="Time limit of each attempt, seconds: connecting and every read of a request, or a whole command.",
    ),
]
_DeadlineOpt = Annotated[
    float | None,
    typer.Option(callback=_positive("--deadline"), help="Overall time limit, seconds; it cuts attempts in flight too."),
]
_ConcurrencyOpt = Annotated[
    int, typer.Option(callback=_whole_number("--concurrency", 1, 256), help="Requests in flight.")
]
_SampleOpt = Annotated[
    float | None, typer.Option(callback=_fraction, help="Capture a deterministic share of the prompts (by id).")
]
_MaxBytesOpt = Annotated[
    int,
    typer.Option(
        callback=_whole_number("--max-bytes", 1),
        help="Largest answer accepted per prompt (HTTP body or command output), bytes.",
    ),
]
_BackoffOpt = Annotated[
    float, typer.Option(callback=_positive("--backoff"), help="First retry's backoff cap, seconds (doubles).")
]


def _capture_summary(title: str, result: Any) -> None:
    from rich.table import Table

    from pixgate.runs import schema

    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in result.stats.items():
        table.add_row(key.replace("_", " "), str(value), style="red" if key == "errors" and value else None)
    console = _console()
    console.print(table)
    errors = [r for r in result.table.to_pylist() if r[schema.CAPTURE_STATUS.name] != schema.STATUS_OK]
    for row in errors[:SUMMARY_MAX_PROBLEMS]:
        console.print(f"  {row[schema.ID.name]}: {row[schema.CAPTURE_ERROR.name]}", highlight=False, markup=False)


@app.command()
def capture(
    prompts: _PromptsOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the images and capture.arrow.", file_okay=False)],
    endpoint: Annotated[str | None, typer.Option(help="HTTP generator: POST JSON, image (or JSON) back.")] = None,
    command: Annotated[
        str | None, typer.Option(help="Command generator, e.g. 'python gen.py --prompt {prompt} --out {out}'.")
    ] = None,
    max_attempts: _MaxAttemptsOpt = CAPTURE_MAX_ATTEMPTS,
    timeout: _TimeoutOpt = CAPTURE_TIMEOUT_S,
    deadline: _DeadlineOpt = None,
    concurrency: _ConcurrencyOpt = CAPTURE_CONCURRENCY,
    sample: _SampleOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Skip prompts already captured in --out.")] = False,
    backoff: _BackoffOpt = CAPTURE_BACKOFF_S,
    max_bytes: _MaxBytesOpt = CAPTURE_MAX_BYTES,
) -> None:
    """Run prompts through a generator; keep each image and one row per prompt in capture.arrow.

    Exit codes: 0 every prompt captured; 1 some prompt failed (an error row each);
    2 usage error.
    """
    from pixgate.capture.capture import CaptureConfigError, CaptureOptions, run_capture

    opts = CaptureOptions(
        prompts=prompts, out=out, endpoint=endpoint, command=command, max_attempts=max_attempts, timeout_s=timeout,
        deadline_s=deadline, concurrency=concurrency, sample=sample, resume=resume, backoff_s=backoff,
        max_bytes=max_bytes,
    )  # fmt: skip
    try:
        result = run_capture(opts)
    except CaptureConfigError as exc:
        raise _usage_error(exc) from None
    _capture_summary(f"pixgate capture -> {out}", result)
    raise typer.Exit(code=0 if result.all_ok else 1)


@app.command()
def replay(
    prompts: _PromptsOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for run1/, run2/, ... and replay.arrow.", file_okay=False)],
    endpoint: Annotated[str | None, typer.Option(help="HTTP generator.")] = None,
    command: Annotated[str | None, typer.Option(help="Command generator template.")] = None,
    runs: Annotated[int, typer.Option(callback=_whole_number("--runs", 2, 100), help="Times to generate.")] = 2,
    weights: Annotated[
        Path | None, typer.Option(help="Backbone weights for LPIPS between runs.", exists=True, dir_okay=False)
    ] = None,
    max_attempts: _MaxAttemptsOpt = CAPTURE_MAX_ATTEMPTS,
    timeout: _TimeoutOpt = CAPTURE_TIMEOUT_S,
    concurrency: _ConcurrencyOpt = CAPTURE_CONCURRENCY,
    max_bytes: _MaxBytesOpt = CAPTURE_MAX_BYTES,
) -> None:
    """Generate the same prompts and seeds several times and check the images replay.

    Exit codes: 0 every prompt byte-identical in every run; 1 otherwise; 2 usage error.
    """
    from pixgate.capture.capture import CaptureConfigError, CaptureOptions
    from pixgate.capture.replay import REPLAY_FILE, run_replay
    from pixgate.runs import schema

    opts = CaptureOptions(
        prompts=prompts, out=out, endpoint=endpoint, command=command, max_attempts=max_attempts, timeout_s=timeout,
        concurrency=concurrency, max_bytes=max_bytes,
    )  # fmt: skip
    try:
        result = run_replay(opts, runs, weights=weights)
    except CaptureConfigError as exc:
        raise _usage_error(exc) from None
    console = _console()
    if result.note:
        console.print(f"note: {result.note}", highlight=False, markup=False)
    rows = result.table.to_pylist()
    same = sum(1 for r in rows if r[schema.BYTE_IDENTICAL.name] is True)
    console.print(f"{out / REPLAY_FILE}: {same} of {len(rows)} prompts replay byte-identical", highlight=False)
    for r in rows:
        if r[schema.BYTE_IDENTICAL.name] is not True:
            detail = r[schema.CAPTURE_ERROR.name] or (
                f"max pixel difference {r[schema.MAX_PIXEL_DIFF.name]}, LPIPS {r[schema.REPLAY_LPIPS.name]}"
            )
            console.print(f"  {r[schema.ID.name]}: {detail}", highlight=False, markup=False)
    raise typer.Exit(code=0 if result.replayable else 1)


@app.command()
def canary(
    old: Annotated[str, typer.Option("--old", help="The engine in production (HTTP endpoint).")],
    new: Annotated[str, typer.Option("--new", help="The engine to roll out (HTTP endpoint).")],
    prompts: _PromptsOpt,
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Gate policy (TOML).", dir_okay=False)],
    out: Annotated[Path, typer.Option("--output", "-o", help="Folder for captures, run, verdict, report.")],
    weights: Annotated[
        Path | None, typer.Option(help="Backbone weights for LPIPS.", exists=True, dir_okay=False)
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Manifest for typography checks and ignore regions.", exists=True)
    ] = None,
    no_lpips: Annotated[bool, typer.Option("--no-lpips", help="Skip LPIPS.")] = False,
    typography: _TypographyOpt = True,
    ocr_lang: _OcrLangOpt = OCR_LANG,
    ocr_cache: _OcrCacheOpt = None,
    no_ocr_cache: _NoOcrCacheOpt = False,
    strict: Annotated[bool, typer.Option("--strict", help="A marginal verdict exits 1 too.")] = False,
    on_fail: Annotated[
        str | None,
        typer.Option(
            help="Shell command to run when the canary fails (e.g. a rollback), as `gate --on-fail` runs it; the "
            "verdict goes to OUT/verdict.json."
        ),
    ] = None,
    max_attempts: _MaxAttemptsOpt = CAPTURE_MAX_ATTEMPTS,
    timeout: _TimeoutOpt = CAPTURE_TIMEOUT_S,
    deadline: _DeadlineOpt = None,
    concurrency: _ConcurrencyOpt = CAPTURE_CONCURRENCY,
    sample: _SampleOpt = None,
    max_bytes: _MaxBytesOpt = CAPTURE_MAX_BYTES,
) -> None:
    """Capture both engines, score new against old, compare their latency and GPU cost, gate, report.

    Exit codes as `gate`: 0 pass (and marginal unless --strict); 1 fail; 2 usage error.
    """
    from pixgate.capture.canary import run_canary
    from pixgate.capture.capture import CaptureConfigError, CaptureOptions
    from pixgate.judging.gate import GateInputError
    from pixgate.judging.policy import PolicyError
    from pixgate.runs.files import RunFileError
    from pixgate.scoring.score import ScoreConfigError

    console = _console()
    opts = CaptureOptions(
        prompts=prompts, out=out, max_attempts=max_attempts, timeout_s=timeout, deadline_s=deadline,
        concurrency=concurrency, sample=sample, max_bytes=max_bytes,
    )  # fmt: skip
    try:
        result = run_canary(
            opts, old, new, policy, weights=weights, manifest=manifest, no_lpips=no_lpips,
            typography=typography, ocr_lang=ocr_lang, ocr_cache=ocr_cache, no_ocr_cache=no_ocr_cache,
            strict=strict, on_fail=on_fail,
            on_stage=lambda text: console.print(f"canary: {text}", highlight=False, markup=False),
        )  # fmt: skip
    except (CaptureConfigError, PolicyError, ScoreConfigError, GateInputError, RunFileError) as exc:
        raise _usage_error(exc, out="--output") from None
    _gate_report(result.verdict, GATE_MAX_LISTED_PAIRS)
    console.print(f"report: {result.files['report']}", highlight=False)
    raise typer.Exit(code=1 if result.decision.blocked else 0)


demo_app = typer.Typer(help="The demo generator: deterministic posters, with switchable failure modes.")
app.add_typer(demo_app, name="demo-engine")


def _degrade(value: str) -> frozenset[str]:
    from pixgate.capture.demo_engine import DEGRADATIONS

    chosen = frozenset(v.strip() for v in value.split(",") if v.strip())
    unknown = sorted(chosen - set(DEGRADATIONS))
    if unknown:
        raise typer.BadParameter(
            f"got {', '.join(unknown)}; choose from {', '.join(DEGRADATIONS)}", param_hint="--degrade"
        )
    return chosen


@demo_app.command("serve")
def demo_serve(
    port: Annotated[
        int, typer.Option(callback=_whole_number("--port", 0, 65535), help="Port (0: any free one).")
    ] = 8765,
    degrade: Annotated[str, typer.Option(help="Failure modes, comma-separated (alpha,icc,blur,...).")] = "",
    latency_ms: Annotated[float, typer.Option(help="Delay before every answer, ms.")] = 0.0,
    fail_first: Annotated[
        int,
        typer.Option(callback=_whole_number("--fail-first", 0), help="Answer 503 to each prompt's first N requests."),
    ] = 0,
    retry_after: Annotated[float | None, typer.Option(help="Retry-After seconds sent with those 503s.")] = None,
    json_body: Annotated[bool, typer.Option("--json", help="Answer JSON with a base64 image.")] = False,
) -> None:
    """Serve the demo generator on 127.0.0.1 (POST JSON {"prompt", "seed"}; PNG back)."""
    from pixgate.capture.demo_engine import make_server

    server = make_server(
        port, degrade=_degrade(degrade), latency_ms=latency_ms, fail_first=fail_first, retry_after=retry_after,
        as_json=json_body,
    )  # fmt: skip
    host, bound = server.server_address[:2]
    typer.echo(f"demo engine on http://{host!s}:{bound}/ (degrade: {degrade or 'none'}); Ctrl-C stops it", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


@demo_app.command("generate")
def demo_generate(
    prompt: Annotated[str, typer.Option(help="Prompt text.")],
    seed: Annotated[int, typer.Option(help="Seed.")],
    out: Annotated[Path, typer.Option(help="Image file to write.", dir_okay=False)],
    degrade: Annotated[str, typer.Option(help="Failure modes, comma-separated.")] = "",
) -> None:
    """Generate one poster into a file (the command form of the demo engine)."""
    from pixgate.capture.demo_engine import write_image

    write_image(prompt, seed, out, degrade=_degrade(degrade))


golden_app = typer.Typer(help="Golden set tools.", no_args_is_help=True)
app.add_typer(golden_app, name="golden")


@golden_app.command("verify")
def golden_verify(
    golden: Annotated[Path, typer.Argument(metavar="GOLDEN_DIR", help="The golden set's folder.", file_okay=False)],
) -> None:
    """Check every baseline file against the manifest's sha256.

    Exit codes: 0 every file matches; 1 missing, changed, extra or unrecorded files;
    2 no golden set there.
    """
    from rich.table import Table

    from pixgate.golden.golden_set import GoldenError, verify

    console = _console()
    try:
        report = verify(golden)
    except GoldenError as exc:
        raise _usage_error(exc, golden="GOLDEN_DIR") from None
    if report.recovered:
        console.print(f"note: {report.recovered}", highlight=False)
    problems = Table(title=f"golden set {golden}")
    for col in ("problem", "id", "file"):
        problems.add_column(col, overflow="fold")
    for pid, rel in report.missing:
        problems.add_row("missing", pid, rel)
    for pid, rel in report.changed:
        problems.add_row("changed (sha256 differs)", pid, rel)
    for pid, rel, why in report.unreadable:
        problems.add_row(f"unreadable ({why})", pid, rel)
    for rel in report.extra:
        problems.add_row("extra (not in the manifest)", "", rel)
    for pid in report.unrecorded:
        problems.add_row("unrecorded (no baseline/sha256)", pid, "")
    if not report.clean:
        console.print(problems)
        raise typer.Exit(code=1)
    console.print(f"golden set OK: {len(report.checked)} files match the manifest", highlight=False)


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
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            _internal_error(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except Exception as exc:
        _internal_error(exc)
    sys.exit(code)


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


__all__ = ["app", "main"]
