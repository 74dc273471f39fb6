"""Weights resolution order, the cache under TORCH_HOME, and the download (local server)."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixgate.scoring.backbones import BACKBONES, NETS
from pixgate.scoring.weights import (
    ENV_WEIGHTS,
    ENV_WEIGHTS_URL,
    WeightsError,
    cache_path,
    resolve_weights,
    sha256_file,
    weights_url,
)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    log: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            log.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()


def test_explicit_path_wins(alex_weights: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = tmp_path / "other.pth"
    other.write_bytes(b"x")
    monkeypatch.setenv(ENV_WEIGHTS, str(other))
    got = resolve_weights("alex", alex_weights)
    assert got.origin == "--weights" and got.path == alex_weights
    assert got.sha256 == hashlib.sha256(alex_weights.read_bytes()).hexdigest()


def test_env_then_cache(alex_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_WEIGHTS, str(alex_weights))
    assert resolve_weights("alex").origin == ENV_WEIGHTS
    monkeypatch.delenv(ENV_WEIGHTS)
    cached = cache_path("alex")
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(alex_weights, cached)
    got = resolve_weights("alex", allow_download=False)
    assert got.origin == "torchvision cache" and got.path == cached


def test_missing_explicit_file_does_not_fall_through(alex_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_WEIGHTS, str(alex_weights))
    with pytest.raises(WeightsError, match=r"--weights: /nonexistent/alex\.pth: no such file"):
        resolve_weights("alex", Path("/nonexistent/alex.pth"))


@pytest.mark.parametrize("kind", ["fifo", "folder", "link to /dev/null"])
def test_weights_that_are_not_a_regular_file_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    import os

    path = tmp_path / "alex.pth"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to("/dev/null")
    said = {"fifo": "a FIFO", "folder": "a folder", "link to /dev/null": "a character device"}[kind]
    with pytest.raises(WeightsError, match=f"--weights: {path}: {said}.*, not a regular file"):
        resolve_weights("alex", path)
    monkeypatch.setenv(ENV_WEIGHTS, str(path))
    with pytest.raises(WeightsError, match=f"{ENV_WEIGHTS}: {path}: {said}"):
        resolve_weights("alex")


def test_nothing_found_offline_lists_every_way() -> None:
    with pytest.raises(WeightsError) as info:
        resolve_weights("alex")
    from pixgate.cli.common import flag as _flag

    message = info.value.render(_flag)  # as the command line shows it
    for way in ("--weights PATH", ENV_WEIGHTS, "torchvision's cache", "download", "--no-lpips", "failed"):
        assert way in message
    assert "no_lpips=True" in str(info.value)  # as the Python API takes it


def test_download_checks_hash_and_fills_the_cache(
    alex_weights: Path, serve: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base, log = serve
    prefix = sha256_file(alex_weights)[:8]
    name = f"alexnet-owt-{prefix}.pth"
    shutil.copy(alex_weights, tmp_path / "www" / name)
    monkeypatch.setenv(ENV_WEIGHTS_URL, f"{base}/{name}")
    seen: list[int] = []
    got = resolve_weights("alex", progress=lambda done, total: seen.append(done))
    assert got.origin == "download" and got.path == cache_path("alex") and got.path.name == name
    assert seen[-1] == alex_weights.stat().st_size
    assert len(log) == 1
    # The next resolution uses the cache: no second request.
    assert resolve_weights("alex").origin == "torchvision cache"
    assert len(log) == 1


def test_download_with_wrong_hash_is_rejected_and_not_cached(
    serve: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base, _ = serve
    name = "alexnet-owt-7be5be79.pth"  # torchvision's name; these bytes do not hash to it
    (tmp_path / "www" / name).write_bytes(b"tampered" * 1000)
    monkeypatch.setenv(ENV_WEIGHTS_URL, f"{base}/{name}")
    with pytest.raises(WeightsError, match="corrupt"):
        resolve_weights("alex")
    assert not cache_path("alex").exists()
    assert list(cache_path("alex").parent.iterdir()) == []


@pytest.mark.parametrize("net", NETS)
def test_download_urls_are_torchvisions(net: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import models

    monkeypatch.delenv(ENV_WEIGHTS_URL)  # set by the suite's offline guard; nothing is fetched here

    enum = {"alex": models.AlexNet_Weights, "vgg": models.VGG16_Weights, "squeeze": models.SqueezeNet1_1_Weights}[net]
    assert weights_url(net) == BACKBONES[net].weights_url == enum.IMAGENET1K_V1.url
    assert cache_path(net).name == enum.IMAGENET1K_V1.url.rsplit("/", 1)[-1]


@pytest.mark.parametrize("net", NETS)
def test_published_hashes_agree_with_the_file_names(net: str) -> None:
    """torchvision's file names carry the first digits of the sha256 each download is
    checked against; the full hashes the registry holds begin with them."""
    import re

    prefix = re.search(r"-([0-9a-f]{8,})\.pth$", BACKBONES[net].weights_url)
    assert prefix is not None
    assert re.fullmatch(r"[0-9a-f]{64}", BACKBONES[net].weights_sha256)
    assert BACKBONES[net].weights_sha256.startswith(prefix.group(1))


def test_only_the_published_file_is_known(alex_weights: Path) -> None:
    from pixgate.scoring.weights import published, sha256_file

    assert published("alex", BACKBONES["alex"].weights_sha256)
    assert not published("alex", BACKBONES["vgg"].weights_sha256)  # another backbone's file
    assert not published("alex", sha256_file(alex_weights))  # the suite's random weights


def test_a_run_records_unknown_weights_and_warns_once(golden_run: Path) -> None:
    from pixgate.runs import schema
    from pixgate.runs.files import read_run, run_metadata
    from pixgate.scoring.options import ScoreResult
    from pixgate.scoring.summary import PROBLEM, summarize

    table = read_run(golden_run)
    assert run_metadata(table)[schema.META_WEIGHTS_KNOWN] == "false"
    stats = {**json.loads(run_metadata(table)[schema.META_STATS]), "ignored_files": []}
    summary = summarize(ScoreResult(table, stats, golden_run))
    lines = [line for line in summary.lines if line.label == "backbone weights"]
    assert len(lines) == 1 and lines[0].level == PROBLEM and "not torchvision's alex" in lines[0].value
