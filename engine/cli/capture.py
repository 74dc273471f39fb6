"""`pixgate capture`, `replay`, `canary` and `demo-engine`: generators and their outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pixgate.cli.common import (
    NoOcrCacheOpt,
    OcrCacheOpt,
    OcrLangOpt,
    QuietOpt,
    TypographyOpt,
    WeightsOpt,
    console,
    number_in,
    output_folder,
    usage_error,
    whole_number,
)
from pixgate.cli.gate import gate_report
from pixgate.config import (
    CAPTURE_BACKOFF_S,
    CAPTURE_CONCURRENCY,
    CAPTURE_MAX_ATTEMPTS,
    CAPTURE_MAX_BYTES,
    CAPTURE_MAX_BYTES_CEILING,
    CAPTURE_MAX_LISTED_ERRORS,
    CAPTURE_SEED_MAX,
    CAPTURE_TIMEOUT_S,
    GATE_MAX_LISTED_PAIRS,
    GATE_ON_FAIL_TIMEOUT_S,
    OCR_LANG,
    SECONDS_OPTION_MAX_S,
)


def _positive(option: str) -> Any:
    """A typer callback for a number of seconds above 0, and finite."""
    return number_in(option, 0.0, SECONDS_OPTION_MAX_S, above=True)


def _fraction(value: float | None) -> float | None:
    if value is not None and not 0.0 < value <= 1.0:
        raise typer.BadParameter(f"got {value}; use a fraction above 0 and at most 1, e.g. 0.01", param_hint="--sample")
    return value


_PromptsOpt = Annotated[
    Path, typer.Option("--prompts", help="Prompts (JSONL: id, prompt, optional seed, extra keys).", dir_okay=False)
]
_MaxAttemptsOpt = Annotated[
    int, typer.Option(callback=whole_number("--max-attempts", 1, 100), help="Attempts per prompt, retries included.")
]
_TimeoutOpt = Annotated[
    float,
    typer.Option(
        callback=_positive("--timeout"),
        help="Time limit of each attempt, seconds: connecting and every read of a request, or a whole command.",
        metavar="SECONDS",
    ),
]
_DeadlineOpt = Annotated[
    float | None,
    typer.Option(
        callback=_positive("--deadline"),
        help="Overall time limit, seconds; it cuts attempts in flight too.",
        metavar="SECONDS",
    ),
]
_ConcurrencyOpt = Annotated[
    int, typer.Option(callback=whole_number("--concurrency", 1, 256), help="Requests in flight.")
]
_SampleOpt = Annotated[
    float | None,
    typer.Option(callback=_fraction, help="Capture a deterministic share of the prompts (by id).", metavar="FRACTION"),
]
_MaxBytesOpt = Annotated[
    int,
    typer.Option(
        callback=whole_number("--max-bytes", 1, CAPTURE_MAX_BYTES_CEILING),
        help="Largest answer accepted per prompt (HTTP body or command output), bytes.",
    ),
]
_BackoffOpt = Annotated[
    float,
    typer.Option(
        callback=_positive("--backoff"), help="First retry's backoff cap, seconds (doubles).", metavar="SECONDS"
    ),
]


_Output = Annotated[
    Path, typer.Option("--output", "-o", help="Folder for the images and capture.arrow.", file_okay=False)
]


def _capture_summary(title: str, result: Any, output: Path, *, quiet: bool) -> None:
    from rich.table import Table

    from pixgate.capture.capture import CAPTURE_FILE
    from pixgate.runs import schema
    from pixgate.safe_io import printable

    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in result.stats.items():
        table.add_row(key.replace("_", " "), str(value), style="red" if key == "errors" and value else None)
    term = console()
    if not quiet:
        term.print(table)
    status = result.table.column(schema.CAPTURE_STATUS.name).to_pylist()
    failed = [i for i, s in enumerate(status) if s != schema.STATUS_OK]
    # Only the rows listed become Python objects: 100,000 failed prompts print
    # CAPTURE_MAX_LISTED_ERRORS lines and a count, not 100,000 lines.
    listed = result.table.take(failed[:CAPTURE_MAX_LISTED_ERRORS]).to_pylist() if failed else []
    for row in listed:
        term.print(f"  {printable(str(row[schema.ID.name]))}: {printable(str(row[schema.CAPTURE_ERROR.name]))}")
    if len(failed) > len(listed):
        where = printable(str(output / CAPTURE_FILE))
        term.print(f"  ... and {len(failed) - len(listed):,} more errors, see {where}")


def capture(
    prompts: _PromptsOpt,
    output: _Output,
    endpoint: Annotated[
        str | None, typer.Option(help="HTTP generator: POST JSON, image (or JSON) back.", metavar="URL")
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(help="Command generator, e.g. 'python gen.py --prompt {prompt} --out {out}'.", metavar="COMMAND"),
    ] = None,
    max_attempts: _MaxAttemptsOpt = CAPTURE_MAX_ATTEMPTS,
    timeout: _TimeoutOpt = CAPTURE_TIMEOUT_S,
    deadline: _DeadlineOpt = None,
    concurrency: _ConcurrencyOpt = CAPTURE_CONCURRENCY,
    sample: _SampleOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Skip prompts already captured in --output.")] = False,
    backoff: _BackoffOpt = CAPTURE_BACKOFF_S,
    max_bytes: _MaxBytesOpt = CAPTURE_MAX_BYTES,
    quiet: QuietOpt = False,
) -> None:
    """Run prompts through a generator; keep each image and one row per prompt in capture.arrow.

    Exit codes: 0 every prompt captured; 1 some prompt failed (an error row each);
    2 usage error.
    """
    from pixgate.capture.capture import CaptureConfigError, CaptureOptions, run_capture

    opts = CaptureOptions(
        prompts=prompts, out=output, endpoint=endpoint, command=command, max_attempts=max_attempts,
        timeout_s=timeout, deadline_s=deadline, concurrency=concurrency, sample=sample, resume=resume,
        backoff_s=backoff, max_bytes=max_bytes,
    )  # fmt: skip
    try:
        result = run_capture(opts)
    except CaptureConfigError as exc:
        raise usage_error(exc, out="--output") from None
    _capture_summary(f"pixgate capture -> {output}", result, output, quiet=quiet)
    raise typer.Exit(code=0 if result.all_ok else 1)


def replay(
    prompts: _PromptsOpt,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Folder for run1/, run2/, ... and replay.arrow.", file_okay=False),
    ],
    endpoint: Annotated[str | None, typer.Option(help="HTTP generator.", metavar="URL")] = None,
    command: Annotated[str | None, typer.Option(help="Command generator template.", metavar="COMMAND")] = None,
    runs: Annotated[int, typer.Option(callback=whole_number("--runs", 2, 100), help="Times to generate.")] = 2,
    weights: WeightsOpt = None,
    max_attempts: _MaxAttemptsOpt = CAPTURE_MAX_ATTEMPTS,
    timeout: _TimeoutOpt = CAPTURE_TIMEOUT_S,
    concurrency: _ConcurrencyOpt = CAPTURE_CONCURRENCY,
    max_bytes: _MaxBytesOpt = CAPTURE_MAX_BYTES,
    quiet: QuietOpt = False,
) -> None:
    """Generate the same prompts and seeds several times and check the images replay.

    Exit codes: 0 every prompt byte-identical in every run; 1 otherwise; 2 usage error.
    """
    from pixgate.capture.capture import CaptureConfigError, CaptureOptions
    from pixgate.capture.replay import REPLAY_FILE, run_replay
    from pixgate.runs import schema

    opts = CaptureOptions(
        prompts=prompts, out=output, endpoint=endpoint, command=command, max_attempts=max_attempts,
        timeout_s=timeout, concurrency=concurrency, max_bytes=max_bytes,
    )  # fmt: skip
    try:
        result = run_replay(opts, runs, weights=weights)
    except CaptureConfigError as exc:
        raise usage_error(exc, out="--output") from None
    term = console()
    if result.note and not quiet:
        term.print(f"note: {result.note}")
    identical = result.table.column(schema.BYTE_IDENTICAL.name).to_pylist()
    differ = [i for i, same in enumerate(identical) if same is not True]
    term.print(
        f"{output / REPLAY_FILE}: {len(identical) - len(differ)} of {len(identical)} prompts replay byte-identical"
    )
    # As capture's listing: a capped number of lines, then a count.
    for r in result.table.take(differ[:CAPTURE_MAX_LISTED_ERRORS]).to_pylist() if differ else []:
        detail = r[schema.CAPTURE_ERROR.name] or (
            f"max pixel difference {r[schema.MAX_PIXEL_DIFF.name]}, LPIPS {r[schema.REPLAY_LPIPS.name]}"
        )
        term.print(f"  {r[schema.ID.name]}: {detail}")
    if len(differ) > CAPTURE_MAX_LISTED_ERRORS:
        term.print(f"  ... and {len(differ) - CAPTURE_MAX_LISTED_ERRORS:,} more, see {output / REPLAY_FILE}")
    raise typer.Exit(code=0 if result.replayable else 1)


def canary(
    old: Annotated[str, typer.Option("--old", help="The engine in production (HTTP endpoint).", metavar="URL")],
    new: Annotated[str, typer.Option("--new", help="The engine to roll out (HTTP endpoint).", metavar="URL")],
    prompts: _PromptsOpt,
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Gate policy (TOML).", dir_okay=False)],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for captures, run, verdict, report.", file_okay=False)
    ],
    weights: WeightsOpt = None,
    manifest: Annotated[
        Path | None,
        typer.Option(help="Manifest for typography checks and ignore regions.", exists=True, dir_okay=False),
    ] = None,
    no_lpips: Annotated[bool, typer.Option("--no-lpips", help="Skip LPIPS.")] = False,
    typography: TypographyOpt = True,
    ocr_lang: OcrLangOpt = OCR_LANG,
    ocr_cache: OcrCacheOpt = None,
    no_ocr_cache: NoOcrCacheOpt = False,
    strict: Annotated[bool, typer.Option("--strict", help="A marginal verdict exits 1 too.")] = False,
    on_fail: Annotated[
        str | None,
        typer.Option(
            help="Shell command to run when the canary fails (e.g. a rollback), as `gate --on-fail` runs it; the "
            "verdict goes to OUTPUT/verdict.json.",
            metavar="COMMAND",
        ),
    ] = None,
    on_fail_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds the --on-fail command may run before its process group is killed.", metavar="SECONDS"
        ),
    ] = GATE_ON_FAIL_TIMEOUT_S,
    max_attempts: _MaxAttemptsOpt = CAPTURE_MAX_ATTEMPTS,
    timeout: _TimeoutOpt = CAPTURE_TIMEOUT_S,
    deadline: _DeadlineOpt = None,
    concurrency: _ConcurrencyOpt = CAPTURE_CONCURRENCY,
    sample: _SampleOpt = None,
    max_bytes: _MaxBytesOpt = CAPTURE_MAX_BYTES,
    quiet: QuietOpt = False,
) -> None:
    """Capture both engines, score new against old, compare their latency and GPU cost, gate, report.

    Exit codes as `gate`: 0 pass (and marginal unless --strict); 1 fail; 2 usage error.
    """
    from pixgate.capture.canary import run_canary
    from pixgate.capture.capture import CaptureConfigError, CaptureOptions
    from pixgate.judging.decision import OnFailError
    from pixgate.judging.gate import GateInputError
    from pixgate.judging.policy import PolicyError
    from pixgate.runs.files import RunFileError
    from pixgate.scoring.score import ScoreConfigError

    term = console()
    opts = CaptureOptions(
        prompts=prompts, out=output, max_attempts=max_attempts, timeout_s=timeout, deadline_s=deadline,
        concurrency=concurrency, sample=sample, max_bytes=max_bytes,
    )  # fmt: skip
    try:
        result = run_canary(
            opts, old, new, policy, weights=weights, manifest=manifest, no_lpips=no_lpips,
            typography=typography, ocr_lang=ocr_lang, ocr_cache=ocr_cache, no_ocr_cache=no_ocr_cache,
            strict=strict, on_fail=on_fail, on_fail_timeout=on_fail_timeout,
            on_stage=lambda text: None if quiet else term.print(f"canary: {text}"),
        )  # fmt: skip
    except (CaptureConfigError, PolicyError, ScoreConfigError, GateInputError, RunFileError, OnFailError) as exc:
        raise usage_error(exc, out="--output") from None
    if quiet:
        verdict = result.verdict
        term.print(f"verdict: {verdict.verdict} (score {verdict.score:.1f}; {verdict.reason})")
    else:
        gate_report(result.verdict, GATE_MAX_LISTED_PAIRS)
        term.print(f"report: {result.files['report']}")
    raise typer.Exit(code=1 if result.decision.blocked else 0)


def _degrade(value: str) -> frozenset[str]:
    from pixgate.capture.demo_engine import DEGRADATIONS

    chosen = frozenset(v.strip() for v in value.split(",") if v.strip())
    unknown = sorted(chosen - set(DEGRADATIONS))
    if unknown:
        raise typer.BadParameter(
            f"got {', '.join(unknown)}; choose from {', '.join(DEGRADATIONS)}", param_hint="--degrade"
        )
    return chosen


_DegradeOpt = Annotated[str, typer.Option(help="Failure modes, comma-separated (alpha,icc,blur,...).", metavar="MODES")]


def demo_serve(
    port: Annotated[
        int, typer.Option(callback=whole_number("--port", 0, 65535), help="Port (0: any free one).")
    ] = 8765,
    degrade: _DegradeOpt = "",
    latency_ms: Annotated[
        float,
        typer.Option(
            callback=number_in("--latency-ms", 0.0, SECONDS_OPTION_MAX_S * 1000, unit="ms"),
            help="Delay before every answer, ms.",
            metavar="MS",
        ),
    ] = 0.0,
    fail_first: Annotated[
        int,
        typer.Option(callback=whole_number("--fail-first", 0), help="Answer 503 to each prompt's first N requests."),
    ] = 0,
    retry_after: Annotated[
        float | None,
        typer.Option(
            callback=number_in("--retry-after", 0.0, SECONDS_OPTION_MAX_S),
            help="Retry-After seconds sent with those 503s.",
            metavar="SECONDS",
        ),
    ] = None,
    json_body: Annotated[bool, typer.Option("--json", help="Answer JSON with a base64 image.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Serve the demo generator on 127.0.0.1 (POST JSON {"prompt", "seed"}; PNG back)."""
    from pixgate.capture.demo_engine import make_server

    server = make_server(
        port, degrade=_degrade(degrade), latency_ms=latency_ms, fail_first=fail_first, retry_after=retry_after,
        as_json=json_body,
    )  # fmt: skip
    host, bound = server.server_address[:2]
    if not quiet:
        console().print(f"demo engine on http://{host!s}:{bound}/ (degrade: {degrade or 'none'}); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


def demo_generate(
    prompt: Annotated[str, typer.Option(help="Prompt text.")],
    seed: Annotated[
        int, typer.Option(callback=whole_number("--seed", 0, CAPTURE_SEED_MAX), help="Seed, 0 to 2**64 - 1.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file to write.", dir_okay=False)],
    degrade: _DegradeOpt = "",
    quiet: QuietOpt = False,
) -> None:
    """Generate one poster into a file (the command form of the demo engine)."""
    from pixgate.capture.demo_engine import write_image

    output_folder("--output", output)
    write_image(prompt, seed, output, degrade=_degrade(degrade))
    if not quiet:
        console().print(f"{output}: written")
