"""The HTML report: ranking, self-containment, headless Chromium, and 2,000-pair size."""

from __future__ import annotations

import html
import io
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixgate.cli import app
from pixgate.judging.decision import judge_run
from pixgate.report.html import build_report, rank_worst
from pixgate.runs import schema
from pixgate.runs.files import read_run
from tests.browser import Chromium, chromium_binary
from tests.conftest import GOLDEN, GOLDEN_PAIRS, ROOT, poster, write_run

runner = CliRunner()
#: The README's picture of the report, and the variable that makes the Chromium test write it.
SCREENSHOT = "docs/report.png"
SCREENSHOT_ENV = "PIXGATE_WRITE_SCREENSHOT"
SCREENSHOT_SIZE = (1280, 1600)  # the test browser's window
# A map pixel this bright or less reads as black (lossy WebP may shift black by a level).
MAX_BLACK = 8
# The alt text, brightest channel and width of each map of a pair's card, as drawn.
_MAP_BRIGHTNESS = """[...document.querySelector('[data-pair="%s"]').closest('.card').querySelectorAll('figure.map img')]
  .map(img => { const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0); let m = 0;
    if (c.width) { const d = g.getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) m = Math.max(m, d[i], d[i + 1], d[i + 2]); }
    return [img.alt, m, img.naturalWidth]; })"""
# Moves the first card's slider, opens full size, starts blinking: what each did.
_COMPARE = """(() => { const f = document.querySelector('figure.compare'), r = f.querySelector('input');
  r.value = 10; r.dispatchEvent(new Event('input')); const clip = f.querySelector('img.c').style.clipPath;
  f.querySelector('.full').click(); const o = document.getElementById('overlay');
  const opened = o.hidden ? 0 : o.querySelectorAll('img').length;
  f.querySelector('.blink').click(); return [clip, opened, f.querySelector('.blink').textContent]; })()"""
# A report of 2,000 pairs must stay attachable to a CI run.
MAX_REPORT_BYTES = 30 * 1024 * 1024
LARGE_RUN_PAIRS = 2000
# A run far over the report's table cap, and the most its page may take: the capped table
# (about 0.3 kB a row), the plots and the header, about 0.6 MB whatever the run holds
# (the whole table of this run would be about 15 MB).
CAPPED_RUN_PAIRS = 50_000
MAX_CAPPED_PAGE_BYTES = 1024 * 1024
# A blank or failed render is one flat colour; the golden report has pictures and plots.
MIN_SCREENSHOT_STD = 10.0
MIN_SCREENSHOT_COLOURS = 500


class _Refs(HTMLParser):
    """Every src/href in a page, every <img>, and the all-pairs table's first cells."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.images: list[str] = []
        self.cells: list[str] = []
        self._in_td = False
        self._first = False
        self._in_pairs = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "img":
            self.images.append(found.get("alt") or "")
        if tag == "table":
            self._in_pairs = "pairs" in (found.get("class") or "").split()
        if tag == "tr":
            self._first = self._in_pairs
        if tag == "td":
            self._in_td = self._first
            self._first = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_pairs = False

    def handle_data(self, data: str) -> None:
        if self._in_td:
            self.cells.append(data)
            self._in_td = False


def _parse(path: Path) -> _Refs:
    refs = _Refs()
    refs.feed(path.read_text(encoding="utf-8"))
    return refs


def _captures(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for name, scale in (("old", 800.0), ("new", 950.0)):
        folder = tmp_path / name
        folder.mkdir()
        table = pa.table(
            {
                "id": [f"p{i}" for i in range(40)],
                schema.LATENCY_MS.name: scale * np.exp(rng.normal(0, 0.2, 40)),
                schema.GPU_MS.name: scale / 10 * np.exp(rng.normal(0, 0.1, 40)),
            }
        )
        with pa.OSFile(str(folder / "capture.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        paths.append(folder / "capture.arrow")
    return paths


@pytest.fixture(scope="module")
def golden_report(golden_run: Path, alex_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden set's report, with its verdict, two captures and LPIPS maps."""
    folder = tmp_path_factory.mktemp("report")
    verdict = judge_run(golden_run, GOLDEN / "policy.toml")  # from the file: the verdict records its sha256
    (folder / "verdict.json").write_text(json.dumps(verdict.to_dict()))
    out = folder / "report.html"
    stats = build_report(
        golden_run, out, verdict=folder / "verdict.json", captures=_captures(folder), weights=alex_weights,
        files_under=GOLDEN,
    )  # fmt: skip
    assert stats.shown == stats.pairs == GOLDEN_PAIRS and not stats.notes
    return out


def test_ranking_puts_parity_failures_first() -> None:
    base = {schema.STATUS.name: schema.STATUS_OK}
    rows = [
        {**base, schema.PAIR_ID.name: "mild", schema.LPIPS.name: 0.05},
        {**base, schema.PAIR_ID.name: "blurry", schema.EDGE_PRESERVATION.name: 0.5},
        {**base, schema.PAIR_ID.name: "alpha", schema.LPIPS.name: 0.01, schema.ALPHA_PARITY.name: False},
        {**base, schema.PAIR_ID.name: "broken", schema.STATUS.name: schema.STATUS_ERROR,
         schema.ICC_MATCH.name: False},
        {**base, schema.PAIR_ID.name: "colour", schema.DELTA_E_MEAN.name: 6.9},
    ]  # fmt: skip
    table = _table(rows)
    assert _ranked(table, 10) == ["broken", "alpha", "blurry", "colour", "mild"]
    assert _ranked(table, 2) == ["broken", "alpha"]
    # The verdict's rules broken come first; then ties (no change, NaN and null alike) by pair id.
    assert _ranked(table, 10, {"mild": 1, "unknown": 5}) == ["mild", "broken", "alpha", "blurry", "colour"]
    odd = [
        {**base, schema.PAIR_ID.name: pid, schema.LPIPS.name: v}
        for pid, v in (("b-nan", float("nan")), ("a-null", None), ("c-inf", float("inf")), ("d-zero", 0.0))
    ]
    assert _ranked(_table(odd), 10) == ["c-inf", "a-null", "b-nan", "d-zero"]
    assert _ranked(_table(odd), 0) == [] and _ranked(_table([]), 5) == []


def _table(rows: list[dict[str, object]]) -> pa.Table:
    """Rows as a run's table (missing columns null)."""
    return pa.Table.from_pylist([{**schema.empty_row(), **r} for r in rows], schema=schema.arrow_schema())


def _ranked(table: pa.Table, top: int, broken: dict[str, int] | None = None) -> list[str]:
    return table.column(schema.PAIR_ID.name).take(rank_worst(table, top, broken)).to_pylist()


def test_report_is_self_contained_and_shows_everything(golden_report: Path, golden_run: Path) -> None:
    text = golden_report.read_text(encoding="utf-8")
    refs = _parse(golden_report)
    assert refs.refs and all(r.startswith(("data:", "#")) for r in refs.refs), [r[:40] for r in refs.refs]
    # URLs only as XML namespace names (SVG's), which browsers never fetch.
    urls = re.findall(r'(\w[\w:]*)="(https?://[^"]*)"', text)
    assert all(attr.startswith("xmlns") for attr, _ in urls), urls
    assert len(re.findall(r"https?://", text)) == len(urls)
    assert 'class="banner fail"' in text and "critical rule failed" in text
    pair_ids = read_run(golden_run).column(schema.PAIR_ID.name).to_pylist()
    assert sorted(refs.cells) == sorted(pair_ids)  # the all-pairs table has every row
    worst = [a for a in refs.images if a.startswith(("baseline of ", "baseline, text regions of "))]
    assert len(worst) == GOLDEN_PAIRS
    # A pair whose text is lost shows what OCR read on each side, and where.
    assert "baseline, text regions of small_text_mush" in refs.images
    assert "candidate, text regions of small_text_mush" in refs.images
    card = text[text.index('data-pair="small_text_mush"') :]
    card = card[: card.index('<div class="card">') if '<div class="card">' in card else len(card)]
    assert "text read in each region" in card and "<td>Terms apply. See store for details.</td>" in card
    assert "text regions of identical_sale" not in " ".join(refs.images)  # only where typography fails
    for kind in ("candidate of", "LPIPS map", "edge loss of", "alpha difference of"):
        assert any(a.startswith(kind) for a in refs.images), kind
    assert "latency_ms (ECDF)" in text and "gpu_ms (ECDF)" in text
    # Quality apart from timing: no timing column is plotted among the quality plots.
    quality = text[text.index("Quality distributions") : text.index("Timing and cost")]
    assert "lpips (LPIPS distance)" in quality and "decode_ms" not in quality and "ECDF" not in quality
    assert "decode_ms (ms)" in text[text.index("Timing and cost") :]
    assert text.index("worst pairs") < text.index("Quality distributions") < text.index("Timing and cost")
    assert text.index("Timing and cost") < text.index("All pairs")


def _card(text: str, pair_id: str) -> str:
    start = text.index(f'data-pair="{pair_id}"')
    end = text.find('<div class="card">', start)
    return text[start : end if end >= 0 else len(text)]


def test_every_card_names_the_rules_its_pair_broke_against_the_bounds(golden_report: Path) -> None:
    text = golden_report.read_text(encoding="utf-8")
    verdict = json.loads((golden_report.parent / "verdict.json").read_text())
    rules = {r["name"]: r for r in verdict["rules"]}
    assert verdict["failing_pairs"]
    for pair in verdict["failing_pairs"]:
        card = _card(text, pair["pair_id"])
        for name in pair["rules"]:
            rule = rules[name]
            value = pair["values"][rule["column"]]
            shown = f"{value:.4g}" if isinstance(value, float) else str(value).lower()
            line = f"{name}{' (critical)' if rule['critical'] else ''}: {rule['column']} {shown}; pass {rule['op']}"
            assert html.escape(line) in card, (pair["pair_id"], line)
    # A pair that broke no rule says so in its parity line and lists no rule.
    assert '<ul class="broken">' not in _card(text, "identical_sale")


def test_worst_pairs_that_broke_rules_come_first(golden_report: Path) -> None:
    text = golden_report.read_text(encoding="utf-8")
    verdict = json.loads((golden_report.parent / "verdict.json").read_text())
    order = re.findall(r'data-pair="([^"]+)"', text)
    failing = {p["pair_id"] for p in verdict["failing_pairs"]}
    assert set(order[: len(failing)]) == failing


def test_the_table_links_every_shown_pair_to_its_card(golden_report: Path) -> None:
    text = golden_report.read_text(encoding="utf-8")
    links = dict(re.findall(r'<td><a href="#(card-\d+)">([^<]+)</a></td>', text))
    assert len(links) == GOLDEN_PAIRS
    for anchor, pair_id in links.items():
        assert f'id="{anchor}" data-pair="{html.escape(pair_id)}"' in text


def test_maps_share_one_scale_with_a_colour_bar_and_a_legend(golden_report: Path) -> None:
    from pixgate.report.maps import LEGEND, MAP_KINDS

    text = golden_report.read_text(encoding="utf-8")
    assert html.escape(LEGEND) in text
    for kind in MAP_KINDS:
        # One bar per map, each with the kind's fixed peak, in the legend and on every card.
        bars = re.findall(rf'<div class="bar bar-{kind.key}"></div><div class="ticks"><span>0</span>'
                          rf"<span>[^<]+</span><span>&ge;([^<]+)</span>", text)  # fmt: skip
        assert bars and set(bars) == {f"{kind.peak:g}"}, kind.key
    maps = re.findall(r'<figure class="map map-(\w+)">', text)
    assert len(re.findall(r'<div class="bar bar-', text)) == len(maps) + len(MAP_KINDS)


def test_report_takes_the_published_weights_the_run_recorded(
    golden_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run scored with torchvision's published file names where it was: the report reads
    it there, once its sha256 is the published one. (The suite's random weights stand in
    for the published file; any other file a run names is never read.)"""
    from pixgate.scoring import weights

    recorded = read_run(golden_run).schema.metadata[schema.META_WEIGHTS_SHA256.encode()].decode()
    assert build_report(golden_run, tmp_path / "r.html", top=3, files_under=GOLDEN).notes  # not published: unread
    monkeypatch.setattr(weights, "published", lambda net, sha256: sha256 == recorded)
    stats = build_report(golden_run, tmp_path / "r.html", top=3, files_under=GOLDEN)
    assert stats.shown == 3 and not stats.notes
    assert any(a.startswith("LPIPS map") for a in _parse(tmp_path / "r.html").images)


def test_report_without_the_runs_weights_leaves_the_maps_out_with_a_note(golden_run: Path, tmp_path: Path) -> None:
    table = read_run(golden_run)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    moved = {**meta, schema.META_WEIGHTS_SOURCE: f"--weights: {tmp_path / 'gone.pth'}"}
    run = write_run(tmp_path / "run.arrow", table.to_pylist(), moved)
    stats = build_report(run, tmp_path / "r.html", top=3, files_under=GOLDEN)
    assert stats.shown == 3
    assert any("LPIPS maps left out" in n for n in stats.notes)
    refs = _parse(tmp_path / "r.html")
    assert not any(a.startswith("LPIPS map") for a in refs.images)
    assert any(a.startswith("edge loss of") for a in refs.images)


def test_report_in_headless_chromium(golden_report: Path, tmp_path: Path) -> None:
    if chromium_binary() is None:
        pytest.fail("the report test needs Chromium (installed by .ci/run: apt-get install chromium)")
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="https://example.invalid/x.png"></body></html>')
    shown = "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length"
    expressions = {
        "identical": _MAP_BRIGHTNESS % "identical_sale",
        "cutout": _MAP_BRIGHTNESS % "identical_cutout",
        "changed": _MAP_BRIGHTNESS % "edges_lost",
        "compare": _COMPARE,
    }
    with Chromium(*SCREENSHOT_SIZE) as browser:
        # The check can fail: a page that fetches something is caught.
        assert "https://example.invalid/x.png" in browser.load(control).requests
        page = browser.load(golden_report, {"images": shown, "title": "document.title"})
        # Then, on a page of its own: the maps as drawn, and the slider, full size and blink at work.
        drawn = browser.load(golden_report, expressions).values
    if os.environ.get(SCREENSHOT_ENV):
        (ROOT / SCREENSHOT).write_bytes(page.screenshot)
    # A pixel-identical pair's maps render black, every kind of them; a changed pair's do not.
    for pair in ("identical", "cutout"):
        maps = drawn[pair]
        assert {m[0].split(" of ")[0] for m in maps} >= {"LPIPS map", "edge loss"}, maps
        assert all(width > 0 and brightest <= MAX_BLACK for _, brightest, width in maps), maps
    assert any(m[0].startswith("alpha difference") for m in drawn["cutout"])
    assert all(brightest > 10 * MAX_BLACK for _, brightest, _ in drawn["changed"][:2]), drawn["changed"]
    # The slider moves the candidate's edge, full size opens both pictures, blink starts.
    clip, opened, blink = drawn["compare"]
    assert clip == "inset(0px 0px 0px 10%)" and opened == 2 and blink == "stop", drawn["compare"]
    assert page.requests[0] == golden_report.resolve().as_uri()
    assert all(u.startswith(("file://", "data:")) for u in page.requests), [u[:60] for u in page.requests]
    assert page.values["images"] >= 10 * 4  # baseline, candidate, LPIPS and edge maps per pair
    assert str(page.values["title"]).startswith("pixgate report: ")
    pixels = np.asarray(Image.open(io.BytesIO(page.screenshot)).convert("RGB"))
    assert pixels.std() > MIN_SCREENSHOT_STD
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > MIN_SCREENSHOT_COLOURS


def test_the_readme_shows_a_screenshot_of_the_golden_report() -> None:
    """docs/report.png is the golden set's report as the Chromium test sees it (written
    by that test when $PIXGATE_WRITE_SCREENSHOT is set: `make screenshot`)."""
    assert f"]({SCREENSHOT})" in (ROOT / "README.md").read_text(encoding="utf-8")
    with Image.open(ROOT / SCREENSHOT) as shot:
        assert shot.format == "PNG" and shot.size == (SCREENSHOT_SIZE)


def test_report_of_2000_pairs_stays_small(tmp_path: Path) -> None:
    images = tmp_path / "img"
    images.mkdir()
    rng = np.random.default_rng(4)
    for i in range(20):
        Image.fromarray(poster(512, 512, seed=i)).save(images / f"b{i}.png")
        Image.fromarray(poster(512, 512, seed=100 + i)).save(images / f"c{i}.png")
    rows = [
        {
            schema.PAIR_ID.name: f"batch/{i:04d}",
            schema.STATUS.name: schema.STATUS_OK,
            schema.BASELINE_PATH.name: str(images / f"b{i % 20}.png"),
            schema.CANDIDATE_PATH.name: str(images / f"c{i % 20}.png"),
            schema.LPIPS.name: float(rng.uniform(0, 0.3)),
            schema.DELTA_E_MEAN.name: float(rng.uniform(0, 4)),
            schema.EDGE_PRESERVATION.name: float(rng.uniform(0.7, 1)),
            schema.ALPHA_PARITY.name: bool(rng.random() > 0.01),
        }
        for i in range(LARGE_RUN_PAIRS)
    ]
    roots = {schema.META_BASELINE_ROOT: str(images), schema.META_CANDIDATE_ROOT: str(images)}
    run = write_run(tmp_path / "run.arrow", rows, roots)
    stats = build_report(run, tmp_path / "big.html", files_under=tmp_path)
    assert stats.pairs == LARGE_RUN_PAIRS and stats.shown == 20
    assert stats.bytes < MAX_REPORT_BYTES
    assert len(_parse(tmp_path / "big.html").cells) == LARGE_RUN_PAIRS


def _columns_run(path: Path, pairs: int) -> Path:
    """A run of `pairs` ok rows without pictures (seeded LPIPS, Delta E, edges, a few alpha
    failures), built by column and written by the run-file writer `score` uses."""
    from pixgate.runs.files import RunJournal

    rng = np.random.default_rng(7)
    meta = {schema.META_SCHEMA_VERSION: schema.SCHEMA_VERSION}
    arrow = schema.arrow_schema(meta)
    values = {
        schema.PAIR_ID.name: pa.array([f"batch/{i:06d}.png" for i in range(pairs)]),
        schema.STATUS.name: pa.array([schema.STATUS_OK] * pairs),
        schema.LPIPS.name: pa.array(rng.uniform(0, 0.3, pairs)),
        schema.DELTA_E_MEAN.name: pa.array(rng.uniform(0, 4, pairs)),
        schema.EDGE_PRESERVATION.name: pa.array(rng.uniform(0.7, 1, pairs)),
        schema.ALPHA_PARITY.name: pa.array(np.arange(pairs) % 1000 != 0),
        schema.DECODE_MS.name: pa.array(rng.gamma(4, 2, pairs)),
    }
    table = pa.table([values.get(f.name, pa.nulls(pairs, f.type)) for f in arrow], schema=arrow)
    RunJournal(path, meta, carried=table).finalize(meta)
    return path


def test_a_large_run_gets_a_capped_table_and_a_bounded_page(tmp_path: Path) -> None:
    """The page of a run far over the table's cap holds the worst REPORT_TABLE_ROWS pairs
    and says how many it leaves out and how to see them; its size does not grow with the run."""
    from pixgate.config import REPORT_TABLE_ROWS

    run = _columns_run(tmp_path / "run.arrow", CAPPED_RUN_PAIRS)
    stats = build_report(run, tmp_path / "r.html", files_under=tmp_path)
    assert stats.pairs == CAPPED_RUN_PAIRS and stats.bytes < MAX_CAPPED_PAGE_BYTES, stats.bytes
    left_out = CAPPED_RUN_PAIRS - REPORT_TABLE_ROWS
    note = f"shows the worst {REPORT_TABLE_ROWS} of {CAPPED_RUN_PAIRS} pairs ({left_out} not shown)"
    assert any(note in n and "pixgate export run.arrow" in n for n in stats.notes), stats.notes
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert note in text and f"The worst {REPORT_TABLE_ROWS} of {CAPPED_RUN_PAIRS} pairs</h2>" in text
    cells = _parse(tmp_path / "r.html").cells
    # Worst first: the pairs whose alpha parity failed (every 1000th) lead the table.
    assert len(cells) == REPORT_TABLE_ROWS
    assert sorted(cells[: CAPPED_RUN_PAIRS // 1000]) == [f"batch/{i:06d}.png" for i in range(0, CAPPED_RUN_PAIRS, 1000)]


def test_cards_are_capped_in_the_python_api_too(tmp_path: Path) -> None:
    from pixgate.config import REPORT_MAX_TOP
    from pixgate.report.html import ReportError

    run = _columns_run(tmp_path / "run.arrow", 10)
    with pytest.raises(ReportError, match=rf"^top: got {REPORT_MAX_TOP + 1}; use a whole number from 0 to "):
        build_report(run, tmp_path / "r.html", top=REPORT_MAX_TOP + 1)
    assert not (tmp_path / "r.html").exists()


def test_report_cli(golden_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(golden_run), "-o", str(out), "--top", "2", "--files-under", str(GOLDEN)])
    assert result.exit_code == 0, result.output
    assert f"{GOLDEN_PAIRS} pairs, 2 with pictures" in " ".join(result.output.split())
    missing = runner.invoke(app, ["report", str(tmp_path / "none.arrow"), "-o", str(out)])
    assert missing.exit_code == 2 and "no such file" in missing.output


def _picture_row(folder: Path, seed: int) -> dict[str, object]:
    """An ok row of pair `p` whose baseline and candidate are one picture saved in `folder`."""
    folder.mkdir()
    Image.fromarray(poster(64, 64, seed=seed)).save(folder / "photo.png")
    return {
        schema.PAIR_ID.name: "p",
        schema.STATUS.name: schema.STATUS_OK,
        schema.BASELINE_PATH.name: str(folder / "photo.png"),
        schema.CANDIDATE_PATH.name: str(folder / "photo.png"),
    }


def test_pictures_are_read_only_under_the_folder_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run file recording `/` as its folders could show any image of the machine in a
    report that becomes a CI artifact: pictures come only from under --files-under."""
    private = tmp_path / "private"
    row = _picture_row(private, 1)
    run = write_run(tmp_path / "run.arrow", [row], {schema.META_BASELINE_ROOT: "/", schema.META_CANDIDATE_ROOT: "/"})
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert build_report(run, tmp_path / "r.html").shown == 0
    assert "(--files-under)" in (tmp_path / "r.html").read_text()
    assert build_report(run, tmp_path / "r.html", files_under=private).shown == 1


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("workers_without_a_scan_limit")
def test_a_picture_that_decodes_for_ever_costs_only_its_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pixgate.scoring import workers
    from tests.scoring.test_workers import scan_bomb_jpeg

    images = tmp_path / "img"
    images.mkdir()
    (images / "bomb.jpg").write_bytes(scan_bomb_jpeg(5000))
    Image.fromarray(poster(64, 64, seed=1)).save(images / "ok.png")
    rows = [
        {schema.PAIR_ID.name: "bomb", schema.STATUS.name: "error", schema.BASELINE_PATH.name: str(images / "bomb.jpg"),
         schema.CANDIDATE_PATH.name: str(images / "bomb.jpg"), schema.ERROR.name: "decoding took too long"},
        {schema.PAIR_ID.name: "ok", schema.STATUS.name: "ok", schema.BASELINE_PATH.name: str(images / "ok.png"),
         schema.CANDIDATE_PATH.name: str(images / "ok.png")},
    ]  # fmt: skip
    roots = {schema.META_BASELINE_ROOT: str(images), schema.META_CANDIDATE_ROOT: str(images)}
    run = write_run(tmp_path / "run.arrow", rows, roots)
    # The report decodes with the pool's default time limit; a short one keeps the test short.
    monkeypatch.setattr(workers.DecodePool.__init__, "__defaults__", (workers.SHARED_MEMORY_DIR, 3.0, 4))
    stats = build_report(run, tmp_path / "r.html", files_under=tmp_path)
    assert stats.shown == 1
    assert "decoding took longer than 3 s" in (tmp_path / "r.html").read_text()


def test_report_refuses_malformed_text_boxes(tmp_path: Path) -> None:
    images = tmp_path / "images"
    base = {
        **_picture_row(images, 3),
        schema.TEXT_PASS.name: False,
        schema.OCR_BASELINE.name: "<b>SALE</b>",
        schema.OCR_CANDIDATE.name: "S4LE",
    }
    roots = {schema.META_BASELINE_ROOT: str(images), schema.META_CANDIDATE_ROOT: str(images)}
    for boxes in ("[[0, 0, " + "9" * 500 + ", 5]]", "[[0, 0, 10]]", "not json", '[[0, 0, 10, 10], "x"]'):
        run = write_run(tmp_path / "run.arrow", [{**base, schema.TEXT_BOXES.name: boxes}], roots)
        out = tmp_path / "r.html"
        build_report(run, out, files_under=tmp_path)
        text = out.read_text(encoding="utf-8")
        assert "text regions of p" not in text and "&lt;b&gt;SALE&lt;/b&gt;" in text  # readings shown, escaped
    run = write_run(tmp_path / "run.arrow", [{**base, schema.TEXT_BOXES.name: "[[2, 2, 40, 20]]"}], roots)
    build_report(run, tmp_path / "r.html", files_under=tmp_path)
    assert "baseline, text regions of p" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_only_the_first_cards_embed_full_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The size bound: full-resolution views (at most REPORT_VIEW_MAX_PIXELS) for the first
    REPORT_FULL_PAIRS cards, thumbnails after them."""
    from pixgate.report import cards

    images = tmp_path / "img"
    images.mkdir()
    rows = []
    for i in range(3):
        Image.fromarray(poster(600, 900, seed=i)).save(images / f"b{i}.png")
        Image.fromarray(poster(600, 900, seed=50 + i)).save(images / f"c{i}.png")
        rows.append({schema.PAIR_ID.name: f"p{i}", schema.STATUS.name: schema.STATUS_OK,
                     schema.LPIPS.name: 0.3 - i / 10, schema.BASELINE_PATH.name: str(images / f"b{i}.png"),
                     schema.CANDIDATE_PATH.name: str(images / f"c{i}.png")})  # fmt: skip
    roots = {schema.META_BASELINE_ROOT: str(images), schema.META_CANDIDATE_ROOT: str(images)}
    run = write_run(tmp_path / "run.arrow", rows, roots)
    monkeypatch.setattr(cards, "REPORT_FULL_PAIRS", 1)
    monkeypatch.setattr(cards, "REPORT_VIEW_MAX_PIXELS", 400 * 600)
    build_report(run, tmp_path / "r.html", files_under=tmp_path)
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert re.findall(r'data-full="(\d)"', text) == ["1", "0", "0"]
    # 900x600 scaled to 400*600 pixels keeps its shape; the thumbnails are 256 px long.
    assert re.findall(r"baseline \| candidate, (\d+x\d+)", text) == ["600x400", "256x171", "256x171"]


def test_a_hostile_verdict_cannot_bloat_a_card() -> None:
    from pixgate.config import REPORT_MAX_FIELD_CHARS, REPORT_MAX_RULE_LINES
    from pixgate.report.html import broken_rules, rules_broken

    long = "x" * 1_000_000
    rules = [{"name": f"r{i}", "result": "fail", "column": long, "op": "<=", "pass": long} for i in range(50)]
    doc = {"rules": rules, "failing_pairs": [{"pair_id": "p", "rules": [f"r{i % 50}" for i in range(100_000)],
                                              "values": {long: 1.0}}]}  # fmt: skip
    assert rules_broken(doc) == {"p": 50}
    lines = broken_rules(doc, {"p"})["p"]
    assert len(lines) == REPORT_MAX_RULE_LINES
    assert all(len(line) < 4 * REPORT_MAX_FIELD_CHARS for line in lines)
    assert broken_rules(doc, {"q"}) == {}  # lines only for the pairs shown


def test_pictures_of_any_shape_cost_at_most_their_own_maps(alex_weights: Path, tmp_path: Path) -> None:
    """A banner wider than WebP holds and an icon under the backbone's smallest side each
    get a card; neither ends the report."""
    images = tmp_path / "img"
    images.mkdir()
    shapes = {"banner": (40, 20000), "icon": (16, 16)}
    rows = []
    for name, (h, w) in shapes.items():
        Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(images / f"{name}.png")
        rows.append({schema.PAIR_ID.name: name, schema.STATUS.name: schema.STATUS_OK,
                     schema.BASELINE_PATH.name: str(images / f"{name}.png"),
                     schema.CANDIDATE_PATH.name: str(images / f"{name}.png")})  # fmt: skip
    roots = {schema.META_BASELINE_ROOT: str(images), schema.META_CANDIDATE_ROOT: str(images)}
    run = write_run(tmp_path / "run.arrow", rows, roots)
    stats = build_report(run, tmp_path / "r.html", files_under=tmp_path, weights=alex_weights)
    assert stats.shown == 2, (tmp_path / "r.html").read_text()[:2000]
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "LPIPS map left out: the picture is under 31 px on a side" in text
    assert re.findall(r"baseline \| candidate, (\d+x\d+)", text) == ["16383x33", "16x16"]


def test_a_plot_that_cannot_be_drawn_is_left_out_with_a_note(tmp_path: Path) -> None:
    rows = [{schema.PAIR_ID.name: f"p{i}", schema.STATUS.name: schema.STATUS_OK, schema.DELTA_E_MEAN.name: v}
            for i, v in enumerate((-1.7e308, 1.7e308))]  # fmt: skip
    stats = build_report(write_run(tmp_path / "run.arrow", rows), tmp_path / "r.html", top=0)
    assert any(n.startswith("no histogram of delta_e_mean") for n in stats.notes), stats.notes
    assert "no histogram of delta_e_mean" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_a_verdict_whose_rule_names_no_column_still_reads() -> None:
    from pixgate.report.html import broken_rules

    doc = {"rules": [{"name": "r", "result": "fail", "column": ["not", "a", "name"], "op": "<=", "pass": 1}],
           "failing_pairs": [{"pair_id": "p", "rules": ["r"], "values": {"x": 1.0}}]}  # fmt: skip
    assert broken_rules(doc, {"p"}) == {"p": ["r: None; pass <= 1"]}
