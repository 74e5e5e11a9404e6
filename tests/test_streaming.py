"""`tagger predict` reads, scores and writes a chunk at a time: memory does not grow with
the input, and the output is written through a temporary file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TOY

from tagger_core import FileOptions, Record, Tagger, iter_records, read_records, record_writer
from tagger_core.cli import cli
from tagger_core.workflows import predict as predict_workflow


@pytest.fixture
def model(tmp_path: Path) -> Path:
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    return Tagger.create("attractions").train(records).save(tmp_path / "model")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json", ".txt"])
def test_predict_consumes_its_input_a_chunk_at_a_time(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    n, chunk = 5000, 1000
    names = tmp_path / f"names{suffix}"
    rows = [f"名字{i}公园" for i in range(n)]
    if suffix == ".jsonl":
        names.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows), "utf-8")
    elif suffix == ".csv":
        names.write_text("text\n" + "".join(t + "\n" for t in rows), "utf-8")
    elif suffix == ".json":
        names.write_text(json.dumps([{"text": t} for t in rows]), "utf-8")
    else:
        names.write_text("".join(t + "\n" for t in rows), "utf-8")
    read_so_far: list[int] = []
    original = predict_workflow.Tagger.predict

    def predict(self: Tagger, texts, rule=None):  # type: ignore[no-untyped-def]
        read_so_far.append(len(texts))
        return original(self, texts, rule=rule)

    monkeypatch.setattr(predict_workflow, "CHUNK", chunk)
    monkeypatch.setattr(predict_workflow.Tagger, "predict", predict)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(model), "-i", str(names), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert read_so_far == [chunk] * (n // chunk)  # scored chunk by chunk
    written = read_records(out, options=FileOptions(label_field="predicted"))
    assert [r.text for r in written] == rows  # every row, in order


def test_iter_records_is_lazy(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "a"}\n' * 10 + "not json\n", encoding="utf-8")
    stream = iter_records(path, options=FileOptions(require_labels=False))
    assert [next(stream).text for _ in range(10)] == ["a"] * 10  # read before the bad row
    with pytest.raises(Exception, match="row 11: malformed JSON"):
        next(stream)


def test_a_failed_chunk_leaves_no_output(model: Path, tmp_path: Path) -> None:
    names = tmp_path / "names.jsonl"
    rows = [{"text": f"名字{i}"} for i in range(3000)] + [{"text": ""}]
    names.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(model), "-i", str(names), "-o", str(out)])
    assert result.exit_code == 2 and "row 3001, field 'text': empty text" in result.output
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["model", "names.jsonl"]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".tsv", ".xlsx"])
def test_chunked_writers_write_what_one_write_would(tmp_path: Path, suffix: str) -> None:
    records = [
        Record(text=f"名{i}", labels=("Others",), metadata={"scores": {"Others": i / 10}})
        for i in range(7)
    ]
    with record_writer(tmp_path / f"chunked{suffix}") as writer:
        for start in range(0, 7, 3):
            writer.write(records[start : start + 3])
    back = read_records(tmp_path / f"chunked{suffix}")
    assert [(r.text, r.labels) for r in back] == [(r.text, r.labels) for r in records]


def test_an_empty_name_from_any_input_is_one_line(model: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["predict", str(model), "故宫", " "])
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: arguments, row 2, field 'text': empty text"
    result = runner.invoke(cli, ["predict", str(model), "--json"], input="故宫\n\n海洋公园\n")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2  # blank lines skipped
