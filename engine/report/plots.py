"""The report's plots, as inline SVG: quality distributions, timing distributions (apart:
time is cost, not quality) and the captures' latency and GPU time."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pixgate.errors import UsageError
from pixgate.runs import schema

if TYPE_CHECKING:
    import pyarrow as pa

#: Columns plotted as quality distributions, in this order, when they hold values.
QUALITY: Final = (
    schema.LPIPS, schema.DELTA_E_MEAN, schema.DELTA_E_P95, schema.EDGE_PRESERVATION,
    schema.CHROMA_SHIFT, schema.LIGHTNESS_SHIFT, schema.ALPHA_MAE, schema.ALPHA_IOU,
    schema.ASPECT_RATIO_DELTA, schema.TEXT_CER, schema.TEXT_SHARPNESS,
)  # fmt: skip
#: Columns plotted as timing distributions.
TIMING: Final = (schema.GPU_MS, schema.COMPUTE_MS, schema.DECODE_MS, schema.ENERGY_J)
# Ticks per axis: few enough that labels never overlap on a small plot.
_TICKS = 4


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9})
    return plt


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    # No metadata block: it carries a date (the page would differ run to run) and RDF
    # namespace URLs that have no business in an offline page.
    metadata = {"Creator": None, "Date": None, "Format": None, "Type": None}
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=metadata)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _readable(ax: Any) -> None:
    """Plain tick labels: a few, without an offset (values near 1, like `alpha_iou`'s,
    otherwise read `+9.999e-1` at the axis end), in at most four significant digits."""
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(_TICKS))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%.4g"))
    ax.spines[["top", "right"]].set_visible(False)


def _finite(column: pa.ChunkedArray) -> Iterator[np.ndarray]:
    """The finite values of a column, one Arrow chunk at a time, as float arrays (never a
    Python object per row: a run may hold a million of them)."""
    import pyarrow as pa

    if pa.types.is_null(column.type):
        return
    for chunk in column.chunks:
        values = chunk.drop_null().to_numpy(zero_copy_only=False).astype(float, copy=False)
        yield values[np.isfinite(values)]


def _binned(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray] | None:
    """(counts, edges) of a column's finite values, binned chunk by chunk: one pass for
    their count and span, one for the counts. None when it holds no finite value.

    Raises:
        ValueError: A span no bins can split (values beyond floats apart).
    """
    count, low, high = 0, np.inf, -np.inf
    for values in _finite(column):
        if values.size:
            count, low, high = count + values.size, min(low, values.min()), max(high, values.max())
    if not count:
        return None
    bins = min(40, max(5, int(math.sqrt(count))))
    # One value: a bin around it, so the bar has a width and the axis a scale.
    span = (float(low) - 0.5, float(high) + 0.5) if low == high else (float(low), float(high))
    with np.errstate(over="ignore", invalid="ignore"):  # such spans raise below; no stray warnings
        edges = np.histogram_bin_edges(np.empty(0), bins=bins, range=span)
        counts = sum((np.histogram(v, bins=bins, range=span)[0] for v in _finite(column)), np.zeros(bins, np.int64))
    return counts, edges


def histograms(table: pa.Table, columns: tuple[schema.Column, ...], notes: list[str]) -> list[tuple[str, str]]:
    """(column, SVG) of each of `columns` that holds finite values; a column no histogram
    can bin is left out with a line in `notes`. The values are binned from the column's
    arrays, so memory stays a column's worth of floats whatever the run holds, and each
    plot is `bins` bars whatever the number of pairs."""
    plt = _pyplot()
    out = []
    for col in columns:
        if col.name not in table.column_names:
            continue
        try:
            binned = _binned(table.column(col.name))
        except (ValueError, OverflowError) as exc:
            # A span beyond floats: the plot is left out, said, and the table has the values.
            notes.append(f"no histogram of {col.name}: its values cannot be binned ({exc})")
            continue
        if binned is None:
            continue
        counts, edges = binned
        fig, ax = plt.subplots(figsize=(3.6, 2.2))
        try:
            # The counts drawn as a histogram of one weighted value per bin.
            ax.hist(edges[:-1], bins=edges, weights=counts, color="#4c72b0")
            ax.set_xlabel(f"{col.name} ({col.unit})" if col.unit else col.name)
            ax.set_ylabel("pairs")
            _readable(ax)
            out.append((col.name, _svg(fig)))
        except (ValueError, OverflowError) as exc:
            notes.append(f"no histogram of {col.name}: its values cannot be drawn ({exc})")
        finally:
            plt.close(fig)
    return out


def capture_plots(captures: list[Path], error: type[UsageError], notes: list[str]) -> list[tuple[str, str]]:
    """(title, SVG) of the latency and GPU time ECDFs of capture files, one line each; a
    plot that cannot be drawn is left out with a line in `notes`.

    Raises:
        error: A capture file that cannot be read (named by the field `capture`).
    """
    from pixgate.runs.files import RunFileError, read_run

    plt = _pyplot()
    series: dict[str, list[tuple[str, np.ndarray]]] = {schema.LATENCY_MS.name: [], schema.GPU_MS.name: []}
    for path in captures:
        try:
            table = read_run(path, kind="capture")
        except RunFileError as exc:
            raise error.about("{capture}: {problem}", problem=exc) from None
        label = path.parent.name if path.stem == "capture" else path.stem
        # Taken literally: matplotlib hides a label starting with "_" and reads "$...$" as maths.
        label = " " + label.replace("$", r"\$")
        for name, found in series.items():
            if name in table.column_names:
                values = np.concatenate([np.empty(0), *_finite(table.column(name))])
                if values.size:
                    found.append((label, np.sort(values)))
    out = []
    for name, found in series.items():
        if not found:
            continue
        fig, ax = plt.subplots(figsize=(4.2, 2.4))
        for label, values in found:
            ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", label=label)
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylabel("share of requests")
        ax.legend(frameon=False)
        try:
            _readable(ax)
            out.append((f"{name} (ECDF)", _svg(fig)))
        except (ValueError, OverflowError) as exc:
            notes.append(f"no ECDF of {name}: its values cannot be drawn ({exc})")
        finally:
            plt.close(fig)
    return out


__all__ = ["QUALITY", "TIMING", "capture_plots", "histograms"]
