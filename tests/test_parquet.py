"""Parquet files: read and written a row group at a time, labels as a list column or a
joined string, every other column kept, bad rows and files as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import one_line_error, train_toy

from tagger_core import FileOptions, Record, iter_records, read_records, write_records
from tagger_core.cli import cli

pa = pytest.importorskip("pyarrow", reason="needs the parquet extra")
pq = pytest.importorskip("pyarrow.parquet")


def test_records_round_trip(tmp_path: Path) -> None:
    records = [
        Record(text="故宫博物院", labels=("Museums & Galleries",), id=7, metadata={"city": "北京"}),
        Record(text="乌镇", labels=("Villages", "Others"), id=8, metadata={"city": "嘉兴"}),
    ]
    path = tmp_path / "names.parquet"
    write_records(path, records)
    back = read_records(path)
    assert [(r.text, r.labels, r.id, r.metadata) for r in back] == [
        (r.text, r.labels, r.id, r.metadata) for r in records
    ]
    assert [r.row for r in back] == [1, 2]
    assert pq.read_schema(path).field("label").type == pa.list_(pa.string())


def test_joined_label_strings_are_split_as_in_csv(tmp_path: Path) -> None:
    path = tmp_path / "joined.parquet"
    pq.write_table(pa.table({"text": ["乌镇"], "label": ["Villages|Others"]}), path)
    assert read_records(path)[0].labels == ("Villages", "Others")
    semicolons = FileOptions(label_sep=";")
    pq.write_table(pa.table({"text": ["乌镇"], "label": ["Villages;Others"]}), path)
    assert read_records(path, options=semicolons)[0].labels == ("Villages", "Others")


def test_rows_stream_across_row_groups_with_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    texts = [f"名字{i}" for i in range(10_000)]
    pq.write_table(pa.table({"text": texts}), path, row_group_size=1000)
    assert pq.ParquetFile(path).num_row_groups == 10
    records = iter_records(path, None, FileOptions(require_labels=False))
    first = next(iter(records))
    assert (first.text, first.row) == ("名字0", 1)
    rows = list(iter_records(path, None, FileOptions(require_labels=False)))
    assert [r.row for r in rows[-2:]] == [9999, 10000]
    assert rows[5432].text == "名字5432"


def test_predict_reads_and_writes_parquet_keeping_every_column(runner, tmp_path: Path) -> None:
    tagger = train_toy(tmp_path)
    names = tmp_path / "names.parquet"
    pq.write_table(
        pa.table({"id": [1, 2], "text": ["故宫博物院", "水上乐园"], "city": ["北京", "广州"]}),
        names,
    )
    out = tmp_path / "tagged.parquet"
    result = runner.invoke(cli, ["predict", str(tagger), "-i", str(names), "-o", str(out)])
    assert result.exit_code == 0, result.output
    as_jsonl = tmp_path / "tagged.jsonl"
    runner.invoke(cli, ["predict", str(tagger), "-i", str(names), "-o", str(as_jsonl)])
    expected = [json.loads(line) for line in as_jsonl.read_text(encoding="utf-8").splitlines()]
    table = pq.read_table(out)
    assert table.column_names == ["id", "text", "city", "predicted", "scores"]
    rows = table.to_pylist()
    assert [r["predicted"] for r in rows] == [e["predicted"] for e in expected]
    assert rows[1]["city"] == "广州" and rows[1]["id"] == 2
    for row, want in zip(rows, expected, strict=True):
        assert row["scores"] == pytest.approx(want["scores"])


def test_a_bad_row_or_file_is_one_line(runner, tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": ["故宫", None], "label": [["Others"], ["Villages"]]}), path)
    result = runner.invoke(cli, ["validate", str(path), "--taxonomy", "attractions"])
    line = one_line_error(result)
    assert str(path) in line and "row 2" in line and "'text'" in line
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    result = runner.invoke(cli, ["validate", str(broken), "--taxonomy", "attractions"])
    assert "not a readable Parquet file" in one_line_error(result)


def test_a_missing_pyarrow_names_the_extra(runner, tmp_path: Path, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: object, **kwargs: object):
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *args, **kwargs)

    path = tmp_path / "names.parquet"
    pq.write_table(pa.table({"text": ["故宫"], "label": [["Others"]]}), path)
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    result = runner.invoke(cli, ["validate", str(path), "--taxonomy", "attractions"])
    assert 'pip install "tagger[parquet]"' in one_line_error(result)
