"""`score --backend ray`: the same pipeline distributed with Ray Data.

- Pairing happens on the driver, over local folders or any URI a pyarrow filesystem
  understands (`s3://`, `gs://`, `hdfs://`, `file://`); files are read where they are
  decoded, never downloaded first.
- Decoding runs as CPU tasks (`Dataset.map`), each reading its pair's bytes from the
  filesystem and returning the decoded pair.
- Scoring runs in an actor pool (`Dataset.map_batches` with a class): each actor loads
  the model once, on a GPU when the cluster has GPUs (one actor per GPU), else on CPU,
  and scores its batches by size bucket exactly as the local backend does (same
  `pixgate.scoring.scorer.Scorer`, same kernels, same per-pair `gpu_ms`).
- The driver streams the scored rows into the run through the same lifecycle as the
  local backend (`pixgate.scoring.lifecycle`: the same journal, run file, schema and
  metadata, plus per-node counts in the stats), so `--resume` works the same way.

Ray retries failed decode tasks and restarts dead actors, retrying their batches; a row
that comes back twice (a batch re-run after its actor died) is written once. A pair that
fails to decode is an error row, as locally. Typography checks and `--manifest` run only
on the local backend for now: a Ray run needs `--no-typography`, and its rows say
`not_checked`.

Ray is an optional dependency (`pip install pixgate[ray]`): nothing else imports this.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import pickle
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixgate.config import DEFAULT_BATCH_SIZE_CPU, DEFAULT_BATCH_SIZE_CUDA, MAX_BATCH_PIXELS
from pixgate.runs import schema
from pixgate.scoring.lifecycle import Opened, RowSink, RunContext, local_sha256
from pixgate.scoring.options import ScoreConfigError, ScoreOptions, check_folder
from pixgate.scoring.pairing import Pair, Pairing
from pixgate.scoring.rows import missing_row, path_text

_NODE = "_node"
#: Times Ray re-runs a failed decode task or restarts a dead scoring actor.
_RETRIES = 3


def _reader(baseline_fs: Any, candidate_fs: Any, pair: Pair, max_bytes: int) -> Callable[[Path], bytes] | None:
    if baseline_fs is None:
        return None  # local files: pixgate.scoring.decode reads them (regular files only, bounded)

    def read(path: Path) -> bytes:
        fs = baseline_fs if path == pair.baseline else candidate_fs
        with fs.open_input_file(str(path)) as fh:
            size = fh.size()
            if size > max_bytes:
                raise OSError(f"{size:,} bytes, over the {max_bytes:,}-byte limit for this file")
            return bytes(fh.read(max_bytes + 1))

    return read


def _decode_task(row: dict[str, Any], *, max_pixels: int, baseline_fs: Any, candidate_fs: Any) -> dict[str, Any]:
    from pixgate.scoring.decode import max_file_bytes
    from pixgate.scoring.workers import decode_hashed

    pair = Pair(row["pair_id"], Path(row["baseline"]), Path(row["candidate"]))
    assert pair.baseline is not None and pair.candidate is not None  # only scorable pairs are sent
    read = _reader(baseline_fs, candidate_fs, pair, max_file_bytes(max_pixels))
    pair, dp = decode_hashed(pair, max_pixels, read)
    return {"pair_id": pair.pair_id, "payload": pickle.dumps((pair, dp), protocol=5)}


class _ScoreActor:
    """One model per actor; scores a batch of decoded pairs by size bucket."""

    def __init__(self, opts_blob: bytes, device: str, weights_sha256: str) -> None:
        import torch

        from pixgate.scoring.scorer import Scorer, load_model

        opts: ScoreOptions = pickle.loads(opts_blob)  # noqa: S301 (our own options, from the driver)
        self.device = torch.device(device)
        model, meta = load_model(opts, self.device)
        found = meta.get(schema.META_WEIGHTS_SHA256, "")
        if found != weights_sha256:
            raise RuntimeError(
                f"weights differ on {socket.gethostname()}: sha256 {found[:12]}, the driver has {weights_sha256[:12]}"
            )
        self.scorer = Scorer(model, self.device, opts.net, precision=opts.precision)
        self.node = socket.gethostname()

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        from pixgate.scoring.rows import decoded_row, metric_rows

        items = [pickle.loads(b) for b in batch.column("payload").to_pylist()]  # noqa: S301 (decode tasks' output)
        rows: list[dict[str, Any]] = []
        buckets: dict[tuple[int, int], list[tuple[Pair, Any]]] = {}
        for pair, dp in items:
            if dp.error is None and dp.baseline is not None:
                buckets.setdefault((dp.baseline.height, dp.baseline.width), []).append((pair, dp))
            else:
                rows.append(decoded_row(pair, dp))
        for (h, w), group in buckets.items():
            cap = max(1, MAX_BATCH_PIXELS // max(1, h * w))
            for start in range(0, len(group), cap):
                part = group[start : start + cap]
                metrics, wall_ms, gpu_ms = self.scorer.score([dp for _, dp in part], None)
                rows.extend(metric_rows(part, metrics, [None] * len(part), wall_ms, gpu_ms))
        table = pa.Table.from_pylist(rows, schema=schema.arrow_schema())
        return table.append_column(_NODE, pa.array([self.node] * len(rows), pa.string()))


def _pairing(opts: ScoreOptions) -> tuple[Pairing, Any, Any]:
    from pixgate.scoring.pairing import pair_directories, pair_uris

    base, cand = str(opts.baseline), str(opts.candidate)
    if "://" in base or "://" in cand:
        try:
            return pair_uris(base, cand)
        except ValueError as exc:
            raise ScoreConfigError.from_error(exc) from None
    return pair_directories(check_folder("baseline", base), check_folder("candidate", cand)), None, None


def _uri_paths(row: dict[str, Any], opts: ScoreOptions) -> dict[str, Any]:
    """Record paths as the URIs the run was given (a filesystem's paths drop the scheme)."""
    row[schema.BASELINE_PATH.name] = path_text(opts.baseline, row[schema.BASELINE_PATH.name])
    row[schema.CANDIDATE_PATH.name] = path_text(opts.candidate, row[schema.CANDIDATE_PATH.name])
    return row


class RayBackend:
    """Scores on a Ray cluster (a local Ray instance without `address`); see the module."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._fs: tuple[Any, Any] = (None, None)

    def check(self, opts: ScoreOptions) -> None:
        if importlib.util.find_spec("ray") is None:
            raise ScoreConfigError.about("{backend_ray} needs Ray: pip install 'pixgate[ray]'")
        if opts.manifest is not None:
            raise ScoreConfigError.about(
                "{manifest} (typography checks, ignore regions) runs on the local backend only"
            )
        if opts.typography:
            raise ScoreConfigError.about(
                "{backend_ray}: typography checks run on the local backend only; pass {no_typography} to score on "
                "Ray without them (every row's typography is then 'not_checked', which a gate sees as no data)"
            )

    def pair(self, opts: ScoreOptions) -> Pairing:
        pairing, baseline_fs, candidate_fs = _pairing(opts)
        self._fs = (baseline_fs, candidate_fs)
        return pairing

    def open(self, run: RunContext) -> Opened:
        import ray
        import torch

        opts = run.opts
        try:
            ray.init(address=self.address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ScoreConfigError.about(
                "{ray_address}: cannot reach a Ray cluster at {address!r}: {problem}",
                address=self.address,
                problem=str(exc),
            ) from None
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if opts.device == "cuda" and not gpus:
            raise ScoreConfigError.about("the Ray cluster has no GPUs: {device} must be auto or cpu")
        self._device = "cuda" if gpus and opts.device != "cpu" else "cpu"
        self._batch_size = opts.batch_size or (
            DEFAULT_BATCH_SIZE_CUDA if self._device == "cuda" else DEFAULT_BATCH_SIZE_CPU
        )
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._actors = gpus if self._device == "cuda" else max(1, cpus // 2)
        meta = {
            schema.META_BACKEND: f"ray {ray.__version__} ({self.address or 'local instance'})",
            schema.META_TYPOGRAPHY: "off",
        }
        if self._device == "cuda":
            meta[schema.META_DEVICE_NAME] = f"{gpus} GPU actor(s) on the Ray cluster"
        return Opened(torch.device(self._device), meta, self._batch_size)

    def settings(self) -> dict[str, Any]:
        return {"backend": "ray", "address": self.address}

    def file_sha256(self, side: str, path: Path, max_bytes: int) -> str | None:
        filesystem = self._fs[0 if side == "baseline" else 1]
        if filesystem is None:
            return local_sha256(side, path, max_bytes)
        try:  # read as the decode tasks read it (`_reader`)
            with filesystem.open_input_file(str(path)) as fh:
                if fh.size() > max_bytes:
                    return None
                return hashlib.sha256(bytes(fh.read(max_bytes + 1))).hexdigest()
        except (OSError, ValueError):
            return None

    def rows(self, run: RunContext, sink: RowSink) -> None:
        import ray
        import ray.data

        opts = run.opts
        nodes: dict[str, dict[str, float]] = {}
        seen: set[str] = set()
        duplicates = 0
        compute_ms = 0.0
        run.begin()
        sink.add([_uri_paths(missing_row(p), opts) for p in run.unscorable])
        sink.flush(force=True)
        if run.todo:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.print_on_execution_start = False
            # Ray Data narrates every execution at INFO; pixgate has its own progress.
            logging.getLogger("ray.data").setLevel(logging.ERROR)
            items = [
                {"pair_id": p.pair_id, "baseline": str(p.baseline), "candidate": str(p.candidate)} for p in run.todo
            ]
            blocks = max(1, min(len(items) // max(1, self._batch_size), 200))
            source = ray.data.from_items(items, override_num_blocks=blocks)
            baseline_fs, candidate_fs = self._fs
            with warnings.catch_warnings():
                # Ray deprecates passing retries as remote args; the replacement differs by version.
                warnings.simplefilter("ignore", DeprecationWarning)
                ds = source.map(
                    _decode_task,  # type: ignore[arg-type]  # keyword arguments come from fn_kwargs
                    fn_kwargs={"max_pixels": opts.max_pixels, "baseline_fs": baseline_fs, "candidate_fs": candidate_fs},
                    num_cpus=1,
                    max_retries=_RETRIES,
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                scored = ds.map_batches(
                    _ScoreActor,
                    fn_constructor_kwargs={
                        # Without the progress callback: it belongs to the driver's terminal.
                        "opts_blob": pickle.dumps(dataclasses.replace(opts, download_progress=None)),
                        "device": self._device,
                        "weights_sha256": run.weights.sha256 if run.weights is not None else "",
                    },
                    batch_size=self._batch_size,
                    batch_format="pyarrow",
                    compute=ray.data.ActorPoolStrategy(size=self._actors),
                    num_gpus=1 if self._device == "cuda" else 0,
                    num_cpus=0 if self._device == "cuda" else 1,
                    max_restarts=_RETRIES,
                    max_task_retries=_RETRIES,
                )
            for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
                rows = []
                for row in batch.to_pylist():  # type: ignore[union-attr]  # batch_format="pyarrow"
                    node = row.pop(_NODE)
                    if row[schema.PAIR_ID.name] in seen:
                        duplicates += 1  # a batch re-run after its actor died
                        continue
                    seen.add(row[schema.PAIR_ID.name])
                    _uri_paths(row, opts)
                    if row[schema.STATUS.name] == schema.STATUS_OK:
                        row[schema.TEXT_STATUS.name] = schema.TEXT_NOT_CHECKED
                    stats = nodes.setdefault(node, {"pairs": 0, "compute_s": 0.0})
                    stats["pairs"] += 1
                    stats["compute_s"] += (row[schema.COMPUTE_MS.name] or 0.0) / 1000.0
                    compute_ms += row[schema.COMPUTE_MS.name] or 0.0
                    rows.append(row)
                sink.add(rows)
        self._stats = {
            "backend": "ray",
            "compute_s": round(compute_ms / 1000.0, 3),
            "actors": self._actors,
            "batch_size": self._batch_size,
            "nodes": {k: {"pairs": int(v["pairs"]), "compute_s": round(v["compute_s"], 3)} for k, v in nodes.items()},
            "duplicates_dropped": duplicates,
            "decode_wait_share": 0.0,
        }

    def stats(self, run: RunContext, wall: float) -> dict[str, Any]:
        return self._stats


__all__ = ["RayBackend"]
