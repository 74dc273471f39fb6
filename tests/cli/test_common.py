"""One style for every command: -o/--output, -q/--quiet, plain metavars, errors as
`error:` then `hint:`, message text never read as markup, no quiet successes."""

from __future__ import annotations

import re
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
