"""`pixgate report`: one self-contained HTML page that shows what changed in a run.

Everything is inlined (pictures as data URIs, plots as SVG, CSS and a small script), so
the page reads offline and can be attached to a CI run; it makes no request outside its
own file. Its size is bounded whatever the run holds: full-resolution views for the
first `REPORT_FULL_PAIRS` cards only, each at most `REPORT_VIEW_MAX_PIXELS`, thumbnails
after them, at most `REPORT_MAX_TOP` cards, plots of a fixed number of bins, and a table
of the worst `REPORT_TABLE_ROWS` pairs with a note saying how many it leaves out. Its
memory is bounded too: the run is memory-mapped and read by column (the ranking and the
histograms are array operations), and only the rows shown become Python objects.

The worst pairs come first by a documented ranking: pairs that break the verdict's
rules (when one is given), most first; then pairs that break parity checks (status,
alpha, ICC, size, typography), most first; then by the largest of LPIPS / 0.1, mean
Delta E / 2.3 and lost edge strength / 0.1 (pixgate.config.REPORT_SCALES). Each card
names the rules its pair broke with its values against the bounds, compares before and
after (slider, blink, full size), and shows the maps of pixgate.report.maps, computed on
the pictures scaled to `REPORT_MAP_SIDE`, each kind on one fixed scale.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pixgate import __version__
from pixgate.config import (
    REPORT_MAP_SIDE,
    REPORT_MAX_FIELD_CHARS,
    REPORT_MAX_RULE_LINES,
    REPORT_MAX_TOP,
    REPORT_SCALES,
    REPORT_TABLE_ROWS,
    REPORT_TOP,
)
from pixgate.errors import UsageError
from pixgate.runs import schema
from pixgate.runs.files import run_metadata
from pixgate.safe_io import atomic_write, check_output, writing
from pixgate.scoring.backbones import DEFAULT_NET, NETS

from .cards import PARITY, build_cards, card_id
from .maps import LEGEND, MAP_KINDS, bar_css, bar_html
from .plots import QUALITY, TIMING, capture_plots, histograms

if TYPE_CHECKING:
    import pyarrow as pa

# Columns of the all-pairs table.
_TABLE = (
    schema.PAIR_ID, schema.STATUS, schema.LPIPS, schema.DELTA_E_MEAN, schema.EDGE_PRESERVATION,
    schema.ALPHA_PARITY, schema.ICC_MATCH, schema.SIZE_MATCH, schema.TEXT_PASS, schema.ERROR,
)  # fmt: skip
_META_SHOWN = (
    ("pixgate", schema.META_PIXGATE_VERSION),
    ("device", schema.META_DEVICE_NAME),
    ("LPIPS", schema.META_LPIPS_VERSION),
    ("weights sha256", schema.META_WEIGHTS_SHA256),
    ("weights known", schema.META_WEIGHTS_KNOWN),
    ("baseline", schema.META_BASELINE_ROOT),
    ("candidate", schema.META_CANDIDATE_ROOT),
    ("started", schema.META_STARTED_AT),
    ("ended", schema.META_ENDED_AT),
    ("manifest", schema.META_MANIFEST),
    ("OCR", schema.META_OCR),
    ("note", schema.META_LPIPS_NOTE),
    ("GPU", schema.META_GPU_NOTE),
)
#: Largest weights file the report reads where a run recorded it (the largest published
#: backbone file is VGG16's, about 550 MB).
_MAX_WEIGHTS_BYTES: Final = 1024**3


class ReportError(UsageError, ValueError):
    """A report that cannot be built: unreadable run, verdict or capture file."""

    options = frozenset({"capture", "output", "verdict", "weights", "net", "top"})


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


def _floats(table: pa.Table, col: schema.Column) -> np.ndarray:
    """A column as floats, a null (or a column the run lacks) as NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.name not in table.column_names or pa.types.is_null(table.column(col.name).type):
        return np.full(table.num_rows, np.nan)
    column = table.column(col.name).cast(pa.float64(), safe=False)  # an int64 past 2**53 is still a number
    return np.asarray(pc.fill_null(column, float("nan")).to_numpy(), dtype=float)


def _false(table: pa.Table, col: schema.Column) -> np.ndarray:
    """Where a boolean check is false (null and a column the run lacks are not)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.name not in table.column_names or pa.types.is_null(table.column(col.name).type):
        return np.zeros(table.num_rows, bool)
    return np.asarray(pc.fill_null(pc.equal(table.column(col.name), False), False).to_numpy(), dtype=bool)


def rank_worst(table: pa.Table, top: int, broken: dict[str, int] | None = None) -> pa.Array:
    """The row indices of the `top` worst rows of a run, worst first: by the verdict's
    rules broken (`broken`: how many, by pair id), then by parity checks broken (status
    and `PARITY`), then by the largest of LPIPS, mean Delta E and lost edge strength,
    each over its `REPORT_SCALES` (nulls and NaN count as no change), ties by pair id.

    Computed on the columns (numpy and pyarrow's top-k selection), never a Python object
    per row: the cost is a few arrays of the run's length whatever it holds.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = table.num_rows
    if min(top, rows) <= 0:
        return pa.array([], pa.uint64())
    ids = table.column(schema.PAIR_ID.name)
    parity = np.asarray(pc.not_equal(table.column(schema.STATUS.name), schema.STATUS_OK).to_numpy(), dtype=np.int64)
    for col, _ in PARITY:
        parity += _false(table, col)
    with np.errstate(over="ignore", invalid="ignore"):  # a value that overflows once scaled ranks as the worst
        measure = np.fmax.reduce([
            np.zeros(rows),
            _floats(table, schema.LPIPS) / REPORT_SCALES["lpips"],
            _floats(table, schema.DELTA_E_MEAN) / REPORT_SCALES["delta_e_mean"],
            (1.0 - _floats(table, schema.EDGE_PRESERVATION)) / REPORT_SCALES["edge_loss"],
        ])  # fmt: skip
    counts = {pid: n for pid, n in (broken or {}).items() if isinstance(pid, str)}
    found = pc.index_in(ids, value_set=pa.array(list(counts), pa.string()))
    rules = pc.fill_null(pc.take(pa.array(list(counts.values()), pa.int64()), found), 0)
    keys = pa.table({"rules": rules, "parity": parity, "measure": measure, "id": ids})
    order = [("rules", "descending"), ("parity", "descending"), ("measure", "descending"), ("id", "ascending")]
    chosen = pc.select_k_unstable(keys, min(top, rows), sort_keys=order)
    # The selection's order is not promised: the chosen few are sorted by the same keys.
    return pc.take(chosen, pc.sort_indices(keys.take(chosen), sort_keys=order))


def _short(value: Any) -> str:
    """A value of a verdict as a card shows it: short, whatever the verdict holds."""
    text = f"{value:.4g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= REPORT_MAX_FIELD_CHARS else text[:REPORT_MAX_FIELD_CHARS] + "..."


def rules_broken(doc: dict[str, Any] | None) -> dict[str, int]:
    """By pair id, how many of the verdict's rules the pair broke (for the ranking)."""
    if doc is None:
        return {}
    return {pair["pair_id"]: len(set(pair["rules"])) for pair in doc.get("failing_pairs", [])}


def broken_rules(doc: dict[str, Any] | None, pair_ids: set[str]) -> dict[str, list[str]]:
    """For the pairs of `pair_ids`, one line per rule of the verdict the pair broke: the
    rule, the pair's value and the bounds, e.g. `edge preservation (critical):
    edge_preservation 0.81; pass >= 0.9`. A verdict comes from anywhere: each field is
    cut short and a pair lists at most `REPORT_MAX_RULE_LINES` rules."""
    if doc is None:
        return {}
    rules = {r["name"]: r for r in doc.get("rules", [])}
    found: dict[str, list[str]] = {}
    for pair in doc.get("failing_pairs", []):
        if pair["pair_id"] not in pair_ids or pair["pair_id"] in found:
            continue
        lines = found.setdefault(pair["pair_id"], [])
        for name in list(dict.fromkeys(pair["rules"]))[:REPORT_MAX_RULE_LINES]:
            rule = rules.get(name, {})
            key = rule.get("column") if isinstance(rule.get("column"), str) else ""
            column, op = _short(key), _short(rule.get("op", ""))
            value = pair.get("values", {}).get(key)
            bound = f"pass {op} {_short(rule.get('pass'))}"
            if rule.get("marginal") is not None:
                bound += f", marginal {op} {_short(rule.get('marginal'))}"
            critical = " (critical)" if rule.get("critical") is True else ""
            observed = " ".join(part for part in (column, _short(value)) if part)
            lines.append(f"{_short(name)}{critical}: {observed}; {bound}")
    return found


def _weights_for_maps(meta: dict[str, str], weights: Path | None, net: str) -> tuple[Any, str | None]:
    """The LPIPS model for the maps and a note. The run's own weights file where it
    recorded one and that file is torchvision's published one (its sha256 checked: a run
    file is data, and its paths could name anything), else weights found as `score`
    finds them (`weights` first), never downloaded; other weights than the run's get a note."""
    from pixgate.safe_io import UnsafeInputError, sha256_regular
    from pixgate.scoring.models import WeightsFormatError, load_lpips
    from pixgate.scoring.weights import WeightsError, published, resolve_weights

    recorded = meta.get(schema.META_WEIGHTS_SHA256, "")
    source = meta.get(schema.META_WEIGHTS_SOURCE, "")
    if weights is None and published(net, recorded) and ": " in source:
        path = Path(source.split(": ", 1)[1])
        try:
            weights = path if sha256_regular(path, _MAX_WEIGHTS_BYTES) == recorded else None
        except UnsafeInputError:
            weights = None
    try:
        found = resolve_weights(net, weights, allow_download=False)
        model = load_lpips(net, found.path)
    except (WeightsError, WeightsFormatError) as exc:
        why = f"no {net} backbone weights ({str(exc).splitlines()[0]})"
        return None, f"LPIPS maps left out: {why}; give --weights, or `pixgate weights` shows where they are looked for"
    used = found.sha256
    if recorded and used != recorded:
        return model, f"LPIPS maps use other weights (sha256 {used[:12]}...) than the run's ({recorded[:12]}...)"
    return model, None


def _facts(meta: dict[str, str], table: pa.Table) -> str:
    import pyarrow.compute as pc

    counted = {c["values"]: c["counts"] for c in pc.value_counts(table.column(schema.STATUS.name)).to_pylist()}
    facts = [(label, meta.get(key, "")) for label, key in _META_SHOWN if meta.get(key)]
    facts += [("pairs", str(table.num_rows))] + [(f"  {s}", str(counted[s])) for s in schema.STATUSES if counted.get(s)]
    facts += [(label, str(int(_false(table, col).sum()))) for col, label in PARITY]
    facts.append(("report by", f"pixgate {__version__}"))
    return "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts) + "</dl>"


def _banner(doc: dict[str, Any] | None) -> str:
    if doc is None:
        return '<div class="banner none">no verdict given (pixgate gate --json makes one)</div>'
    kind = str(doc.get("verdict", "none"))
    out = (
        f'<div class="banner {html.escape(kind)}">verdict: {html.escape(kind.upper())} '
        f"(score {doc.get('score', 0):.1f}/100; {html.escape(str(doc.get('reason', '')))})</div>"
    )
    failing = [r for r in doc.get("rules", []) if r.get("result") == "fail"]
    if failing:
        items = "".join(
            f"<li>{html.escape(str(r['name']))}: {html.escape(str(r.get('shown', '')))}</li>" for r in failing
        )
        out += f"<p>failed rules:</p><ul>{items}</ul>"
    return out


def _legend() -> str:
    keys = "".join(
        f'<div class="key"><b>{kind.label}</b> ({html.escape(kind.unit)}): {html.escape(kind.legend)}'
        f"{bar_html(kind.key)}</div>"
        for kind in MAP_KINDS
    )
    return f'<div class="legend"><p>{html.escape(LEGEND)}</p>{keys}</div>'


def _plots(title: str, plots: list[tuple[str, str]], note: str = "") -> str:
    figs = "".join(f"<figure>{svg}<figcaption>{html.escape(t)}</figcaption></figure>" for t, svg in plots)
    intro = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return f'<h2>{html.escape(title)}</h2>{intro}<div class="plots">{figs}</div>'


def _cell(value: Any) -> str:
    if value is None:
        return '<td class="null"></td>'
    if isinstance(value, bool):
        return f'<td class="{"yes" if value else "no"}">{"yes" if value else "no"}</td>'
    if isinstance(value, float):
        return f'<td data-v="{value!r}">{value:.4g}</td>'
    # Errors can be long (a run file from anywhere): the table shows their start.
    return f"<td>{html.escape(_short(value))}</td>"


def _all_pairs(rows: list[dict[str, Any]], total: int, cards: dict[str, int]) -> str:
    """The table of pairs (`rows`: the worst, worst first; all of them in a run of up to
    `REPORT_TABLE_ROWS`), sortable; a pair with a card links to it."""

    def first(pid: Any) -> str:
        if pid in cards:
            return f'<td><a href="#{card_id(cards[pid])}">{html.escape(_short(pid))}</a></td>'
        return _cell(pid)

    head = "".join(f"<th>{html.escape(c.name)}</th>" for c in _TABLE)
    body = "".join(
        "<tr>" + first(r.get(_TABLE[0].name)) + "".join(_cell(r.get(c.name)) for c in _TABLE[1:]) + "</tr>"
        for r in rows
    )
    title = f"All pairs ({total})" if len(rows) == total else f"The worst {len(rows)} of {total} pairs"
    return (
        f'<h2>{title}</h2><p class="note">Worst first. Click a column to sort; a pair id links to its card.</p>'
        f'<table class="pairs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def table_note(run: Path, shown: int, total: int) -> str | None:
    """What a capped table leaves out, and how to see it; None when it shows every pair."""
    if shown >= total:
        return None
    return (
        f"the table of pairs shows the worst {shown} of {total} pairs ({total - shown} not shown): "
        f"`pixgate export {run.name} -o pairs.csv` (or .parquet) writes every row"
    )


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{margin:0 0 8px}h2{margin-top:32px;border-bottom:1px solid #ddd}h3{margin:4px 0}
.banner{padding:12px 16px;border-radius:6px;font-size:18px;font-weight:600;margin:12px 0}
.pass{background:#d9f2dd;color:#135c1f}.marginal{background:#fff1c2;color:#6b5100}
.fail{background:#fbd5d5;color:#8a1414}.none{background:#eee;color:#444}
dl{display:grid;grid-template-columns:repeat(2,max-content auto);gap:2px 16px;font-size:13px}
dt{color:#666}dd{margin:0;word-break:break-all}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:12px 0}
ul.broken{margin:2px 0;padding-left:20px;color:#8a1414}
.tiles{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.tiles figure{margin:0}
.map img{width:256px;display:block;image-rendering:pixelated}
.stage{position:relative;display:inline-block;line-height:0;
background:repeating-conic-gradient(#eee 0 25%,#fff 0 50%) 0 0/16px 16px}
.stage img.b{display:block;max-width:min(512px,90vw)}
.stage img.c{position:absolute;top:0;left:0;width:100%;height:100%;clip-path:inset(0 0 0 50%)}
.compare input{width:180px;vertical-align:middle}
.scale{width:256px;font-size:11px;color:#555}.bar{height:8px;border-radius:2px}
.ticks{display:flex;justify-content:space-between}
.legend{display:flex;flex-wrap:wrap;gap:8px 24px;font-size:13px}.legend p{flex-basis:100%;margin:0}
figcaption{font-size:12px;color:#555}.facts{margin:2px 0}.error{color:#8a1414}.note{color:#666;font-style:italic}
.ocr{border-collapse:collapse;font-size:13px;margin:6px 0}
.ocr td,.ocr th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
table.pairs{border-collapse:collapse;font-size:12px}
table.pairs th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}
table.pairs td,table.pairs th{border:1px solid #ddd;padding:2px 6px}td.no{background:#fbd5d5}td.null{background:#fafafa}
#overlay{position:fixed;inset:0;background:rgba(0,0,0,.85);overflow:auto;z-index:9;cursor:zoom-out;padding:16px}
#overlay img{display:block;margin:0 auto 16px;background:#fff}
"""

_JS = """
document.querySelectorAll('table.pairs th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
  // Empty cells last either way; numbers by value, text by text.
  const key = td => td.classList.contains('null') ? null : td.dataset.v !== undefined ? parseFloat(td.dataset.v)
    : td.textContent;
  [...body.rows].sort((a, b) => {
    const x = key(a.cells[i]), y = key(b.cells[i]);
    if (x === null || y === null) return (x === null) - (y === null);
    const c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
    return asc ? c : -c;
  }).forEach(r => body.appendChild(r));
}));
const overlay = document.getElementById('overlay');
overlay.addEventListener('click', () => { overlay.hidden = true; overlay.replaceChildren(); });
document.querySelectorAll('figure.compare').forEach(f => {
  const c = f.querySelector('img.c'), range = f.querySelector('input');
  const clip = () => { c.style.clipPath = `inset(0 0 0 ${range.value}%)`; };
  range.addEventListener('input', clip);
  let timer = null;
  f.querySelector('.blink').addEventListener('click', e => {
    if (timer) {
      clearInterval(timer); timer = null; c.style.visibility = ''; clip(); e.target.textContent = 'blink'; return;
    }
    c.style.clipPath = 'none'; e.target.textContent = 'stop';
    timer = setInterval(() => { c.style.visibility = c.style.visibility === 'hidden' ? '' : 'hidden'; }, 500);
  });
  f.querySelector('.full')?.addEventListener('click', () => {
    overlay.replaceChildren(...[...f.querySelectorAll('img')].map(img => {
      const x = new Image(); x.src = img.src; x.alt = img.alt; x.title = img.alt; return x;
    }));
    overlay.hidden = false;
  });
});
"""


def build_report(
    run: Path,
    output: Path,
    *,
    verdict: Path | None = None,
    captures: list[Path] | None = None,
    top: int = REPORT_TOP,
    weights: Path | None = None,
    net: str | None = None,
    files_under: Path | None = None,
) -> ReportStats:
    """Write the HTML report of a run.

    Args:
        run: The run file.
        output: The HTML file to write; its folder must exist.
        verdict: A verdict from `pixgate gate --json`: the banner, and the rules each
            card's pair broke.
        captures: Capture files whose latency and GPU time ECDFs are drawn, a line each.
        top: Worst pairs shown with pictures and maps.
        weights: Backbone weights for the LPIPS maps; by default the run's (where it
            recorded them, if their sha256 still matches), else found as `score` finds
            them, never downloaded. Without any, the maps are left out with a note.
        net: LPIPS backbone of the maps; by default the run's.
        files_under: Pictures are read only under this folder (default: the current
            folder), and only inside the folders the run recorded.

    Raises:
        ReportError: Unreadable run, verdict or capture file, a verdict of another run (or
            of this one before it was scored again), or a missing output folder.
        pixgate.safe_io.OutputError: The output is not a regular file, is one of the
            inputs, or cannot be written.
    """
    from pixgate.runs.files import RunFileError, check_verdict_run, read_run, read_verdict, run_sha256

    started = time.perf_counter()
    if not output.parent.is_dir():
        raise ReportError.about("{output}: the folder {folder} does not exist", folder=str(output.parent))
    check_output(output, [p for p in (run, verdict, weights, *(captures or ())) if p is not None])
    if not 0 <= top <= REPORT_MAX_TOP:
        raise ReportError.about("{top}: got {got}; use a whole number from 0 to {most}", got=top, most=REPORT_MAX_TOP)
    try:
        doc = read_verdict(verdict) if verdict is not None else None
        # Hashed before and after the run is read, so the rows shown are the bytes the
        # verdict judged: a banner from another run's verdict would tell a false story.
        judged = run_sha256(run) if verdict is not None else None
        table = read_run(run, kind="run")
    except RunFileError as exc:
        raise ReportError(str(exc)) from None
    if verdict is not None and doc is not None:  # doc is None only without a verdict
        try:
            check_verdict_run(doc, verdict, run, judged)
            check_verdict_run(doc, verdict, run)
        except RunFileError as exc:
            raise ReportError.about("{verdict}: {problem}", problem=str(exc)) from None
    meta = run_metadata(table)
    net = net or (meta.get(schema.META_LPIPS_NET) if meta.get(schema.META_LPIPS_NET) in NETS else None) or DEFAULT_NET
    notes: list[str] = []
    # The run is read by column (it is memory-mapped): the ranking and the plots use
    # arrays, and only the rows shown become Python objects.
    order = rank_worst(table, max(top, REPORT_TABLE_ROWS), rules_broken(doc))
    worst = [{**schema.empty_row(), **r} for r in table.take(order[:top]).to_pylist()]
    broken = broken_rules(doc, {row[schema.PAIR_ID.name] for row in worst})

    def model() -> Any:
        found, why = _weights_for_maps(meta, weights, net or DEFAULT_NET)
        if why:
            notes.append(why)
        return found

    roots = (meta.get(schema.META_BASELINE_ROOT), meta.get(schema.META_CANDIDATE_ROOT))
    built = build_cards(worst, model, roots, files_under or Path.cwd(), broken)
    ranking = (
        f"Ranked by the verdict's rules broken, then parity checks broken, then by the largest of "
        f"LPIPS/{REPORT_SCALES['lpips']}, mean ΔE/{REPORT_SCALES['delta_e_mean']} and edge loss/"
        f"{REPORT_SCALES['edge_loss']}. Maps are computed at {REPORT_MAP_SIDE} px. Drag a slider to uncover the "
        "candidate over the baseline; blink swaps them; full size opens both."
    )
    parts = [
        _banner(doc),
        _facts(meta, table),
        f'<h2>The {len(worst)} worst pairs</h2><p class="note">{html.escape(ranking)}</p>{_legend()}'
        + "".join(card for card, _ in built),
    ]
    quality = histograms(table, QUALITY, notes)
    if quality:
        parts.append(_plots("Quality distributions", quality))
    timing = histograms(table, TIMING, notes) + (capture_plots(captures, ReportError, notes) if captures else [])
    if captures and not any(title.endswith("(ECDF)") for title, _ in timing):
        notes.append("the capture files hold no latency_ms or gpu_ms values")
    if timing:
        parts.append(_plots("Timing and cost", timing, "Time per pair and per request: cost, not quality."))
    listed = table.select([c.name for c in _TABLE if c.name in table.column_names]).take(order[:REPORT_TABLE_ROWS])
    cards = {row[schema.PAIR_ID.name]: i for i, row in enumerate(worst)}
    parts.append(_all_pairs(listed.to_pylist(), table.num_rows, cards))
    capped = table_note(run, listed.num_rows, table.num_rows)
    if capped:
        notes.append(capped)
    notes_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>pixgate report: {html.escape(run.name)}</title><style>{_CSS}{bar_css()}</style></head><body>"
        f"<h1>pixgate report: {html.escape(run.name)}</h1>{notes_html}"
        + "".join(parts)
        + f'<div id="overlay" hidden></div><script>{_JS}</script></body></html>'
    )
    with writing(output):
        atomic_write(output, page.encode("utf-8"))
    shown = sum(pictured for _, pictured in built)
    return ReportStats(
        output, output.stat().st_size, table.num_rows, shown, time.perf_counter() - started, tuple(notes)
    )


__all__ = [
    "ReportError", "ReportStats", "broken_rules", "build_report", "rank_worst", "rules_broken", "table_note",
]  # fmt: skip
