"""Shared fixtures: seeded random backbone weights, the `lpips` reference, test images.

No test touches the network: the download URL points at a closed port on 127.0.0.1 and
torchvision's cache lives in a temporary TORCH_HOME.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pixgate.telemetry

#: The tests' own data (PngSuite, ICC profiles), inside the checkout: a fresh clone
#: carries everything its tests read (tests/test_data.py holds every test to it).
DATA = Path(__file__).resolve().parent / "data"
#: The checkout's root.
ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "golden"
#: Pairs in the shipped golden set.
GOLDEN_PAIRS = len(list((GOLDEN / "baseline").glob("*.png")))
WEIGHTS_SEED = 1234


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
    monkeypatch.setenv("PIXGATE_WEIGHTS_URL", f"http://127.0.0.1:{_closed_port()}/alexnet-owt-7be5be79.pth")
    monkeypatch.delenv("PIXGATE_WEIGHTS", raising=False)
    # Baseline readings are cached where the tests clean up, never in the user's cache.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.delenv("PIXGATE_OCR_CACHE", raising=False)
    # The compiled kernels, though, are kept between test sessions (in the checkout, ignored
    # by git): compiling them takes longer than most tests.
    monkeypatch.setenv("PIXGATE_KERNEL_CACHE", str(KERNEL_CACHE))
    # `--precision auto` chooses as an AVX2 CPU does, whatever CPU runs the tests: the
    # parity tests compare float32 LPIPS with the reference's (tests/scoring/test_scorer.py
    # covers the choice itself).
    monkeypatch.setattr(pixgate.telemetry, "cpu_flags", lambda: frozenset({"avx2"}))


#: The machine's own CPU flags (the suite stands an AVX2 CPU in for it, see `_offline`).
MACHINE_CPU_FLAGS = pixgate.telemetry.cpu_flags
#: Where the tests keep numba's compiled kernels between sessions.
KERNEL_CACHE = ROOT / ".cache" / "numba"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The tests' data folder (tests/data)."""
    return DATA


def _random_backbone(net: str) -> dict[str, object]:
    import torch
    from torchvision import models

    torch.manual_seed(WEIGHTS_SEED)
    builder = {"alex": models.alexnet, "vgg": models.vgg16, "squeeze": models.squeezenet1_1}[net]
    model = builder(weights=None)
    if net == "vgg":
        # VGG's classifier is 120M parameters the metric never uses; keep the file small.
        return {f"features.{k}": v for k, v in model.features.state_dict().items()}
    return model.state_dict()


@pytest.fixture(scope="session")
def weights_for(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Path of a seeded random torchvision state_dict for a backbone, made once."""
    import torch

    made: dict[str, Path] = {}

    def get(net: str) -> Path:
        if net not in made:
            path = tmp_path_factory.mktemp("weights") / f"{net}-random.pth"
            torch.save(_random_backbone(net), path)
            made[net] = path
        return made[net]

    return get


@pytest.fixture(scope="session")
def alex_weights(weights_for: Callable[[str], Path]) -> Path:
    """Random AlexNet weights as a full torchvision state_dict."""
    return weights_for("alex")


@pytest.fixture(scope="session")
def lpips_reference() -> Callable[[str, Path], object]:
    """The `lpips` package's LPIPS with its backbone loaded from a torchvision state_dict."""
    from pixgate.scoring.models import reference_lpips

    return reference_lpips


def poster(height: int, width: int, seed: int, *, alpha: bool = False) -> np.ndarray:
    """A smooth, structured test picture (gradients, blobs, noise) as uint8 RGB(A)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    chans = []
    for _ in range(3):
        fx, fy, ph = rng.uniform(0.5, 6, 3)
        chans.append(0.5 + 0.35 * np.sin(fx * x / width * 6.28 + ph) * np.cos(fy * y / height * 6.28))
    img = np.stack(chans, axis=-1) + rng.normal(0, 0.03, (height, width, 3))
    img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    if alpha:
        mask = ((x - width / 2) ** 2 / (width / 2.5) ** 2 + (y - height / 2) ** 2 / (height / 2.5) ** 2) < 1
        a = np.where(mask, 255, 0).astype(np.uint8)
        img = np.dstack([img, a])
    return img


@pytest.fixture
def make_pairs(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """Build baseline/candidate folders of seeded images; returns (baseline, candidate)."""

    def build(sizes: list[tuple[int, int]], *, distort: float = 8.0, candidate_ext: str = ".png") -> tuple[Path, Path]:
        base, cand = tmp_path / "baseline", tmp_path / "candidate"
        base.mkdir(exist_ok=True)
        cand.mkdir(exist_ok=True)
        for i, (h, w) in enumerate(sizes):
            img = poster(h, w, seed=i)
            noise = np.random.default_rng(1000 + i).normal(0, distort, img.shape)
            other = np.clip(img + noise, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(base / f"p{i:03d}.png")
            Image.fromarray(other).save(
                cand / f"p{i:03d}{candidate_ext}", **({"quality": 95} if candidate_ext == ".jpg" else {})
            )
        return base, cand

    return build


@pytest.fixture
def chdir_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run the test inside its temporary folder."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture(scope="session")
def golden_run(alex_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped golden set scored once (random AlexNet weights, with its manifest)."""
    from pixgate.scoring.score import ScoreOptions, run_score

    out = tmp_path_factory.mktemp("golden") / "run.arrow"
    opts = ScoreOptions(
        GOLDEN / "baseline",
        GOLDEN / "candidate",
        out,
        device="cpu",
        weights=alex_weights,
        manifest=GOLDEN / "manifest.jsonl",
    )
    # A session fixture is made before `_offline` stands an AVX2 CPU in for the machine's:
    # on a CPU with bfloat16 the run would otherwise choose it, and the parity tests that
    # read this run compare float32.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pixgate.telemetry, "cpu_flags", lambda: frozenset({"avx2"}))
        result = run_score(opts)
    if not result.all_ok:
        pytest.fail(f"the golden set did not score cleanly: {result.table.column('error').to_pylist()}")
    return out


def write_run(path: Path, rows: list[dict[str, object]], metadata: dict[str, str] | None = None) -> Path:
    """Write rows (missing columns null) as a run file with the run schema, like `score` does."""
    import pyarrow as pa

    from pixgate.runs import schema

    full = [{**schema.empty_row(), **row} for row in rows]
    meta = {schema.META_SCHEMA_VERSION: schema.SCHEMA_VERSION, **(metadata or {})}
    table = pa.Table.from_pylist(full, schema=schema.arrow_schema(meta))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path


#: The text `text_card` draws: a title and a line of small print.
CARD_LINES = ("SPRING SALE", "Free delivery on orders over 50 EUR.")


def text_card(
    *, ink: tuple[int, int, int], paper: tuple[int, int, int], small: int = 12, dx: float = 0.0
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A 320x120 card showing `CARD_LINES`; returns RGBA pixels and each line's box."""
    from PIL import ImageDraw, ImageFont

    img = Image.new("RGBA", (320, 120), (*paper, 255))
    draw = ImageDraw.Draw(img)
    boxes = []
    for (x, y), text, size in (((12 + dx, 14), CARD_LINES[0], 32), ((12 + dx, 80), CARD_LINES[1], small)):
        font = ImageFont.load_default(size=size)
        draw.text((x, y), text, font=font, fill=(*ink, 255))
        x0, y0, x1, y1 = draw.textbbox((x, y), text, font=font)
        boxes.append((int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))))
    return np.asarray(img).copy(), boxes


#: Fonts the set-up installs (Debian's fonts-dejavu-core and fonts-liberation).
FONTS = {
    "bold": "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "sans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "liberation": "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "serif": "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
}
#: Copy a promo poster can carry: headlines, body lines, small print.
HEADLINES = ("Summer Sale 40% off", "New Season Arrivals", "Flash Deal Today", "Spring Collection")
BODY = (
    "Fresh picks for every room, delivered free this week.",
    "Members save an extra ten percent on all outdoor furniture.",
    "Order before noon for next day delivery to your door.",
)
SMALL_PRINT = (
    "Offer valid until 31 August while stocks last. Terms apply, see store for details.",
    "Prices include VAT. Not combinable with other promotions. Ref 4471-B.",
    "Delivery charges may apply to some postcodes and bulky items.",
)


def _font(name: str, size: int) -> object:
    from PIL import ImageFont

    path = FONTS[name]
    if not Path(path).is_file():
        pytest.fail(f"font {path} not found: the typography tests draw with the fonts `make system-deps` installs")
    return ImageFont.truetype(path, size)


def promo_poster(
    seed: int, size: int = 512, *, lines: int = 3, coverage_gamma: float = 1.0, small_size: int | None = None
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A promo poster: a photo-like background (gradient, shapes, grain), a headline, body
    text and small print at 12 to 16 px, 2 to 5 lines in all.

    `coverage_gamma` re-renders the same text with other antialiasing (the glyphs' edge
    coverage raised to that power; the glyphs stay in place). Returns RGBA pixels and
    each line's box (x1, y1 exclusive).
    """
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = rng.uniform(60, 220, 3), rng.uniform(60, 220, 3)
    t = (x * 0.6 + y * 0.4)[..., None]
    bg = c0 * (1 - t) + c1 * t + rng.normal(0, 4, (size, size, 3))
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8)).convert("RGBA")
    draw = ImageDraw.Draw(img)
    for _ in range(5):
        x0, y0 = (int(v) for v in rng.integers(0, size * 3 // 4, 2))
        r = int(rng.integers(size // 12, size // 5))
        draw.ellipse((x0, y0, x0 + r, y0 + r), fill=(*rng.integers(0, 255, 3).tolist(), 255))
    band = size - size // 6 - 20 * max(0, lines - 3)
    draw.rectangle((0, band, size, size), fill=(250, 250, 245, 255))
    layout: list[tuple[tuple[int, int], str, object, tuple[int, int, int, int]]] = [
        ((size // 24, size // 24), HEADLINES[seed % 4], _font("bold", size // 14), (255, 255, 255, 255)),
    ]
    top = band + 8
    small = small_size or int(rng.integers(12, 17))
    texts = [
        (BODY[seed % 3], "sans", small + 6),
        *((SMALL_PRINT[(seed + i) % 3], "liberation", small) for i in range(3)),
    ]
    for text, face, px in texts[: lines - 1]:
        layout.append(((size // 32, top), text, _font(face, px), (20, 20, 20, 255)))
        top += px + 8
    boxes = []
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0)) if coverage_gamma != 1.0 else None
    for xy, text, font, ink in layout:
        ImageDraw.Draw(layer or img).text(xy, text, font=font, fill=ink)  # type: ignore[arg-type]
        x0, y0, x1, y1 = draw.textbbox(xy, text, font=font)  # type: ignore[arg-type]
        boxes.append((int(x0), int(y0), min(int(np.ceil(x1)), size), min(int(np.ceil(y1)), size)))
    if layer is not None:
        coverage = np.asarray(layer.getchannel("A"), dtype=np.float64) / 255.0
        layer.putalpha(Image.fromarray(np.rint(255.0 * coverage**coverage_gamma).astype(np.uint8)))
        img.alpha_composite(layer)
    return np.asarray(img).copy(), boxes


def mush(rgba: np.ndarray, box: tuple[int, int, int, int], factor: int = 4) -> np.ndarray:
    """The pixels with one region re-rasterised at 1/`factor` of its resolution."""
    x0, y0, x1, y1 = box
    out = rgba.copy()
    band = Image.fromarray(rgba[y0:y1, x0:x1])
    small = band.resize((max(1, band.width // factor), max(1, band.height // factor)), Image.Resampling.BILINEAR)
    out[y0:y1, x0:x1] = np.asarray(small.resize(band.size, Image.Resampling.BILINEAR))
    return out


def remove_deep_tree(root: Path) -> None:
    """Delete a tree nested deeper than the recursion limit (shutil.rmtree recurses, and
    pytest's clean-up of old temporary folders would fail on it)."""
    from pixgate.safe_io import remove_tree

    remove_tree(root)


@pytest.fixture
def workers_without_a_scan_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decode workers started from here on take JPEGs of any number of scans (a fault
    injected at their start-up, through `sitecustomize`): the scan bomb then really
    decodes for minutes, which is what the time limit is for."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import pixgate.config\npixgate.config.JPEG_MAX_SCANS = 10**9\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a small tmpfs with the given options (`ro`, `size=64k`) in the test's folder:
    a real read-only or full file system. Needs root, as CI has; skipped elsewhere."""
    points: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(points)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        points.append(point)
        return point

    yield mount
    for point in points:
        subprocess.run(["umount", str(point)], check=False)
