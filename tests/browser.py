"""Headless Chromium driven over the DevTools protocol, for the report's browser tests.

Chromium's `--remote-debugging-pipe` reads protocol commands on fd 3 and writes replies
and events on fd 4, NUL-separated JSON, so no extra library is needed. Network events
come per page: the requests a page makes are exactly what the test sees, unlike a
browser-wide net log, which also holds Chromium's own background traffic.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOAD_TIMEOUT_S = 60.0


def chromium_binary() -> str | None:
    """The Chromium executable on PATH, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


@dataclass
class Page:
    """A loaded page: the URLs it requested and a full-page screenshot (PNG bytes)."""

    requests: list[str]
    screenshot: bytes
    values: dict[str, Any]


class Chromium:
    """One headless Chromium with a private profile; use as a context manager."""

    def __init__(self, width: int = 1280, height: int = 1600) -> None:
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("no chromium on PATH (Debian: apt-get install chromium)")
        self.width, self.height = width, height
        self._profile = tempfile.mkdtemp(prefix="pixgate-chromium-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # Out of the way of fds 3 and 4, which the child needs for the protocol.
        child_in = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def wire() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self._proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--disable-background-networking", f"--user-data-dir={self._profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, close_fds=False,
        )  # fmt: skip
        os.close(child_in)
        os.close(child_out)
        self._send_fh = os.fdopen(to_child_w, "wb", buffering=0)
        self._recv_fh = os.fdopen(from_child_r, "rb", buffering=0)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._call("Browser.close")
        except (RuntimeError, OSError):
            self._proc.kill()
        self._proc.wait(timeout=30)
        self._send_fh.close()
        self._recv_fh.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = self._recv_fh.read(1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the protocol pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)  # type: ignore[no-any-return]

    def _call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._send_fh.write(json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self._events.append(reply)

    def load(self, path: Path, expressions: dict[str, str] | None = None) -> Page:
        """Open a file, wait for its load event, and collect requests, values and a screenshot.

        Args:
            path: The page.
            expressions: Name -> JavaScript expression, evaluated after load.
        """
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self._events.clear()
        self._call("Network.enable", session=session)
        self._call("Page.enable", session=session)
        metrics = {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False}
        self._call("Emulation.setDeviceMetricsOverride", metrics, session=session)
        self._call("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} did not load within {LOAD_TIMEOUT_S} s")
            self._events.append(self._message())
        values = {}
        for name, expression in (expressions or {}).items():
            result = self._call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
            values[name] = result["result"].get("value")
        shot = self._call("Page.captureScreenshot", {"format": "png"}, session=session)
        requests = [
            e["params"]["request"]["url"]
            for e in self._events
            if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == session
        ]
        self._call("Target.closeTarget", {"targetId": target})
        return Page(requests, base64.b64decode(shot["data"]), values)
