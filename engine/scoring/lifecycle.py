"""One run lifecycle for every backend: validate, lock, resume, pair, metadata, journal,
finalize, stats.

A backend (`pixgate.scoring.local`, `pixgate.scoring.ray_backend`) only turns pairs into
rows. Everything else a run does is here, once: the checks made before anything starts,
the output's lock, what an earlier run left (its rows are carried over while their files
are unchanged, its settings must match), the weights and the metadata, the crash-safe
journal the rows stream into, and the run file written at the end with the run's
statistics.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pixgate import __version__
from pixgate.config import IMAGE_EXTENSIONS, JOURNAL_FLUSH_S, LPIPS_HEAD_VERSION, RESUME_HASH_THREADS
from pixgate.locking import holding
from pixgate.runs import schema
from pixgate.runs.files import (
    RunJournal,
    check_journalled_output,
    dumps_meta,
    journal_path,
    read_journal,
    read_run,
    run_metadata,
)
from pixgate.safe_io import UnsafeInputError, check_pair_id, printable, sha256_regular
from pixgate.scoring.decode import decoders, max_file_bytes
from pixgate.scoring.options import (
    ScoreConfigError,
    ScoreOptions,
    ScoreResult,
    check_decoder_setting,
    check_options,
)
from pixgate.scoring.pairing import Pair, Pairing
from pixgate.scoring.rows import missing_row, path_text
from pixgate.scoring.scorer import choose_precision, resolve_lpips_weights
from pixgate.telemetry import process_age_s

if TYPE_CHECKING:
    import pyarrow as pa
    import torch

    from pixgate.scoring.weights import ResolvedWeights

#: Called with each group of rows as they are written (progress display).
OnRows = Callable[[list[dict[str, Any]]], None]
#: Called once scoring starts with (total pairs, pairs already done).
OnStart = Callable[[int, int], None]


def now() -> str:
    """The time stamps of a run's metadata: UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RunContext:
    """What the lifecycle knows of a run when a backend starts turning its pairs into rows.

    Attributes:
        opts: The run's options.
        pairing: Every pair found, scorable or not.
        todo: Scorable pairs not carried over from an earlier run.
        unscorable: Pairs without a partner (or with a pairing problem), not carried over.
        started: `time.perf_counter()` when the run started.
        cleanup: Closed when the run ends, however it ends.
        carried: Pairs already done (carried over from an earlier run).
        on_start: Called once scoring starts (`begin`).
        weights: The backbone weights (None with `no_lpips`), once resolved.
        meta: The run's metadata, which a backend may add to until the run ends.
        phases: Seconds each start-up phase took (pairing, weights, and the backend's:
            workers, model, kernels), for the stats.
    """

    opts: ScoreOptions
    pairing: Pairing
    todo: list[Pair]
    unscorable: list[Pair]
    started: float
    cleanup: contextlib.ExitStack
    carried: int = 0
    on_start: OnStart | None = None
    weights: ResolvedWeights | None = None
    meta: dict[str, str] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    _begun: bool = False

    def begin(self) -> None:
        """Say that scoring starts (model and workers ready): `on_start` runs once."""
        if not self._begun:
            self._begun = True
            if self.on_start is not None:
                self.on_start(len(self.pairing.pairs), self.carried)


@dataclass(frozen=True)
class Opened:
    """A backend, started: where it scores and what the metadata says of it.

    Attributes:
        device: The device the model runs on (for the Ray backend: its actors' kind).
        meta: Metadata entries of the backend's (they override the common ones).
        batch_size: Rows gathered before the journal is written to, at most.
    """

    device: torch.device
    meta: dict[str, str]
    batch_size: int


class Backend(Protocol):
    """Turns a run's pairs into rows; the lifecycle does the rest."""

    def check(self, opts: ScoreOptions) -> None:
        """The backend's own checks of the options, before the output is locked.

        Raises:
            ScoreConfigError: A usage problem.
        """

    def pair(self, opts: ScoreOptions) -> Pairing:
        """Find the pairs of the run's two folders.

        Raises:
            ScoreConfigError: A folder that cannot be paired.
        """

    def open(self, run: RunContext) -> Opened:
        """Check and start what scoring needs before the weights are resolved (a
        manifest, an OCR engine, a cluster); register its shutdown with `run.cleanup`.
        Usage problems found here raise ScoreConfigError before any row is written."""

    def rows(self, run: RunContext, sink: RowSink) -> None:
        """Turn every pair of `run.todo` and `run.unscorable` into a row in `sink`,
        calling `run.begin()` once scoring starts."""

    def stats(self, run: RunContext, wall: float) -> dict[str, Any]:
        """The backend's statistics (merged into the run's), `wall` seconds after the
        run started."""

    def settings(self) -> dict[str, Any]:
        """The backend's settings recorded in the metadata."""

    def file_sha256(self, side: str, path: Path, max_bytes: int) -> str | None:
        """sha256 of a paired file's bytes (`side`: `baseline` or `candidate`), read as the
        backend's decoding reads them; None when it cannot be read whole within
        `max_bytes` (`--resume` checks with it that a carried row's files are unchanged)."""


def local_sha256(side: str, path: Path, max_bytes: int) -> str | None:
    """`Backend.file_sha256` for a local file, either side: regular files only, at most
    `max_bytes` (`pixgate.safe_io.sha256_regular`)."""
    try:
        return sha256_regular(path, max_bytes)
    except UnsafeInputError:
        return None


class RowSink:
    """Rows on their way to the journal: written in groups of `batch_size`, or every
    `JOURNAL_FLUSH_S` seconds, so a killed run loses little and the journal is not
    appended to once per row."""

    def __init__(self, journal: RunJournal, batch_size: int, on_rows: OnRows | None) -> None:
        self.pending: list[dict[str, Any]] = []
        self._journal = journal
        self._batch_size = batch_size
        self._on_rows = on_rows
        self._last = time.perf_counter()

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows and write them if a group is due."""
        self.pending.extend(rows)
        self.flush()

    def flush(self, *, force: bool = False) -> None:
        """Write the queued rows if a group is due (or now, with `force`)."""
        if self.pending and (
            force or len(self.pending) >= self._batch_size or time.perf_counter() - self._last >= JOURNAL_FLUSH_S
        ):
            self._journal.append(self.pending)
            if self._on_rows is not None:
                self._on_rows(self.pending)
            self.pending, self._last = [], time.perf_counter()


def check_resume(old: dict[str, str], new: dict[str, str], source: Path) -> None:
    """An earlier run is continued only with the same settings (`schema.RESUME_KEYS`).

    Raises:
        ScoreConfigError: A setting differs.
    """
    for key in schema.RESUME_KEYS:
        if old.get(key, "") != new.get(key, ""):
            raise ScoreConfigError.about(
                "{resume}: {source} was written with {key}={was!r}, this run has {now!r}; use the same "
                "settings, or drop {resume} to start over",
                source=source,
                key=key,
                was=old.get(key, ""),
                now=new.get(key, ""),
            )


def _journal_rows(path: Path, option: str) -> tuple[pa.Table, dict[str, str]]:
    try:
        table, meta = read_journal(path)
    except ValueError as exc:
        raise ScoreConfigError.about(
            "{" + option + "}: {problem}; it is not a journal pixgate can read: move it away, or pass {overwrite} "
            "to start over",
            problem=str(exc),
        ) from None
    return _checked(table, option, path), meta


def _checked(table: pa.Table, option: str, path: Path) -> pa.Table:
    """Rows to carry into this run, checked like any run file: carried unchecked, a file's
    null or repeated pair ids would become this run's rows; and a pair id must be a
    relative path, or a row could stand for a file outside the two folders."""
    try:
        schema.check_table(table, path, "run")
    except schema.TableError as exc:
        raise ScoreConfigError.about(
            "{" + option + "}: {problem}; move it away, or pass {overwrite} to start over", problem=str(exc)
        ) from None
    for pair_id in table.column(schema.PAIR_ID.name).to_pylist():
        try:
            check_pair_id(pair_id)
        except UnsafeInputError as exc:
            raise ScoreConfigError.about(
                "{" + option + "}: {source} holds a row for pair id {pair_id!r}, which is not a path inside the two "
                "folders ({problem}); pixgate never writes such a row: move the file away, or pass {overwrite} to "
                "start over",
                source=printable(str(path)),
                pair_id=pair_id,
                problem=str(exc),
            ) from None
    return table


@dataclass(frozen=True)
class Resumed:
    """What `--resume` makes of an earlier run's rows, once the pairs are known.

    Attributes:
        table: The rows kept, in the run's columns (None when none are).
        kept: Rows kept: their pair's files are the ones they were scored from.
        dropped: Rows of pairs that no longer exist in the two folders.
        rescored: Rows of pairs that exist but whose files changed, appeared or went away
            (or that an earlier run could not read whole): their pairs are scored again.
    """

    table: pa.Table | None
    kept: int
    dropped: int
    rescored: int

    def counts(self) -> dict[str, int]:
        """The counts, as the run's metadata (`schema.META_RESUME`) records them."""
        return {"kept": self.kept, "dropped": self.dropped, "rescored": self.rescored}


def fresh_rows(
    carried: pa.Table, pairing: Pairing, opts: ScoreOptions, file_sha256: Callable[[str, Path, int], str | None]
) -> Resumed:
    """Keep only the carried rows that this run would write again as they are.

    A row is kept when its pair still exists with the same files: the same paths, and
    for a scorable pair the same bytes (each file hashed again and compared with the
    sha256 its row recorded, so a row without both digests is scored again); a pair
    that cannot be scored keeps its row while the row says what it would say now.

    Args:
        carried: The earlier run's rows (checked by `load_previous`).
        pairing: This run's pairs.
        opts: The run's options (the folders, the pixel limit that bounds each read).
        file_sha256: Hashes a paired file (`Backend.file_sha256`).
    """
    import pyarrow as pa

    by_id = {p.pair_id: p for p in pairing.pairs}
    names = set(carried.column_names)

    def column(col: schema.Column) -> list[Any]:
        return carried.column(col.name).to_pylist() if col.name in names else [None] * carried.num_rows

    rows = zip(
        column(schema.PAIR_ID), column(schema.STATUS), column(schema.ERROR),
        column(schema.BASELINE_PATH), column(schema.CANDIDATE_PATH),
        column(schema.BASELINE_SHA256), column(schema.CANDIDATE_SHA256),
        strict=True,
    )  # fmt: skip
    keep = [False] * carried.num_rows
    dropped = 0
    to_hash: list[tuple[int, Pair, str, str]] = []
    for index, (pair_id, status, error, base_path, cand_path, base_sha, cand_sha) in enumerate(rows):
        pair = by_id.get(pair_id)
        if pair is None:
            dropped += 1
            continue
        paths = (_recorded(opts.baseline, pair.baseline), _recorded(opts.candidate, pair.candidate))
        if (base_path, cand_path) != paths:
            continue
        if not pair.scorable:
            now = missing_row(pair)
            keep[index] = (status, error) == (now[schema.STATUS.name], _text(now[schema.ERROR.name]))
        elif base_sha is not None and cand_sha is not None:
            to_hash.append((index, pair, base_sha, cand_sha))
    limit = max_file_bytes(opts.max_pixels)

    def unchanged(item: tuple[int, Pair, str, str]) -> bool:
        _, pair, base_sha, cand_sha = item
        assert pair.baseline is not None and pair.candidate is not None
        return (
            file_sha256("baseline", pair.baseline, limit) == base_sha
            and file_sha256("candidate", pair.candidate, limit) == cand_sha
        )

    if to_hash:
        with ThreadPoolExecutor(min(RESUME_HASH_THREADS, len(to_hash)), thread_name_prefix="pixgate-resume") as pool:
            for item, same in zip(to_hash, pool.map(unchanged, to_hash), strict=True):
                keep[item[0]] = same
    kept = sum(keep)
    table = _in_run_columns(carried.filter(pa.array(keep, pa.bool_()))) if kept else None
    return Resumed(table, kept, dropped, carried.num_rows - kept - dropped)


def _recorded(location: Path | str, path: Path | None) -> str | None:
    """A path as a row records it (escaped where it is not valid UTF-8)."""
    return _text(path_text(location, path))


def _text(value: str | None) -> str | None:
    return printable(value) if value is not None else None


def _in_run_columns(table: pa.Table) -> pa.Table:
    """Carried rows in this run's columns: a column a journal of an earlier pixgate lacks
    is null (kept rows of such a journal are those of pairs that cannot be scored).

    Raises:
        ScoreConfigError: A carried value this run's column cannot hold.
    """
    import pyarrow as pa

    target = schema.arrow_schema()
    arrays = []
    for f in target:
        if f.name not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, f.type))
            continue
        try:  # a journal from elsewhere may hold values of the right kind that this column cannot
            arrays.append(table.column(f.name).cast(f.type))
        except (pa.ArrowException, ValueError) as exc:
            raise ScoreConfigError.about(
                "{resume}: the earlier run's column {column!r} does not fit this run's {type} ({problem}); "
                "move it away, or pass {overwrite} to start over",
                column=f.name,
                type=str(f.type),
                problem=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            ) from None
    return pa.Table.from_arrays(arrays, schema=target)


def load_previous(opts: ScoreOptions) -> tuple[pa.Table | None, dict[str, str], Path | None]:
    """Rows and metadata of an earlier run that this one continues, if any.

    Without `resume`, an earlier run's files are an error unless `overwrite` is given; a
    journal without rows (a run killed before its first batch) holds nothing to lose and
    is started over. Call it while holding the output's lock (`owned_output`).

    Raises:
        ScoreConfigError: An earlier run would be replaced without `overwrite`, or its
            journal or run file cannot be read.
    """
    jpath = journal_path(opts.output)
    if not opts.resume:
        if opts.overwrite:
            return None, {}, None
        if jpath.exists() or jpath.is_symlink():
            table, _ = _journal_rows(jpath, "output")
            if table.num_rows:
                raise ScoreConfigError.about(
                    "an interrupted run exists at {journal} ({rows} rows): pass {resume} to complete it, "
                    "or {overwrite} to start over",
                    journal=jpath,
                    rows=table.num_rows,
                )
        if opts.output.exists() or opts.output.is_symlink():
            raise ScoreConfigError.about(
                "{output}: {path} already exists: pass {overwrite} to replace it, or {resume} to score only the "
                "pairs missing from it",
                path=opts.output,
            )
        return None, {}, None
    if jpath.exists() or jpath.is_symlink():
        table, meta = _journal_rows(jpath, "resume")
        # No rows: killed before its first batch (or while the journal was created).
        return (table, meta, jpath) if table.num_rows else (None, {}, None)
    if opts.output.exists():
        try:
            table = read_run(opts.output, check=False)  # checked below, with what to do about it
        except ValueError as exc:
            raise ScoreConfigError.about(
                "{resume}: {path} is not a readable run file: {problem}", path=opts.output, problem=str(exc)
            ) from None
        return _checked(table, "resume", opts.output), run_metadata(table), opts.output
    return None, {}, None


@contextlib.contextmanager
def owned_output(output: Path) -> Iterator[None]:
    """Hold the exclusive lock on a run's output for the whole run.

    Raises:
        ScoreConfigError: Another command holds it (the message names the holder), or the
            lock file cannot be created.
    """
    with holding(output, "output", ScoreConfigError):
        yield


def start_metadata(
    opts: ScoreOptions, device: torch.device, old_meta: dict[str, str], extra: dict[str, str]
) -> dict[str, str]:
    """The metadata a run starts with, before its end time and stats."""
    import torch

    from pixgate.telemetry import device_name

    lpips_version = "" if opts.no_lpips else f"v{LPIPS_HEAD_VERSION} ({_lpips_package_version()})"
    return {
        schema.META_PIXGATE_VERSION: __version__,
        schema.META_SCHEMA_VERSION: schema.SCHEMA_VERSION,
        schema.META_DEVICE: str(device),
        schema.META_DEVICE_NAME: device_name(device),
        schema.META_TORCH_VERSION: str(torch.__version__),
        schema.META_LPIPS_NET: "" if opts.no_lpips else opts.net,
        schema.META_LPIPS_VERSION: lpips_version,
        schema.META_PRECISION: "" if opts.no_lpips else opts.precision,
        schema.META_DEVICE_TYPE: device.type,
        schema.META_MAX_PIXELS: str(opts.max_pixels),
        schema.META_DECODERS: decoders(),
        schema.META_BASELINE_ROOT: _root(opts.baseline),
        schema.META_CANDIDATE_ROOT: _root(opts.candidate),
        schema.META_STARTED_AT: old_meta.get(schema.META_STARTED_AT, now()),
        schema.META_GPU_NOTE: "" if device.type == "cuda" else "no CUDA device: gpu_ms is null, compute_ms is CPU time",
        **extra,
    }


def _no_pairs(opts: ScoreOptions, pairing: Pairing) -> ScoreConfigError:
    """Two folders without an image: a usage error, not a run of 0 pairs that passes."""
    count = len(pairing.ignored)
    ignored = f"; {count} other file{'s' if count != 1 else ''} ignored" if count else ""
    return ScoreConfigError.about(
        "no image pairs: neither {baseline} ({base}) nor {candidate} ({cand}) holds an image file ({exts}){ignored}",
        base=str(opts.baseline),
        cand=str(opts.candidate),
        exts=", ".join(sorted(IMAGE_EXTENSIONS)),
        ignored=ignored,
    )


def _root(location: Path | str) -> str:
    text = str(location)
    return text if "://" in text else str(Path(text).resolve())


def _lpips_package_version() -> str:

    return f"lpips {version('lpips')}"


def run(
    opts: ScoreOptions,
    backend: Backend,
    on_rows: OnRows | None = None,
    on_start: OnStart | None = None,
    on_pairs: OnStart | None = None,
) -> ScoreResult:
    """Score every pair of two folders into `opts.output` with `backend`.

    `on_pairs(total, done)` is called once the pairs are known (before the model loads),
    `on_start(total, done)` once scoring starts, `on_rows(rows)` as rows are written.

    The run holds the output's lock from start to end (a second run on the same output
    fails at once), and its journal is on disk, with its schema, before any pair is
    scored: killed at any moment, the run can be completed with `resume`.

    Raises:
        ScoreConfigError: Bad folders, device, weights or resume state (a row of a pair id
            that is not a relative path), an output in use or that would be replaced
            without `overwrite`; nothing written.
        pixgate.safe_io.OutputError: Something other than a regular file (a device, a
            FIFO, a socket) is at the output or at one of the files beside it that the
            run writes (nothing written); or the journal or run file could not be
            written (a full disk; the rows written so far stay in the journal).
    """
    started = time.perf_counter()
    before = process_age_s()  # imports, and the command line's parsing, before the run
    # The environment first, then the backend's checks: its folders are checked before
    # the output's folder is created, so a mistyped folder leaves nothing behind.
    check_decoder_setting()
    backend.check(opts)
    check_options(opts)
    check_journalled_output(opts.output, [p for p in (opts.manifest, opts.weights) if p is not None])
    with owned_output(opts.output), contextlib.ExitStack() as cleanup:
        previous, old_meta, old_source = load_previous(opts)
        pairing = backend.pair(opts)
        if not pairing.pairs:
            raise _no_pairs(opts, pairing)
        resumed = None
        carried = None
        if previous is not None:
            resumed = fresh_rows(previous, pairing, opts, backend.file_sha256)
            carried = resumed.table
        done = set(carried.column(schema.PAIR_ID.name).to_pylist()) if carried is not None else set()
        todo = [p for p in pairing.pairs if p.scorable and p.pair_id not in done]
        unscorable = [p for p in pairing.pairs if not p.scorable and p.pair_id not in done]
        if on_pairs is not None:
            on_pairs(len(pairing.pairs), len(done))
        context = RunContext(opts, pairing, todo, unscorable, started, cleanup, len(done), on_start)
        # The backend's usage checks (manifest, OCR engine, cluster) before the weights,
        # which may have to be downloaded.
        context.phases["checks_and_pairing_s"] = time.perf_counter() - started  # torch loads here
        opened = backend.open(context)
        # `auto` becomes what this device runs natively; the run records the choice.
        precision, why = choose_precision(opts.precision, opened.device)
        context.opts = opts = replace(opts, precision=precision)
        weights_started = time.perf_counter()
        context.weights, weights_meta = resolve_lpips_weights(opts)
        context.phases["weights_s"] = time.perf_counter() - weights_started
        weights_meta[schema.META_PRECISION_CHOICE] = "" if opts.no_lpips else why
        meta = start_metadata(opts, opened.device, old_meta, {**weights_meta, **opened.meta})
        if old_source is not None:
            check_resume(old_meta, meta, old_source)
            times = [r for r in old_meta.get(schema.META_RESUMED_AT, "").split(",") if r]
            meta[schema.META_RESUMED_AT] = ",".join([*times, now()])
        if resumed is not None:
            meta[schema.META_RESUME] = dumps_meta(resumed.counts())
        context.meta = meta
        journal = RunJournal(opts.output, meta, carried)
        cleanup.callback(journal.close)
        sink = RowSink(journal, opened.batch_size, on_rows)
        backend.rows(context, sink)
        context.begin()  # a backend with nothing to score may not have said so
        sink.flush(force=True)
        wall = time.perf_counter() - started
        process = process_age_s()
        stats: dict[str, Any] = {
            "pairs": len(pairing.pairs),
            "scored_now": len(todo),
            "carried_over": len(done),
            **({"resume": resumed.counts()} if resumed is not None else {}),
            "wall_s": round(wall, 3),
            "pairs_per_s": round(len(todo) / wall, 3) if wall else 0.0,
            # The whole process so far, imports included: what a user waits for at a
            # command line (in a long-lived Python process it also counts what ran before).
            "process_s": round(process, 3) if process is not None else None,
            "before_run_s": round(before, 3) if before is not None else None,
            "startup_phases_s": {name: round(value, 3) for name, value in context.phases.items()},
            **backend.stats(context, wall),
        }
        meta[schema.META_ENDED_AT] = now()
        meta[schema.META_IGNORED_FILES] = str(len(pairing.ignored))
        meta[schema.META_SETTINGS] = dumps_meta(
            {
                "device": opts.device,
                "net": opts.net,
                "max_pixels": opts.max_pixels,
                "no_lpips": opts.no_lpips,
                "manifest": str(opts.manifest) if opts.manifest else None,
                "typography": opts.typography,
                "ocr_lang": opts.ocr_lang if opts.typography else None,
                **backend.settings(),
            }
        )
        meta[schema.META_STATS] = dumps_meta(stats)
        table = journal.finalize(meta)
        stats["ignored_files"] = [str(p) for p in pairing.ignored]
        return ScoreResult(table, stats, opts.output)


__all__ = [
    "Backend",
    "OnRows",
    "OnStart",
    "Opened",
    "Resumed",
    "RowSink",
    "RunContext",
    "check_resume",
    "fresh_rows",
    "load_previous",
    "local_sha256",
    "now",
    "owned_output",
    "run",
    "start_metadata",
]
