"""Capture against real HTTP servers on 127.0.0.1 and a real local command."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixgate.capture.capture import CaptureConfigError, CaptureOptions, in_sample, load_prompts, run_capture
from pixgate.capture.demo_engine import generate, make_server
from pixgate.runs import schema
from pixgate.runs.files import read_run

runner = CliRunner()
PROMPTS = [
    {"id": "sale", "prompt": "summer sale poster", "seed": 1},
    {"id": "boots/winter", "prompt": "winter boots banner", "seed": 2},
    {"id": "coffee", "prompt": "coffee beans", "seed": 3, "style": "flat"},
]
# Backoff in the tests: short, so that a failing endpoint's bounded retries finish fast.
TEST_BACKOFF_S = 0.01
# A slow endpoint answers after SLOW_S; requests time out after TIMEOUT_S.
SLOW_S = 2.0
TIMEOUT_S = 0.3


def _prompts(tmp_path: Path, prompts: list[dict[str, object]] | None = None) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in prompts or PROMPTS))
    return path


@contextmanager
def _serving(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}/generate"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _custom(answer: Callable[[BaseHTTPRequestHandler, dict[str, object]], None]) -> Iterator[tuple[str, list[str]]]:
    """A server whose every POST is answered by `answer`; yields its URL and the ids seen."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            del format, args

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(str(body["id"]))
            answer(self, body)

    with _serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url, seen


def _reply(handler: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str = "text/plain") -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _rows(out: Path) -> dict[str, dict[str, object]]:
    return {r[schema.ID.name]: r for r in read_run(out / "capture.arrow").to_pylist()}


def test_flaky_endpoint_with_retry_after_is_captured_in_three_attempts(tmp_path: Path) -> None:
    server = make_server(0, fail_first=2, retry_after=0.2)
    with _serving(server) as url:
        started = time.monotonic()
        result = run_capture(CaptureOptions(_prompts(tmp_path), tmp_path / "out", endpoint=url, max_attempts=4))
        elapsed = time.monotonic() - started
    rows = _rows(tmp_path / "out")
    assert result.all_ok and result.stats["requests"] == 9
    assert all(r[schema.ATTEMPTS.name] == 3 and r[schema.HTTP_STATUS.name] == 200 for r in rows.values())
    assert elapsed >= 0.4  # the two Retry-After waits were honoured
    image = tmp_path / "out" / str(rows["boots/winter"][schema.IMAGE.name])
    assert image.read_bytes() == generate("winter boots banner", 2)
    assert rows["sale"][schema.SHA256.name] and rows["sale"][schema.LATENCY_MS.name] > 0


def test_endpoint_down_makes_exactly_max_attempts_and_error_rows(tmp_path: Path) -> None:
    with _custom(lambda h, body: _reply(h, 500, b"internal error")) as (url, seen):
        started = time.monotonic()
        opts = CaptureOptions(_prompts(tmp_path), tmp_path / "out", endpoint=url, max_attempts=3,
                              backoff_s=TEST_BACKOFF_S)  # fmt: skip
        result = run_capture(opts)
        elapsed = time.monotonic() - started
    assert sorted(seen) == sorted([p["id"] for p in PROMPTS] * 3)  # type: ignore[misc]
    rows = _rows(tmp_path / "out")
    assert not result.all_ok and len(rows) == 3
    for row in rows.values():
        assert row[schema.CAPTURE_STATUS.name] == schema.STATUS_ERROR
        assert row[schema.ATTEMPTS.name] == 3 and row[schema.HTTP_STATUS.name] == 500
        assert "HTTP 500" in str(row[schema.CAPTURE_ERROR.name])
    assert elapsed < 5.0  # bounded: three quick attempts per prompt, capped backoff


def test_slow_endpoint_times_out(tmp_path: Path) -> None:
    server = make_server(0, latency_ms=SLOW_S * 1000)
    with _serving(server) as url:
        started = time.monotonic()
        opts = CaptureOptions(_prompts(tmp_path), tmp_path / "out", endpoint=url, max_attempts=2,
                              timeout_s=TIMEOUT_S, backoff_s=TEST_BACKOFF_S)  # fmt: skip
        run_capture(opts)
        elapsed = time.monotonic() - started
    for row in _rows(tmp_path / "out").values():
        assert row[schema.CAPTURE_STATUS.name] == schema.STATUS_ERROR
        assert row[schema.ATTEMPTS.name] == 2 and "timeout" in str(row[schema.CAPTURE_ERROR.name])
    assert elapsed < SLOW_S * 2  # never waited for the slow answers


@pytest.mark.parametrize("kind", ["garbage", "truncated-png", "bad-json"])
def test_body_that_is_not_an_image_is_an_error_row_not_retried(kind: str, tmp_path: Path) -> None:
    png = generate("x", 1)
    body, ctype = {
        "garbage": (b"<html>oops</html>", "text/html"),
        "truncated-png": (png[: len(png) // 2], "image/png"),
        "bad-json": (json.dumps({"img": "nope"}).encode(), "application/json"),
    }[kind]
    with _custom(lambda h, _: _reply(h, 200, body, ctype)) as (url, seen):
        run_capture(CaptureOptions(_prompts(tmp_path), tmp_path / "out", endpoint=url))
    assert len(seen) == 3  # one request each: a bad body is not retried
    for row in _rows(tmp_path / "out").values():
        assert row[schema.CAPTURE_STATUS.name] == schema.STATUS_ERROR and row[schema.ATTEMPTS.name] == 1
    assert not any(p.suffix in (".png", ".jpg") for p in (tmp_path / "out").rglob("*"))


def test_client_errors_are_not_retried_and_json_answers_are_read(tmp_path: Path) -> None:
    with _custom(lambda h, _: _reply(h, 404, b"no such model")) as (url, seen):
        run_capture(CaptureOptions(_prompts(tmp_path), tmp_path / "a", endpoint=url))
    assert len(seen) == 3
    assert "HTTP 404 (not retried)" in str(_rows(tmp_path / "a")["sale"][schema.CAPTURE_ERROR.name])
    with _serving(make_server(0, as_json=True)) as url:
        result = run_capture(CaptureOptions(_prompts(tmp_path), tmp_path / "b", endpoint=url))
    assert result.all_ok
    assert (tmp_path / "b" / "sale.png").read_bytes() == generate("summer sale poster", 1)


def test_command_generator_and_its_failures(tmp_path: Path) -> None:
    template = f"{sys.executable} -m engine demo-engine generate --prompt {{prompt}} --seed {{seed}} -o {{out}}"
    result = run_capture(CaptureOptions(_prompts(tmp_path), tmp_path / "out", command=template, concurrency=2))
    assert result.all_ok
    assert (tmp_path / "out" / "coffee.png").read_bytes() == generate("coffee beans", 3)
    from pixgate.runs.files import run_metadata
    from pixgate.telemetry import NvmlSampler

    note = run_metadata(result.table)[schema.META_GPU_METERING]
    energy = result.table.column(schema.ENERGY_J.name)
    if NvmlSampler().available:
        assert "energy_j is the device's energy" in note and energy.null_count == 0
    else:
        assert "not metered: NVML unavailable" in note and energy.null_count == len(PROMPTS)
    failing = f"{sys.executable} -c 'import sys; sys.exit(3)' {{out}}"
    opts = CaptureOptions(_prompts(tmp_path), tmp_path / "bad", command=failing, max_attempts=2,
                          backoff_s=TEST_BACKOFF_S)  # fmt: skip
    run_capture(opts)
    row = _rows(tmp_path / "bad")["sale"]
    assert row[schema.ATTEMPTS.name] == 2 and "command exited 3" in str(row[schema.CAPTURE_ERROR.name])
    with pytest.raises(CaptureConfigError, match="must write to"):
        run_capture(CaptureOptions(_prompts(tmp_path), tmp_path / "x", command="gen --prompt {prompt}"))


def test_sample_is_deterministic_and_resume_skips_captured_prompts(tmp_path: Path) -> None:
    many = [{"id": f"p{i:04d}", "prompt": f"poster {i}", "seed": i} for i in range(400)]
    chosen = [p["id"] for p in many if in_sample(str(p["id"]), 0.05)]
    assert 5 <= len(chosen) <= 40  # about 20 of 400
    assert chosen == [p["id"] for p in many if in_sample(str(p["id"]), 0.05)]
    prompts = _prompts(tmp_path, many)
    with _custom(lambda h, body: _reply(h, 200, generate(str(body["prompt"]), 0), "image/png")) as (url, seen):
        first = run_capture(CaptureOptions(prompts, tmp_path / "out", endpoint=url, sample=0.05))
        assert sorted(first.table.column(schema.ID.name).to_pylist()) == sorted(chosen)
        seen.clear()
        again = run_capture(CaptureOptions(prompts, tmp_path / "out", endpoint=url, sample=0.1, resume=True))
    assert set(seen).isdisjoint(chosen)  # already captured: not asked again
    assert set(chosen) < set(again.table.column(schema.ID.name).to_pylist())
    assert again.stats["carried_over"] == len(chosen)


def test_deadline_turns_untried_prompts_into_error_rows(tmp_path: Path) -> None:
    server = make_server(0, latency_ms=400)
    with _serving(server) as url:
        opts = CaptureOptions(_prompts(tmp_path), tmp_path / "out", endpoint=url, concurrency=1, deadline_s=0.5)
        result = run_capture(opts)
    rows = _rows(tmp_path / "out")
    assert len(rows) == 3 and result.stats["errors"] >= 1
    assert any("deadline" in str(r[schema.CAPTURE_ERROR.name]) for r in rows.values())


def test_bad_prompts_files(tmp_path: Path) -> None:
    for text, phrase in (
        ('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', "appears twice"),
        ('{"id": "", "prompt": "x"}\n', "non-empty string"),
        ('{"id": "a", "prompt": 3}\n', "'prompt' must be a string"),
        ('{"id": "a", "prompt": "x", "seed": "7"}\n', "'seed' must be a whole number"),
        ('{"id": "a", "prompt": "x", "style": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "nested too deeply"),
        ('{"id": "a", "prompt": "x", "seed": ' + "7" * 5000 + "}\n", "cannot be parsed"),
    ):
        path = tmp_path / "p.jsonl"
        path.write_text(text)
        with pytest.raises(CaptureConfigError, match=phrase):
            load_prompts(path)


def test_capture_cli_exit_codes(tmp_path: Path) -> None:
    from pixgate.cli import app

    with _serving(make_server(0)) as url:
        ok = runner.invoke(app, ["capture", "--prompts", str(_prompts(tmp_path)), "-o", str(tmp_path / "o"),
                                 "--endpoint", url])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    with _custom(lambda h, _: _reply(h, 503, b"down")) as (url, _):
        bad = runner.invoke(app, ["capture", "--prompts", str(_prompts(tmp_path)), "-o", str(tmp_path / "b"),
                                  "--endpoint", url, "--max-attempts", "1"])  # fmt: skip
    assert bad.exit_code == 1
    usage = runner.invoke(app, ["capture", "--prompts", str(_prompts(tmp_path)), "-o", str(tmp_path / "c"),
                                "--sample", "2"])  # fmt: skip
    assert usage.exit_code == 2 and "--sample" in usage.output


# --- hostile generators and prompts ---

#: How late past its time limit an attempt may end: cancelling a request or killing a
#: command and collecting it takes milliseconds; the rest is a loaded 2-core machine.
LIMIT_SLACK_S = 1.0


def _endless(handler: BaseHTTPRequestHandler, _body: dict[str, object]) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.end_headers()
    chunk = b"\0" * 65536
    try:
        while True:
            handler.wfile.write(chunk)
    except OSError:
        return  # the client stopped reading


def _drip(handler: BaseHTTPRequestHandler, _body: dict[str, object]) -> None:
    """A 98-byte image, one byte every 0.2 s: each read is quick, the whole is not."""
    body = generate("x", 1)[:98]
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    try:
        for i in range(len(body)):
            handler.wfile.write(body[i : i + 1])
            handler.wfile.flush()
            time.sleep(0.2)
    except OSError:
        return


@pytest.mark.timeout(60)
def test_an_endless_body_stops_at_the_size_cap(tmp_path: Path) -> None:
    with _custom(_endless) as (url, seen):
        opts = CaptureOptions(_prompts(tmp_path), tmp_path / "out", endpoint=url, max_bytes=1 << 20, timeout_s=30)
        result = run_capture(opts)
    assert len(seen) == 3  # not retried
    assert result.stats["errors"] == 3
    for row in _rows(tmp_path / "out").values():
        assert "larger than the 1,048,576-byte limit" in str(row[schema.CAPTURE_ERROR.name])


@pytest.mark.timeout(60)
def test_a_declared_length_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    png = generate("x", 1)
    with _custom(lambda h, _: _reply(h, 200, png, "image/png")) as (url, _):
        run_capture(CaptureOptions(_prompts(tmp_path), tmp_path / "out", endpoint=url, max_bytes=len(png) - 1))
    assert all("byte limit" in str(r[schema.CAPTURE_ERROR.name]) for r in _rows(tmp_path / "out").values())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cut_by", ["timeout", "deadline"])
def test_a_dripping_server_is_cut_off_at_the_attempt_limit(cut_by: str, tmp_path: Path) -> None:
    limit = 1.0
    with _custom(_drip) as (url, _):
        opts = CaptureOptions(
            _prompts(tmp_path), tmp_path / "out", endpoint=url, max_attempts=1, concurrency=3,
            timeout_s=limit if cut_by == "timeout" else 60.0, deadline_s=limit if cut_by == "deadline" else None,
        )  # fmt: skip
        started = time.monotonic()
        result = run_capture(opts)
        elapsed = time.monotonic() - started
    assert result.stats["errors"] == 3
    for row in _rows(tmp_path / "out").values():
        error = str(row[schema.CAPTURE_ERROR.name])
        assert "no complete answer within" in error and "(timeout)" in error
        if cut_by == "deadline":
            assert "cut by --deadline" in error
    assert elapsed < limit + LIMIT_SLACK_S  # 98 bytes at 0.2 s each would take 20 s


@pytest.mark.timeout(60)
def test_unsafe_and_long_ids_are_captured_under_hashed_names(tmp_path: Path) -> None:
    from pixgate.safe_io import HASHED_PREFIX, safe_file_name

    prompts = [
        {"id": "x" * 300, "prompt": "long id", "seed": 1},
        {"id": "nul\u0000id", "prompt": "nul", "seed": 2},
        {"id": "../../escape", "prompt": "dots", "seed": 3},
        {"id": "/etc/cron.d/x", "prompt": "absolute", "seed": 4},
        {"id": "capture.arrow/x", "prompt": "the capture's own file", "seed": 6},
        {"id": "capture.arrow.partial", "prompt": "its journal", "seed": 7},
        {"id": "plain/one", "prompt": "plain", "seed": 5},
    ]
    (tmp_path / "escape.png").write_bytes(b"untouched")
    with _serving(make_server(0)) as url:
        result = run_capture(CaptureOptions(_prompts(tmp_path, prompts), tmp_path / "out", endpoint=url))
    assert result.all_ok, result.table.column(schema.CAPTURE_ERROR.name).to_pylist()
    rows = _rows(tmp_path / "out")
    assert set(rows) == {str(p["id"]) for p in prompts}  # every id kept as given
    for prompt in prompts:
        image = str(rows[str(prompt["id"])][schema.IMAGE.name])
        assert image == safe_file_name(str(prompt["id"]), reserved=("capture.arrow",)) + ".png"
        assert (tmp_path / "out" / image).read_bytes() == generate(str(prompt["prompt"]), int(prompt["seed"]))  # type: ignore[call-overload]
        assert image.startswith(HASHED_PREFIX) == (prompt["id"] != "plain/one")
    assert (tmp_path / "escape.png").read_bytes() == b"untouched"
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir()) == ["plain"]  # no staging left


@pytest.mark.timeout(60)
def test_one_prompt_that_cannot_be_saved_is_its_own_error_row(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "boots").write_bytes(b"")  # "boots/winter" needs a folder there
    with _serving(make_server(0)) as url:
        result = run_capture(CaptureOptions(_prompts(tmp_path), tmp_path / "out", endpoint=url))
    rows = _rows(tmp_path / "out")
    assert rows["boots/winter"][schema.CAPTURE_STATUS.name] == schema.STATUS_ERROR
    assert rows["sale"][schema.CAPTURE_STATUS.name] == schema.STATUS_OK
    assert rows["coffee"][schema.CAPTURE_STATUS.name] == schema.STATUS_OK
    assert result.stats["errors"] == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["too-large", "fifo", "orphan", "chatty"])
def test_a_hostile_command_is_bounded(kind: str, tmp_path: Path) -> None:
    code = {
        # Writes 2 MB where 1 MB is allowed.
        "too-large": "import sys; open(sys.argv[1], 'wb').write(bytes(2 << 20))",
        # Leaves a FIFO where the image should be: reading it would block for ever.
        "fifo": "import os, sys; os.mkfifo(sys.argv[1])",
        # Leaves a child holding its output open, then hangs itself.
        "orphan": "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)",
        # 20 MB on stderr, then fails: only the tail is kept.
        "chatty": "import sys; sys.stderr.write('e' * (20 << 20)); sys.exit(3)",
    }[kind]
    script = tmp_path / "gen.py"
    script.write_text(code)
    command = f"{sys.executable} {script} {{out}}"
    opts = CaptureOptions(_prompts(tmp_path, PROMPTS[:1]), tmp_path / "out", command=command, max_attempts=1,
                          timeout_s=2.0, max_bytes=1 << 20)  # fmt: skip
    started = time.monotonic()
    run_capture(opts)
    elapsed = time.monotonic() - started
    error = str(_rows(tmp_path / "out")["sale"][schema.CAPTURE_ERROR.name])
    assert {
        "too-large": "over the 1,048,576-byte limit",
        "fifo": "a FIFO (named pipe), not a regular file",
        "orphan": "ran past its 2 s time limit",
        "chatty": "command exited 3",
    }[kind] in error
    assert len(error) < 500
    assert elapsed < 2.0 + LIMIT_SLACK_S + 2.0  # the command's own start-up on top of its limit


@pytest.mark.timeout(60)
def test_ids_and_prompts_that_are_not_valid_text_are_captured_and_resumed(tmp_path: Path) -> None:
    lines = '{"id": "lone\\ud800", "prompt": "x\\udcff", "seed": 1}\n{"id": "fine", "prompt": "y", "seed": 2}\n'
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(lines)
    with _serving(make_server(0)) as url:
        first = run_capture(CaptureOptions(prompts, tmp_path / "out", endpoint=url))
        assert first.all_ok
        assert sorted(first.table.column(schema.ID.name).to_pylist()) == ["fine", "lone\\ud800"]
        again = run_capture(CaptureOptions(prompts, tmp_path / "out", endpoint=url, resume=True))
    assert again.stats["captured_now"] == 0 and again.table.num_rows == 2  # found again, not doubled


@pytest.mark.timeout(60)
def test_a_compressed_answer_is_not_inflated(tmp_path: Path) -> None:
    """A 10 kB body of nested gzip can inflate to gigabytes before a byte is counted: an
    answer compressed although the request asked for none is refused unread."""
    import gzip

    bomb = gzip.compress(gzip.compress(bytes(50 << 20)))  # 50 MB of zeros, twice compressed

    def answer(handler: BaseHTTPRequestHandler, _body: dict[str, object]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Encoding", "gzip, gzip")
        handler.send_header("Content-Length", str(len(bomb)))
        handler.end_headers()
        handler.wfile.write(bomb)

    with _custom(answer) as (url, seen):
        run_capture(CaptureOptions(_prompts(tmp_path, PROMPTS[:1]), tmp_path / "out", endpoint=url, max_bytes=1 << 20))
    assert len(seen) == 1
    error = str(_rows(tmp_path / "out")["sale"][schema.CAPTURE_ERROR.name])
    assert "a compressed answer (Content-Encoding: gzip, gzip) is not read" in error


# --- prompts a capture refuses before any generator runs, answers it refuses per prompt ---


def _marking_command(tmp_path: Path) -> tuple[str, Path]:
    """A command generator that leaves a mark each time it runs, and writes a real PNG."""
    png = tmp_path / "poster.png"
    png.write_bytes(generate("x", 1))
    marks = tmp_path / "generator-ran"
    script = tmp_path / "mark.py"
    script.write_text(
        f"import shutil, sys\nopen({str(marks)!r}, 'a').write('ran\\n')\nshutil.copyfile({str(png)!r}, sys.argv[1])\n"
    )
    return f"{sys.executable} {script} {{out}}", marks


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [-1, 2**64, 10**30])
def test_a_seed_out_of_range_is_refused_before_any_generator_runs(seed: int, tmp_path: Path) -> None:
    from tests.test_outputs import _one_error_line, _pixgate

    command, marks = _marking_command(tmp_path)
    prompts = _prompts(tmp_path, [*PROMPTS[:1], {"id": "big", "prompt": "x", "seed": seed}])
    result = _pixgate("capture", "--prompts", prompts, "-o", tmp_path / "out", "--command", command)
    _one_error_line(result, f"{prompts}:2: 'seed' must be a whole number from 0 to {2**64 - 1}")
    assert not marks.exists()  # not even the good first prompt was generated
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(60)
def test_the_largest_seed_reaches_the_generator_and_the_capture_file(tmp_path: Path) -> None:
    """2**64 - 1 (a torch seed can be that large) does not fit the int64 the seed column
    used to be: it ended the capture with an internal error."""
    seeds: list[object] = []

    def answer(handler: BaseHTTPRequestHandler, body: dict[str, object]) -> None:
        seeds.append(body["seed"])
        _reply(handler, 200, generate("x", 1), "image/png")

    largest = 2**64 - 1
    with _custom(answer) as (url, _):
        result = run_capture(CaptureOptions(_prompts(tmp_path, [{"id": "a", "prompt": "x", "seed": largest}]),
                                            tmp_path / "out", endpoint=url))  # fmt: skip
    assert result.all_ok and seeds == [largest]
    assert _rows(tmp_path / "out")["a"][schema.SEED.name] == largest


@pytest.mark.timeout(120)
@pytest.mark.parametrize("text", ["", "\n   \n\t\n"])
def test_a_prompts_file_without_prompts_is_a_usage_error(text: str, tmp_path: Path) -> None:
    from tests.test_outputs import _one_error_line, _pixgate

    command, marks = _marking_command(tmp_path)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(text)
    result = _pixgate("capture", "--prompts", prompts, "-o", tmp_path / "out", "--command", command)
    _one_error_line(result, f"--prompts: {prompts} holds no prompts")
    assert not marks.exists() and not (tmp_path / "out").exists()
    with pytest.raises(CaptureConfigError, match="holds no prompts"):
        load_prompts(prompts)


@pytest.mark.timeout(120)
def test_a_deeply_nested_prompts_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from tests.test_outputs import _one_error_line, _pixgate

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    result = _pixgate("capture", "--prompts", prompts, "-o", tmp_path / "out", "--command", "gen {out}")
    _one_error_line(result, f"{prompts}:1: not usable JSON: nested too deeply to parse")
    assert "RecursionError" not in result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_capture_lists_a_capped_number_of_errors_and_counts_the_rest(tmp_path: Path) -> None:
    from pixgate.cli import app
    from pixgate.config import CAPTURE_MAX_LISTED_ERRORS

    extra = 7
    many = [{"id": f"p{i:03d}", "prompt": "x", "seed": i} for i in range(CAPTURE_MAX_LISTED_ERRORS + extra)]
    with _custom(lambda h, _: _reply(h, 404, b"no such model")) as (url, _):
        result = runner.invoke(app, ["capture", "--prompts", str(_prompts(tmp_path, many)), "-o",
                                     str(tmp_path / "out"), "--endpoint", url, "-q"])  # fmt: skip
    assert result.exit_code == 1, result.output
    listed = [line for line in result.output.splitlines() if line.startswith("  p")]
    assert len(listed) == CAPTURE_MAX_LISTED_ERRORS
    assert f"  ... and {extra} more errors, see {tmp_path / 'out' / 'capture.arrow'}" in result.output
    assert len(_rows(tmp_path / "out")) == len(many)  # every error is in the file


@pytest.mark.timeout(60)
@pytest.mark.parametrize("points_to", ["image", "fifo", "/dev/null"])
def test_a_symlink_left_by_the_command_is_an_error_row_and_never_followed(points_to: str, tmp_path: Path) -> None:
    """A link to a real image would be captured as that image if it were followed (a link
    to /etc/shadow would be read): the output must be a regular file the command wrote."""
    import os
    import stat

    target = {"image": tmp_path / "elsewhere.png", "fifo": tmp_path / "pipe", "/dev/null": Path("/dev/null")}[points_to]
    if points_to == "image":
        target.write_bytes(generate("x", 1))
    elif points_to == "fifo":
        os.mkfifo(target)
    script = tmp_path / "gen.py"
    script.write_text(f"import os, sys; os.symlink({str(target)!r}, sys.argv[1])")
    command = f"{sys.executable} {script} {{out}}"
    opts = CaptureOptions(_prompts(tmp_path, PROMPTS[:1]), tmp_path / "out", command=command, max_attempts=1)
    result = run_capture(opts)
    row = _rows(tmp_path / "out")["sale"]
    assert row[schema.CAPTURE_STATUS.name] == schema.STATUS_ERROR and not result.all_ok
    assert "a symlink, not a regular file (not followed)" in str(row[schema.CAPTURE_ERROR.name])
    assert not (tmp_path / "out" / "sale.png").exists()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    if points_to == "image":
        assert target.read_bytes() == generate("x", 1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("gpu_ms", "energy_j", "stored"),
    [
        ("12.5", "3.25", (12.5, 3.25)),
        ("nan", "inf", (None, None)),
        ("-1", "-0.5", (None, None)),
        ("1e300", "1" * 5000, (None, None)),
        ("12.5", "lots", (12.5, None)),
    ],
)
def test_timing_headers_that_are_not_finite_numbers_in_range_are_not_stored(
    gpu_ms: str, energy_j: str, stored: tuple[float | None, float | None], tmp_path: Path
) -> None:
    png = generate("x", 1)

    def answer(handler: BaseHTTPRequestHandler, _body: dict[str, object]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(len(png)))
        handler.send_header("X-GPU-Ms", gpu_ms)
        handler.send_header("X-Energy-J", energy_j)
        handler.end_headers()
        handler.wfile.write(png)

    with _custom(answer) as (url, _):
        result = run_capture(CaptureOptions(_prompts(tmp_path, PROMPTS[:1]), tmp_path / "out", endpoint=url))
    assert result.all_ok  # the image is good; only the numbers are refused
    row = _rows(tmp_path / "out")["sale"]
    assert (row[schema.CAPTURE_GPU_MS.name], row[schema.ENERGY_J.name]) == stored
    note = row[schema.CAPTURE_ERROR.name]
    refused = [name for name, value in (("X-GPU-Ms", stored[0]), ("X-Energy-J", stored[1])) if value is None]
    if not refused:
        assert note is None
    for name in refused:
        assert f"{name} " in str(note) and "stored as null" in str(note)
    assert note is None or len(str(note)) < 400  # a 5,000-digit header is shown cut


def _retry_after(value: str) -> Callable[[BaseHTTPRequestHandler, dict[str, object]], None]:
    def answer(handler: BaseHTTPRequestHandler, _body: dict[str, object]) -> None:
        handler.send_response(503)
        handler.send_header("Retry-After", value)
        handler.send_header("Content-Length", "4")
        handler.end_headers()
        handler.wfile.write(b"busy")

    return answer


def _huge_header(handler: BaseHTTPRequestHandler, _body: dict[str, object]) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("X-Padding", "x" * (1 << 20))
    handler.send_header("Content-Length", "0")
    handler.end_headers()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # A date without a zone ("-0000") could not be compared with the clock.
        (_retry_after("Mon, 01 Jan 2000 00:00:00 -0000"), "HTTP 503"),
        # A 20-digit year overflowed the date parser.
        (_retry_after("Mon, 01 Jan 99999999999999999999 00:00:00 GMT"), "HTTP 503"),
        (_retry_after("nan"), "HTTP 503"),
        (_huge_header, "connection error"),
        (lambda h, _: _reply(h, 200, b"[1, 2]", "application/json"), "JSON answer without a base64 'image'"),
        (lambda h, _: _reply(h, 200, b"[" * 100_000 + b"]" * 100_000, "application/json"), "nested too deeply"),
        (lambda h, _: _reply(h, 200, json.dumps({"image": 7}).encode(), "application/json"), "JSON answer without"),
    ],
)
def test_no_hostile_answer_ends_the_capture_or_is_an_internal_error(
    answer: Callable[[BaseHTTPRequestHandler, dict[str, object]], None], expected: str, tmp_path: Path
) -> None:
    with _custom(answer) as (url, _):
        opts = CaptureOptions(_prompts(tmp_path), tmp_path / "out", endpoint=url, max_attempts=2,
                              backoff_s=TEST_BACKOFF_S)  # fmt: skip
        result = run_capture(opts)
    assert result.stats["errors"] == len(PROMPTS)
    for row in _rows(tmp_path / "out").values():
        error = str(row[schema.CAPTURE_ERROR.name])
        assert expected in error and "internal error" not in error, error


@pytest.mark.timeout(120)
@pytest.mark.parametrize("own", ["capture.arrow", "capture.arrow.partial", "capture.arrow.lock"])
@pytest.mark.parametrize("kind", ["fifo", "socket", "folder", "link to /dev/null"])
def test_a_capture_file_that_is_not_a_regular_file_is_refused_before_anything_is_written(
    own: str, kind: str, tmp_path: Path
) -> None:
    import os
    import stat

    from tests.test_outputs import TARGETS, _kind, _one_error_line, _pixgate

    command, marks = _marking_command(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    made = TARGETS[kind](out / own)
    next(made)
    before = _kind(out / own)
    result = _pixgate("capture", "--prompts", _prompts(tmp_path), "-o", out, "--command", command)
    _one_error_line(result, f"{out / own}")
    assert not marks.exists()
    assert _kind(out / own) == before
    assert sorted(p.name for p in out.iterdir()) == [own]  # no lock, journal or staging folder beside it
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.timeout(120)
def test_an_image_target_that_is_a_fifo_ends_the_capture_in_one_line(tmp_path: Path) -> None:
    """Where an image is saved is one of capture's files too: a FIFO there is exit 2
    naming it, never written to, never a silent error row."""
    import os
    import stat

    from tests.test_outputs import _one_error_line, _pixgate

    command, _ = _marking_command(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    first = str(PROMPTS[0]["id"])
    os.mkfifo(out / f"{first}.png")
    result = _pixgate("capture", "--prompts", _prompts(tmp_path), "-o", out, "--command", command, "--concurrency", "1")
    _one_error_line(result, str(out / f"{first}.png"))
    assert stat.S_ISFIFO(os.lstat(out / f"{first}.png").st_mode)
