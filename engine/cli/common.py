"""What every command of the command line shares: the app, one style for help and
errors, the consoles, file options and the options several commands take.

Heavy libraries (torch, numba, pyarrow) are imported inside the commands, so that
`pixgate --help` and usage errors answer at once.
"""

from __future__ import annotations

import functools
import sys
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from pixgate import __version__
from pixgate.config import (
    DECODER_ENV,
    DECODERS,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    NO_TTY_WIDTH,
    OCR_CACHE_ENV,
)
from pixgate.scoring.backbones import DEFAULT_NET, NETS

#: The environment variables pixgate reads, and what each does: shown in `pixgate --help`.
ENVIRONMENT = {
    "PIXGATE_WEIGHTS": "backbone weights file, when --weights is not given",
    "PIXGATE_WEIGHTS_URL": "where `weights --download` fetches weights from",
    DECODER_ENV: f"image decoders: {' or '.join(DECODERS)}",
    OCR_CACHE_ENV: "folder of cached baseline readings",
    "PIXGATE_KERNEL_CACHE": "folder of the compiled kernels (default $XDG_CACHE_HOME/pixgate/numba)",
    "PIXGATE_APPROVER": "who approves, when approve --by is not given",
    "PIXGATE_CRASH_DIR": "where an internal error's traceback is saved",
}


#: The command running now, for the hint under its errors.
_COMMAND_PATH: ContextVar[str] = ContextVar("command_path", default="pixgate")


class _Argument(TyperArgument):
    """An argument shown by its name alone: `BASELINE_DIR`, as options show theirs, not
    `{BASELINE_DIR} <str>`."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _metavar(option: TyperOption) -> str:
    """One plain word for what an option takes: FILE, DIR, N, a|b|c."""
    kind = option.type_descriptor
    if kind.is_choice:
        return "|".join(str(getattr(choice, "value", choice)) for choice in kind.choices or ())
    if kind.is_path:
        return kind.path_type.upper()
    if kind.annotation is int:
        return "N"
    if kind.annotation is float:
        return "NUMBER"
    return "TEXT"


class _Command(TyperCommand):
    """A command whose help shows plain metavars: `BASELINE_DIR`, `--output FILE`,
    `--device auto|cpu|cuda`; the same words whatever the option's Python type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = _Argument
                param.metavar = param.metavar or (param.name or "value").upper()
            elif isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
                param.metavar = _metavar(param)

    def invoke(self, ctx: Any) -> Any:
        _COMMAND_PATH.set(ctx.command_path)
        return super().invoke(ctx)


class _Group(TyperGroup):
    """Usage errors in the style of every other error: `error: ...`, then a hint."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone = kwargs.get("standalone_mode", True)
        kwargs["standalone_mode"] = False
        if not standalone:
            return super().main(*args, **kwargs)
        try:
            code = super().main(*args, **kwargs)
        except typer.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C: click turns it into Abort
                print_error("interrupted")
                sys.exit(EXIT_INTERRUPTED)
            print_error("aborted")
            sys.exit(1)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a group run bare: its help, as is
                print(exc.format_message())  # type: ignore[attr-defined]
                sys.exit(exc.exit_code)
            context = getattr(exc, "ctx", None)
            path = context.command_path if context is not None else "pixgate"
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            print_error(message, f"'{path} --help' lists what it takes")
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


def new_app(**settings: Any) -> typer.Typer:
    """A typer app in the house style: help text is literal (never markup), commands show
    their arguments by name, errors read `error: ...` then a hint."""
    return typer.Typer(
        cls=_Group,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"max_content_width": 100},
        **settings,
    )


def command(group: typer.Typer, name: str | None = None) -> Any:
    """`group.command(name)`, with arguments shown by name."""
    return group.command(name, cls=_Command)


app = new_app(
    name="pixgate",
    help="Score image pairs from two generators and gate model changes on the result.",
    epilog="Environment: " + "; ".join(f"{name}: {what}" for name, what in ENVIRONMENT.items()) + ".",
    no_args_is_help=True,
)


class Device(StrEnum):
    """Where LPIPS runs."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Backend(StrEnum):
    """Where the score pipeline runs."""

    local = "local"
    ray = "ray"


class Precision(StrEnum):
    """LPIPS arithmetic."""

    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"


if TYPE_CHECKING:
    Net = StrEnum
else:
    #: LPIPS backbone: the registry's names (pixgate.scoring.backbones), so a backbone is
    #: added in one place. mypy cannot type an enum built from a variable.
    Net = StrEnum("Net", {name: name for name in NETS})


DEFAULT_NET_CHOICE = Net(DEFAULT_NET)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pixgate {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """pixgate: automated, measurable gates for image-generator changes."""


def whole_number(option: str, low: int, high: int | None = None) -> Any:
    """A typer callback that names the bad value and the accepted range."""

    def check(value: int | None) -> int | None:
        if value is None:
            return value
        if value < low or (high is not None and value > high):
            allowed = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise typer.BadParameter(f"got {value}; use a whole number {allowed}", param_hint=option)
        return value

    return check


def number_in(option: str, low: float, high: float, *, above: bool = False, unit: str = "seconds") -> Any:
    """A typer callback for a finite number from `low` (or above it, with `above`) to
    `high`, naming the bad value and the range: `inf` and `nan` parse as floats, and
    would otherwise reach a timer deep inside a run."""

    def check(value: float | None) -> float | None:
        if value is None:
            return value
        if not (value > low if above else value >= low) or not value <= high:
            start = f"above {low:g}" if above else f"from {low:g}"
            raise typer.BadParameter(f"got {value}; use a number of {unit} {start} to {high:g}", param_hint=option)
        return value

    return check


@functools.cache
def _console_class() -> Any:
    """rich's console, showing every string it renders through `pixgate.safe_io.shown`."""
    from rich.console import Console

    from pixgate.safe_io import shown

    class ShownConsole(Console):
        def render_str(self, text: str, **options: Any) -> Any:
            # Every string printed, and every string cell and title of a table, passes
            # here before it is measured: escaped, it still lines up.
            return super().render_str(shown(text, backslashes=False), **options)

    return ShownConsole


def console(*, stderr: bool = True) -> Any:
    """A console for messages (standard error) or reports (`stderr=False`). It never reads
    text as markup (pair ids, paths and rule names are data), and shows what would act on
    a terminal or a CI log (ESC, BEL, CR, bidirectional overrides) escaped
    (`pixgate.safe_io.shown`) in every string it prints, table cells included; a `Text`
    built by hand is escaped by whoever builds it. Without a terminal (a CI log) it is as
    wide as its widest line: a table never folds a pair id."""
    shown_console = _console_class()
    found = shown_console(stderr=stderr, markup=False, highlight=False, emoji=False)
    if found.is_terminal:
        return found
    return shown_console(stderr=stderr, width=NO_TTY_WIDTH, markup=False, highlight=False, emoji=False)


def say(text: str, *, quiet: bool = False) -> None:
    """A line on standard error, unless `quiet`."""
    if not quiet:
        console().print(text)


def print_error(message: str, hint: str | None = None) -> None:
    """`error: message` on one line, then the hint on the next: the one style of every
    error the command line prints. A message of several lines (the ways to provide
    weights, say) keeps its first line as the error and leads the hint with the rest.
    Only its line feeds break it, never the terminal's width: any other character that
    would act on a terminal or a CI log (a CR, ESC, a bidirectional override, in a name the
    message quotes) is shown escaped (`pixgate.safe_io.shown`)."""
    from rich.text import Text

    from pixgate.safe_io import shown

    lines = [shown(line, backslashes=False) for line in message.split("\n")]
    first, *rest = [" ".join(line.split()) for line in lines if line.strip()] or [""]
    joined = ""
    for part in [*rest, *([shown(hint, backslashes=False)] if hint else [])]:
        joined += ("" if not joined else " " if joined.endswith((":", ".")) else "; ") + part
    hint = joined
    out = console()
    # Never folded: a long value from a file would otherwise start a line of its own in a
    # CI log, where a line starting `::error::` is a workflow command.
    out.print(Text.assemble(("error:", "bold red"), " ", first), soft_wrap=True)
    if hint:
        out.print(Text.assemble(("hint:", "dim"), " ", hint), soft_wrap=True)


def _help_hint() -> str:
    return f"'{_COMMAND_PATH.get()} --help' lists the options"


def output_folder(option: str, path: Path | None, inputs: tuple[Path, ...] = ()) -> None:
    """A file option's folder must exist ('-' is standard output): a typo is an error,
    not a new folder. What is at the path must be a regular file or nothing, and not one
    of the command's `inputs` (`pixgate.safe_io.check_output`): checked before anything
    is written, so a refused output leaves no side file."""
    from pixgate.safe_io import OutputError, check_output, printable

    if path is None or str(path) == "-":
        return
    if not path.parent.is_dir():
        raise usage_error(
            f"{option}: the folder {printable(str(path.parent))} does not exist",
            hint="create it first, or write elsewhere",
        )
    try:
        check_output(path, inputs)
    except OutputError as exc:
        raise usage_error(f"{option}: {exc}", hint=exc.hint) from None


def emit(path: Path, text: str) -> None:
    """Write `text` to a file option's file, or to standard output for '-'."""
    from pixgate.safe_io import atomic_write, writing

    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with writing(path):
        atomic_write(path, text.encode("utf-8"))


#: Options whose flag is not `--` and the field's name with dashes.
_FLAG_SPELLING = {"baseline": "BASELINE_DIR", "candidate": "CANDIDATE_DIR", "backend_ray": "--backend ray"}


def flag(field: str) -> str:
    """How the command line gives an option that a core error names by field."""
    return _FLAG_SPELLING.get(field) or "--" + field.replace("_", "-")


def usage_error(error: str | BaseException, *, hint: str | None = None, **spelling: str) -> typer.Exit:
    """Print a usage error and return the exit to raise. Core errors name options by
    field: spelt here as flags, or as `spelling` says (a command whose argument is
    another command's option). The hint defaults to the command's help."""
    from pixgate.errors import UsageError

    def spell(field: str) -> str:
        return spelling.get(field) or flag(field)

    message = error.render(spell) if isinstance(error, UsageError) else str(error)
    print_error(message, hint or _help_hint())
    return typer.Exit(code=EXIT_USAGE)


def fail(message: str, hint: str | None = None, *, code: int = EXIT_USAGE) -> NoReturn:
    """Print an error and exit with `code`."""
    print_error(message, hint)
    raise typer.Exit(code=code)


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the result.")]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        help="Backbone weights: a torchvision state_dict file.  [default: $PIXGATE_WEIGHTS, else torchvision's cache]",
        exists=True,
        dir_okay=False,
        metavar="FILE",
    ),
]
NetOpt = Annotated[Net, typer.Option(help="LPIPS backbone.")]
OcrLangOpt = Annotated[str, typer.Option(help="Tesseract language(s), e.g. eng or eng+deu.", metavar="LANG")]
TypographyOpt = Annotated[
    bool,
    typer.Option(
        "--typography/--no-typography",
        help="Check that each candidate's text reads as its baseline's (needs Tesseract's language data); "
        "off, every row's typography is 'not_checked'.",
    ),
]
OcrCacheOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder of cached baseline readings, e.g. one a golden set or a CI cache carries "
        f"[default: ${OCR_CACHE_ENV}, else $XDG_CACHE_HOME/pixgate/ocr].",
        file_okay=False,
        metavar="DIR",
    ),
]
NoOcrCacheOpt = Annotated[bool, typer.Option("--no-ocr-cache", help="Read every baseline anew and keep no readings.")]


__all__ = [
    "DEFAULT_NET_CHOICE",
    "ENVIRONMENT",
    "Backend",
    "Device",
    "Net",
    "NetOpt",
    "NoOcrCacheOpt",
    "OcrCacheOpt",
    "OcrLangOpt",
    "Precision",
    "QuietOpt",
    "TypographyOpt",
    "WeightsOpt",
    "app",
    "command",
    "console",
    "emit",
    "fail",
    "flag",
    "new_app",
    "number_in",
    "output_folder",
    "print_error",
    "say",
    "usage_error",
    "whole_number",
]
