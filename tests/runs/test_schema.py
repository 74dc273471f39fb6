"""The schema module is the one source of column names; the docs' column tables follow it."""

from __future__ import annotations

from pixgate.runs import schema
from tests.conftest import ROOT

# The columns other tools rely on (the score contract); more may be added, none removed.
CONTRACT = [
    "pair_id",
    "status",
    "error",
    "baseline_path",
    "candidate_path",
    "baseline_format",
    "candidate_format",
    "baseline_width",
    "baseline_height",
    "candidate_width",
    "candidate_height",
    "size_match",
    "aspect_ratio_delta",
    "baseline_has_alpha",
    "candidate_has_alpha",
    "alpha_parity",
    "alpha_mae",
    "baseline_icc",
    "candidate_icc",
    "icc_match",
    "delta_e_mean",
    "delta_e_p95",
    "chroma_shift",
    "edge_preservation",
    "lpips",
    "gpu_ms",
    "decode_ms",
]


def test_contract_columns_are_present() -> None:
    missing = [c for c in CONTRACT if c not in schema.COLUMN_NAMES]
    assert missing == []
    assert len(set(schema.COLUMN_NAMES)) == len(schema.COLUMN_NAMES)


def test_arrow_schema_follows_columns() -> None:
    arrow = schema.arrow_schema({"a": "b"})
    assert arrow.names == list(schema.COLUMN_NAMES)
    assert arrow.metadata == {b"a": b"b"}
    assert not arrow.field(schema.PAIR_ID.name).nullable


# Where each file kind's column table is documented.
COLUMN_TABLES = {
    "run": (schema.COLUMNS, ROOT / "docs" / "run-files.md"),
    "capture": (schema.CAPTURE_COLUMNS, ROOT / "docs" / "capture.md"),
    "replay": (schema.REPLAY_COLUMNS, ROOT / "docs" / "capture.md"),
}


def test_docs_column_tables_are_generated_from_the_schema() -> None:
    for kind, (columns, doc) in COLUMN_TABLES.items():
        text = doc.read_text(encoding="utf-8")
        assert schema.markdown_table(columns) in text, (
            f"the {kind} file's column table in {doc.relative_to(ROOT)} differs from the schema; "
            "regenerate it with: python -m pixgate.runs.schema"
        )


def test_every_file_kind_agrees_on_shared_column_types() -> None:
    types = schema.column_types()  # raises if two file kinds give one name two types
    assert types[schema.LATENCY_MS.name] == "float64" and types[schema.STATUS.name] == "string"
