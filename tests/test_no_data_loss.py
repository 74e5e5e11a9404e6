"""Nothing is lost or half-written: outputs are atomic, targets are checked before any work,
Ctrl-C exits 130 with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, TOY, one_line_error, train_args

from tagger_core import Record, Tagger
from tagger_core.cli import cli
from tagger_core.files import atomic_path, check_target


@pytest.fixture
def model(tmp_path: Path) -> Path:
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    return Tagger.create("attractions").train(records, records).save(tmp_path / "model")


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_write_killed_half_way_leaves_the_old_file(tmp_path: Path) -> None:
    """A process killed (SIGKILL) in the middle of writing predictions: the old file is
    intact and no fragment carries the target's name."""
    target = tmp_path / "out.jsonl"
    target.write_text('{"text": "old"}\n', encoding="utf-8")
    result = _run(
        f"""
        import os, signal
        from tagger_plugins import data_sources
        from tagger_core import Record, write_records

        def half_then_die(self, rows):
            self.handle.write(b'{{"text": "new"}}\\n')
            self.handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        data_sources._JsonLinesWriter.write_rows = half_then_die
        write_records({str(target)!r}, [Record(text="new")] * 3)
        """,
        tmp_path,
    )
    assert result.returncode == -9, result.stderr
    assert target.read_text(encoding="utf-8") == '{"text": "old"}\n'
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == ["out.jsonl"]


def test_an_interrupted_write_leaves_no_file_at_all(tmp_path: Path) -> None:
    target = tmp_path / "new.json"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as temporary:
        temporary.write_text("[", encoding="utf-8")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_new_name_is_flushed_with_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the rename must not lose the file's name: its folder is flushed."""
    import tagger_core.files as files
    import tagger_core.serve.corrections as corrections

    flushed: list[Path] = []
    monkeypatch.setattr(files, "sync_folder", flushed.append)
    with atomic_path(tmp_path / "out" / "a.json") as path:
        path.write_text("{}", encoding="utf-8")
    assert flushed == [tmp_path / "out"]
    monkeypatch.setattr(corrections, "sync_folder", flushed.append)
    log = corrections.CorrectionLog(tmp_path / "reviewed.jsonl")
    log.append({"text": "乌镇", "label": ["Villages"]})
    log.append({"text": "西塘", "label": ["Villages"]})
    assert flushed == [tmp_path / "out", tmp_path]  # once: when the file was created


def test_targets_are_checked_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(Exception, match="is a file, not a folder"):
        check_target(tmp_path / "file" / "out.json", force=False)
    with pytest.raises(Exception, match="is a directory"):
        check_target(tmp_path, force=True)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(Exception, match="is not writable"):
            check_target(locked / "out.json", force=False)


def test_train_refuses_a_bad_target_before_training(tmp_path: Path, toy_file: Path) -> None:
    runner = CliRunner()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    (tmp_path / "file").write_text("x")
    for target, expected in (
        (tmp_path / "notes", "exists and is not a tagger directory; not replacing it"),
        (tmp_path / "file" / "m", "is a file, not a folder"),
    ):
        result = runner.invoke(cli, train_args(toy_file, target, "--force"))
        assert expected in one_line_error(result)
        assert "Training" not in result.output  # refused before any work
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"


def test_evaluate_refuses_to_overwrite_without_force(model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    metrics, report = tmp_path / "m.json", tmp_path / "r.html"
    report.write_text("my notes", encoding="utf-8")
    valid = str(EXAMPLES / "validation.json")
    args = ["evaluate", str(model), valid, "--metrics-file", str(metrics), "--report", str(report)]
    line = one_line_error(runner.invoke(cli, args))
    assert line == f"Error: {report} already exists; use --force to replace it"
    assert not metrics.exists() and report.read_text(encoding="utf-8") == "my notes"
    result = runner.invoke(cli, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert json.loads(metrics.read_text(encoding="utf-8"))["rows"] == 55
    assert report.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_ctrl_c_exits_130_with_one_line(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Tagger, "scores", interrupted)
    result = CliRunner().invoke(cli, ["predict", str(model), "故宫"])
    assert result.exit_code == 130
    assert result.stderr.strip() == "Interrupted."
