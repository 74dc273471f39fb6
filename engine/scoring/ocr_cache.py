"""A cache of baseline readings: each baseline is read by OCR once, not once per run (and
each region of it read again in another way, `text_lines.baseline_reread`, once).

A baseline's text regions and their readings depend only on its pixels, the OCR engine
and its language data, and the settings that shape a reading; the cache key is a
sha256 of all of them (`OCR_CACHE_FORMAT` included, so a change to how pixgate reads
text invalidates every entry). The value is a small JSON file, `<key[:2]>/<key>.json`,
under the cache folder: `--ocr-cache` (a folder a golden set or a CI cache can carry),
else `$PIXGATE_OCR_CACHE`, else `$XDG_CACHE_HOME/pixgate/ocr` (`~/.cache/pixgate/ocr`).

The cache is an input like any other: an entry is read only as a regular file (no link
followed, in a shard folder that is no link either) of bounded size, and checked (its
key, boxes inside the image, strings of bounded length); one that fails is ignored and
read anew. An entry that passes is used as the baseline's reading, so a cache folder is
trusted as far as the baselines it sits beside. Entries are written to a temporary file
and renamed into place, so runs sharing a folder never see half an entry. Nothing prunes
the folder: delete it at any time, it only costs the next run the readings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pixgate.config import (
    OCR_CACHE_ENTRY_MAX_BYTES,
    OCR_CACHE_FORMAT,
    OCR_MAX_READ_CHARS,
    OCR_MAX_REGIONS,
)
from pixgate.errors import UsageError
from pixgate.safe_io import UnsafeInputError, loads_json, read_regular

if TYPE_CHECKING:
    from pixgate.scoring.manifest import Box


class OcrCacheError(UsageError, OSError):
    """The cache folder given cannot be used."""


@dataclass(frozen=True)
class BaselineText:
    """What OCR found in one baseline: its text regions and the reading of each.

    Attributes:
        boxes: Text regions `(x0, y0, x1, y1)` in baseline pixels, top to bottom.
        reads: The reading of each region (same order); empty strings are kept.
    """

    boxes: tuple[Box, ...]
    reads: tuple[str, ...]


def default_cache_dir() -> Path | None:
    """`$XDG_CACHE_HOME/pixgate/ocr`, else `~/.cache/pixgate/ocr`; None without a home."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no HOME and no passwd entry
            return None
    return Path(base) / "pixgate" / "ocr"


def cache_key(rgba: np.ndarray, engine: str, settings: dict[str, Any], boxes: tuple[Box, ...] | None) -> str:
    """The key of a baseline's reading: its pixels, the engine, the settings and the boxes
    asked for (None: regions found by OCR)."""
    digest = hashlib.sha256()
    header = {
        "format": OCR_CACHE_FORMAT,
        "engine": engine,
        "settings": settings,
        "shape": list(rgba.shape),
        "dtype": str(rgba.dtype),
        "boxes": [list(b) for b in boxes] if boxes is not None else None,
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(b"\0")
    digest.update(np.ascontiguousarray(rgba).data)
    return digest.hexdigest()


def _parse(data: bytes, key: str, width: int, height: int, want: tuple[Box, ...] | None) -> BaselineText | None:
    """An entry's contents, or None when they are not a well-formed reading, stored under
    this key, of an image of this size (and of exactly the boxes `want`, when given)."""
    try:
        doc = loads_json(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("format") != OCR_CACHE_FORMAT or doc.get("key") != key:
        return None
    boxes, reads = doc.get("boxes"), doc.get("reads")
    if not isinstance(boxes, list) or not isinstance(reads, list) or len(boxes) != len(reads):
        return None
    if len(boxes) > OCR_MAX_REGIONS:
        return None
    parsed: list[Box] = []
    for box in boxes:
        if not (isinstance(box, list) and len(box) == 4 and all(type(v) is int for v in box)):
            return None
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            return None
        parsed.append((x0, y0, x1, y1))
    if not all(isinstance(r, str) and len(r) <= OCR_MAX_READ_CHARS and "\n" not in r for r in reads):
        return None  # a reading is one line: runs store a pair's readings one per line
    if want is not None and tuple(parsed) != tuple(want):
        return None
    return BaselineText(tuple(parsed), tuple(reads))


class OcrCache:
    """Baseline readings on disk, shared by the OCR threads of a run.

    Args:
        root: The cache folder; created if missing.
        source: Where the folder was named, for messages (an option or a variable).

    Raises:
        OcrCacheError: `root` is not a folder that can be created and written.
    """

    def __init__(self, root: Path, source: str = "ocr_cache") -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".probe-{secrets.token_hex(8)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            # `source` is the option that named the folder, or where else it came from.
            named = "{" + source + "}" if source.isidentifier() and source.islower() else "{source}"
            raise OcrCacheError.about(
                named + ": cannot use {root} as the OCR cache ({why}); give a writable folder, or pass {no_ocr_cache}",
                source=source,
                root=root,
                why=exc.strerror or exc,
            ) from None
        self.root = root
        self.hits = 0
        self.misses = 0
        self.reread_hits = 0
        self.reread_misses = 0
        self.write_errors = 0
        self._lock = threading.Lock()
        self._readers: dict[str, tuple[threading.Lock, int]] = {}

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def _read(self, key: str) -> bytes | None:
        """An entry's bytes: a regular file, not a link, in a shard that is not a link."""
        path = self._path(key)
        try:
            if not stat.S_ISDIR(os.lstat(path.parent).st_mode) or not stat.S_ISREG(os.lstat(path).st_mode):
                return None
            return read_regular(path, OCR_CACHE_ENTRY_MAX_BYTES)
        except (OSError, UnsafeInputError):
            return None

    @contextlib.contextmanager
    def reading(self, key: str) -> Iterator[None]:
        """Hold `key` while its baseline is looked up and, on a miss, read and stored: a
        thread asking for the same key waits, then finds the entry."""
        with self._lock:
            lock, users = self._readers.get(key, (threading.Lock(), 0))
            self._readers[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._readers[key]
                if users == 1:
                    del self._readers[key]
                else:
                    self._readers[key] = (lock, users - 1)

    def get(
        self, key: str, width: int, height: int, boxes: tuple[Box, ...] | None = None, *, reread: bool = False
    ) -> BaselineText | None:
        """The reading stored under `key` for an image of this size (of exactly `boxes`
        when given), or None (missing, unreadable, malformed or for other boxes).
        `reread`: the entry is a region read again in another way (counted apart)."""
        data = self._read(key)
        found = _parse(data, key, width, height, boxes) if data is not None else None
        with self._lock:
            if reread:
                self.reread_hits += found is not None
                self.reread_misses += found is None
            elif found is None:
                self.misses += 1
            else:
                self.hits += 1
        return found

    def get_or_read(
        self,
        key: str,
        width: int,
        height: int,
        boxes: tuple[Box, ...] | None,
        read: Callable[[], BaselineText],
        *,
        reread: bool = False,
    ) -> BaselineText:
        """The reading under `key` (as `get`), else `read()`, stored. Threads asking for
        the same key wait for the first one's reading instead of repeating it."""
        with self.reading(key):
            found = self.get(key, width, height, boxes, reread=reread)
            if found is None:
                found = read()
                self.put(key, found)
        return found

    def put(self, key: str, text: BaselineText) -> None:
        """Store a reading. A failure to write costs only speed: it is counted, not raised."""
        doc = {
            "format": OCR_CACHE_FORMAT,
            "key": key,
            "boxes": [list(b) for b in text.boxes],
            "reads": list(text.reads),
        }
        data = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
        path = self._path(key)
        tmp = path.parent / f".{key}.{secrets.token_hex(8)}.tmp"
        try:
            path.parent.mkdir(exist_ok=True)
            # A shard that is not a plain folder (a link someone left) is not written through.
            if not stat.S_ISDIR(os.lstat(path.parent).st_mode):
                raise NotADirectoryError(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            with self._lock:
                self.write_errors += 1

    def stats(self) -> dict[str, Any]:
        """Hits and misses so far (baseline readings, then regions read again in another
        way), failed writes, and the folder."""
        return {
            "folder": str(self.root),
            "hits": self.hits,
            "misses": self.misses,
            "reread_hits": self.reread_hits,
            "reread_misses": self.reread_misses,
            "write_errors": self.write_errors,
        }


__all__ = ["BaselineText", "OcrCache", "OcrCacheError", "cache_key", "default_cache_dir"]
