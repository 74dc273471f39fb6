"""A small deterministic image generator to exercise capture, replay and canary offline.

`generate(prompt, seed)` draws a poster (gradient, shapes, the prompt as a title, small
print, transparent rounded corners) that depends only on its arguments. `degrade`
reproduces the failure modes of a bad engine upgrade:

- `alpha`: transparency dropped (the corners turn opaque);
- `icc`: the same pixels tagged with a wide-gamut profile (Adobe RGB);
- `blur`: edge detail lost;
- `mush`: the small print re-rasterised at a quarter of its resolution;
- `stretch`: 25 % wider;
- `jpeg`: returned as JPEG instead of PNG;
- `saturate`: colours boosted;
- `noise`: random noise, different on every call (an engine that does not replay).

It runs as an HTTP server (`serve`: POST JSON `{"prompt", "seed", ...}`, answered with
PNG bytes, or JSON with a base64 `image` field) that can also add latency and fail a set
share of requests with 503 and `Retry-After`, and as a command (`generate -o FILE`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np

from pixgate.config import CAPTURE_SEED_MAX

DEGRADATIONS: Final = ("alpha", "icc", "blur", "mush", "stretch", "jpeg", "saturate", "noise")
DEFAULT_SIZE: Final = 256


def _seed(prompt: str, seed: int) -> int:
    # surrogatepass: a prompt may carry lone surrogates (JSON can spell them).
    digest = hashlib.sha256(f"{seed}\0{prompt}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "little")


def check_seed(seed: object) -> int:
    """`seed` if it is a whole number in the engine's range, 0 to `CAPTURE_SEED_MAX`
    (2**64 - 1, as a prompts file may give).

    Raises:
        ValueError: Anything else (a bool, a float, a string, a number out of range).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= CAPTURE_SEED_MAX:
        shown = repr(seed) if not isinstance(seed, int) or seed.bit_length() <= 128 else "a larger number"
        raise ValueError(f"seed: use a whole number from 0 to {CAPTURE_SEED_MAX}, got {shown}")
    return seed


def generate(prompt: str, seed: int, *, size: int = DEFAULT_SIZE, degrade: frozenset[str] = frozenset()) -> bytes:
    """One poster as encoded bytes (PNG, or JPEG with the `jpeg` degradation).

    Raises:
        ValueError: An unknown degradation, or a seed outside 0 to 2**64 - 1 (`check_seed`).
    """
    from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

    unknown = sorted(set(degrade) - set(DEGRADATIONS))
    if unknown:
        raise ValueError(f"degrade: unknown {', '.join(unknown)}; known: {', '.join(DEGRADATIONS)}")
    check_seed(seed)
    rng = np.random.default_rng(_seed(prompt, seed))
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    t = (x * 0.6 + y * 0.4)[..., None]
    img = Image.fromarray((c0 * (1 - t) + c1 * t).astype(np.uint8), "RGB").convert("RGBA")
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = (int(v) for v in rng.integers(0, size * 3 // 4, 2))
        w, h = (int(v) for v in rng.integers(size // 8, size // 4, 2))
        colour = (*(int(v) for v in rng.integers(0, 255, 3)), 255)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(
            (x0, y0 + size // 6, x0 + w, y0 + h + size // 6), fill=colour
        )
    title = " ".join(prompt.split()[:3]).upper()[:18] or "UNTITLED"
    draw.text((size // 18, size // 20), title, font=ImageFont.load_default(size=size // 9), fill=(255, 255, 255, 255),
              stroke_width=2, stroke_fill=(0, 0, 0, 255))  # fmt: skip
    band = size - size * 11 // 64
    draw.rectangle((0, band, size, size), fill=(250, 250, 245, 255))
    small = ImageFont.load_default(size=max(8, size // 23))
    draw.text((size // 32, band + size // 64), f"Seed {seed}. Offer valid while stocks last.", font=small,
              fill=(20, 20, 20, 255))  # fmt: skip
    draw.text(
        (size // 32, band + size // 11), "Terms apply. See store for details.", font=small, fill=(20, 20, 20, 255)
    )
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, size - 1, size - 1), radius=size // 6, fill=255)
    img.putalpha(mask)

    if "mush" in degrade:
        strip = img.crop((0, band, size, size))
        strip = strip.resize((size // 4, max(1, strip.height // 4)), Image.Resampling.BILINEAR)
        img.paste(strip.resize((size, size - band), Image.Resampling.BILINEAR), (0, band))
    if "blur" in degrade:
        img = img.filter(ImageFilter.GaussianBlur(size / 100))
    if "saturate" in degrade:
        img = ImageEnhance.Color(img).enhance(1.6)
    if "noise" in degrade:
        fresh = np.random.default_rng()  # deliberately not seeded: this engine does not replay
        arr = np.asarray(img).astype(np.int16)
        arr[..., :3] += fresh.integers(-6, 7, arr[..., :3].shape, dtype=np.int16)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGBA")
    if "stretch" in degrade:
        img = img.resize((size * 5 // 4, size), Image.Resampling.BICUBIC)
    if "alpha" in degrade or "jpeg" in degrade:
        img = img.convert("RGB")
    icc = (resources.files("pixgate") / "data" / "AdobeRGB1998.icc").read_bytes() if "icc" in degrade else None
    buf = io.BytesIO()
    if "jpeg" in degrade:
        img.save(buf, format="JPEG", quality=80)
    else:
        img.save(buf, format="PNG", **({"icc_profile": icc} if icc else {}))
    return buf.getvalue()


class _Settings:
    def __init__(self, degrade: frozenset[str], latency_ms: float, fail_first: int, retry_after: float | None,
                 as_json: bool, size: int) -> None:  # fmt: skip
        self.degrade = degrade
        self.latency_ms = latency_ms
        self.fail_first = fail_first
        self.retry_after = retry_after
        self.as_json = as_json
        self.size = size
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()


def make_server(
    port: int = 0,
    *,
    degrade: frozenset[str] = frozenset(),
    latency_ms: float = 0.0,
    fail_first: int = 0,
    retry_after: float | None = None,
    as_json: bool = False,
    size: int = DEFAULT_SIZE,
) -> ThreadingHTTPServer:
    """The demo engine as an HTTP server on 127.0.0.1 (not started; call serve_forever).

    Args:
        port: Port to listen on; 0 picks a free one (see `server.server_address`).
        degrade: Failure modes applied to every image.
        latency_ms: Delay before each answer.
        fail_first: The first this-many requests for each prompt id (or prompt) answer 503.
        retry_after: `Retry-After` seconds sent with those 503s.
        as_json: Answer JSON `{"image": base64}` instead of image bytes.
        size: Image side, pixels.
    """
    settings = _Settings(frozenset(degrade), latency_ms, fail_first, retry_after, as_json, size)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            del format, args  # quiet: tests and demos read their own output

        def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            try:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                prompt, seed = str(request["prompt"]), check_seed(request.get("seed", 0))
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                self._send(400, f"bad request: {exc}".encode(), "text/plain")
                return
            key = str(request.get("id", prompt))
            with settings.lock:
                settings.calls[key] = settings.calls.get(key, 0) + 1
                attempt = settings.calls[key]
            if settings.latency_ms:
                time.sleep(settings.latency_ms / 1000.0)
            if attempt <= settings.fail_first:
                extra = {"Retry-After": f"{settings.retry_after:g}"} if settings.retry_after is not None else {}
                self._send(503, b"busy, try again", "text/plain", extra)
                return
            image = generate(prompt, seed, size=settings.size, degrade=settings.degrade)
            if settings.as_json:
                body = json.dumps({"image": base64.b64encode(image).decode(), "seed": seed}).encode()
                self._send(200, body, "application/json")
            else:
                self._send(200, image, "image/jpeg" if "jpeg" in settings.degrade else "image/png")

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def write_image(prompt: str, seed: int, out: Path, *, degrade: frozenset[str] = frozenset(),
                size: int = DEFAULT_SIZE) -> None:  # fmt: skip
    """The command form: generate one image into `out`, replacing it whole
    (`pixgate.safe_io.atomic_write`: never written through a link, never into a FIFO or
    a device).

    Raises:
        ValueError: A bad seed or degradation (`generate`).
        pixgate.safe_io.OutputError: Something other than a regular file is at `out`.
    """
    from pixgate.safe_io import atomic_write, writing

    image = generate(prompt, seed, size=size, degrade=degrade)
    out.parent.mkdir(parents=True, exist_ok=True)
    with writing(out):
        atomic_write(out, image)


__all__ = ["DEGRADATIONS", "check_seed", "generate", "make_server", "write_image"]
