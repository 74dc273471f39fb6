"""The generators a capture calls: an HTTP endpoint or a local command, each attempt
under one time limit and one size cap (see `pixgate.capture.capture`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import shlex
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from pixgate.capture.prompts import CaptureConfigError, Prompt
from pixgate.config import (
    CAPTURE_ENERGY_J_MAX,
    CAPTURE_ERROR_TAIL_BYTES,
    CAPTURE_GPU_MS_MAX,
    SHOWN_VALUE_CHARS,
)
from pixgate.safe_io import (
    UnsafeInputError,
    loads_json,
    printable,
    read_regular,
)


@dataclass
class Attempt:
    ok: bool
    retry: bool
    error: str | None = None
    http_status: int | None = None
    retry_after: float | None = None
    image: bytes | None = None
    latency_ms: float = 0.0
    gpu_ms: float | None = None
    energy_j: float | None = None
    note: str | None = None


def _retry_after(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks for (a number or an HTTP date); None for one
    that says nothing usable (not a number, NaN, a date out of range)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):  # OverflowError: a year with 20 digits
        return None
    if when.tzinfo is None:  # "-0000": a date in UTC whose source is unknown (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _timing(headers: Any, name: str, bound: float) -> tuple[float | None, str | None]:
    """A timing header's value, or None and a note saying why it is refused: it must be
    a finite number from 0 to `bound` (NaN, infinity or a negative value is never stored)."""
    if name not in headers:
        return None, None
    raw = headers[name]
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and 0.0 <= value <= bound:
        return value, None
    shown = printable(raw[:SHOWN_VALUE_CHARS]) + ("..." if len(raw) > SHOWN_VALUE_CHARS else "")
    return None, f"{name} {shown!r} refused (not a number from 0 to {bound:g}); stored as null"


class _TooLarge(Exception):
    """An answer beyond the size cap."""


async def _read_capped(resp: Any, cap: int) -> bytes:
    """At most `cap` bytes of a streamed body, as sent (never inflated); `_TooLarge` beyond."""
    chunks, total = [], 0
    async for chunk in resp.aiter_raw():
        total += len(chunk)
        if total > cap:
            raise _TooLarge(total)
        chunks.append(chunk)
    return b"".join(chunks)


async def _head(resp: Any, size: int) -> str:
    """The first `size` bytes of a body, for an error message; the rest is not read."""
    data = b""
    async for chunk in resp.aiter_raw():
        data += chunk
        if len(data) >= size:
            break
    return repr(data[:size].decode("utf-8", "replace"))


# Uncompressed answers: a compressed one could expand far past the size cap (and the
# time limit: inflating blocks the event loop) before a byte of it is counted.
_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


class Http:
    """POSTs a prompt; each attempt is one asyncio task under one time limit, so the
    limit covers connecting and every read, and a dripping server is cut off on time."""

    def __init__(self, url: str, max_bytes: int) -> None:
        import httpx

        self.url = url
        self._httpx = httpx
        self.max_bytes = max_bytes

    def close(self) -> None:
        """Nothing to release: each attempt has its own connection."""

    def attempt(self, prompt: Prompt, out: Path, limit_s: float) -> Attempt:
        del out
        payload = {
            "id": prompt.id,
            "prompt": prompt.prompt,
            **({"seed": prompt.seed} if prompt.seed is not None else {}),
        }
        payload.update(prompt.extra)
        started = time.perf_counter()
        # A loop of its own rather than asyncio.run, which would wait at its end for the
        # resolver thread of a name lookup that the time limit cut short.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(self._attempt(payload, limit_s, started))
        except TimeoutError:
            return Attempt(False, True, f"no complete answer within {limit_s:g} s (timeout)")
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()  # the executor is shut down without waiting for it

    async def _attempt(self, payload: dict[str, Any], limit_s: float, started: float) -> Attempt:
        httpx = self._httpx
        # ASCII JSON: text the prompts file spelled with lone surrogates reaches the
        # generator as the same escapes, where UTF-8 could not carry it.
        body = json.dumps(payload, ensure_ascii=True).encode("ascii")
        async with asyncio.timeout(limit_s):
            try:
                async with (
                    httpx.AsyncClient(timeout=limit_s) as client,
                    client.stream("POST", self.url, content=body, headers=_HEADERS) as resp,
                ):
                    return await self._answer(resp, started)
            except httpx.TimeoutException:
                return Attempt(False, True, f"no complete answer within {limit_s:g} s (timeout)")
            except httpx.TransportError as exc:
                return Attempt(False, True, f"connection error: {type(exc).__name__}: {exc}")

    async def _answer(self, resp: Any, started: float) -> Attempt:
        code = resp.status_code
        if code == 429 or code >= 500:
            after = _retry_after(resp.headers.get("Retry-After"))
            head = await _head(resp, CAPTURE_ERROR_TAIL_BYTES)
            latency = (time.perf_counter() - started) * 1000.0
            return Attempt(False, True, f"HTTP {code}: {head}", code, after, latency_ms=latency)
        if code != 200:
            head = await _head(resp, CAPTURE_ERROR_TAIL_BYTES)
            latency = (time.perf_counter() - started) * 1000.0
            return Attempt(False, False, f"HTTP {code} (not retried): {head}", code, latency_ms=latency)
        encoding = resp.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # Asked for identity; inflating what arrives instead could exceed any limit.
            return Attempt(False, False, f"a compressed answer (Content-Encoding: {encoding}) is not read", code)
        declared = resp.headers.get("content-length", "")
        too_large = f"the answer is larger than the {self.max_bytes:,}-byte limit (--max-bytes; not retried)"
        if declared.isdigit() and len(declared) < 20 and int(declared) > self.max_bytes:
            return Attempt(False, False, too_large, code)
        try:
            body = await _read_capped(resp, self.max_bytes)
        except _TooLarge:
            return Attempt(False, False, too_large, code)
        latency = (time.perf_counter() - started) * 1000.0
        gpu_ms, gpu_note = _timing(resp.headers, "X-GPU-Ms", CAPTURE_GPU_MS_MAX)
        energy_j, energy_note = _timing(resp.headers, "X-Energy-J", CAPTURE_ENERGY_J_MAX)
        if resp.headers.get("content-type", "").startswith("application/json"):
            try:
                body = base64.b64decode(loads_json(body)["image"], validate=True)
            except (ValueError, KeyError, TypeError) as exc:
                return Attempt(False, False, f"JSON answer without a base64 'image' field ({exc})", code)
        return Attempt(
            True,
            False,
            http_status=code,
            image=body,
            latency_ms=latency,
            gpu_ms=gpu_ms,
            energy_j=energy_j,
            note="; ".join(n for n in (gpu_note, energy_note) if n) or None,
        )


def _tail(fh: Any, size: int) -> str:
    fh.seek(0, os.SEEK_END)
    fh.seek(max(0, fh.tell() - size))
    return repr(fh.read().decode("utf-8", "replace"))


class Command:
    def __init__(self, template: str, concurrency: int, max_bytes: int) -> None:
        from pixgate.telemetry import NvmlSampler

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
            raise CaptureConfigError.about(
                "{command}: cannot split {template!r}: {problem}", template=template, problem=exc
            ) from None
        if not self.argv or "{out}" not in template:
            raise CaptureConfigError.about(
                "{command}: the template must write to {placeholder}; got {template!r}",
                placeholder="{out}",
                template=template,
            )
        self.max_bytes = max_bytes

    def close(self) -> None:
        """Nothing to release."""

    def attempt(self, prompt: Prompt, out: Path, limit_s: float) -> Attempt:
        values = {"id": prompt.id, "prompt": prompt.prompt, "seed": "" if prompt.seed is None else prompt.seed,
                  "out": str(out), **prompt.extra}  # fmt: skip
        try:
            argv = [arg.format_map(values) for arg in self.argv]
        except (KeyError, IndexError) as exc:
            return Attempt(False, False, f"--command: the template names {exc} that this prompt does not give")
        except (ValueError, AttributeError, TypeError) as exc:  # '{seed.x}', '{prompt:d}'
            return Attempt(False, False, f"--command: the template cannot be filled in for this prompt: {exc}")
        out.unlink(missing_ok=True)
        started = time.perf_counter()
        # stderr goes to a file (only its tail is kept), stdout nowhere: a chatty command
        # cannot fill memory. Its own session, so a timeout kills its children too.
        with tempfile.TemporaryFile() as err:
            energy_before = self.nvml.energy_j()
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
                )
            except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
                return Attempt(False, False, f"command could not start: {exc}")
            try:
                code = proc.wait(timeout=limit_s)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                # Its whole session, whatever happened: no child of one attempt outlives it
                # (a child that starts a session of its own is beyond reach).
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if code is None:
                return Attempt(False, True, f"command ran past its {limit_s:g} s time limit (timeout)")
            energy_after = self.nvml.energy_j()
            latency = (time.perf_counter() - started) * 1000.0
            if code != 0:
                tail = _tail(err, CAPTURE_ERROR_TAIL_BYTES)
                return Attempt(False, True, f"command exited {code}: {tail}", latency_ms=latency)
        if not os.path.lexists(out):
            return Attempt(False, False, f"command exited 0 but wrote no {out.name}", latency_ms=latency)
        try:
            # Not through a link: a link the command left (to /etc/shadow, a device, another
            # capture's image) is refused, and what it points to is never opened.
            image = read_regular(out, self.max_bytes, follow_links=False)
        except UnsafeInputError as exc:
            return Attempt(False, False, f"the command's output {out.name}: {exc} (not retried)", latency_ms=latency)
        energy = None if energy_before is None or energy_after is None else energy_after - energy_before
        return Attempt(True, False, image=image, latency_ms=latency, energy_j=energy)


__all__ = ["Attempt", "Command", "Http"]
