"""The journal survives being cut at any byte; finalising sorts and records metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixgate.runs import schema
from pixgate.runs.files import RunFileError, RunJournal, journal_path, read_journal, read_run, run_metadata
from tests.conftest import ROOT


def _rows(ids: list[str]) -> list[dict[str, object]]:
    rows = []
    for i, pid in enumerate(ids):
        row = schema.empty_row()
        row.update({schema.PAIR_ID.name: pid, schema.STATUS.name: schema.STATUS_OK, schema.LPIPS.name: i / 10})
        rows.append(row)
    return rows


def test_journal_cut_anywhere_keeps_every_complete_batch(tmp_path: Path) -> None:
    run = tmp_path / "run.arrow"
    journal = RunJournal(run, {"k": "v"})
    sizes = []
    for b in range(5):
        journal.append(_rows([f"b{b}-{i}" for i in range(3)]))
        sizes.append(journal_path(run).stat().st_size)
    journal.close()
    data = journal_path(run).read_bytes()
    cut = tmp_path / "cut.partial"
    header = 0
    for offset in range(0, len(data) + 1, 37):
        cut.write_bytes(data[:offset])
        if offset == 0:  # killed as it was created: no rows, no metadata, but readable
            table, meta = read_journal(cut)
            assert table.num_rows == 0 and meta == {}
            continue
        try:
            table, meta = read_journal(cut)
        except ValueError:
            header = max(header, offset)  # not even the schema message yet
            continue
        complete = sum(1 for s in sizes if s <= offset)
        assert table.num_rows == 3 * complete, offset
        assert meta == {"k": "v"}
    assert header < sizes[0]


def test_finalize_sorts_by_pair_id_and_replaces_metadata(tmp_path: Path) -> None:
    run = tmp_path / "run.arrow"
    journal = RunJournal(run, {"stage": "start"})
    journal.append(_rows(["b", "c"]))
    journal.append(_rows(["a"]))
    table = journal.finalize({"stage": "end"})
    assert not journal_path(run).exists()
    back = read_run(run)
    assert back.column(schema.PAIR_ID.name).to_pylist() == ["a", "b", "c"]
    assert run_metadata(back) == {"stage": "end"}
    assert back.schema.names == list(schema.COLUMN_NAMES)
    assert back.equals(table)


def test_resumed_journal_carries_old_rows(tmp_path: Path) -> None:
    run = tmp_path / "run.arrow"
    first = RunJournal(run, {})
    first.append(_rows(["a", "b"]))
    first.close()
    carried, _ = read_journal(journal_path(run))
    second = RunJournal(run, {}, carried)
    second.append(_rows(["c"]))
    table = second.finalize({})
    assert table.column(schema.PAIR_ID.name).to_pylist() == ["a", "b", "c"]


def test_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "x.partial"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a pixgate journal"):
        read_journal(path)


#: The document whose "Reading a run" snippets the tests run.
READING_DOC = ROOT / "docs" / "run-files.md"


def _doc_readers() -> list[tuple[str, str]]:
    """(library, code) of each Python block in docs/run-files.md's "Reading a run" section."""
    import re

    text = READING_DOC.read_text(encoding="utf-8")
    section = text.split("## Reading a run from other tools", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return [(re.match(r"import (\w+)", block).group(1), block) for block in blocks]  # type: ignore[union-attr]


def test_docs_show_each_reader() -> None:
    assert [lib for lib, _ in _doc_readers()] == ["pyarrow", "pandas", "polars", "duckdb"]


@pytest.mark.parametrize(("library", "code"), _doc_readers(), ids=[lib for lib, _ in _doc_readers()])
def test_doc_reader_opens_a_real_run(library: str, code: str, golden_run: Path, chdir_tmp: Path) -> None:
    pytest.importorskip(library)
    import shutil

    shutil.copy(golden_run, chdir_tmp / "run.arrow")
    rows = read_run(golden_run).to_pylist()
    expected = [r[schema.PAIR_ID.name] for r in sorted(rows, key=lambda r: -r[schema.LPIPS.name])[:3]]
    namespace: dict[str, object] = {}
    exec(compile(code, f"docs/run-files.md ({library})", "exec"), namespace)
    assert namespace["worst"] == expected
    if library == "pandas":
        # The pyarrow dtype backend: an int column with nulls stays int, a bool one bool.
        frame = namespace["df"]
        assert str(frame[schema.TEXT_REGIONS.name].dtype) == "int32[pyarrow]"  # type: ignore[index]
        assert str(frame[schema.SIZE_MATCH.name].dtype) == "bool[pyarrow]"  # type: ignore[index]


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_compressed_files_are_refused_before_anything_is_inflated(codec: str, tmp_path: Path) -> None:
    """A few hundred kB of compressed zeros can inflate to gigabytes inside pyarrow; pixgate
    writes uncompressed files and reads only those, checking each message first."""
    import pyarrow as pa

    from pixgate.runs.ipc import UnsafeIpcError

    table = pa.table({"pair_id": ["a", "b"], "status": ["ok", "ok"], "lpips": [0.0, 0.0]})
    path = tmp_path / "packed.arrow"
    options = pa.ipc.IpcWriteOptions(compression=codec)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    with pytest.raises(RunFileError, match="compressed"):
        read_run(path)
    stream = tmp_path / "packed.partial"
    with pa.OSFile(str(stream), "wb") as sink, pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    with pytest.raises(UnsafeIpcError, match="compressed"):
        read_journal(stream)
    plain = tmp_path / "plain.arrow"
    with pa.OSFile(str(plain), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    assert read_run(plain).equals(table)


def test_files_that_are_not_arrow_are_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.arrow"
    junk.write_bytes(b"ARROW1\0\0" + b"\xff" * 64)
    with pytest.raises(ValueError, match=r"junk\.arrow"):
        read_run(junk)
    text = tmp_path / "text.arrow"
    text.write_text("pair_id,status\n")
    with pytest.raises(ValueError, match="no ARROW1 magic bytes"):
        read_run(text)


def test_files_from_other_writers_are_read(tmp_path: Path) -> None:
    """Written uncompressed by polars or pandas, a run reads back as pyarrow wrote it."""
    import polars as pl
    import pyarrow as pa

    table = pa.table({"pair_id": ["a", "b"], "status": ["ok", "error"], "lpips": [0.1, None]})
    pl.from_arrow(table).write_ipc(tmp_path / "polars.arrow", compression="uncompressed")  # type: ignore[union-attr]
    table.to_pandas().to_feather(tmp_path / "pandas.arrow", compression="uncompressed")
    for name in ("polars.arrow", "pandas.arrow"):
        read = read_run(tmp_path / name, check=False)
        assert read.column("pair_id").to_pylist() == ["a", "b"], name
        assert read.column("lpips").to_pylist() == [0.1, None], name


def test_batches_that_ask_for_compression_in_metadata_are_refused(tmp_path: Path) -> None:
    """Older writers asked for compression in a batch's custom metadata, and pyarrow still
    inflates on that word: refused as well."""
    import pyarrow as pa

    batch = pa.record_batch({"pair_id": ["a"], "status": ["ok"]})
    path = tmp_path / "asked.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch, custom_metadata={"ARROW:experimental_compression": "zstd"})
    with pytest.raises(RunFileError, match="compressed"):
        read_run(path)


def test_a_batch_whose_offsets_point_past_its_data_is_refused(tmp_path: Path) -> None:
    """Read as it points, such a batch crashed the process (SIGBUS); it is validated first."""
    import pyarrow as pa

    table = pa.table({"pair_id": ["ab"], "status": ["ok"]})
    path = tmp_path / "bent.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    data = bytearray(path.read_bytes())
    offsets = (0).to_bytes(4, "little") + (2).to_bytes(4, "little")  # pair_id's offsets [0, 2], then "ab"
    at = data.index(offsets + b"ab")
    data[at + 4 : at + 8] = (1 << 30).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert pa.ipc.open_file(str(path)).read_all().num_rows == 1  # pyarrow alone takes it as it is
    with pytest.raises(ValueError, match=r"bent\.arrow: not a readable Arrow IPC file: .*offset"):
        read_run(path)


def test_a_journal_that_lost_rows_is_not_finalised(tmp_path: Path) -> None:
    """A run file is never written short of the rows its journal was given."""
    from pixgate.safe_io import OutputError

    run = tmp_path / "run.arrow"
    journal = RunJournal(run, {"k": "v"})
    journal.append(_rows(["a", "b"]))
    kept = journal_path(run).stat().st_size
    journal.append(_rows(["c"]))
    with journal_path(run).open("r+b") as fh:
        fh.truncate(kept + 12)  # the last batch torn off a few bytes into its metadata
    with pytest.raises(OutputError, match="holds 2 of the 3 rows"):
        journal.finalize({"k": "v"})
    assert not run.exists() and journal_path(run).exists()


def _capture_file(path: Path, version: str = schema.SCHEMA_VERSION) -> Path:
    """A capture file as `pixgate capture` writes it: keyed by prompt `id`, no `pair_id`."""
    import pyarrow as pa

    rows = [{schema.ID.name: f"c{i}", schema.CAPTURE_STATUS.name: schema.STATUS_OK} for i in range(2)]
    columns = schema.CAPTURE_COLUMNS
    full = [{**{c.name: None for c in columns}, **row} for row in rows]
    table = pa.Table.from_pylist(full, schema=schema.arrow_schema({schema.META_SCHEMA_VERSION: version}, columns))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def test_a_reader_asking_for_a_kind_refuses_the_other(tmp_path: Path) -> None:
    from tests.conftest import write_run

    run = write_run(tmp_path / "run.arrow", _rows(["a", "b"]))
    capture = _capture_file(tmp_path / "capture.arrow")
    assert read_run(run, kind="run").num_rows == 2 and read_run(capture, kind="capture").num_rows == 2
    assert read_run(run).num_rows == read_run(capture).num_rows == 2  # no kind asked: any pixgate file
    with pytest.raises(RunFileError, match=r"a capture or replay file .* not a run file"):
        read_run(capture, kind="run")
    with pytest.raises(RunFileError, match=r"a run file .* not a capture or replay file"):
        read_run(run, kind="capture")


@pytest.mark.parametrize("version", ["1.0", "3.0", "99"])
def test_a_file_of_another_major_schema_version_is_refused(tmp_path: Path, version: str) -> None:
    from tests.conftest import write_run

    run = write_run(tmp_path / "run.arrow", _rows(["a"]), {schema.META_SCHEMA_VERSION: version})
    with pytest.raises(RunFileError, match=f"written with run schema {version}, this pixgate reads"):
        read_run(run)
    with pytest.raises(RunFileError, match=f"written with run schema {version}"):
        read_run(_capture_file(tmp_path / "capture.arrow", version))
    minor = write_run(tmp_path / "minor.arrow", _rows(["a"]), {schema.META_SCHEMA_VERSION: "2.7"})
    assert read_run(minor).num_rows == 1  # a newer minor version only adds columns


def _cli(*args: str | Path) -> tuple[int, str]:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pixgate", *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_every_command_refuses_the_wrong_kind_or_version_in_one_line(tmp_path: Path) -> None:
    from tests.conftest import GOLDEN, write_run

    run = write_run(tmp_path / "run.arrow", _rows(["a", "b"]))
    capture = _capture_file(tmp_path / "capture.arrow")
    future = write_run(tmp_path / "future.arrow", _rows(["a"]), {schema.META_SCHEMA_VERSION: "9.0"})
    policy = GOLDEN / "policy.toml"
    cases = [
        (("gate", capture, "--policy", policy), "not a run file"),
        (("gate", run, "--policy", policy, "--against", capture), "not a run file"),
        (("report", run, "-o", tmp_path / "r.html", "--capture", run), "not a capture or replay file"),
        (("report", capture, "-o", tmp_path / "r.html"), "not a run file"),
        (("export", capture, "-o", tmp_path / "x.parquet"), "not a run file"),
        (("gate", future, "--policy", policy), "written with run schema 9.0"),
        (("report", future, "-o", tmp_path / "r.html"), "written with run schema 9.0"),
        (("export", future, "-o", tmp_path / "x.csv"), "written with run schema 9.0"),
    ]
    for args, fragment in cases:
        code, output = _cli(*args)
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert code == 2 and len(errors) == 1 and fragment in errors[0], (args, output)
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "x.parquet").exists()
    assert not (tmp_path / "x.csv").exists()
