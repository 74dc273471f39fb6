"""The local backend: pairs -> decode workers -> device batches -> rows, in this process.

Memory stays bounded whatever the number of pairs: at most `INFLIGHT_PER_WORKER` decode
tasks per worker are in flight, and once `PENDING_BATCHES` batches' worth of decoded
pairs wait for the device the loop takes no more from the workers (what they hold in
flight can land on top). The main process never blocks on decoding while a decoded
pair is waiting: it scores what it has, so the time it spends blocked
(`decode_wait_s`) is time in which decoding really was the bottleneck.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixgate.config import (
    DEFAULT_BATCH_SIZE_CPU,
    DEFAULT_BATCH_SIZE_CUDA,
    MAX_BATCH_PIXELS,
    PENDING_BATCHES,
    PENDING_PIXELS,
)
from pixgate.runs import schema
from pixgate.runs.files import dumps_meta
from pixgate.scoring.decode import DecodedPair
from pixgate.scoring.lifecycle import Opened, RowSink, RunContext, local_sha256
from pixgate.scoring.options import ScoreConfigError, ScoreOptions, check_folder
from pixgate.scoring.pairing import Pair, Pairing, pair_directories
from pixgate.scoring.rows import decoded_row, metric_rows, missing_row
from pixgate.scoring.scorer import Scorer, Submitted, build_model, default_workers
from pixgate.scoring.text_checks import start_text_checks
from pixgate.scoring.workers import DecodePool
from pixgate.telemetry import NvmlSampler, cuda_identity

if TYPE_CHECKING:
    import torch

    from pixgate.scoring.manifest import Manifest


@dataclass
class _Buckets:
    """Decoded pairs waiting for the device, grouped by baseline size."""

    batch_size: int
    by_size: dict[tuple[int, int], list[tuple[Pair, DecodedPair]]] = field(default_factory=dict)
    count: int = 0
    pixels: int = 0  # baseline pixels waiting, bounded by PENDING_PIXELS

    @property
    def crowded(self) -> bool:
        """As many pairs, or pixels, wait as the loop lets wait (`PENDING_BATCHES`,
        `PENDING_PIXELS`)."""
        return self.count >= self.batch_size * PENDING_BATCHES or self.pixels >= PENDING_PIXELS

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


def _load_manifest(opts: ScoreOptions) -> tuple[Manifest | None, dict[str, str]]:
    if opts.manifest is None:
        return None, {}
    from pixgate.scoring.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(opts.manifest)
    except ManifestError as exc:
        raise ScoreConfigError.from_error(exc) from None
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

    from pixgate.safe_io import UnsafeInputError, sha256_regular
    from pixgate.scoring.decode import max_file_bytes

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


def _ignore_regions(manifest: Manifest | None, pair: Pair, dp: DecodedPair, max_pixels: int) -> tuple[Any, str | None]:
    """Apply the pair's ignore regions to its decoded pixels: (mask or None, error or None)."""
    if manifest is None or dp.baseline is None or dp.candidate_aligned is None:
        return None, None
    entry = manifest.entries.get(pair.pair_id)
    if entry is None or not entry.has_ignore:
        return None, None
    from pixgate.scoring.regions import IgnoreRegionError, apply_ignore, ignore_mask

    try:
        mask = ignore_mask(entry, dp.baseline.width, dp.baseline.height, max_pixels)
    except IgnoreRegionError as exc:
        return None, str(exc)
    if mask is not None:
        apply_ignore(dp.baseline.rgba, dp.candidate_aligned, mask)
    return mask, None


@dataclass(frozen=True)
class _Done:
    """What the scoring loop leaves for the run's statistics."""

    decoder: DecodePool
    scorer: Scorer
    nvml: NvmlSampler | None
    first_batch_at: float | None
    compute_s: float
    gpu_s: float
    worker_rss: float
    batches: int
    waiting_peak: int


class _KernelWarmer(threading.Thread):
    """Loads the kernels a run needs (from numba's cache, or compiling them) in the
    background, beside worker spawning and model loading: on a CPU the ones the run
    uses; on a GPU the CUDA kernels, through the scorer's own launch path on a tiny
    batch, so the launch types (and so the compiled kernel) are the real ones. An error
    here surfaces where the kernel is first used, as it would have."""

    def __init__(self, device: torch.device, *, lpips: bool, edges: bool) -> None:
        super().__init__(name="pixgate-kernels", daemon=True)
        self.seconds = 0.0
        self._device, self._lpips, self._edges = device, lpips, edges

    def run(self) -> None:
        started = time.perf_counter()
        steps: list[Callable[[], object]] = []
        with contextlib.suppress(Exception):
            steps = self._steps()
        for step in steps:
            # One failing step leaves the others to warm; its error surfaces where the
            # kernel is first used, with that use's context.
            with contextlib.suppress(Exception):
                step()
        self.seconds = time.perf_counter() - started

    def _steps(self) -> list[Callable[[], object]]:
        import numpy as np

        tiny = np.zeros((1, 2, 2, 4), np.uint8)
        steps: list[Callable[[], object]] = []
        if self._device.type == "cuda":
            import torch

            from pixgate.scoring.metrics import pixel_terms

            def cuda_terms() -> None:
                blank = torch.zeros((1, 2, 2, 4), dtype=torch.uint8, device=self._device)
                pixel_terms(blank, blank)
                torch.cuda.synchronize(self._device)

            steps.append(cuda_terms)
        else:
            import torch

            from pixgate.scoring.metrics import measure_table
            from pixgate_kernels import cpu as kernels
            from pixgate_kernels import registration

            # The measures' own path on a tiny batch: every kernel it calls, with the
            # array layouts a run passes; then the search, which it skips at this size.
            blank = torch.zeros((1, 8, 8, 4), dtype=torch.uint8)
            steps.append(lambda: measure_table(blank, blank.clone()))
            flat = np.zeros((1, 8))
            steps.append(lambda: registration.profile_search_cpu(flat, flat, np.ones((1, 1)), np.zeros((1, 1)), 2))
            # A pixel count whose bytes are not a multiple of eight: the byte-wise scan.
            odd = np.zeros((1, 1, 1, 4), np.uint8)
            steps.append(lambda: registration.identical_cpu(odd, odd))
            if self._lpips:
                steps.append(lambda: kernels.network_input_cpu(tiny, tiny, np.ones(3), np.zeros(3), np.ones(3)))
        if self._edges:
            from pixgate_kernels import cpu as kernels

            steps.append(lambda: kernels.edge_magnitudes_cpu(tiny, tiny))
        return steps


class LocalBackend:
    """Scores on this machine: decode worker processes feed device batches."""

    def __init__(self) -> None:
        self._device: torch.device | None = None
        self._cpu_started = time.process_time()

    def check(self, opts: ScoreOptions) -> None:
        from pixgate.telemetry import DeviceError, select_device

        for label, location in (("baseline", opts.baseline), ("candidate", opts.candidate)):
            if "://" in str(location):
                raise ScoreConfigError.about(
                    "{" + label + "}: {location} is a URI; folders in object stores need {backend_ray}",
                    location=location,
                )
            check_folder(label, location)
        try:
            self._device = select_device(opts.device)
        except DeviceError as exc:
            raise ScoreConfigError.from_error(exc) from None

    def pair(self, opts: ScoreOptions) -> Pairing:
        return pair_directories(Path(opts.baseline), Path(opts.candidate))

    def open(self, run: RunContext) -> Opened:
        from pixgate.telemetry import cpu_count

        assert self._device is not None, "check() runs first"
        opts, device = run.opts, self._device
        self._cores = cpu_count()
        self._workers = opts.workers or default_workers(device.type, self._cores)
        self._batch_size = opts.batch_size or (
            DEFAULT_BATCH_SIZE_CUDA if device.type == "cuda" else DEFAULT_BATCH_SIZE_CPU
        )
        # The manifest and Tesseract are checked before anything starts: a usage error.
        self._manifest, manifest_meta = _load_manifest(opts)
        self._text, text_meta, self._cache_state = start_text_checks(self._manifest, opts, self._cores)
        if self._text.checker is not None:
            run.cleanup.callback(self._text.checker.close)
        meta = {schema.META_BACKEND: "local", **manifest_meta, **text_meta}
        return Opened(device, meta, self._batch_size)

    def settings(self) -> dict[str, Any]:
        return {"backend": "local"}

    def file_sha256(self, side: str, path: Path, max_bytes: int) -> str | None:
        return local_sha256(side, path, max_bytes)

    def rows(self, run: RunContext, sink: RowSink) -> None:
        assert self._device is not None
        opts, device, text, batch_size = run.opts, self._device, self._text, self._batch_size
        # No more workers than pairs: a resume with little left, or a run of unpaired
        # names, should not pay for spawning idle processes.
        # The kernels load (or, the first time on a machine, compile) beside the rest of
        # the start-up: workers spawning, decoding, the model loading.
        kernels = _KernelWarmer(device, lpips=not opts.no_lpips, edges=text.checker is not None)
        kernels.start()
        # A start-up that fails still waits for it: its kernels must not run beside the
        # next run's in this process.
        run.cleanup.callback(kernels.join)
        # The measures' planes are kept from batch to batch in this thread: not past the run.
        from pixgate.scoring.metrics import release_buffers

        run.cleanup.callback(release_buffers)
        phase = time.perf_counter()
        decoder = DecodePool(run.todo, min(self._workers, len(run.todo)), opts.max_pixels)

        def close_decoder(kind: type[BaseException] | None, *_: object) -> None:
            # Interrupted or failed: nobody reads what the workers decode, so they end now.
            decoder.close(at_once=kind is not None)

        run.cleanup.push(close_decoder)
        decoder.refill()  # decoding starts while the model loads
        run.phases["workers_s"] = time.perf_counter() - phase
        phase = time.perf_counter()
        model = build_model(opts, run.weights, device)
        run.phases["model_s"] = time.perf_counter() - phase
        kernels.join()
        run.phases["kernels_s"] = kernels.seconds
        run.phases["kernels_wait_s"] = time.perf_counter() - phase - run.phases["model_s"]
        nvml = NvmlSampler(cuda_identity(device)).start() if device.type == "cuda" else None
        if nvml is not None:
            run.cleanup.callback(nvml.stop)  # its thread ends however the run does
        scorer = Scorer(
            model, device, opts.net, energy=nvml.energy_j if nvml is not None else None, precision=opts.precision
        )
        buckets = _Buckets(batch_size)
        run.begin()
        for p in run.unscorable:
            text.route(missing_row(p), sink.pending)
        compute_s = gpu_s = worker_rss = 0.0
        batches = waiting_peak = 0
        ignored: dict[str, Any] = {}  # pair_id -> ignored pixels, until its bucket is scored
        first_batch_at: float | None = None
        sink.flush(force=True)
        # At most one batch is in flight: on a GPU the host stages and queues the next
        # batch while the device runs this one, and collects it only then.
        in_flight: tuple[list[tuple[Pair, DecodedPair]], list[Any], Submitted] | None = None

        def collect(batch: tuple[list[tuple[Pair, DecodedPair]], list[Any], Submitted]) -> None:
            nonlocal compute_s, gpu_s
            items, masks, submitted = batch
            metrics, wall_ms, gpu_ms = submitted.result()
            compute_s += wall_ms / 1000.0
            gpu_s += (gpu_ms or 0.0) / 1000.0
            for row in metric_rows(items, metrics, masks, wall_ms, gpu_ms):
                text.route(row, sink.pending)

        while decoder.busy or buckets.count or text.waiting or in_flight is not None:
            if not decoder.busy and not buckets.count:
                if in_flight is not None:
                    collect(in_flight)
                    in_flight = None
                    continue
                text.harvest(sink.pending, block=True)  # only text checks are left
                sink.flush()
                continue
            if in_flight is not None and buckets.count == 0:
                # About to wait for decoding: the batch in flight is written out first,
                # not held until the next pair arrives.
                collect(in_flight)
                in_flight = None
            # Decoded pairs wait for the model within a bound: past it the loop takes no
            # more from the workers (which then stop at their in-flight limit) until the
            # model has caught up. Without it, workers that decode faster than the model
            # scores would fill memory with the whole run's pixels. Below it, the loop
            # blocks on decoding only when nothing decoded is waiting for the model.
            finished = [] if buckets.crowded else decoder.collect(block=buckets.count == 0)
            for pair, dp in finished:
                worker_rss = max(worker_rss, dp.peak_rss_mb)
                mask, region_error = _ignore_regions(self._manifest, pair, dp, opts.max_pixels)
                if region_error is not None:
                    row = decoded_row(pair, dp)
                    row[schema.STATUS.name], row[schema.ERROR.name] = schema.STATUS_ERROR, region_error
                    text.route(row, sink.pending)
                elif dp.error is None and dp.baseline is not None:
                    if mask is not None:
                        ignored[pair.pair_id] = mask
                    text.start(pair.pair_id, dp, mask)
                    buckets.add(pair, dp)
                else:
                    text.route(decoded_row(pair, dp), sink.pending)
            waiting_peak = max(waiting_peak, buckets.count)
            # Score a full bucket if there is one; otherwise, rather than block on decoding,
            # score the fullest partial bucket.
            items = buckets.take(only_full=True)
            if items is None and (not finished or not decoder.busy or buckets.crowded):
                items = buckets.take(only_full=False)
            if items:
                if first_batch_at is None:
                    first_batch_at = time.perf_counter()
                masks = [ignored.pop(pair.pair_id, None) for pair, _ in items]
                try:
                    submitted = scorer.submit([dp for _, dp in items], masks)
                finally:  # the batch before is written out even if this one fails
                    if in_flight is not None:
                        collect(in_flight)
                        in_flight = None
                batches += 1
                in_flight = items, masks, submitted
                if submitted.done is None:  # done already (a CPU): nothing to overlap
                    collect(in_flight)
                    in_flight = None
            text.harvest(sink.pending, block=False)
            sink.flush()
        sink.flush(force=True)
        self._done = _Done(decoder, scorer, nvml, first_batch_at, compute_s, gpu_s, worker_rss, batches, waiting_peak)

    def stats(self, run: RunContext, wall: float) -> dict[str, Any]:
        import torch

        from pixgate.telemetry import peak_rss_mb

        done, text, todo = self._done, self._text, len(run.todo)
        decoder, scorer, nvml, first_batch_at = done.decoder, done.scorer, done.nvml, done.first_batch_at
        compute_s, gpu_s, worker_rss, batches = done.compute_s, done.gpu_s, done.worker_rss, done.batches
        # Start-up: imports, weights, model and workers, until the first batch; the
        # steady rate leaves it and the warm-up pass out (the first pairs' decoding
        # overlaps the start-up, so it is a touch optimistic for very short runs).
        startup = (first_batch_at - run.started) if first_batch_at is not None else wall
        steady = wall - startup - scorer.warmup_ms / 1000.0
        stats: dict[str, Any] = {
            "batches": batches,
            "compute_s": round(compute_s, 3),
            # This process's CPU time, every thread (model, kernels, receiving and
            # writing), the decode workers' apart: near wall_s times the threads it
            # uses, the scoring process is the limit; on a GPU box, near wall_s alone,
            # its one Python thread is.
            "scorer_cpu_s": round(time.process_time() - self._cpu_started, 3),
            "decode_wait_s": round(decoder.wait_s, 3),
            "decode_wait_share": round(decoder.wait_s / wall, 4) if wall else 0.0,
            "worker_restarts": decoder.restarts,
            # Decoded pairs held at once waiting for the model: bounded, whatever the run's size.
            "decoded_waiting_peak": done.waiting_peak,
            "startup_s": round(startup, 3),
            "steady_pairs_per_s": round(todo / steady, 3) if todo and steady > 0 else None,
            "peak_rss_mb": {"main": peak_rss_mb(), "decode_worker": round(worker_rss, 1)},
            "workers": self._workers,
            "batch_size": self._batch_size,
            "torch_threads": torch.get_num_threads(),
            "warmup_ms": round(scorer.warmup_ms, 1),
        }
        if nvml is not None:
            summary = nvml.stop()
            run.meta[schema.META_NVML] = dumps_meta(summary)
            stats["gpu_s_per_1000_pairs"] = round(gpu_s * 1000.0 / max(1, todo), 3)
            if summary["energy_j"] is not None and todo:
                stats["energy_per_pair_j"] = round(summary["energy_j"] / todo, 4)
        else:
            run.meta[schema.META_NVML] = dumps_meta(
                {"notes": ["no CUDA device: no GPU telemetry; compute_ms is CPU time"]}
            )
        if text.checker is not None:
            stats["text_checked"] = text.checked
            stats["text_not_applicable"] = text.not_applicable
            stats["ocr_wait_s"] = round(text.wait_s, 3)
            cache = text.checker.cache
            stats["ocr_cache"] = cache.stats() if cache is not None else (self._cache_state or None)
        if self._manifest is not None:
            stats["manifest_ids_without_pair"] = sorted(
                set(self._manifest.entries) - {p.pair_id for p in run.pairing.pairs}
            )
        return stats


__all__ = ["LocalBackend"]
