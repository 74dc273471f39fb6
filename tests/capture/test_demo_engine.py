"""The demo engine: deterministic posters and each failure mode it can reproduce."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pixgate.capture.demo_engine import DEGRADATIONS, generate, make_server, write_image
from pixgate.safe_io import OutputError
from pixgate.scoring.decode import decode_bytes


def test_same_prompt_and_seed_give_the_same_bytes() -> None:
    assert generate("summer sale", 7) == generate("summer sale", 7)
    assert generate("summer sale", 7) != generate("summer sale", 8)
    assert generate("summer sale", 7) != generate("winter sale", 7)


def test_noise_does_not_replay() -> None:
    assert generate("summer sale", 7, degrade=frozenset({"noise"})) != generate(
        "summer sale", 7, degrade=frozenset({"noise"})
    )


@pytest.mark.parametrize("mode", DEGRADATIONS)
def test_each_degradation_changes_what_it_claims(mode: str) -> None:
    clean = decode_bytes(generate("promo banner", 3))
    bad = decode_bytes(generate("promo banner", 3, degrade=frozenset({mode})))
    assert clean.has_alpha and clean.format == "PNG" and clean.icc_description is None
    checks = {
        "alpha": lambda: not bad.has_alpha,
        "icc": lambda: bad.icc_description is not None,
        "stretch": lambda: bad.width > clean.width and bad.height == clean.height,
        "jpeg": lambda: bad.format == "JPEG",
    }
    assert checks.get(mode, lambda: bool((bad.rgba != clean.rgba).any()))(), mode


def test_unknown_degradation_is_named() -> None:
    with pytest.raises(ValueError, match="unknown smudge"):
        generate("x", 1, degrade=frozenset({"smudge"}))


@pytest.mark.parametrize("seed", [-1, 2**64, True, 1.5, "7"])
def test_a_seed_outside_the_engines_range_is_refused(seed: object) -> None:
    with pytest.raises(ValueError, match="seed: use a whole number from 0 to 18446744073709551615"):
        generate("x", seed)  # type: ignore[arg-type]
    assert decode_bytes(generate("x", 2**64 - 1)).format == "PNG"


def test_the_server_answers_400_to_a_bad_seed_or_a_nested_request() -> None:
    import json
    import threading
    import urllib.error
    import urllib.request

    server = make_server(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        for body in (json.dumps({"prompt": "x", "seed": 2**64}).encode(), b"[" * 100_000 + b"]" * 100_000):
            request = urllib.request.Request(f"http://{host!s}:{port}/", data=body, method="POST")
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(request, timeout=10)
            assert answer.value.code == 400
    finally:
        server.shutdown()
        server.server_close()


def test_write_image_replaces_a_link_and_refuses_a_fifo(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(b"untouched")
    link = tmp_path / "out.png"
    link.symlink_to(elsewhere)
    write_image("x", 1, link)
    assert not link.is_symlink() and link.read_bytes() == generate("x", 1)
    assert elsewhere.read_bytes() == b"untouched"  # never written through the link
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="a FIFO"):
        write_image("x", 1, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
