"""`tagger predict` reads, scores and writes a chunk at a time: memory does not grow with
the input, and the output is written through a temporary file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TOY

from tagger_core import (
    DataError,
    FileOptions,
    Record,
    Tagger,
    iter_records,
    read_records,
    record_writer,
)
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
    original = predict_workflow.Tagger.scores

    def scores(self: Tagger, texts):  # type: ignore[no-untyped-def]
        read_so_far.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(predict_workflow, "CHUNK", chunk)
    monkeypatch.setattr(predict_workflow.Tagger, "scores", scores)
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


def _cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own (worker processes are spawned from it)."""
    code = "from tagger_core.cli import main; main()"
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, **kwargs
    )


def test_worker_processes_write_what_this_process_writes(model: Path, tmp_path: Path) -> None:
    """Scored in two worker processes or here: the same bytes, rows in input order, and
    every input field as it was (integer ids, nulls, integers past 64 bits)."""
    names = tmp_path / "names.jsonl"
    rows = [
        {"id": i, "text": f"名字{i}公园", "label": ["Others"], "note": None, "big": 10**30 + i}
        for i in range(5000)
    ]
    names.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    outputs = []
    for jobs in ("0", "2"):
        out = tmp_path / f"out-{jobs}.jsonl"
        result = _cli("predict", str(model), "-i", str(names), "-o", str(out), "--jobs", jobs)
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    written = [json.loads(line) for line in outputs[0].decode("utf-8").splitlines()]
    assert [{k: w[k] for k in rows[0]} for w in written] == rows
    assert all(set(w["scores"]) == set(Tagger.load(model).taxonomy.label_ids) for w in written[:3])


def test_a_worker_that_dies_is_one_line(model: Path) -> None:
    code = f"""
from tagger_core import Tagger, TaggerError
from tagger_core.workflows.predict import ScoringPool

if __name__ == "__main__":
    pool = ScoringPool(Tagger.load({str(model)!r}), None, 1)
    assert pool.result(pool.submit(["故宫"])).chosen.shape == (1, 9)  # a worker runs
    for process in pool.executor._processes.values():
        process.kill()
    try:
        pool.result(pool.submit(["故宫"]))
    except TaggerError as error:
        print(error)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.startswith("a scoring worker process stopped unexpectedly"), result
    assert "Traceback" not in result.stderr


def test_ctrl_c_stops_the_workers_too(model: Path, tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group, as on a terminal: exit 130 with one line,
    no output file, no worker left running."""
    names = tmp_path / "names.txt"
    names.write_text("".join(f"名字{i}公园\n" for i in range(400_000)), "utf-8")
    out = tmp_path / "out.jsonl"
    code = "from tagger_core.cli import main; main()"
    args = ["predict", str(model), "-i", str(names), "-o", str(out), "--jobs", "1"]
    with subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".out.jsonl.*")) and time.monotonic() < deadline:
            time.sleep(0.1)  # the output's temporary file appears with the first chunk
        time.sleep(1)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "Interrupted." and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "names.txt"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)  # anyone left in the group?
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("a worker process outlived Ctrl-C")


def test_a_worker_is_used_for_large_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagger_core.cli import predict as predict_cli

    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small.write_text("故宫\n", "utf-8")
    large.write_text("故宫\n" * 100, "utf-8")
    monkeypatch.setattr(predict_cli, "AUTO_JOBS_BYTES", 100)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert [predict_cli.auto_jobs(p) for p in (None, small, large)] == [0, 0, 1]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert predict_cli.auto_jobs(large) == 0  # one CPU: nothing to overlap with


@pytest.mark.parametrize("fast", [True, False], ids=["orjson", "standard library"])
def test_json_lines_read_and_write_the_same_with_or_without_orjson(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    from tagger_plugins import data_sources

    if not fast:
        monkeypatch.setattr(data_sources, "orjson", None)
    elif data_sources.orjson is None:
        pytest.skip("orjson is not installed")
    path = tmp_path / "in.jsonl"
    lines = [
        '{"id": 7, "text": "故宫", "label": ["Others"], "n": null, "big": 123456789012345678901}',
        '{"text": "国博", "label": [], "w": 0.1, "nested": {"a": [1, "x"]}}',
    ]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    records = read_records(path)
    assert records[0].id == 7 and records[0].metadata == {"n": None, "big": 123456789012345678901}
    with record_writer(tmp_path / "out.jsonl") as writer:
        writer.write(records)
    written = (tmp_path / "out.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(line) for line in written] == [json.loads(line) for line in lines]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": []}\n{"text": NaN}\n', "utf-8")
    with pytest.raises(DataError, match=r"row 2: unreadable JSON value \(NaN is not valid JSON\)"):
        read_records(bad)
