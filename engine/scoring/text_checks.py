"""Typography checks inside a run: a pool of Tesseract threads (`TextChecker`) and the
rows that wait for their pair's check (`TextChecks`), beside the device batches.

What a check computes is `pixgate.scoring.typography.check_text`; this module decides
when checks start, bounds what they hold in memory, and joins their results to rows.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixgate.config import OCR_CACHE_ENV, OCR_INFLIGHT_PER_WORKER, OCR_INFLIGHT_PIXELS
from pixgate.runs import schema
from pixgate.scoring.decode import DecodedPair
from pixgate.scoring.ocr import Budget, OcrSettings
from pixgate.scoring.options import ScoreConfigError, ScoreOptions, check_typography_options
from pixgate.scoring.typography import check_text

if TYPE_CHECKING:
    import numpy as np

    from pixgate.scoring.manifest import Manifest, ManifestEntry
    from pixgate.scoring.ocr_cache import OcrCache


class TextChecker:
    """Runs `check_text` on worker threads, each with its own Tesseract engine.

    Args:
        settings: How to run Tesseract.
        workers: Checks run at once.
        cache: Where baseline readings are kept between runs, or None.
    """

    def __init__(self, settings: OcrSettings, workers: int, cache: OcrCache | None = None) -> None:
        self.settings = settings
        self.workers = workers
        self.cache = cache
        self.capacity = workers * OCR_INFLIGHT_PER_WORKER
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pixgate-ocr")

    def submit(
        self,
        base: np.ndarray,
        cand: np.ndarray,
        aligned: np.ndarray,
        entry: ManifestEntry | None,
        ignore: np.ndarray | None = None,
    ) -> Future[dict[str, Any]]:
        """Start checking one pair."""
        return self._pool.submit(self._check, base, cand, aligned, entry, ignore)

    def _check(
        self, base: np.ndarray, cand: np.ndarray, aligned: np.ndarray, entry: ManifestEntry | None, ignore: Any
    ) -> dict[str, Any]:
        # The budget starts when the check does, not when it was queued.
        return check_text(base, cand, aligned, entry, self.settings, self.cache, ignore, Budget(self._stop))

    def close(self) -> None:
        """Stop: queued checks are dropped, and running ones end at their next OCR call
        (their pairs' rows are already written, or are left to a resume)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


class TextChecks:
    """Typography checks running beside the device batches (see pixgate.scoring.typography).

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

        from pixgate.scoring.ocr import TextCheckError

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


def ocr_settings(opts: ScoreOptions) -> OcrSettings:
    from pixgate.scoring.ocr import OcrUnavailable, find_tesseract

    try:
        return find_tesseract(opts.ocr_lang)
    except OcrUnavailable as exc:
        raise ScoreConfigError.from_error(exc) from None


def ocr_cache(opts: ScoreOptions) -> tuple[OcrCache | None, dict[str, Any]]:
    """The OCR cache the options ask for, and its state when the default one is unusable.

    A folder the user named (`--ocr-cache`, `$PIXGATE_OCR_CACHE`) must be usable; the
    default one only saves time, so a run goes on without it and says why.
    """
    from pixgate.scoring.ocr_cache import OcrCache, OcrCacheError, default_cache_dir

    named = os.environ.get(OCR_CACHE_ENV)
    if opts.no_ocr_cache:
        return None, {}
    if opts.ocr_cache is not None or named:
        try:
            return OcrCache(opts.ocr_cache or Path(named or ""), "ocr_cache" if opts.ocr_cache else OCR_CACHE_ENV), {}
        except OcrCacheError as exc:
            raise ScoreConfigError.from_error(exc) from None
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
        ocr_settings(opts)
        ocr_cache(opts)


def start_text_checks(
    manifest: Manifest | None, opts: ScoreOptions, cores: int
) -> tuple[TextChecks, dict[str, str], dict[str, Any]]:
    """Typography checks (Tesseract and its language data needed), or the marker that they
    are off; with the run's metadata and the OCR cache's state."""
    if not opts.typography:
        return TextChecks(manifest, None), {schema.META_TYPOGRAPHY: "off"}, {}
    settings = ocr_settings(opts)
    cache, cache_state = ocr_cache(opts)
    checker = TextChecker(settings, opts.ocr_workers or max(1, cores), cache)
    meta = {
        schema.META_TYPOGRAPHY: "on",
        schema.META_OCR: f"{settings.version}, {checker.workers} workers",
        schema.META_OCR_ENGINE: settings.version,
    }
    return TextChecks(manifest, checker), meta, cache_state


__all__ = ["TextChecker", "TextChecks", "check_typography", "ocr_cache", "ocr_settings", "start_text_checks"]
