"""What a scoring run is asked to do (`ScoreOptions`), what it produced (`ScoreResult`),
and the checks every backend makes on the options before anything starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pixgate.config import (
    BATCH_SIZE_MAX,
    DEFAULT_MAX_PIXELS,
    DEFAULT_PRECISION,
    MAX_PIXELS_CEILING,
    OCR_LANG,
    PRECISIONS,
    WORKERS_MAX,
)
from pixgate.errors import UsageError
from pixgate.runs import schema
from pixgate.safe_io import inside
from pixgate.scoring.backbones import DEFAULT_NET
from pixgate.scoring.decode import decoder_setting

if TYPE_CHECKING:
    import pyarrow as pa


class ScoreConfigError(UsageError):
    """A usage or configuration problem (exit code 2); nothing was scored.

    Its message names `ScoreOptions` fields (see `pixgate.errors`): `str()` spells them as
    the Python API's keywords, the command line as its flags.
    """


@dataclass(frozen=True)
class ScoreOptions:
    """Everything `score` needs; mirrors the CLI's options.

    Attributes:
        baseline: Folder of reference images (a URI such as s3://bucket/run with the Ray
            backend).
        candidate: Folder of images to compare against them.
        output: The run file to write (`RUN.arrow`).
        device: `auto`, `cpu` or `cuda`.
        batch_size: Pairs per device batch; None picks a default for the device.
        workers: Decode worker processes; None picks a default for the machine.
        weights: Explicit backbone weights file.
        net: `alex`, `vgg` or `squeeze`.
        resume: Complete an interrupted run instead of starting over.
        no_lpips: Skip LPIPS (the `lpips` column is null; metadata says why).
        precision: LPIPS arithmetic: `auto` (bfloat16 where the hardware runs it natively),
            `float32` or `bfloat16` (pixgate.config.PRECISIONS).
        max_pixels: Decompression-bomb limit per image.
        manifest: A golden manifest (JSONL): expected text and text boxes for the
            typography checks, ignore regions.
        typography: Check that each candidate's text reads as its baseline's
            (pixgate.scoring.typography; needs Tesseract's language data). Off, every row's
            typography is `not_checked`.
        ocr_workers: Typography checks run at once; None picks one per core.
        ocr_lang: Tesseract language(s).
        ocr_cache: Folder of cached baseline readings; None: the user's cache folder
            (pixgate.scoring.ocr_cache.default_cache_dir).
        no_ocr_cache: Read every baseline anew and keep nothing.
        overwrite: Start over even if `output` (a finished run) or its journal (an
            interrupted one) exists; without it either is an error, so that no run is
            replaced by accident.
        download_progress: Called with (bytes, total) while weights download.
    """

    baseline: Path | str
    candidate: Path | str
    output: Path
    device: str = "auto"
    batch_size: int | None = None
    workers: int | None = None
    weights: Path | None = None
    net: str = DEFAULT_NET
    resume: bool = False
    no_lpips: bool = False
    precision: str = DEFAULT_PRECISION
    max_pixels: int = DEFAULT_MAX_PIXELS
    manifest: Path | None = None
    ocr_workers: int | None = None
    ocr_lang: str = OCR_LANG
    typography: bool = True
    ocr_cache: Path | None = None
    no_ocr_cache: bool = False
    overwrite: bool = False
    download_progress: Callable[[int, int | None], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Paths given as text (the Python API) are paths; the folders may be URIs.
        for name in ("output", "weights", "manifest", "ocr_cache"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Path(value))


@dataclass(frozen=True)
class ScoreResult:
    """What a finished run produced.

    Attributes:
        table: The run file's rows (sorted by pair_id) with metadata.
        stats: Run-level measurements (also stored in the metadata).
        path: The run file written.
    """

    table: pa.Table
    stats: dict[str, Any]
    path: Path | None = None

    @property
    def all_ok(self) -> bool:
        """Every row has status ok."""
        return all(s == schema.STATUS_OK for s in self.table.column(schema.STATUS.name).to_pylist())


#: What a scoring error may name: the options, and the flags that stand for a value of one.
ScoreConfigError.options = frozenset(
    {f.name for f in fields(ScoreOptions)} | {"no_typography", "backend", "backend_ray", "ray_address"}
)


def check_decoder_setting() -> None:
    """Refuse a bad `PIXGATE_DECODER` before anything starts (both backends)."""
    try:
        decoder_setting()
    except ValueError as exc:
        raise ScoreConfigError.from_error(exc) from None


def check_options(opts: ScoreOptions) -> None:
    """The checks every backend makes on the options before anything starts: output,
    precision and the OCR options (the decoder setting, from the environment, is checked
    before the backend's own checks: `pixgate.scoring.lifecycle.run`).

    Raises:
        ScoreConfigError: The first problem found.
    """
    check_output_option(opts)
    check_numbers(opts)
    if opts.precision not in PRECISIONS:
        raise ScoreConfigError.about(
            "{precision} must be one of {allowed}; got {got!r}", allowed=", ".join(PRECISIONS), got=opts.precision
        )
    check_typography_options(opts)


#: The whole-number options and their ranges; None in a field means "the default".
_WHOLE_NUMBERS: Final = {
    "batch_size": (1, BATCH_SIZE_MAX),
    "workers": (1, WORKERS_MAX),
    "ocr_workers": (1, WORKERS_MAX),
    "max_pixels": (1, MAX_PIXELS_CEILING),
}


def check_numbers(opts: ScoreOptions) -> None:
    """Each whole-number option within its range, as the command line checks it: a count
    past its range would size a buffer or a timer absurdly deep inside the run.

    Raises:
        ScoreConfigError: The first one out of range, or not a whole number.
    """
    for name, (low, high) in _WHOLE_NUMBERS.items():
        value = getattr(opts, name)
        if value is None and name != "max_pixels":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ScoreConfigError.about(
                "{" + name + "}: got {got!r}; use a whole number from {low} to {high}", got=value, low=low, high=high
            )


def check_folder(label: str, location: Path | str) -> Path:
    """A local folder of images that exists.

    Args:
        label: The option that gave it: `baseline` or `candidate`.
        location: The folder.

    Raises:
        ScoreConfigError: It does not exist or is not a folder.
    """
    if label not in ("baseline", "candidate"):
        raise ValueError(f"label must be one of baseline, candidate; got {label!r}")
    folder = Path(location)
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise ScoreConfigError.about("{" + label + "}: {folder} {why}", folder=folder, why=why)
    return folder


def check_typography_options(opts: ScoreOptions) -> None:
    """OCR options that contradict each other or `--no-typography` (both backends)."""
    if opts.ocr_cache is not None and opts.no_ocr_cache:
        raise ScoreConfigError.about(
            "{ocr_cache} and {no_ocr_cache} contradict each other: keep readings there, or nowhere"
        )
    if not opts.typography:
        given = [
            name
            for name, value in (
                ("ocr_cache", opts.ocr_cache),
                ("no_ocr_cache", opts.no_ocr_cache or None),
                ("ocr_workers", opts.ocr_workers),
                ("ocr_lang", None if opts.ocr_lang == OCR_LANG else opts.ocr_lang),
            )
            if value is not None
        ]
        if given:
            named = ", ".join("{" + name + "}" for name in given)
            raise ScoreConfigError.about(named + ": no effect with {no_typography} (no OCR runs); drop one")


def check_output_option(opts: ScoreOptions) -> None:
    """The output lies outside the folders it scores, its folder exists (created if need
    be), it is not a folder, and `resume` and `overwrite` are not both asked (both
    backends)."""
    if opts.resume and opts.overwrite:
        raise ScoreConfigError.about("{resume} and {overwrite} contradict each other: complete the run, or start over")
    for label in ("baseline", "candidate"):
        folder = getattr(opts, label)
        # A run written among the images it scores could replace one of them.
        if "://" not in str(folder) and inside(opts.output, Path(folder)):
            raise ScoreConfigError.about(
                "{output}: {path} lies inside the {" + label + "} folder {folder}; write the run outside the "
                "folders it scores",
                path=opts.output,
                folder=folder,
            )
    try:
        opts.output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScoreConfigError.about(
            "{output}: cannot create the folder {folder}: {why}", folder=opts.output.parent, why=exc.strerror
        ) from None
    if opts.output.is_dir():
        raise ScoreConfigError.about(
            "{output}: {path} is a folder; give a file name such as run.arrow", path=opts.output
        )


__all__ = [
    "ScoreConfigError",
    "ScoreOptions",
    "ScoreResult",
    "check_decoder_setting",
    "check_folder",
    "check_numbers",
    "check_options",
    "check_output_option",
    "check_typography_options",
]
