"""The device side of scoring: the model a run uses, and `Scorer`, which runs one device
batch (LPIPS and the kernels) for every backend."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pixgate.runs import schema
from pixgate.scoring.decode import DecodedPair
from pixgate.scoring.options import ScoreConfigError, ScoreOptions

if TYPE_CHECKING:
    import torch

    from pixgate.scoring.models import LpipsModule
    from pixgate.scoring.staging import Staging
    from pixgate.scoring.weights import ResolvedWeights
    from pixgate.telemetry import BatchTiming


def default_workers(device_type: str, cores: int) -> int:
    """Decode workers: one core is left to the main process on a GPU box. On a CPU the
    model and kernels need the cores more than decoding does (decode is about a fifth of
    a pair's CPU time), but at least two workers: with one, a batch's pairs are decoded one
    after another whenever scoring waits for them. On the 2-core CI machine two workers
    gave 11.4 pairs/s against 10.3 with one (bfloat16, 512x512 PNG, three runs each)."""
    if device_type == "cuda":
        return max(1, min(cores - 1, 32))
    return max(2, cores // 4)


def resolve_lpips_weights(opts: ScoreOptions) -> tuple[ResolvedWeights | None, dict[str, str]]:
    """The backbone weights a run uses (None with --no-lpips) and their metadata.

    Raises:
        ScoreConfigError: No weights can be found.
    """
    if opts.no_lpips:
        return None, {
            schema.META_LPIPS_NOTE: "LPIPS disabled by --no-lpips",
            schema.META_WEIGHTS_SHA256: "",
            schema.META_WEIGHTS_KNOWN: "",
        }
    from pixgate.scoring.weights import WeightsError, published, resolve_weights

    try:
        resolved = resolve_weights(opts.net, opts.weights, progress=opts.download_progress)
    except WeightsError as exc:
        raise ScoreConfigError.from_error(exc) from None
    meta = {
        schema.META_WEIGHTS_SHA256: resolved.sha256,
        schema.META_WEIGHTS_SOURCE: f"{resolved.origin}: {resolved.path}",
        schema.META_WEIGHTS_KNOWN: "true" if published(opts.net, resolved.sha256) else "false",
    }
    return resolved, meta


def choose_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """The LPIPS precision a run uses, and why: `auto` is bfloat16 where `device` runs
    it natively (pixgate.telemetry.native_bfloat16), float32 elsewhere; an explicit
    choice stands."""
    if requested != "auto":
        return requested, f"{requested}, as asked"
    from pixgate.telemetry import native_bfloat16

    native, why = native_bfloat16(device)
    return ("bfloat16" if native else "float32"), f"auto: {why}"


def build_model(opts: ScoreOptions, resolved: ResolvedWeights | None, device: torch.device) -> LpipsModule | None:
    """The LPIPS module on `device` (None with --no-lpips).

    Raises:
        ScoreConfigError: The weights file is not a matching torchvision state_dict.
    """
    if resolved is None:
        return None
    from pixgate.scoring.models import WeightsFormatError, load_lpips

    if device.type == "cuda":
        import torch

        # Full float32: TF32 convolutions would move LPIPS by ~1e-3. Reduced precision is
        # a separate, measured choice.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return load_lpips(opts.net, resolved.path).to(device)
    except WeightsFormatError as exc:
        raise ScoreConfigError.from_error(exc) from None


def load_model(opts: ScoreOptions, device: torch.device) -> tuple[LpipsModule | None, dict[str, str]]:
    """Weights resolved and the model built on `device`, with the weights' metadata."""
    resolved, meta = resolve_lpips_weights(opts)
    return build_model(opts, resolved, device), meta


@dataclass
class Scorer:
    """Runs device batches: LPIPS and the kernels on the pairs of one size bucket."""

    model: LpipsModule | None  # None with --no-lpips
    device: torch.device
    net: str
    energy: Callable[[], float | None] | None = None  # joules so far (pixgate.telemetry.NvmlSampler)
    precision: str = "float32"
    warmup_ms: float = 0.0
    _warm: set[tuple[int, int]] = field(default_factory=set)
    _staging: Staging | None = None
    _last_energy: float | None = None

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
        """Score one bucket and wait for it: `submit(...).result()`."""
        return self.submit(items, ignored, _blank=_blank).result()

    def submit(self, items: list[DecodedPair], ignored: list[Any] | None = None, *, _blank: Any = None) -> Submitted:
        """Queue one bucket, LPIPS and the kernels' metrics on one device batch, and return
        at once on a GPU (on a CPU the work is done by the time it returns).

        On a GPU the host can stage the next batch while this one runs; `result()` waits
        for it. Nothing in between makes the host wait for the device.

        Args:
            items: Decoded pairs of one size.
            ignored: Per pair, its ignored pixels (H x W bool) or None; None for none at all.
        """
        import numpy as np
        import torch

        from pixgate.scoring.metrics import measure_table
        from pixgate.scoring.models import upscale_factor
        from pixgate.scoring.registration import identical_pairs
        from pixgate.telemetry import BatchTiming

        started = time.perf_counter()
        if _blank is None:
            base = [it.baseline.rgba for it in items if it.baseline is not None]
            self._warm_up(*base[0].shape[:2])
            started = time.perf_counter()
        else:
            base = list(_blank)
        cand = [it.candidate_aligned for it in items if it.candidate_aligned is not None]
        both_alpha = [
            bool(it.baseline and it.candidate and it.baseline.has_alpha and it.candidate.has_alpha) for it in items
        ]
        h, w = base[0].shape[:2]
        factor = upscale_factor(self.net, h, w)
        keep = None
        if ignored is not None and any(m is not None for m in ignored):
            from pixgate.scoring.regions import grow

            keep = np.stack([~grow(m) if m is not None else np.ones((h, w), bool) for m in ignored])
        if self._staging is None:
            from pixgate.scoring.staging import Staging

            self._staging = Staging(self.device)
        timing = BatchTiming.on(self.device)
        # Events, streams and pinned copies follow the current device: make it this one.
        on_device = torch.cuda.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext()
        with torch.inference_mode(), on_device:
            tb, tc, kept = self._staging.upload(base, cand, keep)
            timing.start_device()
            # Everything below is queued on the device with no host synchronisation; one
            # copy back carries every per-pair number of the batch.
            measured, tc = measure_table(tb, tc, kept, both_alpha)
            columns = [measured]
            if self.model is not None:
                size = (max(math.ceil(h * factor), 1), max(math.ceil(w * factor), 1)) if factor > 1.0 else None
                inputs = self.model.inputs(tb, tc, size)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
                    distances = self.model.distances(inputs)
                # Pixel-identical pairs are 0 by definition; computed, the two images'
                # features can differ in the last bits depending on where they sit in the
                # batch (~1e-13), and which batch a pair lands in depends on decode timing.
                identical = identical_pairs(tb, tc)
                columns.append(torch.where(identical, 0.0, distances.to(torch.float64)).unsqueeze(1))
            timing.stop_device()
            table = torch.cat(columns, dim=1)
            if self.device.type == "cuda":
                host = torch.empty(table.shape, dtype=table.dtype, pin_memory=True)
                host.copy_(table, non_blocking=True)
                done = torch.cuda.Event()
                done.record()
            else:
                host, done = table, None
        timing.add_host(time.perf_counter() - started)
        return Submitted(self, host, done, timing, both_alpha, factor if self.model is not None else None)

    def _energy_since_last(self) -> float | None:
        """GPU energy since the previous batch finished (since the run began for the first):
        consecutive batches overlap on the host, so their shares must not."""
        now = self.energy() if self.energy is not None else None
        if now is None:
            return None
        last, self._last_energy = self._last_energy, now
        return None if last is None else now - last


@dataclass
class Submitted:
    """A queued device batch; `result()` waits for it and gives its rows."""

    scorer: Scorer
    table: Any  # N x columns float64, on the host (pinned, filled asynchronously on a GPU)
    done: Any  # CUDA event after the copy back; None on a CPU
    timing: BatchTiming
    both_alpha: list[bool]
    factor: float | None  # LPIPS upscale factor; None without LPIPS

    def result(self) -> tuple[list[dict[str, Any]], float, float | None]:
        """Per pair, the metric columns; the host's ms on the batch (staging, queuing,
        waiting); its GPU ms (CUDA only, `pixgate.telemetry.BatchTiming`)."""
        from pixgate.scoring.metrics import MEASURED, measured_rows

        started = time.perf_counter()
        if self.done is not None:
            self.done.synchronize()
        self.timing.finish()
        values = self.table.tolist()
        self.timing.add_host(time.perf_counter() - started)
        rows = measured_rows([v[: len(MEASURED)] for v in values], self.both_alpha)
        if self.factor is not None:
            for row, v in zip(rows, values, strict=True):
                row[schema.LPIPS.name] = v[len(MEASURED)]
                row[schema.LPIPS_UPSCALED.name] = self.factor > 1.0
        energy = self.scorer._energy_since_last()
        if energy is not None:
            for row in rows:
                row[schema.RUN_ENERGY_J.name] = energy / len(rows)
        return rows, self.timing.wall_ms, self.timing.gpu_ms


__all__ = [
    "Scorer",
    "Submitted",
    "build_model",
    "choose_precision",
    "default_workers",
    "load_model",
    "resolve_lpips_weights",
]
