"""Where backbone weights come from, in a fixed order, and what they hash to.

Order: `--weights PATH`, then the `PIXGATE_WEIGHTS` variable, then torchvision's cache
under `$TORCH_HOME` (`torch.hub.get_dir()/checkpoints`), then a download with a progress
bar, checked against the hash prefix in the file name as torchvision does.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pixgate.config import DOWNLOAD_TIMEOUT_S
from pixgate.errors import UsageError
from pixgate.safe_io import not_regular
from pixgate.scoring.backbones import backbone

#: Environment variable naming a weights file (a torchvision state_dict).
ENV_WEIGHTS = "PIXGATE_WEIGHTS"
#: Environment variable replacing the download URL (a mirror); the file name must keep
#: torchvision's `<name>-<sha256 prefix>.pth` form so the hash can be checked.
ENV_WEIGHTS_URL = "PIXGATE_WEIGHTS_URL"

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")
_CHUNK = 1 << 20


class WeightsError(UsageError):
    """No usable weights; the message lists every way to provide them."""


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file that was found.

    Attributes:
        path: The file.
        origin: Which step found it (`--weights`, `PIXGATE_WEIGHTS`, `torchvision cache`,
            `download`).
        sha256: Hex digest of the file's bytes.
    """

    path: Path
    origin: str
    sha256: str


@dataclass(frozen=True)
class WeightsCandidate:
    """One step of the resolution order and what it found."""

    origin: str
    path: Path | None
    found: bool
    detail: str


def published(net: str, sha256: str) -> bool:
    """Whether `sha256` is the hash of torchvision's published weights for `net`: the
    file LPIPS's heads were calibrated on. Other weights load, but their LPIPS values
    mean nothing next to anyone else's."""
    return sha256 == backbone(net).weights_sha256


def weights_url(net: str) -> str:
    """The URL weights are downloaded from: `PIXGATE_WEIGHTS_URL` or torchvision's."""
    return os.environ.get(ENV_WEIGHTS_URL) or backbone(net).weights_url


def cache_path(net: str) -> Path:
    """Where torchvision keeps (and pixgate looks for) the downloaded file."""
    import torch.hub

    name = weights_url(net).rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def candidates(net: str, explicit: Path | None) -> list[WeightsCandidate]:
    """Every local step of the resolution order, in order, and whether it has a file."""
    out = []
    if explicit is not None:
        out.append(WeightsCandidate("--weights", explicit, explicit.is_file(), str(explicit)))
    else:
        out.append(WeightsCandidate("--weights", None, False, "not given"))
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        p = Path(env)
        out.append(WeightsCandidate(ENV_WEIGHTS, p, p.is_file(), f"{ENV_WEIGHTS}={env}"))
    else:
        out.append(WeightsCandidate(ENV_WEIGHTS, None, False, "not set"))
    cached = cache_path(net)
    out.append(WeightsCandidate("torchvision cache", cached, cached.is_file(), str(cached)))
    return out


#: Every way to provide weights, as a `WeightsError` template (`_how_to` fills its values).
_HOW_TO = (
    "Provide {net} backbone weights (a torchvision state_dict) in one of these ways:\n"
    "  1. pass {weights} PATH\n"
    "  2. set {env}=PATH\n"
    "  3. put the file at {cache} (torchvision's cache; TORCH_HOME moves it)\n"
    "  4. be online so pixgate can download {url}\n"
    "  or run with {no_lpips} to score everything but LPIPS."
)


def _how_to(net: str) -> dict[str, object]:
    return {"net": net, "env": ENV_WEIGHTS, "cache": cache_path(net), "url": weights_url(net)}


def download(url: str, dest: Path, *, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download `url` to `dest` atomically, checking the sha256 prefix in its name.

    Args:
        url: Source URL; its file name must contain `-<hex sha256 prefix>.`.
        dest: Final path; written only after the hash matched.
        progress: Called with (bytes so far, total or None) as data arrives.

    Raises:
        WeightsError: Network failure or hash mismatch; nothing is left at `dest`.
    """
    match = _HASH_IN_NAME.search(url.rsplit("/", 1)[-1])
    if match is None:
        raise WeightsError(f"cannot check the download: {url!r} has no -<sha256 prefix>. in its file name")
    expected = match.group(1)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:  # noqa: S310
            total = int(resp.headers.get("Content-Length") or 0) or None
            done = 0
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        got = digest.hexdigest()
        if not got.startswith(expected):
            raise WeightsError(f"download of {url} is corrupt: sha256 {got[:16]}..., expected a prefix {expected}")
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as exc:
        raise WeightsError(f"download of {url} failed: {getattr(exc, 'reason', exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def resolve_weights(
    net: str,
    explicit: Path | None = None,
    *,
    allow_download: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
) -> ResolvedWeights:
    """Find weights for `net` in the documented order.

    Args:
        net: `alex`, `vgg` or `squeeze`.
        explicit: The `--weights` argument, if any. When given it must exist: a typo must
            not silently fall through to another source.
        allow_download: Try the download step when no local file is found.
        progress: Download progress callback, see `download`.

    Raises:
        WeightsError: Nothing found; the message lists all the ways to provide weights.
    """
    steps = candidates(net, explicit)
    for step in steps:
        if step.origin in ("--weights", ENV_WEIGHTS) and step.path is not None and not step.found:
            raise WeightsError.about(
                "{origin}: {path}: {problem}\n" + _HOW_TO,
                origin=step.origin,
                path=step.path,
                problem=not_regular(step.path) or "not a regular file",
                **_how_to(net),
            )
        if step.found and step.path is not None:
            return ResolvedWeights(step.path, step.origin, sha256_file(step.path))
    if allow_download:
        try:
            path = download(weights_url(net), cache_path(net), progress=progress)
        except WeightsError as exc:
            raise WeightsError.about(
                "no {net} weights found locally; {problem}\n" + _HOW_TO, problem=exc, **_how_to(net)
            ) from None
        return ResolvedWeights(path, "download", sha256_file(path))
    raise WeightsError.about("no {net} weights found locally (download not attempted)\n" + _HOW_TO, **_how_to(net))


__all__ = [
    "ENV_WEIGHTS",
    "ENV_WEIGHTS_URL",
    "ResolvedWeights",
    "WeightsCandidate",
    "WeightsError",
    "cache_path",
    "candidates",
    "download",
    "published",
    "resolve_weights",
    "sha256_file",
    "weights_url",
]
