"""The `score` pipeline: pairing -> decode workers -> device batches -> Arrow journal.

Memory stays bounded whatever the number of pairs: at most `INFLIGHT_PER_WORKER` decode
tasks per worker are in flight, and at most `PENDING_BATCHES` batches' worth of decoded
pairs wait for the device. The main process never blocks on decoding while a decoded
pair is waiting: it scores what it has, so the time it spends blocked
(`decode_wait_s`) is time in which decoding really was the bottleneck.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import __version__, schema
from engine.arrow_io import RunJournal, dumps_meta, journal_path, read_journal, read_run, run_metadata
from engine.config import (
    DEFAULT_BATCH_SIZE_CPU,
    DEFAULT_BATCH_SIZE_CUDA,
    DEFAULT_MAX_PIXELS,
    DEFAULT_NET,
    JOURNAL_FLUSH_S,
    LPIPS_HEAD_VERSION,
    MAX_BATCH_PIXELS,
    OCR_CACHE_ENV,
    OCR_INFLIGHT_PIXELS,
    OCR_LANG,
    PENDING_BATCHES,
    PENDING_PIXELS,
    PRECISIONS,
)
from engine.decode import DecodedImage, DecodedPair, decoder_setting, decoders
from engine.locking import holding
from engine.pairing import Pair, pair_directories
from engine.telemetry import NvmlSampler
from engine.workers import DecodePool

if TYPE_CHECKING:
    from concurrent.futures import Future

    import numpy as np
    import pyarrow as pa
    import torch
    from torch import nn

    from engine.manifest import Manifest, ManifestEntry
    from engine.ocr import OcrSettings
    from engine.ocr_cache import OcrCache
    from engine.typography import TextChecker
    from engine.weights import ResolvedWeights


class ScoreConfigError(Exception):
    """A usage or configuration problem (exit code 2); nothing was scored."""


@dataclass(frozen=True)
class ScoreOptions:
    """Everything `score` needs; mirrors the CLI's options.

    Attributes:
        baseline: Folder of reference images (a URI such as s3://bucket/run with the Ray
            backend).
        candidate: Folder of images to compare against them.
        output: The run file to write (`RUN.arrow`).
        device: `auto`, `cpu` or `cuda`.
        batch_size: Pairs per device batch; None picks a default for the device.
        workers: Decode worker processes; None picks a default for the machine.
        weights: Explicit backbone weights file.
        net: `alex`, `vgg` or `squeeze`.
        resume: Complete an interrupted run instead of starting over.
        no_lpips: Skip LPIPS (the `lpips` column is null; metadata says why).
        precision: LPIPS arithmetic, `float32` or `bfloat16` (engine.config.PRECISIONS).
        max_pixels: Decompression-bomb limit per image.
        manifest: A golden manifest (JSONL): expected text and text boxes for the
            typography checks, ignore regions.
        typography: Check that each candidate's text reads as its baseline's
            (engine.typography; needs Tesseract's language data). Off, every row's
            typography is `not_checked`.
        ocr_workers: Typography checks run at once; None picks one per core.
        ocr_lang: Tesseract language(s).
        ocr_cache: Folder of cached baseline readings; None: the user's cache folder
            (engine.ocr_cache.default_cache_dir).
        no_ocr_cache: Read every baseline anew and keep nothing.
        overwrite: Start over even if `output` (a finished run) or its journal (an
            interrupted one) exists; without it either is an error, so that no run is
            replaced by accident.
        download_progress: Called with (bytes, total) while weights download.
    """

    baseline: Path | str
    candidate: Path | str
    output: Path
    device: str = "auto"
    batch_size: int | None = None
    workers: int | None = None
    weights: Path | None = None
    net: str = DEFAULT_NET
    resume: bool = False
    no_lpips: bool = False
    precision: str = "float32"
    max_pixels: int = DEFAULT_MAX_PIXELS
    manifest: Path | None = None
    ocr_workers: int | None = None
    ocr_lang: str = OCR_LANG
    typography: bool = True
    ocr_cache: Path | None = None
    no_ocr_cache: bool = False
    overwrite: bool = False
    download_progress: Callable[[int, int | None], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ScoreResult:
    """What a finished run produced.

    Attributes:
        table: The run file's rows (sorted by pair_id) with metadata.
        stats: Run-level measurements (also stored in the metadata).
    """

    table: pa.Table
    stats: dict[str, Any]

    @property
    def all_ok(self) -> bool:
        """Every row has status ok."""
        return all(s == schema.STATUS_OK for s in self.table.column(schema.STATUS.name).to_pylist())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_workers(device_type: str, cores: int) -> int:
    """Decode workers: one core is left to the main process on a GPU box. On a CPU the
    model and kernels need the cores more than decoding does (decode is about a fifth of
    a pair's CPU time), but at least two workers: with one, a batch's pairs are decoded one
    after another whenever scoring waits for them. On the 2-core CI machine two workers
    gave 11.4 pairs/s against 10.3 with one (bfloat16, 512x512 PNG, three runs each)."""
    if device_type == "cuda":
        return max(1, min(cores - 1, 32))
    return max(2, cores // 4)


def missing_row(pair: Pair) -> dict[str, Any]:
    row = schema.empty_row()
    row[schema.PAIR_ID.name] = pair.pair_id
    row[schema.BASELINE_PATH.name] = str(pair.baseline) if pair.baseline else None
    row[schema.CANDIDATE_PATH.name] = str(pair.candidate) if pair.candidate else None
    if pair.problem:
        row[schema.STATUS.name] = schema.STATUS_ERROR
        row[schema.ERROR.name] = pair.problem
    elif pair.candidate is None:
        row[schema.STATUS.name] = schema.STATUS_MISSING_CANDIDATE
        row[schema.ERROR.name] = f"no candidate image for baseline {pair.pair_id!r}"
    else:
        row[schema.STATUS.name] = schema.STATUS_MISSING_BASELINE
        row[schema.ERROR.name] = f"no baseline image for candidate {pair.pair_id!r}"
    return row


def _side_fields(row: dict[str, Any], side: str, img: DecodedImage) -> None:
    cols = {
        "baseline": (schema.BASELINE_FORMAT, schema.BASELINE_MODE, schema.BASELINE_WIDTH,
                     schema.BASELINE_HEIGHT, schema.BASELINE_HAS_ALPHA, schema.BASELINE_ICC),
        "candidate": (schema.CANDIDATE_FORMAT, schema.CANDIDATE_MODE, schema.CANDIDATE_WIDTH,
                      schema.CANDIDATE_HEIGHT, schema.CANDIDATE_HAS_ALPHA, schema.CANDIDATE_ICC),
    }[side]  # fmt: skip
    values = (img.format, img.mode, img.width, img.height, img.has_alpha, img.icc_description)
    for col, value in zip(cols, values, strict=True):
        row[col.name] = value


def decoded_row(pair: Pair, dp: DecodedPair) -> dict[str, Any]:
    """The row of a decoded pair before metrics: identity, format and shape facts."""
    row = schema.empty_row()
    row[schema.PAIR_ID.name] = pair.pair_id
    row[schema.BASELINE_PATH.name] = str(pair.baseline)
    row[schema.CANDIDATE_PATH.name] = str(pair.candidate)
    row[schema.DECODE_MS.name] = dp.decode_ms
    row[schema.STATUS.name] = schema.STATUS_ERROR if dp.error else schema.STATUS_OK
    row[schema.ERROR.name] = dp.error
    if dp.baseline is not None:
        _side_fields(row, "baseline", dp.baseline)
    if dp.candidate is not None:
        _side_fields(row, "candidate", dp.candidate)
    b, c = dp.baseline, dp.candidate
    if b is not None and c is not None:
        row[schema.SIZE_MATCH.name] = (b.width, b.height) == (c.width, c.height)
        row[schema.ASPECT_RATIO_DELTA.name] = abs((c.width / c.height) / (b.width / b.height) - 1.0)
        row[schema.ALPHA_PARITY.name] = b.has_alpha == c.has_alpha
        row[schema.ICC_MATCH.name] = dp.icc_match
    return row


@dataclass
class Scorer:
    """Runs device batches: LPIPS and the kernels on the pairs of one size bucket."""

    model: Any  # the LPIPS module (engine.models), or None with --no-lpips
    device: torch.device
    net: str
    energy: Callable[[], float | None] | None = None  # joules so far (engine.telemetry.NvmlSampler)
    precision: str = "float32"
    warmup_ms: float = 0.0
    _warm: set[tuple[int, int]] = field(default_factory=set)

    def _warm_up(self, h: int, w: int) -> None:
        """One untimed pass, at the first batch's size, before the first batch.

        The first call creates the CUDA context, loads kernels and allocates the caching
        allocator's first blocks (on a CPU: oneDNN primitives and buffers); that one-off
        cost would otherwise land on the first batch's pairs. It is reported as
        `warmup_ms` instead. Once per run, not per size: runs of many distinct sizes
        would otherwise pay a second pass for each (cudnn autotuning, the per-shape cost,
        is off).
        """
        import numpy as np

        if self._warm:
            return
        self._warm.add((h, w))
        started = time.perf_counter()
        blank = np.zeros((1, h, w, 4), np.uint8)
        dummy = DecodedPair("warm-up", None, None, blank[0], None, 0.0)
        self.score([dummy], None, _blank=blank)
        self.warmup_ms += (time.perf_counter() - started) * 1000.0

    def score(
        self, items: list[DecodedPair], ignored: list[Any] | None = None, *, _blank: Any = None
    ) -> tuple[list[dict[str, Any]], float, float | None]:
        """Score one bucket: LPIPS and the kernels' metrics on one device batch.

        Args:
            items: Decoded pairs of one size.
            ignored: Per pair, its ignored pixels (H x W bool) or None; None for none at all.

        Returns:
            Per pair, the metric columns; the batch's wall ms; its GPU ms (CUDA only).
        """
        import numpy as np
        import torch

        from engine.metrics import pixel_terms, reduce_terms
        from engine.models import upscale_factor
        from engine.telemetry import time_batch

        if _blank is None:
            base = [it.baseline.rgba for it in items if it.baseline is not None]
            self._warm_up(*base[0].shape[:2])
        else:
            base = list(_blank)
        cand = [it.candidate_aligned for it in items if it.candidate_aligned is not None]
        both_alpha = [
            bool(it.baseline and it.candidate and it.baseline.has_alpha and it.candidate.has_alpha) for it in items
        ]
        h, w = base[0].shape[:2]
        factor = upscale_factor(self.net, h, w)
        energy_before = self.energy() if self.energy is not None else None
        with torch.inference_mode(), time_batch(self.device) as timing:
            # Each image crosses to the device as uint8 (4x less than float) and the batch
            # is stacked there: no copy of the whole batch on the host first.
            tb = torch.stack([torch.from_numpy(a).to(self.device) for a in base])
            tc = torch.stack([torch.from_numpy(a).to(self.device) for a in cand])
            keep = None
            if ignored is not None and any(m is not None for m in ignored):
                from engine.regions import grow

                out = np.stack([~grow(m) if m is not None else np.ones((h, w), bool) for m in ignored])
                keep = torch.from_numpy(out).to(self.device)
            rows = reduce_terms(pixel_terms(tb, tc), both_alpha, keep)
            if self.model is not None:
                size = (max(math.ceil(h * factor), 1), max(math.ceil(w * factor), 1)) if factor > 1.0 else None
                inputs = self.model.inputs(tb, tc, size)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
                    distances = self.model.distances(inputs)
                # Pixel-identical pairs are 0 by definition; computed, the two images'
                # features can differ in the last bits depending on where they sit in the
                # batch (~1e-13), and which batch a pair lands in depends on decode timing.
                identical = (tb == tc).flatten(1).all(dim=1).tolist()
                for row, value, same in zip(rows, distances.float().cpu().tolist(), identical, strict=True):
                    row[schema.LPIPS.name] = 0.0 if same else value
                    row[schema.LPIPS_UPSCALED.name] = factor > 1.0
        energy_after = self.energy() if self.energy is not None else None
        if energy_before is not None and energy_after is not None:
            for row in rows:
                row[schema.RUN_ENERGY_J.name] = (energy_after - energy_before) / len(rows)
        return rows, timing.wall_ms, timing.gpu_ms


@dataclass
class _Buckets:
    """Decoded pairs waiting for the device, grouped by baseline size."""

    batch_size: int
    by_size: dict[tuple[int, int], list[tuple[Pair, DecodedPair]]] = field(default_factory=dict)
    count: int = 0
    pixels: int = 0  # baseline pixels waiting, bounded by PENDING_PIXELS

    def cap(self, key: tuple[int, int]) -> int:
        return max(1, min(self.batch_size, MAX_BATCH_PIXELS // max(1, key[0] * key[1])))

    def add(self, pair: Pair, dp: DecodedPair) -> None:
        assert dp.baseline is not None
        key = (dp.baseline.height, dp.baseline.width)
        self.by_size.setdefault(key, []).append((pair, dp))
        self.count += 1
        self.pixels += key[0] * key[1]

    def take(self, *, only_full: bool) -> list[tuple[Pair, DecodedPair]] | None:
        """Pop a full bucket, or (when not `only_full`) the fullest one."""
        if not self.by_size:
            return None
        key = max(self.by_size, key=lambda k: len(self.by_size[k]) / self.cap(k))
        bucket = self.by_size[key]
        cap = self.cap(key)
        if only_full and len(bucket) < cap:
            return None
        taken, rest = bucket[:cap], bucket[cap:]
        if rest:
            self.by_size[key] = rest
        else:
            del self.by_size[key]
        self.count -= len(taken)
        self.pixels -= len(taken) * key[0] * key[1]
        return taken


class _Typography:
    """Typography checks running beside the device batches (see engine.typography).

    A pair's check starts as soon as the pair is decoded and runs on the checker's
    threads; its row, once scored, waits here until the check is done. The device is held
    up only when `capacity` checks are already running (OCR is then the bottleneck; the
    time is counted in `wait_s`). Without a checker (`--no-typography`) every `ok` row is
    marked `not_checked` and nothing waits.
    """

    def __init__(self, manifest: Manifest | None, checker: TextChecker | None) -> None:
        self.manifest = manifest
        self.checker = checker
        self.running: dict[str, Future[dict[str, Any]]] = {}
        self.pixels: dict[str, int] = {}
        self.waiting: dict[str, dict[str, Any]] = {}
        self.wait_s = 0.0
        self.checked = 0
        self.not_applicable = 0

    def _entry(self, pair_id: str) -> ManifestEntry | None:
        return self.manifest.entries.get(pair_id) if self.manifest is not None else None

    def start(self, pair_id: str, dp: DecodedPair, ignore: np.ndarray | None = None) -> None:
        """Start a pair's check once fewer than `capacity` checks are running and the
        pixels they hold, with this pair's, are within `OCR_INFLIGHT_PIXELS` (a pair
        larger than that runs alone)."""
        from concurrent.futures import FIRST_COMPLETED, wait

        if self.checker is None or dp.baseline is None or dp.candidate is None or dp.candidate_aligned is None:
            return
        base_px = dp.baseline.width * dp.baseline.height
        need = base_px + dp.candidate.width * dp.candidate.height
        if dp.candidate_aligned is not dp.candidate.rgba:
            need += base_px  # the candidate resampled to the baseline's size is a third image
        while True:
            busy = [p for p, f in self.running.items() if not f.done()]
            held = sum(self.pixels[p] for p in busy)
            if not busy or (len(busy) < self.checker.capacity and held + need <= OCR_INFLIGHT_PIXELS):
                break
            started = time.perf_counter()
            wait([self.running[p] for p in busy], return_when=FIRST_COMPLETED)
            self.wait_s += time.perf_counter() - started
        self.pixels[pair_id] = need
        self.running[pair_id] = self.checker.submit(
            dp.baseline.rgba, dp.candidate.rgba, dp.candidate_aligned, self._entry(pair_id), ignore
        )

    def route(self, row: dict[str, Any], out: list[dict[str, Any]]) -> None:
        """Send a finished row on, or keep it until its check is done."""
        pair_id = row[schema.PAIR_ID.name]
        entry = self._entry(pair_id)
        if entry is not None and entry.expected_text:
            row[schema.TEXT_EXPECTED.name] = "\n".join(entry.expected_text)
        if pair_id in self.running:
            self.waiting[pair_id] = row
            return
        if self.checker is None and row[schema.STATUS.name] == schema.STATUS_OK:
            row[schema.TEXT_STATUS.name] = schema.TEXT_NOT_CHECKED
        out.append(row)

    def harvest(self, out: list[dict[str, Any]], *, block: bool) -> None:
        """Move rows whose checks are done to `out` (waiting for one first if `block`)."""
        from concurrent.futures import FIRST_COMPLETED, wait

        from engine.ocr import TextCheckError

        if block and self.waiting:
            started = time.perf_counter()
            wait([self.running[p] for p in self.waiting], return_when=FIRST_COMPLETED)
            self.wait_s += time.perf_counter() - started
        for pair_id in [p for p in self.waiting if self.running[p].done()]:
            row = self.waiting.pop(pair_id)
            self.pixels.pop(pair_id, None)
            ok = row[schema.STATUS.name] == schema.STATUS_OK
            try:
                found = self.running.pop(pair_id).result()
            except TextCheckError as exc:
                # The metrics stand, but a text check that could not run must not pass
                # unseen: the row becomes an error that gates and summaries report (a
                # row already in error keeps its first reason).
                if ok:
                    row[schema.STATUS.name] = schema.STATUS_ERROR
                    row[schema.ERROR.name] = str(exc)
            except Exception as exc:  # a bug in one pair's check must not stop the batch
                if ok:
                    row[schema.STATUS.name] = schema.STATUS_ERROR
                    row[schema.ERROR.name] = f"typography: internal error: {type(exc).__name__}: {exc}"
            else:
                if ok:
                    row.update(found)
                    self.checked += found[schema.TEXT_STATUS.name] == schema.TEXT_CHECKED
                    self.not_applicable += found[schema.TEXT_STATUS.name] == schema.TEXT_NOT_APPLICABLE
            out.append(row)


def _load_manifest(opts: ScoreOptions) -> tuple[Manifest | None, dict[str, str]]:
    if opts.manifest is None:
        return None, {}
    from engine.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(opts.manifest)
    except ManifestError as exc:
        raise ScoreConfigError(str(exc)) from None
    meta = {
        schema.META_MANIFEST: str(opts.manifest.resolve()),
        schema.META_MANIFEST_SHA256: manifest.sha256,
        schema.META_MASKS_SHA256: _masks_sha256(manifest, opts.max_pixels),
    }
    return manifest, meta


def _masks_sha256(manifest: Manifest, max_pixels: int) -> str:
    """One digest of every ignore mask's bytes (a resume must see the same masks); empty
    without masks. A mask that cannot be read counts by its reason (its pairs are error
    rows)."""
    import hashlib

    from engine.decode import max_file_bytes
    from engine.safe_io import UnsafeInputError, sha256_regular

    masks = sorted({str(e.ignore_mask) for e in manifest.entries.values() if e.ignore_mask is not None})
    if not masks:
        return ""
    digest = hashlib.sha256()
    for mask in masks:
        try:
            found = sha256_regular(Path(mask), max_file_bytes(max_pixels))
        except UnsafeInputError as exc:
            found = f"unreadable: {exc}"
        digest.update(f"{mask}\0{found}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _ocr_engine(opts: ScoreOptions) -> OcrSettings:
    from engine.ocr import OcrUnavailable, find_tesseract

    try:
        return find_tesseract(opts.ocr_lang)
    except OcrUnavailable as exc:
        raise ScoreConfigError(str(exc)) from None


def _ocr_cache(opts: ScoreOptions) -> tuple[OcrCache | None, dict[str, Any]]:
    """The OCR cache the options ask for, and its state when the default one is unusable.

    A folder the user named (`--ocr-cache`, `$PIXGATE_OCR_CACHE`) must be usable; the
    default one only saves time, so a run goes on without it and says why.
    """
    from engine.ocr_cache import OcrCache, OcrCacheError, default_cache_dir

    named = os.environ.get(OCR_CACHE_ENV)
    if opts.no_ocr_cache:
        return None, {}
    if opts.ocr_cache is not None or named:
        try:
            return OcrCache(opts.ocr_cache or Path(named or ""), "--ocr-cache" if opts.ocr_cache else OCR_CACHE_ENV), {}
        except OcrCacheError as exc:
            raise ScoreConfigError(str(exc)) from None
    folder = default_cache_dir()
    try:
        if folder is None:
            raise OcrCacheError("no home folder to keep an OCR cache in (set XDG_CACHE_HOME)")
        return OcrCache(folder, "the default OCR cache"), {}
    except OcrCacheError as exc:
        return None, {"folder": str(folder), "error": str(exc)}


def check_typography(opts: ScoreOptions) -> None:
    """What a run's typography checks need (Tesseract's data, a cache folder the user
    named), checked before work that would be wasted without them (a canary's captures).

    Raises:
        ScoreConfigError: Contradicting options, no language data, an unusable cache.
    """
    check_typography_options(opts)
    if opts.typography:
        _ocr_engine(opts)
        _ocr_cache(opts)


def _start_typography(
    manifest: Manifest | None, opts: ScoreOptions, cores: int
) -> tuple[_Typography, dict[str, str], dict[str, Any]]:
    """Typography checks (Tesseract and its language data needed), or the marker that they
    are off; with the run's metadata and the OCR cache's state."""
    if not opts.typography:
        return _Typography(manifest, None), {schema.META_TYPOGRAPHY: "off"}, {}
    from engine.typography import TextChecker

    settings = _ocr_engine(opts)
    cache, cache_state = _ocr_cache(opts)
    checker = TextChecker(settings, opts.ocr_workers or max(1, cores), cache)
    meta = {
        schema.META_TYPOGRAPHY: "on",
        schema.META_OCR: f"{settings.version}, {checker.workers} workers",
        schema.META_OCR_ENGINE: settings.version,
    }
    return _Typography(manifest, checker), meta, cache_state


def _ignore_regions(manifest: Manifest | None, pair: Pair, dp: DecodedPair, max_pixels: int) -> tuple[Any, str | None]:
    """Apply the pair's ignore regions to its decoded pixels: (mask or None, error or None)."""
    if manifest is None or dp.baseline is None or dp.candidate_aligned is None:
        return None, None
    entry = manifest.entries.get(pair.pair_id)
    if entry is None or not entry.has_ignore:
        return None, None
    from engine.regions import IgnoreRegionError, apply_ignore, ignore_mask

    try:
        mask = ignore_mask(entry, dp.baseline.width, dp.baseline.height, max_pixels)
    except IgnoreRegionError as exc:
        return None, str(exc)
    if mask is not None:
        apply_ignore(dp.baseline.rgba, dp.candidate_aligned, mask)
    return mask, None


def check_decoder_setting() -> None:
    """Refuse a bad `PIXGATE_DECODER` before anything starts (both backends)."""
    try:
        decoder_setting()
    except ValueError as exc:
        raise ScoreConfigError(str(exc)) from None


def check_resume(old: dict[str, str], new: dict[str, str], source: Path) -> None:
    for key in schema.RESUME_KEYS:
        if old.get(key, "") != new.get(key, ""):
            raise ScoreConfigError(
                f"--resume: {source} was written with {key}={old.get(key, '')!r}, this run has "
                f"{new.get(key, '')!r}; use the same settings, or drop --resume to start over"
            )


def _journal_rows(path: Path, option: str) -> tuple[pa.Table, dict[str, str]]:
    try:
        table, meta = read_journal(path)
    except ValueError as exc:
        raise ScoreConfigError(
            f"{option}: {exc}; it is not a journal pixgate can read: move it away, or pass --overwrite to start over"
        ) from None
    return _checked(table, f"{option}: {path}"), meta


def _checked(table: pa.Table, source: str) -> pa.Table:
    """Rows to carry into this run, checked like any run file: carried unchecked, a file's
    null or repeated pair ids would become this run's rows."""
    try:
        schema.check_table(table, source)
    except schema.TableError as exc:
        raise ScoreConfigError(f"{exc}; move it away, or pass --overwrite to start over") from None
    return table


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
            table, _ = _journal_rows(jpath, "--output")
            if table.num_rows:
                raise ScoreConfigError(
                    f"an interrupted run exists at {jpath} ({table.num_rows} rows): pass --resume to complete it, "
                    "or --overwrite to start over"
                )
        if opts.output.exists() or opts.output.is_symlink():
            raise ScoreConfigError(
                f"--output: {opts.output} already exists: pass --overwrite to replace it, or --resume to score "
                "only the pairs missing from it"
            )
        return None, {}, None
    if jpath.exists() or jpath.is_symlink():
        table, meta = _journal_rows(jpath, "--resume")
        # No rows: killed before its first batch (or while the journal was created).
        return (table, meta, jpath) if table.num_rows else (None, {}, None)
    if opts.output.exists():
        try:
            table = read_run(opts.output)
        except ValueError as exc:
            raise ScoreConfigError(f"--resume: {opts.output} is not a readable run file: {exc}") from None
        return _checked(table, f"--resume: {opts.output}"), run_metadata(table), opts.output
    return None, {}, None


@contextlib.contextmanager
def owned_output(output: Path) -> Iterator[None]:
    """Hold the exclusive lock on a run's output for the whole run (both backends).

    Raises:
        ScoreConfigError: Another command holds it (the message names the holder), or the
            lock file cannot be created.
    """
    with holding(output, "--output", ScoreConfigError):
        yield


def resolve_lpips_weights(opts: ScoreOptions) -> tuple[ResolvedWeights | None, dict[str, str]]:
    """The backbone weights a run uses (None with --no-lpips) and their metadata.

    Raises:
        ScoreConfigError: No weights can be found.
    """
    if opts.no_lpips:
        return None, {schema.META_LPIPS_NOTE: "LPIPS disabled by --no-lpips", schema.META_WEIGHTS_SHA256: ""}
    from engine.weights import WeightsError, resolve_weights

    try:
        resolved = resolve_weights(opts.net, opts.weights, progress=opts.download_progress)
    except WeightsError as exc:
        raise ScoreConfigError(str(exc)) from None
    meta = {
        schema.META_WEIGHTS_SHA256: resolved.sha256,
        schema.META_WEIGHTS_SOURCE: f"{resolved.origin}: {resolved.path}",
    }
    return resolved, meta


def build_model(opts: ScoreOptions, resolved: ResolvedWeights | None, device: torch.device) -> nn.Module | None:
    """The LPIPS module on `device` (None with --no-lpips).

    Raises:
        ScoreConfigError: The weights file is not a matching torchvision state_dict.
    """
    if resolved is None:
        return None
    from engine.models import WeightsFormatError, load_lpips

    if device.type == "cuda":
        import torch

        # Full float32: TF32 convolutions would move LPIPS by ~1e-3. Reduced precision is
        # a separate, measured choice.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return load_lpips(opts.net, resolved.path).to(device)
    except WeightsFormatError as exc:
        raise ScoreConfigError(str(exc)) from None


def load_model(opts: ScoreOptions, device: torch.device) -> tuple[nn.Module | None, dict[str, str]]:
    """Weights resolved and the model built on `device`, with the weights' metadata."""
    resolved, meta = resolve_lpips_weights(opts)
    return build_model(opts, resolved, device), meta


def start_metadata(
    opts: ScoreOptions, device: torch.device, old_meta: dict[str, str], extra: dict[str, str]
) -> dict[str, str]:
    """The metadata a run starts with (both backends), before its end time and stats."""
    import torch

    from engine.telemetry import device_name

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
        schema.META_STARTED_AT: old_meta.get(schema.META_STARTED_AT, _now()),
        schema.META_GPU_NOTE: "" if device.type == "cuda" else "no CUDA device: gpu_ms is null, compute_ms is CPU time",
        **extra,
    }


def _root(location: Path | str) -> str:
    text = str(location)
    return text if "://" in text else str(Path(text).resolve())


def metric_rows(
    items: list[tuple[Pair, DecodedPair]],
    metrics: list[dict[str, Any]],
    masks: list[Any],
    wall_ms: float,
    gpu_ms: float | None,
) -> list[dict[str, Any]]:
    """Full rows of one scored batch: decode facts, metrics, and the batch's time shared out."""
    rows = []
    for (pair, dp), values, mask in zip(items, metrics, masks, strict=True):
        row = decoded_row(pair, dp)
        row.update(values)
        if mask is not None:
            row[schema.IGNORED_FRACTION.name] = float(mask.mean())
        row[schema.COMPUTE_MS.name] = wall_ms / len(items)
        row[schema.GPU_MS.name] = gpu_ms / len(items) if gpu_ms is not None else None
        rows.append(row)
    return rows


def _check_options(opts: ScoreOptions) -> None:
    """Folders, output, decoder and precision, checked before anything starts."""
    for label, location in (("BASELINE_DIR", opts.baseline), ("CANDIDATE_DIR", opts.candidate)):
        if "://" in str(location):
            raise ScoreConfigError(f"{label}: {location} is a URI; folders in object stores need --backend ray")
        folder = Path(location)
        if not folder.is_dir():
            why = "is not a folder" if folder.exists() else "does not exist"
            raise ScoreConfigError(f"{label}: {folder} {why}")
    check_output(opts)
    check_decoder_setting()
    if opts.precision not in PRECISIONS:
        raise ScoreConfigError(f"--precision must be one of {', '.join(PRECISIONS)}; got {opts.precision!r}")
    check_typography_options(opts)


def check_typography_options(opts: ScoreOptions) -> None:
    """OCR options that contradict each other or `--no-typography` (both backends)."""
    if opts.ocr_cache is not None and opts.no_ocr_cache:
        raise ScoreConfigError("--ocr-cache and --no-ocr-cache contradict each other: keep readings there, or nowhere")
    if not opts.typography:
        given = [
            name
            for name, value in (
                ("--ocr-cache", opts.ocr_cache),
                ("--no-ocr-cache", opts.no_ocr_cache or None),
                ("--ocr-workers", opts.ocr_workers),
                ("--ocr-lang", None if opts.ocr_lang == OCR_LANG else opts.ocr_lang),
            )
            if value is not None
        ]
        if given:
            raise ScoreConfigError(f"{', '.join(given)}: no effect with --no-typography (no OCR runs); drop one")


def check_output(opts: ScoreOptions) -> None:
    """The output's folder exists (created if need be), the output is not a folder, and
    `resume` and `overwrite` are not both asked (both backends)."""
    if opts.resume and opts.overwrite:
        raise ScoreConfigError("--resume and --overwrite contradict each other: complete the run, or start over")
    try:
        opts.output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScoreConfigError(f"--output: cannot create the folder {opts.output.parent}: {exc.strerror}") from None
    if opts.output.is_dir():
        raise ScoreConfigError(f"--output: {opts.output} is a folder; give a file name such as run.arrow")


def run_score(
    opts: ScoreOptions,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> ScoreResult:
    """Score every pair of two folders into `opts.output`.

    The run holds the output's lock from start to end (a second run on the same output
    fails at once), and its journal is on disk, with its schema, before any pair is
    decoded: killed at any moment, the run can be completed with `resume`.

    Args:
        opts: The run's settings.
        on_rows: Called with each group of rows as they are written (progress display).
        on_start: Called once scoring starts with (total pairs, pairs already done).

    Returns:
        The final table and run statistics.

    Raises:
        ScoreConfigError: Bad folders, device, weights or resume state, an output in use
            or that would be replaced without `overwrite`; nothing written.
        engine.safe_io.OutputError: The journal or run file could not be written (a full
            disk); the rows written so far stay in the journal.
    """
    import torch

    from engine.telemetry import DeviceError, cpu_count, peak_rss_mb, select_device

    started = time.perf_counter()
    cpu_started = time.process_time()
    _check_options(opts)
    try:
        device = select_device(opts.device)
    except DeviceError as exc:
        raise ScoreConfigError(str(exc)) from None
    with owned_output(opts.output), contextlib.ExitStack() as cleanup:
        carried, old_meta, old_source = load_previous(opts)
        done_ids = set(carried.column(schema.PAIR_ID.name).to_pylist()) if carried is not None else set()

        pairing = pair_directories(Path(opts.baseline), Path(opts.candidate))
        todo = [p for p in pairing.pairs if p.scorable and p.pair_id not in done_ids]
        unscorable = [p for p in pairing.pairs if not p.scorable and p.pair_id not in done_ids]
        cores = cpu_count()
        workers = opts.workers or default_workers(device.type, cores)
        batch_size = opts.batch_size or (DEFAULT_BATCH_SIZE_CUDA if device.type == "cuda" else DEFAULT_BATCH_SIZE_CPU)

        # The manifest, Tesseract, the weights and a resume's settings are all checked
        # before anything starts: a usage error.
        manifest, manifest_meta = _load_manifest(opts)
        typo, typo_meta, cache_state = _start_typography(manifest, opts, cores)
        if typo.checker is not None:
            cleanup.callback(typo.checker.close)
        resolved, weights_meta = resolve_lpips_weights(opts)
        meta = start_metadata(opts, device, old_meta, {**weights_meta, **manifest_meta, **typo_meta})
        if old_source is not None:
            check_resume(old_meta, meta, old_source)
            resumed = [r for r in old_meta.get(schema.META_RESUMED_AT, "").split(",") if r]
            meta[schema.META_RESUMED_AT] = ",".join([*resumed, _now()])
        journal = RunJournal(opts.output, meta, carried)
        cleanup.callback(journal.close)
        # No more workers than pairs: a resume with little left, or a run of unpaired
        # names, should not pay for spawning idle processes.
        decoder = DecodePool(todo, min(workers, len(todo)), opts.max_pixels)
        cleanup.callback(decoder.close)
        decoder.refill()  # decoding starts while the model loads
        model = build_model(opts, resolved, device)
        nvml = NvmlSampler(device.index or 0).start() if device.type == "cuda" else None
        scorer = Scorer(
            model, device, opts.net, energy=nvml.energy_j if nvml is not None else None, precision=opts.precision
        )
        buckets = _Buckets(batch_size)
        pending_rows: list[dict[str, Any]] = []

        def emit(row: dict[str, Any]) -> None:
            typo.route(row, pending_rows)

        for p in unscorable:
            emit(missing_row(p))
        last_flush = time.perf_counter()
        compute_s = gpu_s = worker_rss = 0.0
        batches = 0

        def flush(force: bool = False) -> None:
            nonlocal pending_rows, last_flush
            if pending_rows and (
                force or len(pending_rows) >= batch_size or time.perf_counter() - last_flush >= JOURNAL_FLUSH_S
            ):
                journal.append(pending_rows)
                if on_rows is not None:
                    on_rows(pending_rows)
                pending_rows, last_flush = [], time.perf_counter()

        ignored: dict[str, Any] = {}  # pair_id -> ignored pixels, until its bucket is scored

        first_batch_at: float | None = None

        def run_bucket(items: list[tuple[Pair, DecodedPair]]) -> None:
            nonlocal compute_s, gpu_s, batches, first_batch_at
            if first_batch_at is None:
                first_batch_at = time.perf_counter()
            masks = [ignored.pop(pair.pair_id, None) for pair, _ in items]
            metrics, wall_ms, gpu_ms = scorer.score([dp for _, dp in items], masks)
            compute_s += wall_ms / 1000.0
            gpu_s += (gpu_ms or 0.0) / 1000.0
            batches += 1
            for row in metric_rows(items, metrics, masks, wall_ms, gpu_ms):
                emit(row)

        if on_start is not None:
            on_start(len(pairing.pairs), len(done_ids))
        flush(force=True)
        while decoder.busy or buckets.count or typo.waiting:
            if not decoder.busy and not buckets.count:
                typo.harvest(pending_rows, block=True)  # only text checks are left
                flush()
                continue
            # Block on decoding only when nothing decoded is waiting for the model.
            finished = decoder.collect(block=buckets.count == 0)
            for pair, dp in finished:
                worker_rss = max(worker_rss, dp.peak_rss_mb)
                mask, region_error = _ignore_regions(manifest, pair, dp, opts.max_pixels)
                if region_error is not None:
                    row = decoded_row(pair, dp)
                    row[schema.STATUS.name], row[schema.ERROR.name] = schema.STATUS_ERROR, region_error
                    emit(row)
                elif dp.error is None and dp.baseline is not None:
                    if mask is not None:
                        ignored[pair.pair_id] = mask
                    typo.start(pair.pair_id, dp, mask)
                    buckets.add(pair, dp)
                else:
                    emit(decoded_row(pair, dp))
            # Score a full bucket if there is one; otherwise, rather than block on decoding,
            # score the fullest partial bucket.
            items = buckets.take(only_full=True)
            crowded = buckets.count >= batch_size * PENDING_BATCHES or buckets.pixels >= PENDING_PIXELS
            if items is None and (not finished or not decoder.busy or crowded):
                items = buckets.take(only_full=False)
            if items:
                run_bucket(items)
            typo.harvest(pending_rows, block=False)
            flush()
        flush(force=True)
        wall = time.perf_counter() - started
        # Start-up: imports, weights, model and workers, until the first batch; the
        # steady rate leaves it and the warm-up pass out (the first pairs' decoding
        # overlaps the start-up, so it is a touch optimistic for very short runs).
        startup = (first_batch_at - started) if first_batch_at is not None else wall
        steady = wall - startup - scorer.warmup_ms / 1000.0
        stats: dict[str, Any] = {
            "pairs": len(pairing.pairs),
            "scored_now": len(todo),
            "carried_over": len(done_ids),
            "batches": batches,
            "wall_s": round(wall, 3),
            "compute_s": round(compute_s, 3),
            # This process's CPU time, every thread (model, kernels, receiving and
            # writing), the decode workers' apart: near wall_s times the threads it
            # uses, the scoring process is the limit; on a GPU box, near wall_s alone,
            # its one Python thread is.
            "scorer_cpu_s": round(time.process_time() - cpu_started, 3),
            "decode_wait_s": round(decoder.wait_s, 3),
            "decode_wait_share": round(decoder.wait_s / wall, 4) if wall else 0.0,
            "worker_restarts": decoder.restarts,
            "pairs_per_s": round(len(todo) / wall, 3) if wall else 0.0,
            "startup_s": round(startup, 3),
            "steady_pairs_per_s": round(len(todo) / steady, 3) if todo and steady > 0 else None,
            "peak_rss_mb": {"main": peak_rss_mb(), "decode_worker": round(worker_rss, 1)},
            "workers": workers,
            "batch_size": batch_size,
            "torch_threads": torch.get_num_threads(),
            "warmup_ms": round(scorer.warmup_ms, 1),
        }
        if nvml is not None:
            summary = nvml.stop()
            meta[schema.META_NVML] = dumps_meta(summary)
            stats["gpu_s_per_1000_pairs"] = round(gpu_s * 1000.0 / max(1, len(todo)), 3)
            if summary["energy_j"] is not None and todo:
                stats["energy_per_pair_j"] = round(summary["energy_j"] / len(todo), 4)
        else:
            meta[schema.META_NVML] = dumps_meta({"notes": ["no CUDA device: no GPU telemetry; compute_ms is CPU time"]})
        if typo.checker is not None:
            stats["text_checked"] = typo.checked
            stats["text_not_applicable"] = typo.not_applicable
            stats["ocr_wait_s"] = round(typo.wait_s, 3)
            cache = typo.checker.cache
            stats["ocr_cache"] = cache.stats() if cache is not None else (cache_state or None)
        if manifest is not None:
            stats["manifest_ids_without_pair"] = sorted(set(manifest.entries) - {p.pair_id for p in pairing.pairs})
        meta[schema.META_ENDED_AT] = _now()
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
            }
        )
        meta[schema.META_STATS] = dumps_meta(stats)
        table = journal.finalize(meta)
        stats["ignored_files"] = [str(p) for p in pairing.ignored]
        return ScoreResult(table, stats)


def _lpips_package_version() -> str:
    from importlib.metadata import version

    return f"lpips {version('lpips')}"


__all__ = [
    "ScoreConfigError",
    "ScoreOptions",
    "ScoreResult",
    "Scorer",
    "build_model",
    "check_decoder_setting",
    "check_output",
    "check_resume",
    "decoded_row",
    "default_workers",
    "load_model",
    "load_previous",
    "metric_rows",
    "missing_row",
    "owned_output",
    "resolve_lpips_weights",
    "run_score",
    "start_metadata",
]
