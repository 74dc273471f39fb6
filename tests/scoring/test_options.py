"""The options every backend checks before a run starts, as the Python API gives them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixgate.config import BATCH_SIZE_MAX, MAX_PIXELS_CEILING, WORKERS_MAX
from pixgate.scoring.options import ScoreConfigError, ScoreOptions, check_numbers


@pytest.mark.parametrize(
    ("field", "value", "high"),
    [
        ("max_pixels", 10**30, MAX_PIXELS_CEILING),
        ("max_pixels", 0, MAX_PIXELS_CEILING),
        ("max_pixels", None, MAX_PIXELS_CEILING),
        ("max_pixels", 1.5, MAX_PIXELS_CEILING),
        ("batch_size", 0, BATCH_SIZE_MAX),
        ("batch_size", BATCH_SIZE_MAX + 1, BATCH_SIZE_MAX),
        ("workers", True, WORKERS_MAX),
        ("ocr_workers", -1, WORKERS_MAX),
    ],
)
def test_a_whole_number_out_of_range_names_the_keyword(tmp_path: Path, field: str, value: object, high: int) -> None:
    opts = ScoreOptions(tmp_path, tmp_path, tmp_path / "run.arrow", **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ScoreConfigError, match=rf"^{field}: got {value!r}; use a whole number from 1 to {high}$"):
        check_numbers(opts)


def test_the_defaults_and_the_bounds_pass(tmp_path: Path) -> None:
    check_numbers(ScoreOptions(tmp_path, tmp_path, tmp_path / "run.arrow"))
    top = {"batch_size": BATCH_SIZE_MAX, "workers": WORKERS_MAX, "ocr_workers": 1, "max_pixels": MAX_PIXELS_CEILING}
    check_numbers(ScoreOptions(tmp_path, tmp_path, tmp_path / "run.arrow", **top))  # type: ignore[arg-type]
