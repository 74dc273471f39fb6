"""`pixgate capture`: run golden prompts through a generator and keep what comes back.

Generators are HTTP endpoints (POST JSON `{"prompt", "seed", ...extra}`; the answer is
image bytes, or JSON with a base64 `image` field) or local commands (a template such as
`python gen.py --prompt {prompt} --seed {seed} --out {out}`).

Every prompt ends as one row of `DIR/capture.arrow` (engine.schema.CAPTURE_COLUMNS), its
image as `DIR/<id>.<ext>`; a prompt that fails after its attempts is an `error` row with
the last error, never a gap. Rows are journaled as they finish, so `--resume` after a
crash or a kill skips the prompts already captured.

Retries are bounded and polite: connection errors, timeouts, 429 and 5xx are retried up
to `max_attempts` in all, after an exponential backoff with full jitter, or after the
server's `Retry-After` when it sends one; other 4xx and bodies that are not images are
not retried. An overall deadline stops new attempts; prompts it cuts off are error rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from engine import __version__, schema
from engine.config import (
    CAPTURE_BACKOFF_MAX_S,
    CAPTURE_BACKOFF_S,
    CAPTURE_CONCURRENCY,
    CAPTURE_MAX_ATTEMPTS,
    CAPTURE_RETRY_AFTER_MAX_S,
    CAPTURE_TIMEOUT_S,
)

CAPTURE_FILE = "capture.arrow"
_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
_HTTP_GPU_NOTE = "HTTP generators: gpu_ms and energy_j as reported in X-GPU-Ms and X-Energy-J response headers"


class CaptureConfigError(ValueError):
    """A usage problem (exit 2): bad prompts file, template, endpoint or options."""


@dataclass(frozen=True)
class Prompt:
    """One line of the prompts file.

    Attributes:
        id: Unique id; the image is saved as `<id>.<ext>`.
        prompt: The prompt text.
        seed: The seed, or None.
        extra: Other keys, passed through to the generator.
    """

    id: str
    prompt: str
    seed: int | None
    extra: dict[str, Any] = field(default_factory=dict)


def load_prompts(path: Path) -> list[Prompt]:
    """Read a prompts file (JSONL: `id`, `prompt`, optional `seed`, extra keys).

    Raises:
        CaptureConfigError: Unreadable file, a bad line (named), or an id given twice.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CaptureConfigError(f"--prompts: cannot read {path}: {exc}") from None
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CaptureConfigError(f"{where}: not valid JSON: {exc.msg}") from None
        if not isinstance(raw, dict):
            raise CaptureConfigError(f"{where}: each line must be a JSON object")
        pid, text, seed = raw.pop("id", None), raw.pop("prompt", None), raw.pop("seed", None)
        if not isinstance(pid, str) or not pid or pid.startswith("/") or ".." in pid.split("/"):
            raise CaptureConfigError(f"{where}: 'id' must be a relative name such as 'promo/001', got {pid!r}")
        if not isinstance(text, str):
            raise CaptureConfigError(f"{where}: 'prompt' must be a string, got {text!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise CaptureConfigError(f"{where}: 'seed' must be a whole number, got {seed!r}")
        if pid in seen:
            raise CaptureConfigError(f"{where}: id {pid!r} appears twice (first on line {seen[pid]})")
        seen[pid] = number
        prompts.append(Prompt(pid, text, seed, raw))
    return prompts


def in_sample(prompt_id: str, fraction: float) -> bool:
    """Whether a prompt belongs to the deterministic `fraction` subset (by hash of its id)."""
    value = int.from_bytes(hashlib.sha256(prompt_id.encode()).digest()[:8], "big")
    return value < fraction * 2**64


@dataclass(frozen=True)
class CaptureOptions:
    """Everything a capture needs; mirrors the CLI.

    Attributes:
        prompts: The prompts file.
        out: Folder for the images and capture.arrow.
        endpoint: HTTP generator URL (exclusive with `command`).
        command: Command template (exclusive with `endpoint`).
        max_attempts: Attempts per prompt, retries included.
        timeout_s: Per-request or per-command timeout.
        deadline_s: Overall time limit; None for none.
        concurrency: Requests in flight.
        sample: Fraction of prompts to capture (deterministic by id); None for all.
        resume: Skip prompts already captured in `out`.
        backoff_s: First retry's backoff cap.
    """

    prompts: Path
    out: Path
    endpoint: str | None = None
    command: str | None = None
    max_attempts: int = CAPTURE_MAX_ATTEMPTS
    timeout_s: float = CAPTURE_TIMEOUT_S
    deadline_s: float | None = None
    concurrency: int = CAPTURE_CONCURRENCY
    sample: float | None = None
    resume: bool = False
    backoff_s: float = CAPTURE_BACKOFF_S


@dataclass
class _Attempt:
    ok: bool
    retry: bool
    error: str | None = None
    http_status: int | None = None
    retry_after: float | None = None
    image: bytes | None = None
    latency_ms: float = 0.0
    gpu_ms: float | None = None
    energy_j: float | None = None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _header_float(headers: Any, name: str) -> float | None:
    try:
        return float(headers[name]) if name in headers else None
    except ValueError:
        return None


class _Http:
    def __init__(self, url: str, timeout_s: float, concurrency: int) -> None:
        import httpx

        self.url = url
        self._httpx = httpx
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.Client(timeout=timeout_s, limits=limits)
        self.timeout_s = timeout_s

    def close(self) -> None:
        self._client.close()

    def attempt(self, prompt: Prompt, out: Path) -> _Attempt:
        del out
        httpx = self._httpx
        payload = {
            "id": prompt.id,
            "prompt": prompt.prompt,
            **({"seed": prompt.seed} if prompt.seed is not None else {}),
        }
        payload.update(prompt.extra)
        started = time.perf_counter()
        try:
            resp = self._client.post(self.url, json=payload)
        except httpx.TimeoutException:
            return _Attempt(False, True, f"no answer within {self.timeout_s:g} s (timeout)")
        except httpx.TransportError as exc:
            return _Attempt(False, True, f"connection error: {type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000.0
        code = resp.status_code
        if code == 429 or code >= 500:
            after = _retry_after(resp.headers.get("Retry-After"))
            return _Attempt(False, True, f"HTTP {code}: {resp.text[:200]!r}", code, after, latency_ms=latency)
        if code != 200:
            return _Attempt(False, False, f"HTTP {code} (not retried): {resp.text[:200]!r}", code, latency_ms=latency)
        body = resp.content
        if resp.headers.get("content-type", "").startswith("application/json"):
            try:
                body = base64.b64decode(json.loads(body)["image"], validate=True)
            except (ValueError, KeyError, TypeError) as exc:
                return _Attempt(False, False, f"JSON answer without a base64 'image' field ({exc})", code)
        return _Attempt(
            True,
            False,
            http_status=code,
            image=body,
            latency_ms=latency,
            gpu_ms=_header_float(resp.headers, "X-GPU-Ms"),
            energy_j=_header_float(resp.headers, "X-Energy-J"),
        )


class _Command:
    def __init__(self, template: str, timeout_s: float, concurrency: int) -> None:
        from engine.telemetry import NvmlSampler

        # NVML's device energy counter around each command run: the command's own energy
        # when it runs alone on the GPU (--concurrency 1), a share of the device's otherwise.
        self.nvml = NvmlSampler()
        if self.nvml.available:
            shared = "" if concurrency == 1 else f" (shared by up to {concurrency} commands running at once)"
            self.gpu_note = (
                f"local command: energy_j is the device's energy during the command{shared}, from NVML on "
                f"{self.nvml.device}; gpu_ms is not metered (it needs NVML per-process accounting)"
            )
        else:
            self.gpu_note = f"local command: gpu_ms and energy_j not metered: {'; '.join(self.nvml.notes)}"
        try:
            self.argv = shlex.split(template)
        except ValueError as exc:
            raise CaptureConfigError(f"--command: cannot split {template!r}: {exc}") from None
        if not self.argv or "{out}" not in template:
            raise CaptureConfigError(f"--command: the template must write to {{out}}; got {template!r}")
        self.timeout_s = timeout_s

    def close(self) -> None:
        """Nothing to release."""

    def attempt(self, prompt: Prompt, out: Path) -> _Attempt:
        values = {"id": prompt.id, "prompt": prompt.prompt, "seed": "" if prompt.seed is None else prompt.seed,
                  "out": str(out), **prompt.extra}  # fmt: skip
        try:
            argv = [arg.format_map(values) for arg in self.argv]
        except (KeyError, IndexError, ValueError) as exc:
            return _Attempt(False, False, f"--command: the template names {exc} that this prompt does not give")
        out.unlink(missing_ok=True)
        started = time.perf_counter()
        try:
            energy_before = self.nvml.energy_j()
            done = subprocess.run(argv, capture_output=True, timeout=self.timeout_s, check=False)
            energy_after = self.nvml.energy_j()
        except subprocess.TimeoutExpired:
            return _Attempt(False, True, f"command ran past its {self.timeout_s:g} s timeout")
        except OSError as exc:
            return _Attempt(False, False, f"command could not start: {exc}")
        latency = (time.perf_counter() - started) * 1000.0
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-300:]
            return _Attempt(False, True, f"command exited {done.returncode}: {tail!r}", latency_ms=latency)
        if not out.is_file():
            return _Attempt(False, False, f"command exited 0 but wrote no {out.name}", latency_ms=latency)
        energy = None if energy_before is None or energy_after is None else energy_after - energy_before
        return _Attempt(True, False, image=out.read_bytes(), latency_ms=latency, energy_j=energy)


@dataclass
class CaptureResult:
    """A finished capture.

    Attributes:
        table: capture.arrow's rows, sorted by id.
        stats: Counts and timings.
    """

    table: Any
    stats: dict[str, Any]

    @property
    def all_ok(self) -> bool:
        """Every prompt produced an image."""
        return all(s == schema.STATUS_OK for s in self.table.column(schema.CAPTURE_STATUS.name).to_pylist())


def _previous(out: Path) -> tuple[Any, set[str]]:
    """Rows of an earlier capture into `out` (file or journal) and the ids it got."""
    from engine.arrow_io import journal_path, read_journal, read_run

    path = out / CAPTURE_FILE
    table = None
    if journal_path(path).exists():
        table, _ = read_journal(journal_path(path))
    elif path.exists():
        table = read_run(path)
    if table is None:
        return None, set()
    ok = table.filter(table.column(schema.CAPTURE_STATUS.name).to_numpy(zero_copy_only=False) == schema.STATUS_OK)
    return ok, set(ok.column(schema.ID.name).to_pylist())


def _backoff(attempt: int, base: float, rng: random.Random) -> float:
    return rng.uniform(0.0, min(CAPTURE_BACKOFF_MAX_S, base * 2 ** (attempt - 1)))


def run_capture(opts: CaptureOptions, on_row: Callable[[dict[str, Any]], None] | None = None) -> CaptureResult:
    """Capture every prompt (or the sample) into `opts.out` (see the module).

    Raises:
        CaptureConfigError: Bad options or prompts file; nothing was captured.
    """
    from engine.arrow_io import RunJournal, journal_path
    from engine.decode import DecodeError, decode_bytes

    if (opts.endpoint is None) == (opts.command is None):
        raise CaptureConfigError("give exactly one generator: --endpoint URL or --command TEMPLATE")
    if opts.max_attempts < 1:
        raise CaptureConfigError(f"--max-attempts: got {opts.max_attempts}; use 1 or more")
    if opts.sample is not None and not 0.0 < opts.sample <= 1.0:
        raise CaptureConfigError(f"--sample: got {opts.sample}; use a fraction in (0, 1]")
    if opts.endpoint is not None and not opts.endpoint.startswith(("http://", "https://")):
        raise CaptureConfigError(f"--endpoint: got {opts.endpoint!r}; use an http:// or https:// URL")
    prompts = load_prompts(opts.prompts)
    if opts.sample is not None:
        prompts = [p for p in prompts if in_sample(p.id, opts.sample)]
    opts.out.mkdir(parents=True, exist_ok=True)
    if not opts.resume and journal_path(opts.out / CAPTURE_FILE).exists():
        raise CaptureConfigError(
            f"an interrupted capture exists in {opts.out}: pass --resume to complete it, or delete it to start over"
        )
    carried, done_ids = _previous(opts.out) if opts.resume else (None, set())
    todo = [p for p in prompts if p.id not in done_ids]
    engine = (
        _Http(opts.endpoint, opts.timeout_s, opts.concurrency)
        if opts.endpoint is not None
        else _Command(str(opts.command), opts.timeout_s, opts.concurrency)
    )
    meta = {
        schema.META_PIXGATE_VERSION: __version__,
        schema.META_SCHEMA_VERSION: schema.SCHEMA_VERSION,
        schema.META_ENGINE: opts.endpoint or f"command: {opts.command}",
        schema.META_GPU_METERING: engine.gpu_note if isinstance(engine, _Command) else _HTTP_GPU_NOTE,
        schema.META_STARTED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
        schema.META_SETTINGS: json.dumps(
            {
                "max_attempts": opts.max_attempts,
                "timeout_s": opts.timeout_s,
                "deadline_s": opts.deadline_s,
                "concurrency": opts.concurrency,
                "sample": opts.sample,
                "prompts": str(opts.prompts),
            }
        ),
    }
    journal = RunJournal(opts.out / CAPTURE_FILE, meta, carried, columns=schema.CAPTURE_COLUMNS)
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + opts.deadline_s if opts.deadline_s is not None else None
    requests = 0

    def capture_one(prompt: Prompt) -> dict[str, Any]:
        nonlocal requests
        rng = random.Random(f"{prompt.id}\0backoff")  # noqa: S311 (jitter, not secrets)
        # A name with an image extension: generators often pick their format from it.
        staging = opts.out / f".{prompt.id.replace('/', '_')}.partial.png"
        result = _Attempt(False, False, "deadline reached before this prompt was tried")
        attempts = 0
        for attempt in range(1, opts.max_attempts + 1):
            if deadline is not None and time.monotonic() >= deadline:
                if attempts:
                    result.error = f"{result.error}; deadline reached before attempt {attempt}"
                break
            attempts = attempt
            with lock:
                requests += 1
            try:
                result = engine.attempt(prompt, staging)
            except Exception as exc:  # one prompt's unexpected failure is its error row, not the run's end
                result = _Attempt(False, False, f"internal error: {type(exc).__name__}: {exc}")
            if result.ok:
                try:
                    decoded = decode_bytes(result.image or b"")
                except DecodeError as exc:
                    result = _Attempt(False, False, f"the answer is not a decodable image: {exc}", result.http_status)
                else:
                    break
            if not result.retry or attempt == opts.max_attempts:
                break
            wait = result.retry_after if result.retry_after is not None else _backoff(attempt, opts.backoff_s, rng)
            if result.retry_after is not None and result.retry_after > CAPTURE_RETRY_AFTER_MAX_S:
                limit = CAPTURE_RETRY_AFTER_MAX_S
                result.error = (
                    f"{result.error}; Retry-After {result.retry_after:g} s is beyond the {limit:g} s honoured"
                )
                break
            if deadline is not None and time.monotonic() + wait >= deadline:
                result.error = f"{result.error}; the deadline falls before the next attempt"
                break
            time.sleep(wait)
        staging.unlink(missing_ok=True)
        row: dict[str, Any] = dict.fromkeys(c.name for c in schema.CAPTURE_COLUMNS)
        row.update(
            {
                schema.ID.name: prompt.id,
                schema.PROMPT.name: prompt.prompt,
                schema.SEED.name: prompt.seed,
                schema.ATTEMPTS.name: attempts,
                schema.HTTP_STATUS.name: result.http_status,
            }
        )
        if result.ok and result.image is not None:
            name = prompt.id + _EXTENSIONS.get(decoded.format, ".img")
            target = opts.out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(result.image)
            tmp.replace(target)
            row.update(
                {
                    schema.CAPTURE_STATUS.name: schema.STATUS_OK,
                    schema.LATENCY_MS.name: result.latency_ms,
                    schema.BYTES.name: len(result.image),
                    schema.SHA256.name: hashlib.sha256(result.image).hexdigest(),
                    schema.IMAGE.name: name,
                    schema.CAPTURE_GPU_MS.name: result.gpu_ms,
                    schema.ENERGY_J.name: result.energy_j,
                }
            )
        else:
            row[schema.CAPTURE_STATUS.name] = schema.STATUS_ERROR
            row[schema.CAPTURE_ERROR.name] = result.error or "failed"
            if result.latency_ms:
                row[schema.LATENCY_MS.name] = result.latency_ms
        with lock:
            journal.append([row])
        if on_row is not None:
            on_row(row)
        return row

    try:
        with ThreadPoolExecutor(max_workers=max(1, opts.concurrency)) as pool:
            list(pool.map(capture_one, todo))
        meta[schema.META_ENDED_AT] = datetime.now(UTC).isoformat(timespec="seconds")
        table = journal.finalize(meta)
    finally:
        engine.close()
        journal.close()
    status = table.column(schema.CAPTURE_STATUS.name).to_pylist()
    stats = {
        "prompts": len(prompts),
        "captured_now": len(todo),
        "carried_over": len(done_ids & {p.id for p in prompts}),
        "ok": status.count(schema.STATUS_OK),
        "errors": status.count(schema.STATUS_ERROR),
        "requests": requests,
        "wall_s": round(time.monotonic() - started, 3),
    }
    return CaptureResult(table, stats)


__all__ = [
    "CAPTURE_FILE",
    "CaptureConfigError",
    "CaptureOptions",
    "CaptureResult",
    "Prompt",
    "in_sample",
    "load_prompts",
    "run_capture",
]
