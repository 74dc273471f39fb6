"""The Arrow contract of a run: column names, types, meanings and metadata keys (the
keys live in `pixgate.runs.metadata`, re-exported here).

This module is the single source of truth for what a run file holds. The writer, the
gate, the report, the column tables of docs/ and the tests all derive names from here;
nothing else spells a column name as a literal.

pyarrow is imported lazily so that importing the names costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pixgate.config import (
    OCR_MATCH_LUMA_MAX,
    OCR_MATCH_SHIFT_PX,
    SHOWN_VALUE_CHARS,
    TEXT_CER_MARGIN,
    TEXT_CER_MAX,
    TEXT_HEIGHT_TOLERANCE,
    TEXT_SHARPNESS_MIN,
)
from pixgate.runs import metadata as _metadata
from pixgate.runs.metadata import *  # noqa: F403  (the metadata keys: callers read schema.META_...)
from pixgate.runs.metadata import META_SCHEMA_VERSION
from pixgate.safe_io import shown

if TYPE_CHECKING:
    import pyarrow as pa

#: Bumped whenever a column is removed, renamed or changes meaning. Adding a column keeps
#: the major number.
SCHEMA_VERSION: Final = "2.2"


@dataclass(frozen=True)
class Column:
    """One column of a run file.

    Attributes:
        name: Column name in the Arrow file.
        dtype: Arrow type name: ``string``, ``int32``, ``int64``, ``uint64``, ``float64`` or ``bool``.
        doc: What the value means, with its unit or range.
        unit: The unit of a number (`ms`, `px`, `fraction` for 0..1, ...); "" for
            columns that have none.
    """

    name: str
    dtype: str
    doc: str
    unit: str = ""


# Statuses a row can carry. Anything but OK makes `score` exit 1.
STATUS_OK: Final = "ok"
STATUS_ERROR: Final = "error"
STATUS_MISSING_BASELINE: Final = "missing_baseline"
STATUS_MISSING_CANDIDATE: Final = "missing_candidate"
STATUSES: Final = (STATUS_OK, STATUS_ERROR, STATUS_MISSING_BASELINE, STATUS_MISSING_CANDIDATE)

PAIR_ID = Column("pair_id", "string", "Relative path without extension, `/`-separated; unique per run.")
STATUS = Column("status", "string", "`ok`, `error`, `missing_baseline` or `missing_candidate`.")
ERROR = Column("error", "string", "Why the row is not `ok` (null when it is).")
BASELINE_PATH = Column("baseline_path", "string", "Absolute path of the baseline image.")
CANDIDATE_PATH = Column("candidate_path", "string", "Absolute path of the candidate image.")
BASELINE_SHA256 = Column(
    "baseline_sha256",
    "string",
    "sha256 of the baseline file's bytes as they were read and decoded, hex; null when they were not read whole "
    "(no baseline, a read error, a decode worker that died or ran out of time). `--resume` keeps the row only while "
    "the file still has these bytes.",
)
CANDIDATE_SHA256 = Column(
    "candidate_sha256",
    "string",
    "sha256 of the candidate file's bytes as they were read and decoded, hex; null when they were not read whole.",
)
BASELINE_FORMAT = Column("baseline_format", "string", "Decoded container format (`PNG`, `JPEG`, `WEBP`).")
CANDIDATE_FORMAT = Column("candidate_format", "string", "Decoded container format of the candidate.")
BASELINE_MODE = Column("baseline_mode", "string", "Pixel mode as stored (e.g. `RGBA`, `P`, `I;16`, `CMYK`).")
CANDIDATE_MODE = Column("candidate_mode", "string", "Pixel mode of the candidate as stored.")
BASELINE_WIDTH = Column("baseline_width", "int32", "Baseline width in pixels, after EXIF orientation.", unit="px")
BASELINE_HEIGHT = Column("baseline_height", "int32", "Baseline height in pixels, after EXIF orientation.", unit="px")
CANDIDATE_WIDTH = Column("candidate_width", "int32", "Candidate width in pixels, after EXIF orientation.", unit="px")
CANDIDATE_HEIGHT = Column("candidate_height", "int32", "Candidate height in pixels, after EXIF orientation.", unit="px")
SIZE_MATCH = Column(
    "size_match",
    "bool",
    "Same width and height. If not, the candidate is resampled to the baseline's size for the metrics.",
)
ASPECT_RATIO_DELTA = Column(
    "aspect_ratio_delta",
    "float64",
    "`abs((wc/hc) / (wb/hb) - 1)`: 0 for the same shape, 0.25 for a 25 % stretch.",
    unit="ratio",
)
BASELINE_FRAMES = Column(
    "baseline_frames",
    "int32",
    "Frames the baseline shows in turn, from its header: more than 1 for an animated PNG or WebP; 1 for a still "
    "image (a JPEG always).",
    unit="count",
)
CANDIDATE_FRAMES = Column(
    "candidate_frames",
    "int32",
    "Frames the candidate shows in turn, from its header; 1 for a still image.",
    unit="count",
)
FRAME_COUNT_MATCH = Column(
    "frame_count_match",
    "bool",
    "Same number of frames. The metrics compare the first frames only, so false (an animation against a still "
    "image, or another frame count) is a difference they cannot see.",
)
BASELINE_HAS_ALPHA = Column("baseline_has_alpha", "bool", "Baseline carries transparency (alpha channel or tRNS).")
CANDIDATE_HAS_ALPHA = Column("candidate_has_alpha", "bool", "Candidate carries transparency (alpha channel or tRNS).")
ALPHA_PARITY = Column(
    "alpha_parity", "bool", "Both have alpha or neither: false is the 'expected alpha channel, found none' failure."
)
ALPHA_MAE = Column(
    "alpha_mae",
    "float64",
    "Mean absolute alpha difference over all pixels, 0..1; null unless both have alpha.",
    unit="fraction",
)
ALPHA_IOU = Column(
    "alpha_iou",
    "float64",
    "Intersection over union of the opaque masks (alpha >= 128), 0..1; null unless both have alpha.",
    unit="fraction",
)
ALPHA_EDGE_PX = Column(
    "alpha_edge_px",
    "float64",
    "How far the cut-out's edge moved: the summed absolute alpha difference (0..1 per pixel) over the length "
    "of the baseline's opaque outline (its opaque pixels with one of 8 neighbours below alpha 128), after "
    "registration; about 2 for an edge eroded or grown by 2 px. Null unless both have alpha and the baseline has "
    "an outline.",
    unit="px",
)
ALPHA_FLATTENED = Column(
    "alpha_flattened",
    "bool",
    "The baseline has transparent pixels (alpha < 128) and the candidate, though it carries an alpha channel, "
    "has almost none left (a cut-out flattened but still saved as RGBA); null unless both have alpha.",
)
BASELINE_ICC = Column("baseline_icc", "string", "Embedded ICC profile description; null when untagged (read as sRGB).")
CANDIDATE_ICC = Column(
    "candidate_icc", "string", "Embedded ICC profile description of the candidate; null when untagged."
)
ICC_MATCH = Column(
    "icc_match",
    "bool",
    "Same colour space, judged on the profiles' content (a colour grid through each), "
    "not their names; untagged = sRGB.",
)
DELTA_E_MEAN = Column(
    "delta_e_mean",
    "float64",
    "Mean CIEDE2000 over pixels opaque (alpha >= 128) in both, after conversion to sRGB; null when none are.",
    unit="CIEDE2000",
)
DELTA_E_P95 = Column(
    "delta_e_p95", "float64", "95th percentile (inverted CDF) of CIEDE2000 over the same pixels.", unit="CIEDE2000"
)
CHROMA_SHIFT = Column(
    "chroma_shift",
    "float64",
    "Mean candidate C* minus baseline C* (CIELAB, D65), same pixels: positive means more saturated.",
    unit="CIELAB C*",
)
LIGHTNESS_SHIFT = Column(
    "lightness_shift",
    "float64",
    "Mean candidate L* minus baseline L* (CIELAB, D65), same pixels: positive means lighter.",
    unit="CIELAB L*",
)
EDGE_PRESERVATION = Column(
    "edge_preservation",
    "float64",
    "Share of the baseline's edge strength kept: sum of min(Gb, Gc) / sum of Gb, G the Sobel "
    "magnitude of luma over white; 0..1, 1 when the baseline has no edges.",
    unit="fraction",
)
SCIELAB_MEAN = Column(
    "scielab_mean",
    "float64",
    "Mean S-CIELAB colour difference (Zhang & Wandell: CIELAB after a filter matched to human vision, so grain, "
    "noise and antialiasing average out and a colour cast stays) over pixels opaque in both, after registration; "
    "see docs/run-files.md for the viewing condition. Null when no pixel is opaque in both.",
    unit="Delta E*ab",
)
SCIELAB_P95 = Column(
    "scielab_p95",
    "float64",
    "95th percentile (inverted CDF) of the S-CIELAB colour difference over the same pixels.",
    unit="Delta E*ab",
)
SCIELAB_COLOUR = Column(
    "scielab_colour",
    "float64",
    "Mean of the colour part of the S-CIELAB difference, `sqrt(Delta a*^2 + Delta b*^2)`, same filter and pixels: "
    "lightness is left to the structure measures, so a glyph moved by a pixel or a softer edge counts for little "
    "while a colour cast or a conversion with the old tag kept counts in full.",
    unit="Delta E*ab",
)
HUE_SHIFT = Column(
    "hue_shift",
    "float64",
    "The largest mean hue rotation of any hue sector, degrees: the baseline's coloured pixels (chroma >= 10 in both, "
    "S-CIELAB-filtered) split into 6 sectors by hue, per sector the chroma-weighted mean signed hue change. Moved "
    "content, antialiasing and noise average out; a conversion with the old tag kept or a tint stays. Null without "
    "a coloured sector.",
    unit="degrees",
)
STRUCTURE_WORST = Column(
    "structure_worst",
    "float64",
    "Local structure kept, in the worst tile: per tile of the baseline with edges (and of the candidate), the "
    "share of its edge strength the other image has within 2 px (Sobel magnitudes of luma over white above a "
    "noise floor, the other's dilated by 5x5), after registration; the lowest over tiles and both directions. "
    "0..1, 1 when neither image has edges. Lost, blurred, added or moved detail shows here even when it is a "
    "small share of a large image.",
    unit="fraction",
)
SHIFT_X = Column(
    "shift_x",
    "float64",
    "Registration: the candidate's content is the baseline's moved right by this many pixels (phase "
    "correlation, sub-pixel). The metrics are computed after moving it back by the whole-pixel part when "
    "both shifts are small (see docs/run-files.md).",
    unit="px",
)
SHIFT_Y = Column("shift_y", "float64", "Registration: the content moved down by this many pixels.", unit="px")
SCALE_X = Column(
    "scale_x",
    "float64",
    "Registration: the candidate's content is the baseline's stretched by this factor in x, about the centre, "
    "inside the same canvas (1 = same width); null when the baseline has no edges along x.",
    unit="factor",
)
SCALE_Y = Column(
    "scale_y",
    "float64",
    "Registration: the stretch factor in y (1 = same height); null without edges along y.",
    unit="factor",
)
ASPECT_CHANGE = Column(
    "aspect_change",
    "float64",
    "`scale_x / scale_y - 1`: the content's aspect ratio change inside the canvas (0.02 = 2 % wider).",
    unit="ratio",
)
SCALE_CHANGE = Column(
    "scale_change",
    "float64",
    "The larger of `abs(scale_x - 1)` and `abs(scale_y - 1)`: how far the content was stretched or zoomed "
    "along either axis (0.01 = 1 %).",
    unit="ratio",
)
LPIPS = Column(
    "lpips",
    "float64",
    "LPIPS distance (0 = identical); alpha composited over white; null with `--no-lpips`.",
    unit="LPIPS distance",
)
LPIPS_UPSCALED = Column("lpips_upscaled", "bool", "The pair was upsampled to the backbone's minimum side before LPIPS.")
IGNORED_FRACTION = Column(
    "ignored_fraction",
    "float64",
    "Share of the baseline's pixels in the manifest's `ignore` regions, left out of every metric; "
    "null without regions.",
    unit="fraction",
)
# What became of a pair's typography check (`text_status`).
TEXT_CHECKED: Final = "checked"
TEXT_NOT_APPLICABLE: Final = "not_applicable"
TEXT_NOT_CHECKED: Final = "not_checked"
TEXT_STATUSES: Final = (TEXT_CHECKED, TEXT_NOT_APPLICABLE, TEXT_NOT_CHECKED)

TEXT_STATUS = Column(
    "text_status",
    "string",
    "`checked`; `not_applicable` when the baseline shows no text OCR reads with confidence (a gate neither "
    "judges its typography nor counts it as missing); `not_checked` when typography was switched off "
    "(`--no-typography`: no data for a gate); null for rows that are not `ok`.",
)
TEXT_EXPECTED = Column(
    "text_expected", "string", "Expected text from the manifest (`--manifest`), one string per line; null without."
)
TEXT_BOXES = Column(
    "text_boxes",
    "string",
    "The text regions read, as JSON `[[x0, y0, x1, y1], ...]` in baseline pixels (ends exclusive): the "
    "manifest's `text_boxes`, else the lines OCR found in the baseline.",
)
OCR_BASELINE = Column("ocr_baseline", "string", "Tesseract's reading of the baseline's text regions, one per line.")
OCR_CANDIDATE = Column("ocr_candidate", "string", "Tesseract's reading of the same regions of the candidate.")
TEXT_REGIONS = Column(
    "text_regions",
    "int32",
    "Text regions read (outside the manifest's ignore regions); 0 when OCR finds no text.",
    unit="count",
)
TEXT_REGIONS_MATCHED = Column(
    "text_regions_matched",
    "int32",
    f"Of text_regions, those whose candidate luma (0-255) is within {OCR_MATCH_LUMA_MAX} of the baseline's at "
    f"every pixel, at a shift of up to {OCR_MATCH_SHIFT_PX} px: read as the baseline's, without OCR.",
    unit="count",
)
TEXT_CER_BASELINE = Column(
    "text_cer_baseline",
    "float64",
    "Character error rate of the baseline's reading against the manifest's `expected_text`; null without it "
    "(the baseline is then the reference).",
    unit="fraction",
)
TEXT_CER = Column(
    "text_cer",
    "float64",
    "Character error rate of the candidate's text: for each region, the edit distance of the baseline's "
    "reading to its best match in the candidate's reading of the same region, summed, over the baseline "
    "readings' length (with `expected_text`: of each expected string to its best match in all the text read).",
    unit="fraction",
)
TEXT_CER_WORST = Column(
    "text_cer_worst",
    "float64",
    "Character error rate of the worst text region: for each region, the edit distance of the baseline's "
    "reading to its best match in the candidate's reading of the same region, over the baseline reading's "
    "length (a region whose readings differ is read again in other ways on both sides, and the closest pair "
    "counts); the highest region. With `expected_text`: for each expected string, its rate in the candidate's "
    "text less its rate in the baseline's, the highest (0 when none reads worse).",
    unit="fraction",
)
TEXT_NUMBERS_CHANGED = Column(
    "text_numbers_changed",
    "int32",
    "Text regions whose digits (prices, dates, codes: every digit, in order) read differently in the candidate "
    "than in the baseline, in every way each is read; 0 = every number kept.",
    unit="count",
)
TEXT_SHARPNESS = Column(
    "text_sharpness",
    "float64",
    "RMS Sobel magnitude (luma over white) of the candidate over the baseline's, inside the text regions, "
    "the lowest region: 1 = as crisp, lower = blurred or faded.",
    unit="ratio",
)
TEXT_HEIGHT_RATIO = Column(
    "text_height_ratio",
    "float64",
    "Size of the candidate's text over the baseline's, the lowest region: the extent of the line's ink from "
    "its first glyphs to its last, inside the baseline's region (which scales with the font size, and at 8-12 "
    "px resolves a font 1 px smaller where the glyphs' height does not); 0.9 = drawn a tenth smaller, or a "
    "tenth of the line missing; text drawn larger measures about 1.",
    unit="ratio",
)
TEXT_PASS = Column(
    "text_pass",
    "bool",
    f"The candidate's text reads as the baseline's in every region: `text_cer_worst <= {TEXT_CER_MAX}` (with "
    f"expected text, where it is the excess over the baseline's: `<= {TEXT_CER_MARGIN}`), "
    f"`text_numbers_changed == 0`, `text_sharpness >= {TEXT_SHARPNESS_MIN}` and `text_height_ratio >= "
    f"{1 - TEXT_HEIGHT_TOLERANCE:g}`; null unless `text_status` is `checked`.",
)

#: Columns that do not apply to every row, and how a row says so: column -> (the column
#: that says, the value meaning "not applicable"). A gate leaves such rows out of a rule
#: without counting them as missing data: a rule that only they reach passes.
NOT_APPLICABLE: Final = {
    column.name: (TEXT_STATUS.name, TEXT_NOT_APPLICABLE)
    for column in (
        TEXT_BOXES,
        OCR_BASELINE,
        OCR_CANDIDATE,
        TEXT_CER,
        TEXT_CER_WORST,
        TEXT_NUMBERS_CHANGED,
        TEXT_SHARPNESS,
        TEXT_HEIGHT_RATIO,
        TEXT_PASS,
    )
}
COMPUTE_MS = Column(
    "compute_ms",
    "float64",
    "Host time of the pair's share of its metric batch, ms: staging and queuing it, then waiting for its results "
    "(on a CPU, the whole computation). On a GPU the next batch is staged while this one runs.",
    unit="ms",
)
GPU_MS = Column(
    "gpu_ms",
    "float64",
    "GPU time of the pair's share of its batch's metric work, ms: CUDA events on the batch's stream after its upload "
    "and before its results' copy back (kernels, LPIPS, reductions), with no host wait between them; null without "
    "CUDA.",
    unit="ms",
)
RUN_ENERGY_J = Column(
    "energy_j",
    "float64",
    "GPU energy since the previous batch was collected, shared out over the pairs of its batch (NVML energy "
    "counter, else integrated power), J: batches overlap on a GPU, so each takes the energy between collections; "
    "null without NVML (the `pixgate.nvml` metadata says why).",
    unit="J",
)
DECODE_MS = Column(
    "decode_ms", "float64", "Time to read, check and decode both files (and resample the candidate), ms.", unit="ms"
)

# --- capture files (`pixgate capture`: DIR/capture.arrow, one row per prompt) ---
ID = Column("id", "string", "Prompt id from the prompts file; the image is saved as `<id>.<ext>`.")
PROMPT = Column("prompt", "string", "The prompt sent to the generator.")
SEED = Column("seed", "uint64", "The seed sent, 0 to 2**64 - 1 (null when the prompts file gives none).")
CAPTURE_STATUS = Column("status", "string", "`ok`, or `error` when no decodable image came back.")
ATTEMPTS = Column(
    "attempts", "int32", "Requests (or command runs) made for this prompt, retries included.", unit="count"
)
HTTP_STATUS = Column("http_status", "int32", "HTTP status of the last response; null for commands and network errors.")
LATENCY_MS = Column("latency_ms", "float64", "Time of the last (successful) request or command run, ms.", unit="ms")
BYTES = Column("bytes", "int64", "Size of the image returned, bytes.", unit="bytes")
SHA256 = Column("sha256", "string", "sha256 of the image bytes.")
IMAGE = Column("image", "string", "The image file, relative to the capture folder.")
CAPTURE_GPU_MS = Column(
    "gpu_ms", "float64", "GPU time of the generation, ms; null where it is not metered (see the metadata).", unit="ms"
)
ENERGY_J = Column(
    "energy_j", "float64", "GPU energy of the generation, J; null where it is not metered (see the metadata).", unit="J"
)
CAPTURE_ERROR = Column(
    "error",
    "string",
    "The last error when the prompt failed; on an `ok` row, a note (a timing header that was not a finite number in "
    "range and is null for it; replay: runs of different sizes); else null.",
)
CAPTURE_COLUMNS: Final[tuple[Column, ...]] = (
    ID, PROMPT, SEED, CAPTURE_STATUS, ATTEMPTS, HTTP_STATUS, LATENCY_MS, BYTES, SHA256, IMAGE,
    CAPTURE_GPU_MS, ENERGY_J, CAPTURE_ERROR,
)  # fmt: skip

# --- replay files (`pixgate replay`: DIR/replay.arrow, one row per prompt) ---
RUNS = Column("runs", "int32", "Times the prompt was generated.", unit="count")
BYTE_IDENTICAL = Column("byte_identical", "bool", "Every run returned the same bytes.")
MAX_PIXEL_DIFF = Column(
    "max_pixel_diff",
    "int32",
    "Largest difference of any RGBA channel between the first run and any other, 0..255.",
    unit="8-bit level",
)
REPLAY_LPIPS = Column(
    "lpips",
    "float64",
    "Largest LPIPS between the first run and any other; null without backbone weights.",
    unit="LPIPS distance",
)
REPLAY_COLUMNS: Final[tuple[Column, ...]] = (
    ID, CAPTURE_STATUS, CAPTURE_ERROR, RUNS, BYTE_IDENTICAL, MAX_PIXEL_DIFF, REPLAY_LPIPS,
)  # fmt: skip


#: Every column, in file order.
COLUMNS: Final[tuple[Column, ...]] = (
    PAIR_ID, STATUS, ERROR, BASELINE_PATH, CANDIDATE_PATH, BASELINE_SHA256, CANDIDATE_SHA256,
    BASELINE_FORMAT, CANDIDATE_FORMAT, BASELINE_MODE, CANDIDATE_MODE,
    BASELINE_WIDTH, BASELINE_HEIGHT, CANDIDATE_WIDTH, CANDIDATE_HEIGHT,
    SIZE_MATCH, ASPECT_RATIO_DELTA, BASELINE_FRAMES, CANDIDATE_FRAMES, FRAME_COUNT_MATCH,
    BASELINE_HAS_ALPHA, CANDIDATE_HAS_ALPHA, ALPHA_PARITY, ALPHA_MAE, ALPHA_IOU,
    ALPHA_EDGE_PX, ALPHA_FLATTENED,
    BASELINE_ICC, CANDIDATE_ICC, ICC_MATCH,
    DELTA_E_MEAN, DELTA_E_P95, CHROMA_SHIFT, LIGHTNESS_SHIFT,
    SCIELAB_MEAN, SCIELAB_P95, SCIELAB_COLOUR, HUE_SHIFT,
    EDGE_PRESERVATION, STRUCTURE_WORST, SHIFT_X, SHIFT_Y, SCALE_X, SCALE_Y, ASPECT_CHANGE, SCALE_CHANGE,
    LPIPS, LPIPS_UPSCALED, IGNORED_FRACTION,
    TEXT_STATUS, TEXT_EXPECTED, TEXT_BOXES, OCR_BASELINE, OCR_CANDIDATE, TEXT_REGIONS, TEXT_REGIONS_MATCHED,
    TEXT_CER_BASELINE, TEXT_CER, TEXT_CER_WORST, TEXT_NUMBERS_CHANGED, TEXT_SHARPNESS, TEXT_HEIGHT_RATIO,
    TEXT_PASS,
    COMPUTE_MS, GPU_MS, RUN_ENERGY_J, DECODE_MS,
)  # fmt: skip

COLUMN_NAMES: Final = tuple(c.name for c in COLUMNS)


def column_types() -> dict[str, str]:
    """Every column a pixgate file can carry, name -> Arrow type name (for policy checks)."""
    types: dict[str, str] = {}
    for column in (*COLUMNS, *CAPTURE_COLUMNS, *REPLAY_COLUMNS):
        if types.setdefault(column.name, column.dtype) != column.dtype:
            raise AssertionError(f"column {column.name!r} has two types")  # a schema bug, caught by the tests
    return types


def empty_row() -> dict[str, Any]:
    """A row with every column present and null, to be filled by the pipeline."""
    return dict.fromkeys(COLUMN_NAMES)


#: Keys of each Arrow field's metadata.
FIELD_DESCRIPTION: Final = "description"
FIELD_UNIT: Final = "unit"


def arrow_schema(metadata: dict[str, str] | None = None, columns: tuple[Column, ...] = COLUMNS) -> pa.Schema:
    """An Arrow schema (the run's unless `columns` says otherwise), optionally with metadata.

    The first column is the row key and is not nullable.
    """
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "uint64": pa.uint64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
    }
    fields = [
        pa.field(c.name, types[c.dtype], nullable=i > 0, metadata=field_metadata(c)) for i, c in enumerate(columns)
    ]
    return pa.schema(fields, metadata=metadata)


def field_metadata(column: Column) -> dict[str, str]:
    """What a column's Arrow field carries besides its type: its description and unit,
    so that a run file explains itself to any Arrow reader."""
    return {FIELD_DESCRIPTION: column.doc, FIELD_UNIT: column.unit}


_NUMERIC_DTYPES: Final = ("int32", "int64", "uint64", "float64")


def dtype_kind(dtype: str) -> str:
    """What a column's declared type holds: `number`, `bool` or `string`."""
    return "number" if dtype in _NUMERIC_DTYPES else ("bool" if dtype == "bool" else "string")


def arrow_kind(arrow_type: pa.DataType) -> str:
    """What an Arrow type holds: `number`, `bool`, `string`, `null` (no value at all), or
    the type's own name for anything else."""
    import pyarrow as pa

    if pa.types.is_null(arrow_type):
        return "null"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "number"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    return str(arrow_type)


#: A gate's verdicts, as verdict files (`pixgate gate --json`) write them.
PASS: Final = "pass"  # noqa: S105 (a verdict, not a password)
MARGINAL: Final = "marginal"
FAIL: Final = "fail"
VERDICTS: Final = (PASS, MARGINAL, FAIL)


class TableError(ValueError):
    """A file that is not a well-formed pixgate run, capture or replay file; the message
    says what is wrong, in one line."""


#: What `check_table` is asked to accept: a run file (from `score`), or a capture or
#: replay file (from `capture` and `replay`); None accepts any of them.
FILE_KINDS: Final = ("run", "capture")


def check_version(version: str | None, source: object) -> None:
    """Refuse a file written with another major schema version than this pixgate's: its
    columns may have been renamed or changed meaning. A file that records no version (an
    Arrow file written by another tool) is judged by its columns alone.

    Raises:
        TableError: Another major version.
    """
    if version is not None and version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        # The file's text, escaped and cut: it may hold line feeds or a megabyte.
        said = shown(version[:SHOWN_VALUE_CHARS]) + ("..." if len(version) > SHOWN_VALUE_CHARS else "")
        raise TableError(
            f"{source}: written with run schema {said}, this pixgate reads schema {SCHEMA_VERSION}; "
            "rescore with this version"
        )


def check_table(table: pa.Table, source: object, kind: str | None = None) -> tuple[Column, ...]:
    """Check that a table read from a file is a well-formed pixgate file before using it.

    A run file is recognised by its `pair_id` column, a capture or replay file by `id`.
    Its schema version, where it records one, must have this pixgate's major number
    (`check_version`). Columns may be missing (a rule on one is "no data"), but every
    column present must hold its declared kind of value (or only nulls), the key must be
    a non-null, unique string, and `status` must hold a known status in every row (a run
    file must have it; a capture or replay file read only for its timings may lack it).

    Args:
        table: The table.
        source: Where it came from, for messages.
        kind: One of `FILE_KINDS`: the kind of file the caller reads (a gate judges runs,
            a report's `--capture` draws captures); None accepts any.

    Returns:
        The columns of its kind (`COLUMNS`, `CAPTURE_COLUMNS` or `REPLAY_COLUMNS`).

    Raises:
        TableError: Anything malformed, or a file of another kind than `kind`.
    """
    import pyarrow.compute as pc

    names = table.column_names
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TableError(f"{source}: columns appear more than once: {', '.join(map(repr, twice))}")
    meta = table.schema.metadata or {}
    version = meta.get(META_SCHEMA_VERSION.encode())
    check_version(version.decode("utf-8", "replace") if version is not None else None, source)
    allowed: tuple[str, ...]
    if PAIR_ID.name in names:
        columns, key, status, allowed = COLUMNS, PAIR_ID, STATUS, STATUSES
    elif ID.name in names:
        columns = REPLAY_COLUMNS if BYTE_IDENTICAL.name in names else CAPTURE_COLUMNS
        key, status, allowed = ID, CAPTURE_STATUS, (STATUS_OK, STATUS_ERROR)
    else:
        raise TableError(f"{source}: not a pixgate run, capture or replay file (no {PAIR_ID.name} or {ID.name} column)")
    if kind == "run" and columns is not COLUMNS:
        raise TableError(
            f"{source}: a capture or replay file (an {ID.name!r} column, no {PAIR_ID.name!r}), not a run file; "
            "score its folders with `pixgate score` and give that run"
        )
    if kind == "capture" and columns is COLUMNS:
        raise TableError(
            f"{source}: a run file (a {PAIR_ID.name!r} column), not a capture or replay file; "
            "give the capture.arrow that `pixgate capture` or `pixgate replay` wrote"
        )
    for col in columns:
        if col.name not in names:
            continue
        found = table.schema.field(col.name).type
        if arrow_kind(found) not in (dtype_kind(col.dtype), "null"):
            raise TableError(f"{source}: column {col.name!r} holds {found}; a pixgate file has {col.dtype} there")
    keys = table.column(key.name)
    if arrow_kind(keys.type) != "string" or keys.null_count:
        raise TableError(f"{source}: column {key.name!r} must be a string in every row ({keys.null_count} nulls)")
    if pc.count_distinct(keys).as_py() != table.num_rows:
        counts = pc.value_counts(keys)
        twice = [v["values"] for v in counts.to_pylist() if v["counts"] > 1][:3]
        raise TableError(f"{source}: {key.name} values appear more than once: {', '.join(map(repr, twice))}")
    if status.name not in names:
        if columns is not COLUMNS:
            return columns  # a capture or replay file read for its timings alone
        raise TableError(f"{source}: no {status.name!r} column")
    values = table.column(status.name)
    unknown = set(values.unique().to_pylist()) - set(allowed) if arrow_kind(values.type) == "string" else {None}
    if values.null_count or unknown:
        shown = ", ".join(sorted(repr(v) for v in unknown | ({None} if values.null_count else set())))
        raise TableError(f"{source}: {status.name!r} holds {shown}; allowed: {', '.join(allowed)}")
    return columns


def markdown_table(columns: tuple[Column, ...] = COLUMNS) -> str:
    """A column table of docs/ (the run's unless `columns` says otherwise)."""
    lines = ["| column | type | unit | meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.unit} | {c.doc} |" for c in columns]
    return "\n".join(lines)


__all__ = [
    "CAPTURE_COLUMNS",
    "COLUMNS",
    "COLUMN_NAMES",
    "FIELD_DESCRIPTION",
    "FIELD_UNIT",
    "FILE_KINDS",
    "REPLAY_COLUMNS",
    "SCHEMA_VERSION",
    "STATUSES",
    "Column",
    "TableError",
    "arrow_kind",
    "arrow_schema",
    "check_table",
    "check_version",
    "column_types",
    "dtype_kind",
    "empty_row",
    "field_metadata",
    "markdown_table",
]
__all__ += _metadata.__all__


if __name__ == "__main__":
    for _title, _columns in (("run", COLUMNS), ("capture", CAPTURE_COLUMNS), ("replay", REPLAY_COLUMNS)):
        print(f"{_title} file:\n\n{markdown_table(_columns)}\n")
