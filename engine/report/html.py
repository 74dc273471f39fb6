"""`pixgate report`: one self-contained HTML page that shows what changed in a run.

Everything is inlined (pictures as data URIs, plots as SVG, CSS and the table-sorting
script), so the page reads offline and can be attached to a CI run; it makes no request
outside its own file.

The worst pairs come first by a documented ranking (pixgate.config.REPORT_SCALES): pairs
that break parity checks (status, alpha, ICC, size, typography), most first; then by the
largest of LPIPS / 0.1, mean Delta E / 2.3 and lost edge strength / 0.1. Each is shown as
baseline and candidate thumbnails beside three maps computed on the pictures scaled to
`REPORT_MAP_SIDE`: the LPIPS spatial map (needs backbone weights; left out with a note
without them), the edge-loss map (baseline Sobel magnitude minus the candidate's, where
positive, from the edge kernel) and the alpha-difference map.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pixgate import __version__
from pixgate.config import (
    DEFAULT_MAX_PIXELS,
    REPORT_MAP_SIDE,
    REPORT_SCALES,
    REPORT_THUMB_SIDE,
    REPORT_TOP,
)
from pixgate.errors import UsageError
from pixgate.runs import schema
from pixgate.runs.files import run_metadata
from pixgate.safe_io import atomic_write
from pixgate.scoring.backbones import DEFAULT_NET
from pixgate.scoring.decode import DecodedPair

if TYPE_CHECKING:
    import pyarrow as pa

# Columns plotted as distributions, in this order, when they hold values.
_PLOTTED = (
    schema.LPIPS, schema.DELTA_E_MEAN, schema.DELTA_E_P95, schema.EDGE_PRESERVATION,
    schema.CHROMA_SHIFT, schema.LIGHTNESS_SHIFT, schema.ALPHA_MAE, schema.ALPHA_IOU,
    schema.ASPECT_RATIO_DELTA, schema.TEXT_CER, schema.TEXT_SHARPNESS,
    schema.GPU_MS, schema.COMPUTE_MS, schema.DECODE_MS,
)  # fmt: skip
# Columns of the all-pairs table.
_TABLE = (
    schema.PAIR_ID, schema.STATUS, schema.LPIPS, schema.DELTA_E_MEAN, schema.EDGE_PRESERVATION,
    schema.ALPHA_PARITY, schema.ICC_MATCH, schema.SIZE_MATCH, schema.TEXT_PASS, schema.ERROR,
)  # fmt: skip
# Outline colour of text regions on a report's thumbnails (RGBA).
_REGION = (255, 0, 200, 255)
# Boolean checks whose false value is a parity failure, with how the report names it.
_PARITY = (
    (schema.ALPHA_PARITY, "alpha dropped or added"),
    (schema.ICC_MATCH, "colour space changed"),
    (schema.SIZE_MATCH, "size changed"),
    (schema.TEXT_PASS, "text lost"),
)
_META_SHOWN = (
    ("pixgate", schema.META_PIXGATE_VERSION),
    ("device", schema.META_DEVICE_NAME),
    ("LPIPS", schema.META_LPIPS_VERSION),
    ("weights sha256", schema.META_WEIGHTS_SHA256),
    ("baseline", schema.META_BASELINE_ROOT),
    ("candidate", schema.META_CANDIDATE_ROOT),
    ("started", schema.META_STARTED_AT),
    ("ended", schema.META_ENDED_AT),
    ("manifest", schema.META_MANIFEST),
    ("OCR", schema.META_OCR),
    ("note", schema.META_LPIPS_NOTE),
    ("GPU", schema.META_GPU_NOTE),
)


class ReportError(UsageError, ValueError):
    """A report that cannot be built: unreadable run, verdict or capture file."""


@dataclass(frozen=True)
class ReportStats:
    """What a report build produced.

    Attributes:
        path: The HTML file.
        bytes: Its size.
        pairs: Rows in the run.
        shown: Pairs shown with pictures.
        seconds: Build time.
        notes: Things left out, and why.
    """

    path: Path
    bytes: int
    pairs: int
    shown: int
    seconds: float
    notes: tuple[str, ...]


def _problems(row: dict[str, Any]) -> list[str]:
    found = []
    if row[schema.STATUS.name] != schema.STATUS_OK:
        found.append(str(row[schema.STATUS.name]))
    found += [label for col, label in _PARITY if row.get(col.name) is False]
    return found


def severity(row: dict[str, Any]) -> tuple[int, float]:
    """The report's ranking key of one row: (parity failures, worst scaled measure)."""
    measures = [0.0]
    if row.get(schema.LPIPS.name) is not None:
        measures.append(row[schema.LPIPS.name] / REPORT_SCALES["lpips"])
    if row.get(schema.DELTA_E_MEAN.name) is not None:
        measures.append(row[schema.DELTA_E_MEAN.name] / REPORT_SCALES["delta_e_mean"])
    if row.get(schema.EDGE_PRESERVATION.name) is not None:
        measures.append((1.0 - row[schema.EDGE_PRESERVATION.name]) / REPORT_SCALES["edge_loss"])
    return len(_problems(row)), max(measures)


def rank_worst(rows: list[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    """The `top` worst rows, worst first (ties by pair_id)."""
    keyed = sorted(rows, key=lambda r: (tuple(-v for v in severity(r)), r[schema.PAIR_ID.name]))
    return keyed[:top]


def _uri(img: Any, *, alpha: bool = False) -> str:
    """A PIL image as a WebP data URI (lossless for pictures with transparency)."""
    buf = io.BytesIO()
    img.save(buf, format="WEBP", quality=82, lossless=alpha, method=4)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode()


def _fit(rgba: np.ndarray, side: int) -> Any:
    from PIL import Image

    img = Image.fromarray(rgba, "RGBA")
    scale = side / max(img.size)
    if scale < 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        # reducing_gap: a cheap box reduction first, LANCZOS for the last factor of 3.
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img


def _heat(values: np.ndarray, cmap: str, peak: float) -> Any:
    from matplotlib import colormaps
    from PIL import Image

    scaled = np.clip(values / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(values)
    return Image.fromarray((colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8), "RGB")


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    # No metadata block: it carries a date (the page would differ run to run) and RDF
    # namespace URLs that have no business in an offline page.
    metadata = {"Creator": None, "Date": None, "Format": None, "Type": None}
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=metadata)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _histograms(table: pa.Table) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9})
    out = []
    for col in _PLOTTED:
        if col.name not in table.column_names:
            continue
        values = np.array([v for v in table.column(col.name).to_pylist() if v is not None], dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        fig, ax = plt.subplots(figsize=(3.6, 2.2))
        ax.hist(values, bins=min(40, max(5, int(math.sqrt(values.size)))), color="#4c72b0")
        ax.set_xlabel(col.name)
        ax.set_ylabel("pairs")
        ax.spines[["top", "right"]].set_visible(False)
        out.append((col.name, _svg(fig)))
        plt.close(fig)
    return out


def _capture_plots(captures: list[Path]) -> list[tuple[str, str]]:
    import matplotlib.pyplot as plt

    from pixgate.runs.files import RunFileError, read_run

    series: dict[str, list[tuple[str, np.ndarray]]] = {schema.LATENCY_MS.name: [], schema.GPU_MS.name: []}
    for path in captures:
        try:
            table = read_run(path)
        except RunFileError as exc:
            raise ReportError.about("{capture}: {problem}", problem=exc) from None
        label = path.parent.name if path.stem == "capture" else path.stem
        for name, found in series.items():
            if name in table.column_names:
                values = np.array([v for v in table.column(name).to_pylist() if v is not None], dtype=float)
                if values.size:
                    found.append((label, np.sort(values)))
    out = []
    for name, found in series.items():
        if not found:
            continue
        fig, ax = plt.subplots(figsize=(4.2, 2.4))
        for label, values in found:
            ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", label=label)
        ax.set_xlabel(name)
        ax.set_ylabel("share of requests")
        ax.legend(frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        out.append((f"{name} (ECDF)", _svg(fig)))
        plt.close(fig)
    return out


def _load_model(weights: Path | None, net: str) -> tuple[Any, str | None]:
    from pixgate.scoring.models import load_lpips_if_available

    model, why = load_lpips_if_available(net, weights)
    if model is None:
        return None, f"LPIPS maps left out: {why}; `pixgate weights` shows where they are looked for"
    return model, None


def _outside(path: str, root: str | None, files_under: Path) -> bool:
    """A picture path from the run that does not lie in the folder the run recorded for its
    side (or the run recorded none), or not under `files_under`: not opened."""
    from pixgate.safe_io import inside

    if "://" in path or root is None or "://" in root:
        return True
    return not inside(Path(path), Path(root)) or not inside(Path(path), files_under)


def _cards(
    rows: list[dict[str, Any]],
    model: Any,
    roots: tuple[str | None, str | None],
    files_under: Path,
) -> list[tuple[str, bool]]:
    """Each shown pair's card, in the order of `rows`: (HTML, pictures shown).

    Pictures are read only from inside the folders the run recorded (`roots`) and under
    `files_under`: a run file is data, and its paths and recorded folders could name any
    file on the machine. They are decoded in worker processes (pixgate.scoring.workers), like a
    run's: a file that crashes a decoder or decodes for too long costs its own pictures,
    not the report. Each card is built as its pair arrives and its pixels dropped, with one
    pair in flight per worker, so memory stays a few pairs' worth however large `--top`.
    """

    from pixgate.scoring.pairing import Pair
    from pixgate.scoring.workers import DecodePool
    from pixgate.telemetry import cpu_count

    cards: dict[str, tuple[str, bool]] = {}
    pairs = []
    by_id = {row[schema.PAIR_ID.name]: row for row in rows}
    for pid, row in by_id.items():
        base, cand = row.get(schema.BASELINE_PATH.name), row.get(schema.CANDIDATE_PATH.name)
        if not base or not cand:
            cards[pid] = _pair_card(row, model, "one side is missing")
        elif _outside(base, roots[0], files_under) or _outside(cand, roots[1], files_under):
            why = f"their files are not inside the folders the run recorded, or not under {files_under} (--files-under)"
            cards[pid] = _pair_card(row, model, why)
        else:
            pairs.append(Pair(pid, Path(base), Path(cand)))
    if pairs:
        workers = max(1, min(cpu_count(), len(pairs)))
        # Resizing, encoding (Pillow), the LPIPS maps (torch) and the edge kernel (numba,
        # nogil) all release the GIL: one thread per core builds the cards.
        with ThreadPoolExecutor(max_workers=workers) as threads:
            building: dict[Future[tuple[str, bool]], str] = {}
            pool = DecodePool(pairs, workers, DEFAULT_MAX_PIXELS, inflight=1)
            try:
                pool.refill()
                while pool.busy or building:
                    if building and (len(building) >= workers or not pool.busy):
                        done, _ = wait(list(building), return_when=FIRST_COMPLETED)
                        for future in done:
                            cards[building.pop(future)] = future.result()
                        continue
                    for pair, dp in pool.collect(block=True):
                        building[threads.submit(_pair_card, by_id[pair.pair_id], model, dp)] = pair.pair_id
            finally:
                pool.close()
    return [cards[row[schema.PAIR_ID.name]] for row in rows]


def _pair_card(row: dict[str, Any], model: Any, pictures: DecodedPair | str | None) -> tuple[str, bool]:
    """One worst pair's card; returns its HTML and whether pictures could be shown."""
    from pixgate_kernels.cpu import edge_magnitudes_cpu

    pid = row[schema.PAIR_ID.name]
    facts = ", ".join(_problems(row)) or "no parity failure"
    numbers = " · ".join(
        f"{col.name} {row[col.name]:.4g}"
        for col in (schema.LPIPS, schema.DELTA_E_MEAN, schema.EDGE_PRESERVATION, schema.TEXT_CER)
        if isinstance(row.get(col.name), float)
    )
    head = f'<h3 id="pair-{html.escape(pid)}">{html.escape(pid)}</h3><p class="facts">{html.escape(facts)}'
    head += f"<br>{html.escape(numbers)}</p>" if numbers else "</p>"
    if row[schema.STATUS.name] != schema.STATUS_OK:
        head += f'<p class="error">{html.escape(str(row[schema.ERROR.name] or ""))}</p>'
    dp = pictures
    if not isinstance(dp, DecodedPair) or dp.baseline is None or dp.candidate_aligned is None:
        why = dp if isinstance(dp, str) else (dp.error if dp is not None else None) or "could not decode"
        return f'<div class="card">{head}<p class="note">no pictures: {html.escape(why)}</p></div>', False
    cand_own = dp.candidate.rgba if dp.candidate is not None else dp.candidate_aligned
    alpha = bool(dp.baseline.has_alpha or (dp.candidate is not None and dp.candidate.has_alpha))
    failed_text = row.get(schema.TEXT_PASS.name) is False
    boxes = _text_boxes(row, dp.baseline.width, dp.baseline.height) if failed_text else []
    base_label, cand_label = (
        ("baseline, text regions", "candidate, text regions") if boxes else ("baseline", "candidate")
    )
    tiles = [
        (base_label, _uri(_regions(_fit(dp.baseline.rgba, REPORT_THUMB_SIDE), boxes, dp.baseline.rgba), alpha=alpha)),
        (cand_label, _uri(_regions(_fit(cand_own, REPORT_THUMB_SIDE), boxes, dp.baseline.rgba), alpha=alpha)),
    ]
    small_b = np.asarray(_fit(dp.baseline.rgba, REPORT_MAP_SIDE))
    small_c = np.asarray(_fit(dp.candidate_aligned, REPORT_MAP_SIDE).resize(small_b.shape[1::-1]))
    notes = []
    if model is not None:
        import torch

        with torch.inference_mode():
            x0 = model.prepare(torch.from_numpy(small_b.copy())[None])
            x1 = model.prepare(torch.from_numpy(small_c.copy())[None])
            lp_map = model.spatial(x0, x1)[0].numpy()
        tiles.append((f"LPIPS map (max {lp_map.max():.3g})", _uri(_heat(lp_map, "inferno", float(lp_map.max())))))
    edges = edge_magnitudes_cpu(np.ascontiguousarray(small_b[None]), np.ascontiguousarray(small_c[None]))
    lost = np.maximum(edges[0, 0] - edges[1, 0], 0.0)
    tiles.append(("edge loss", _uri(_heat(lost, "magma", float(edges[0, 0].max())))))
    if alpha:
        diff = np.abs(small_b[..., 3].astype(float) - small_c[..., 3].astype(float)) / 255.0
        tiles.append(("alpha difference", _uri(_heat(diff, "viridis", 1.0))))
    else:
        notes.append("no alpha on either side")
    figures = "".join(
        f'<figure><img src="{uri}" alt="{html.escape(label)} of {html.escape(pid)}"><figcaption>'
        f"{html.escape(label)}</figcaption></figure>"
        for label, uri in tiles
    )
    note = f'<p class="note">{html.escape("; ".join(notes))}</p>' if notes else ""
    text = _text_readings(row) if failed_text else ""
    return f'<div class="card">{head}<div class="tiles">{figures}</div>{text}{note}</div>', True


def _text_boxes(row: dict[str, Any], width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The row's text regions in the baseline's pixels; none when the run's value is
    malformed or does not fit the baseline (a run file comes from anywhere)."""
    from pixgate.config import OCR_MAX_REGIONS
    from pixgate.safe_io import loads_json

    try:
        boxes = loads_json(row.get(schema.TEXT_BOXES.name) or "[]")
    except ValueError:
        return []
    if not isinstance(boxes, list) or len(boxes) > OCR_MAX_REGIONS:
        return []
    ok = [
        (b[0], b[1], b[2], b[3])
        for b in boxes
        if isinstance(b, list)
        and len(b) == 4
        and all(type(v) is int for v in b)
        and 0 <= b[0] < b[2] <= width
        and 0 <= b[1] < b[3] <= height
    ]
    return ok if len(ok) == len(boxes) else []


def _regions(thumb: Any, boxes: list[tuple[int, int, int, int]], base: np.ndarray) -> Any:
    """The thumbnail with the text regions outlined, scaled from baseline pixels to it (a
    candidate of another size is shown at its own proportions, so the boxes follow)."""
    if not boxes:
        return thumb
    from PIL import ImageDraw

    out = thumb.convert("RGBA")
    sx, sy = out.width / base.shape[1], out.height / base.shape[0]
    draw = ImageDraw.Draw(out)
    for x0, y0, x1, y1 in boxes:
        draw.rectangle((x0 * sx, y0 * sy, max(x1 * sx - 1, x0 * sx), max(y1 * sy - 1, y0 * sy)), outline=_REGION)
    return out


def _text_readings(row: dict[str, Any]) -> str:
    """What OCR read in each region, baseline beside candidate (as many regions and
    characters as a run can hold: a run file from elsewhere cannot bloat the page)."""

    from pixgate.config import OCR_MAX_READ_CHARS, OCR_MAX_REGIONS

    base = str(row.get(schema.OCR_BASELINE.name) or "").split("\n")[:OCR_MAX_REGIONS]
    cand = str(row.get(schema.OCR_CANDIDATE.name) or "").split("\n")[:OCR_MAX_REGIONS]
    lines = "".join(
        f"<tr><td>{i + 1}</td><td>{html.escape(b[:OCR_MAX_READ_CHARS])}</td>"
        f"<td>{html.escape(c[:OCR_MAX_READ_CHARS])}</td></tr>"
        for i, (b, c) in enumerate(zip_longest(base, cand, fillvalue=""))
    )
    expected = row.get(schema.TEXT_EXPECTED.name)
    shown = str(expected)[: OCR_MAX_REGIONS * OCR_MAX_READ_CHARS]
    want = f'<p class="note">expected: {html.escape(shown)}</p>' if expected else ""
    return (
        '<table class="ocr"><caption>text read in each region</caption><thead><tr><th>region</th>'
        f"<th>baseline</th><th>candidate</th></tr></thead><tbody>{lines}</tbody></table>{want}"
    )


def _cell(value: Any) -> str:
    if value is None:
        return '<td class="null"></td>'
    if isinstance(value, bool):
        return f'<td class="{"yes" if value else "no"}">{"yes" if value else "no"}</td>'
    if isinstance(value, float):
        return f'<td data-v="{value!r}">{value:.4g}</td>'
    return f"<td>{html.escape(str(value))}</td>"


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{margin:0 0 8px}h2{margin-top:32px;border-bottom:1px solid #ddd}
.banner{padding:12px 16px;border-radius:6px;font-size:18px;font-weight:600;margin:12px 0}
.pass{background:#d9f2dd;color:#135c1f}.marginal{background:#fff1c2;color:#6b5100}
.fail{background:#fbd5d5;color:#8a1414}.none{background:#eee;color:#444}
dl{display:grid;grid-template-columns:repeat(2,max-content auto);gap:2px 16px;font-size:13px}
dt{color:#666}dd{margin:0;word-break:break-all}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:12px 0}
.tiles{display:flex;flex-wrap:wrap;gap:8px}.tiles figure{margin:0}.tiles img{max-width:256px;display:block;
background:repeating-conic-gradient(#eee 0 25%,#fff 0 50%) 0 0/16px 16px}
figcaption{font-size:12px;color:#555}.facts{margin:2px 0}.error{color:#8a1414}.note{color:#666;font-style:italic}
.ocr{border-collapse:collapse;font-size:13px;margin:6px 0}
.ocr td,.ocr th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
table.pairs{border-collapse:collapse;font-size:12px}
table.pairs th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}
table.pairs td,table.pairs th{border:1px solid #ddd;padding:2px 6px}td.no{background:#fbd5d5}td.null{background:#fafafa}
"""

_SORT_JS = """
document.querySelectorAll('table.pairs th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
  const key = td => td.dataset.v !== undefined ? parseFloat(td.dataset.v) : td.textContent;
  [...body.rows].sort((a, b) => {
    const x = key(a.cells[i]), y = key(b.cells[i]);
    const c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
    return asc ? c : -c;
  }).forEach(r => body.appendChild(r));
}));
"""


def build_report(
    run: Path,
    output: Path,
    *,
    verdict: Path | None = None,
    captures: list[Path] | None = None,
    top: int = REPORT_TOP,
    weights: Path | None = None,
    net: str = DEFAULT_NET,
    files_under: Path | None = None,
) -> ReportStats:
    """Write the HTML report of a run.

    Args:
        run: The run file.
        output: The HTML file to write.
        verdict: A verdict from `pixgate gate --json`, shown as the banner.
        captures: Capture files whose latency and GPU time are plotted against each other.
        top: Worst pairs shown with pictures and maps.
        weights: Backbone weights for the LPIPS maps (resolved like `score`'s, never
            downloaded); without any, the maps are left out with a note.
        net: LPIPS backbone of the maps.
        files_under: Pictures are read only under this folder (default: the current
            folder), and only inside the folders the run recorded.

    Raises:
        ReportError: Unreadable run, verdict or capture file.
    """
    from pixgate.runs.files import RunFileError, read_run, read_verdict

    started = time.perf_counter()
    try:
        table = read_run(run)
        doc = read_verdict(verdict) if verdict is not None else None
    except RunFileError as exc:
        raise ReportError(str(exc)) from None
    if schema.PAIR_ID.name not in table.column_names:
        raise ReportError(f"{run}: not a pixgate run (no {schema.PAIR_ID.name} column): a capture or replay file?")
    meta = run_metadata(table)
    roots = (meta.get(schema.META_BASELINE_ROOT), meta.get(schema.META_CANDIDATE_ROOT))
    rows = [{**schema.empty_row(), **r} for r in table.to_pylist()]
    notes: list[str] = []

    parts = [f"<h1>pixgate report: {html.escape(run.name)}</h1>"]
    if doc is not None:
        kind = doc.get("verdict", "none")
        reason = html.escape(str(doc.get("reason", "")))
        parts.append(
            f'<div class="banner {html.escape(kind)}">verdict: {html.escape(str(kind).upper())} '
            f"(score {doc.get('score', 0):.1f}/100; {reason})</div>"
        )
        failing = [r for r in doc.get("rules", []) if r.get("result") == "fail"]
        if failing:
            items = "".join(
                f"<li>{html.escape(str(r['name']))}: {html.escape(str(r.get('shown', '')))}</li>" for r in failing
            )
            parts.append(f"<p>failed rules:</p><ul>{items}</ul>")
    else:
        parts.append('<div class="banner none">no verdict given (pixgate gate --json makes one)</div>')
    statuses = {s: sum(1 for r in rows if r[schema.STATUS.name] == s) for s in schema.STATUSES}
    facts = [(label, meta.get(key, "")) for label, key in _META_SHOWN if meta.get(key)]
    facts += [("pairs", str(len(rows)))] + [(f"  {s}", str(n)) for s, n in statuses.items() if n]
    facts += [(label, str(sum(1 for r in rows if r.get(col.name) is False))) for col, label in _PARITY]
    facts.append(("report by", f"pixgate {__version__}"))
    parts.append("<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts) + "</dl>")

    worst = rank_worst(rows, top)
    model, why = _load_model(weights, net) if worst else (None, None)
    if why:
        notes.append(why)
    built = _cards(worst, model, roots, files_under or Path.cwd())
    cards = [card for card, _ in built]
    shown = sum(pictured for _, pictured in built)
    parts.append(
        f'<h2>The {len(worst)} worst pairs</h2><p class="note">Ranked by parity failures, then by the largest of '
        f"LPIPS/{REPORT_SCALES['lpips']}, mean ΔE/{REPORT_SCALES['delta_e_mean']} and edge loss/"
        f"{REPORT_SCALES['edge_loss']}. Maps are computed at {REPORT_MAP_SIDE} px.</p>" + "".join(cards)
    )
    # Pictures first (what broke and how), then the distributions, then every pair.
    plots = _histograms(table)
    if plots:
        figs = "".join(f"<figure>{svg}</figure>" for _, svg in plots)
        parts.append(f'<h2>Distributions</h2><div class="plots">{figs}</div>')
    if captures:
        cap = _capture_plots(captures)
        if cap:
            figs = "".join(f"<figure>{svg}<figcaption>{html.escape(t)}</figcaption></figure>" for t, svg in cap)
            parts.append(f'<h2>Latency and GPU time of the captures</h2><div class="plots">{figs}</div>')
        else:
            notes.append("the capture files hold no latency_ms or gpu_ms values")
    if notes:
        parts.insert(1, "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes))

    head = "".join(f"<th>{html.escape(c.name)}</th>" for c in _TABLE)
    body = "".join("<tr>" + "".join(_cell(r.get(c.name)) for c in _TABLE) + "</tr>" for r in rows)
    parts.append(
        f'<h2>All pairs ({len(rows)})</h2><p class="note">Click a column to sort.</p>'
        f'<table class="pairs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>pixgate report: {html.escape(run.name)}</title><style>{_CSS}</style></head><body>"
        + "".join(parts)
        + f"<script>{_SORT_JS}</script></body></html>"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, page.encode("utf-8"))
    return ReportStats(output, output.stat().st_size, len(rows), shown, time.perf_counter() - started, tuple(notes))


__all__ = ["ReportError", "ReportStats", "build_report", "rank_worst", "severity"]
