"""One style for every command: -o/--output, -q/--quiet, plain metavars, errors as
`error:` then `hint:`, message text never read as markup, no quiet successes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from pixgate.cli import app

runner = CliRunner()


def _leaves(group: object = None, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Every command that runs something, by its words (`("golden", "verify")`)."""
    group = group or typer.main.get_command(app)
    found: dict[tuple[str, ...], object] = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        if hasattr(command, "commands"):
            found |= _leaves(command, (*path, name))
        else:
            found[(*path, name)] = command
    return found


LEAVES = _leaves()
#: Commands that write a file or a folder.
WRITERS = {("score",), ("report",), ("export",), ("capture",), ("replay",), ("canary",), ("demo-engine", "generate")}


def _options(command: object) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}  # type: ignore[attr-defined]


def test_every_command_that_writes_takes_o_output() -> None:
    assert set(LEAVES) >= WRITERS
    for words in WRITERS:
        assert {"-o", "--output"} <= _options(LEAVES[words]), words
    assert not any("--out" in _options(command) for command in LEAVES.values())


def test_every_command_takes_q_quiet() -> None:
    for words, command in LEAVES.items():
        assert {"-q", "--quiet"} <= _options(command), words


@pytest.mark.parametrize("words", sorted(LEAVES), ids=[" ".join(w) for w in sorted(LEAVES)])
def test_help_shows_plain_metavars_and_literal_text(words: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*words, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    text = result.output
    # typer's own forms, `<int>`, `<bool>`, `{BASELINE_DIR}` and `<list[Path]>`, never show.
    assert not re.search(r"<[a-z][\w\[\]|]*>", text), text
    assert not re.search(r"\{[A-Za-z_]+\}", text.splitlines()[0]), text
    # Help text is literal: a `[default: ...]` in it is shown, not eaten as markup.
    assert not re.search(r"\w \.(\s|$)", text) and "[]" not in text, text
    for param in LEAVES[words].params:  # type: ignore[attr-defined]
        if param.param_type_name == "argument":
            assert param.metavar and param.metavar.isupper(), (words, param.name)
            assert param.metavar in text.splitlines()[0]


def test_completion_and_the_environment_are_in_the_help() -> None:
    top = runner.invoke(app, ["--help"], terminal_width=100).output
    assert "--install-completion" in top
    for name in ("PIXGATE_WEIGHTS", "PIXGATE_DECODER", "PIXGATE_OCR_CACHE"):
        assert name in top
    score = " ".join(runner.invoke(app, ["score", "--help"], terminal_width=100).output.split())
    assert "$PIXGATE_WEIGHTS" in score and "$PIXGATE_DECODER" in score


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "args",
    [
        ["score", "a", "b"],  # a missing option: typer's own error
        ["score", "a", "b", "-o", "x.arrow", "--batch-size", "0"],  # a bad value
        ["score", "/nonexistent/a", "/nonexistent/b", "-o", "x.arrow"],  # the core's usage error
        ["gate"],  # a missing argument
        ["report", "x.arrow", "-o", "/nonexistent/folder/r.html"],  # a missing output folder
        ["nonsense"],  # no such command
    ],
)
def test_every_error_is_one_line_then_a_hint(args: list[str], chdir_tmp: Path) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = _error_lines(result.output)
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), lines
    assert "Usage:" not in result.output and "Traceback" not in result.output
    assert not (chdir_tmp / "x.arrow").exists()


def test_message_text_is_never_read_as_markup(tmp_path: Path) -> None:
    """A `[[rules]]` typo and a rule name in brackets print as written."""
    from tests.conftest import write_run

    typo = tmp_path / "typo.toml"
    typo.write_text('[policy]\nname = "p"\n[[rules]]\ncolumn = "lpips"\n')
    run = write_run(tmp_path / "run.arrow", [{"pair_id": "[red]a[/red]", "status": "ok", "lpips": 0.5}])
    result = runner.invoke(app, ["gate", str(run), "--policy", str(typo)])
    assert result.exit_code == 2
    assert "a policy has a [policy] table and [[rule]] tables" in " ".join(result.output.split())
    named = tmp_path / "named.toml"
    rule = 'column = "lpips"\nstat = "each"\nop = "<="\npass = 0.1\n'
    named.write_text('[[rule]]\nname = "[bold]LPIPS[/bold] [x]"\n' + rule)
    result = runner.invoke(app, ["gate", str(run), "--policy", str(named)], terminal_width=200)
    assert result.exit_code == 1
    assert "[bold]LPIPS[/bold] [x]" in result.output and "[red]a[/red]" in result.output


def test_two_folders_without_images_exit_2_naming_both(tmp_path: Path) -> None:
    base, cand = tmp_path / "base", tmp_path / "cand"
    base.mkdir()
    cand.mkdir()
    (base / "notes.txt").write_text("not an image")
    result = runner.invoke(app, ["score", str(base), str(cand), "-o", str(tmp_path / "r.arrow"), "--no-lpips"])
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert f"BASELINE_DIR ({base})" in flat and f"CANDIDATE_DIR ({cand})" in flat and "1 other file ignored" in flat
    assert not (tmp_path / "r.arrow").exists()


def test_export_writes_parquet_and_refuses_an_unknown_format(golden_run: Path, tmp_path: Path) -> None:
    done = runner.invoke(app, ["export", str(golden_run), "-o", str(tmp_path / "run.parquet")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "run.parquet").stat().st_size > 0
    quiet = runner.invoke(app, ["export", str(golden_run), "-o", str(tmp_path / "run.csv"), "-q"])
    assert quiet.exit_code == 0 and quiet.output == ""
    bad = runner.invoke(app, ["export", str(golden_run), "-o", str(tmp_path / "run.xlsx")])
    assert bad.exit_code == 2 and "--format" in bad.output
    assert not (tmp_path / "run.xlsx").exists()


def test_a_group_run_bare_prints_its_help(chdir_tmp: Path) -> None:
    for words in ([], ["golden"], ["demo-engine"]):
        result = runner.invoke(app, words)
        assert "Usage:" in result.output and "error:" not in result.output, (words, result.output)


def test_consoles_show_emoji_codes_as_written(tmp_path: Path) -> None:
    from tests.conftest import write_run

    run = write_run(tmp_path / "run.arrow", [{"pair_id": ":cross_mark:", "status": "error", "error": ":fire:"}])
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\ncolumn = "status"\nstat = "each"\nop = "=="\npass = "ok"\n')
    result = runner.invoke(app, ["gate", str(run), "--policy", str(policy)], terminal_width=200)
    assert ":cross_mark:" in result.output and ":fire:" in result.output and "\u274c" not in result.output


#: Names holding what would act on a terminal or a CI log: colours and a window title
#: (ESC ... BEL), a carriage return, bidirectional overrides and isolates, C1 controls.
ACTING_NAMES = ("red\x1b[31m\x1b]0;title\x07", "over\rwrite", "\u202egnp", "iso\u2066late\u2069", "c1\x85\x9b\x7f")


def _acting(text: str) -> set[str]:
    """The characters of `text` that would act rather than show (a line feed ends a line)."""
    return {ch for ch in text if ch not in "\n " and not ch.isprintable()}


def _plain_env() -> dict[str, str]:
    """The environment without what would make rich colour output that is not a terminal."""
    drop = {"FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _pixgate(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pixgate", *args], capture_output=True, timeout=300, env=_plain_env(), check=False
    )


def test_errors_show_what_would_act_on_a_terminal_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    from pixgate.cli.common import print_error

    print_error("cannot read 'a\x1b[2Jb\rc\u202ed'\nthe second line \x07", "look at 'x\x9by'")
    err = capsys.readouterr().err
    assert not _acting(err), err
    assert err.splitlines() == [
        "error: cannot read 'a\\x1b[2Jb\\x0dc\\u202ed'",
        "hint: the second line \\x07; look at 'x\\u009by'",
    ]


def test_gate_shows_hostile_pair_ids_escaped_in_tables_files_and_annotations(tmp_path: Path) -> None:
    import json
    from xml.etree import ElementTree as ET

    from tests.conftest import write_run

    rows = [{"pair_id": name, "status": "ok", "alpha_parity": False} for name in ACTING_NAMES]
    rows.append({"pair_id": "err\x1b[5m", "status": "error", "error": "decode failed: \x1b]8;;http://x\x07link"})
    run = write_run(tmp_path / "run.arrow", rows)
    policy = tmp_path / "p.toml"
    rule = 'column = "alpha_parity"\nstat = "each"\nop = "=="\npass = true\ncritical = true\n'
    policy.write_text('[policy]\nname = "p\\u001b[2J"\n[[rule]]\nname = "parity\\u0007\\r\\n::error::x"\n' + rule)
    junit, markdown, verdict = tmp_path / "junit.xml", tmp_path / "summary.md", tmp_path / "verdict.json"
    files = ["--junit", str(junit), "--markdown", str(markdown), "--json", str(verdict)]
    done = _pixgate("gate", str(run), "--policy", str(policy), *files)
    assert done.returncode == 1, done.stderr
    tables = done.stdout.decode() + done.stderr.decode()
    assert not _acting(tables), tables
    for shown in ("red\\x1b[31m\\x1b]0;title\\x07", "over\\x0dwrite", "\\u202egnp", "iso\\u2066late\\u2069"):
        assert shown in tables
    assert "c1\\u0085\\u009b\\x7f" in tables and "\\x1b]8;;http://x\\x07link" in tables
    assert "pixgate gate: p\\x1b[2J" in tables and "parity\\x07\\x0d\\x0a::error::x" in tables
    ET.parse(junit)  # well-formed
    assert not _acting(junit.read_text(encoding="utf-8")) and not _acting(markdown.read_text(encoding="utf-8"))
    assert "red\\\\x1b\\[31m" in markdown.read_text(encoding="utf-8")  # shown, then Markdown-escaped
    assert json.loads(verdict.read_text())["failing_pairs"]  # the JSON keeps the ids as they are (escaped by JSON)

    github = _pixgate("gate", str(run), "--policy", str(policy), "--annotations", "github")
    assert github.returncode == 1
    lines = github.stdout.decode().splitlines()
    assert len(lines) == 2 and all(line.startswith("::error title=pixgate gate%3A ") for line in lines)  # two critical
    assert lines[1].startswith("::error title=pixgate gate%3A parity\\x07\\x0d\\x0a%3A%3Aerror%3A%3Ax::")
    assert not _acting(github.stdout.decode() + github.stderr.decode())

    quiet = _pixgate("gate", str(run), "--policy", str(policy), "-q")
    assert quiet.returncode == 1 and "parity\\x07\\x0d\\x0a::error::x" in quiet.stdout.decode()
    assert not _acting(quiet.stdout.decode() + quiet.stderr.decode())

    missing = _pixgate("gate", str(tmp_path / "gone\x1b[31m\u202e.arrow"), "--policy", str(policy))
    assert missing.returncode == 2
    said = missing.stderr.decode()
    assert not _acting(said) and len(_error_lines(said)) == 2 and "gone\\x1b[31m\\u202e.arrow" in said


def test_score_shows_hostile_file_names_escaped_in_its_summary_and_progress(tmp_path: Path) -> None:
    from PIL import Image

    from tests.conftest import poster

    base, cand = tmp_path / "baseline", tmp_path / "candidate"
    base.mkdir()
    cand.mkdir()
    for i, name in enumerate(ACTING_NAMES[:3]):
        Image.fromarray(poster(32, 32, seed=i)).save(base / f"{name}.png")
        Image.fromarray(poster(32, 32, seed=i)).save(cand / f"{name}.png")
    Image.fromarray(poster(32, 32, seed=9)).save(base / "only\x1b[2Jbase\u2066.png")  # no candidate
    Image.fromarray(poster(32, 32, seed=9)).save(base / "\u202ebroken\x07.png")
    (cand / "\u202ebroken\x07.png").write_bytes(b"\x89PNG\r\n\x1a\n not a PNG")
    out = tmp_path / "run.arrow"
    done = _pixgate("score", str(base), str(cand), "-o", str(out), "--no-lpips", "--no-typography")
    assert done.returncode == 1, done.stderr  # two pairs are not ok
    said = done.stdout.decode() + done.stderr.decode()
    assert not _acting(said), said
    assert "pixgate score: 5/5 pairs" in said  # the progress lines of a run without a terminal
    assert "only\\x1b[2Jbase\\u2066" in said and "\\u202ebroken\\x07" in said  # the pairs not ok


@pytest.mark.parametrize(
    "version", ["A" * 2000 + "::error::INJECTED", "9\n\n::error title=x::INJECTED\n::add-mask::y", "9" * 5000]
)
def test_an_error_quoting_a_files_text_stays_two_lines_whatever_it_holds(tmp_path: Path, version: str) -> None:
    """Text from a file is never folded at the terminal's width nor broken at its line
    feeds: no line of the output can start with what the file wrote (a CI log reads a line
    starting `::error::` as a workflow command)."""
    from pixgate.runs import schema
    from tests.conftest import GOLDEN, write_run

    run = write_run(tmp_path / "run.arrow", [{"pair_id": "a", "status": "ok"}], {schema.META_SCHEMA_VERSION: version})
    done = subprocess.run(
        [sys.executable, "-m", "pixgate", "gate", str(run), "--policy", str(GOLDEN / "policy.toml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 2, done.stderr
    assert lines[0].startswith("error: ") and "written with run schema" in lines[0] and lines[1].startswith("hint: ")
    assert "::" not in lines[1] and done.stdout == ""
