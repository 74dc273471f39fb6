"""Exporting a run to Parquet and CSV, read back by DuckDB by file name, metadata kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixgate.runs import schema
from pixgate.runs.export import CSV_METADATA_SUFFIX, ExportError, export_format, export_run
from pixgate.runs.files import RunFileError, read_run, run_metadata
from tests.conftest import write_run

duckdb = pytest.importorskip("duckdb")


def _rows(table_rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return sorted((r[schema.PAIR_ID.name], r[schema.STATUS.name], r[schema.LPIPS.name]) for r in table_rows)


def test_parquet_is_read_by_duckdb_by_file_name_with_the_run_metadata(golden_run: Path, chdir_tmp: Path) -> None:
    done = export_run(golden_run, "run.parquet")
    assert done.format == "parquet" and done.metadata_path is None
    run = read_run(golden_run)
    got = duckdb.sql("SELECT pair_id, status, lpips FROM 'run.parquet' ORDER BY pair_id").fetchall()
    assert got == _rows(run.to_pylist()) and done.rows == run.num_rows == len(got)
    kv = dict(duckdb.sql("SELECT key, value FROM parquet_kv_metadata('run.parquet')").fetchall())
    expected = run_metadata(run)
    for key in (schema.META_WEIGHTS_SHA256, schema.META_LPIPS_NET, schema.META_STARTED_AT, schema.META_STATS):
        assert kv[key.encode()].decode() == expected[key]
    import pyarrow.parquet as pq

    field = pq.read_schema("run.parquet").field(schema.DECODE_MS.name)
    assert field.metadata == {b"description": schema.DECODE_MS.doc.encode(), b"unit": b"ms"}


def test_csv_is_read_by_duckdb_by_file_name_with_its_metadata_beside_it(golden_run: Path, chdir_tmp: Path) -> None:
    done = export_run(golden_run, "run.csv")
    assert done.metadata_path == Path("run.csv" + CSV_METADATA_SUFFIX)
    run = read_run(golden_run)
    got = duckdb.sql("SELECT pair_id, status, lpips FROM 'run.csv' ORDER BY pair_id").fetchall()
    assert [r[:2] for r in got] == [r[:2] for r in _rows(run.to_pylist())]
    assert [r[2] for r in got] == pytest.approx([r[2] for r in _rows(run.to_pylist())], rel=1e-12)
    described = json.loads(done.metadata_path.read_text())
    assert described["metadata"] == run_metadata(run)
    assert described["columns"][schema.LPIPS.name]["unit"] == schema.LPIPS.unit
    assert described["columns"][schema.LPIPS.name]["description"] == schema.LPIPS.doc


def test_csv_cells_a_spreadsheet_would_run_are_written_as_text(tmp_path: Path) -> None:
    hostile = ['=HYPERLINK("http://x")', "+1", "-cmd", "@SUM(A1)", "\tx", "plain", "a=b"]
    run = write_run(tmp_path / "run.arrow", [{"pair_id": p, "status": "error", "error": p} for p in hostile])
    out = export_run(run, tmp_path / "run.csv").path
    cells = duckdb.sql(f"SELECT pair_id, error FROM read_csv('{out}', all_varchar=true)").fetchall()
    expected = ["'" + p if p[0] in "=+-@\t" else p for p in hostile]
    assert sorted(c[0] for c in cells) == sorted(expected)
    assert sorted(c[1] for c in cells) == sorted(expected)


def test_parquet_keeps_nulls_and_types(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run.arrow", [{"pair_id": "a", "status": "ok", "text_regions": 3, "size_match": True},
                                             {"pair_id": "b", "status": "error"}])  # fmt: skip
    out = export_run(run, tmp_path / "out.data", "parquet").path
    got = duckdb.sql(f"SELECT pair_id, text_regions, size_match FROM read_parquet('{out}') ORDER BY pair_id").fetchall()
    assert got == [("a", 3, True), ("b", None, None)]


def test_the_format_comes_from_the_option_or_the_suffix() -> None:
    assert export_format(Path("x.PARQUET")) == "parquet"
    assert export_format(Path("x.txt"), "csv") == "csv"
    with pytest.raises(ExportError, match=r"does not end in \.parquet or \.csv"):
        export_format(Path("x.txt"))
    with pytest.raises(ExportError, match="must be one of parquet, csv; got 'xlsx'"):
        export_format(Path("x.csv"), "xlsx")


def test_a_file_that_is_not_a_run_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad.arrow"
    bad.write_bytes(b"not arrow")
    with pytest.raises(RunFileError):
        export_run(bad, tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.arrow"]


def test_an_export_holds_the_schemas_columns_as_declared(tmp_path: Path) -> None:
    """A run from elsewhere may store text as large strings and carry columns pixgate never
    writes: the export casts the first (and neutralises them in a CSV) and drops the rest."""
    import pyarrow as pa

    table = pa.table({"pair_id": pa.array(["=1+1", "b"], pa.large_string()), "status": ["ok", "ok"],
                      "extra": pa.array([b"=2+2", b"x"], pa.binary())})  # fmt: skip
    run = tmp_path / "run.arrow"
    with pa.OSFile(str(run), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    out = export_run(run, tmp_path / "run.CSV", "CSV").path
    header, *lines = out.read_text().splitlines()
    assert header == '"pair_id","status"' and sorted(lines) == ['"\'=1+1","ok"', '"b","ok"']
    parquet = export_run(run, tmp_path / "run.parquet").path
    assert duckdb.sql(f"SELECT typeof(pair_id) FROM read_parquet('{parquet}') LIMIT 1").fetchall() == [("VARCHAR",)]
