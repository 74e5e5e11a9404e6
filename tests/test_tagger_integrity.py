"""A saved tagger is checked when loaded: changed or missing files, arrays of the wrong
dtype or shape, non-finite weights are refused with one line; one writer per target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TOY, one_line_error, train_args

from tagger_core import ModelError, Record, Tagger, TaggerError
from tagger_core.cli import cli
from tagger_core.files import exclusive, sha256_of
from tagger_core.tagger import MANIFEST


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    return Tagger.create("attractions").train(records, records).save(tmp_path / "model")


def _rewrite(path: Path, name: str, array: np.ndarray) -> None:
    """Replace one array and update its checksum: only the load-time checks can catch it."""
    np.save(path / "encoder" / name, array)
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"][f"encoder/{name}"] = sha256_of(path / "encoder" / name)
    (path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def test_the_manifest_lists_every_file_with_its_sha256(saved: Path) -> None:
    files = json.loads((saved / MANIFEST).read_text(encoding="utf-8"))["files"]
    on_disk = {p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file()}
    assert set(files) == on_disk - {MANIFEST}
    assert all(files[name] == sha256_of(saved / name) for name in files)


def test_overwritten_bytes_are_refused_naming_the_file(saved: Path) -> None:
    weights = saved / "encoder" / "coef.npy"
    data = bytearray(weights.read_bytes())
    data[200:260] = b"\x00" * 60
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError) as caught:
        Tagger.load(saved)
    assert str(caught.value) == (
        f"{weights}: changed since the tagger was saved (SHA-256 differs); retrain or restore "
        "it (--no-verify skips this check)"
    )
    line = one_line_error(CliRunner().invoke(cli, ["predict", str(saved), "故宫"]))
    assert line == f"Error: {caught.value}"


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("coef.npy", "nan", "holds 1 non-finite value(s) (NaN or infinity)"),
        ("coef.npy", "float64", "holds float64 values, expected float32"),
        ("intercept.npy", "short", "has shape (8,), expected (9,)"),
    ],
)
def test_bad_arrays_are_refused_at_load(saved: Path, name: str, array: str, message: str) -> None:
    original = np.load(saved / "encoder" / name)
    if array == "nan":
        bad = original.copy()
        bad.flat[0] = np.nan
    elif array == "float64":
        bad = original.astype(np.float64)
    else:
        bad = original[:-1]
    _rewrite(saved, name, bad)
    with pytest.raises(ModelError) as caught:
        Tagger.load(saved)
    assert str(caught.value) == f"{saved / 'encoder' / name}: {message}"


def test_no_verify_skips_the_checksums_but_not_the_array_checks(saved: Path) -> None:
    weights = saved / "encoder" / "intercept.npy"
    np.save(weights, np.load(weights))  # the same values, written again: same bytes
    (saved / "encoder" / "vocabulary.json").write_text(
        (saved / "encoder" / "vocabulary.json").read_text(encoding="utf-8") + " ", "utf-8"
    )
    with pytest.raises(ModelError, match=r"vocabulary\.json: changed since"):
        Tagger.load(saved)
    assert Tagger.load(saved, verify=False).predict(["故宫博物院"])
    result = CliRunner().invoke(cli, ["predict", str(saved), "故宫博物院", "--no-verify"])
    assert result.exit_code == 0, result.output


def test_a_second_writer_of_one_target_is_refused_at_once(tmp_path: Path, toy_file: Path) -> None:
    target = tmp_path / "m"
    args = train_args(toy_file, target)
    with exclusive(target):  # another `tagger train -o m` is running (this process)
        result = CliRunner().invoke(cli, args)
        line = one_line_error(result)
        assert line.startswith(f"Error: {target} is being written by another process")
        assert "Training" not in result.output and not target.exists()
    # A lock left by a killed writer (its pid gone) is taken over.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (tmp_path / ".m.lock").write_text(dead)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / ".m.lock").exists()


def test_leftovers_of_a_killed_save_are_removed_by_the_next_write(
    tmp_path: Path, toy_file: Path
) -> None:
    for leftover in (".m.x1y2z3w4.partial", ".m.x2_abc9z.old"):  # as mkdtemp names them
        (tmp_path / leftover / "tagger").mkdir(parents=True)
    others = [".other.x3abcdef.partial", ".m.v2.k8j7h6g5.old"]  # other targets' (m.v2's)
    for leftover in others:
        (tmp_path / leftover / "tagger").mkdir(parents=True)
        (tmp_path / leftover / "tagger" / MANIFEST).write_text("{}")
    args = train_args(toy_file, tmp_path / "m")
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [*sorted(others), "m", "toy.json"]


def test_a_restored_backup_is_replaced_only_with_force(tmp_path: Path, toy_file: Path) -> None:
    """A kill between a save's two renames left the only copy in a backup: the next train
    puts it back, then treats it as the existing tagger it is (before training)."""
    args = train_args(toy_file, tmp_path / "m")
    assert CliRunner().invoke(cli, args).exit_code == 0
    backup = tmp_path / ".m.a1b2c3d4.old"
    backup.mkdir()
    (tmp_path / "m").rename(backup / "tagger")
    refused = CliRunner().invoke(cli, args)
    assert "already exists; use --force" in one_line_error(refused)
    assert "Training" not in refused.output
    assert (tmp_path / "m" / MANIFEST).is_file() and not backup.exists()
    assert CliRunner().invoke(cli, [*args, "--force"]).exit_code == 0


def test_force_never_replaces_a_folder_whose_manifest_is_not_a_taggers(
    tmp_path: Path, toy_file: Path
) -> None:
    site = tmp_path / "webapp"  # a web app's manifest.json, not a tagger's
    site.mkdir()
    (site / MANIFEST).write_text('{"name": "my pwa"}')
    (site / "index.html").write_text("<html></html>")
    refused = CliRunner().invoke(cli, [*train_args(toy_file, site), "--force"])
    assert "lists no tagger files" in one_line_error(refused)
    assert (site / "index.html").read_text() == "<html></html>"


def test_files_written_by_someone_else_are_kept(saved: Path) -> None:
    notes = saved / "NOTES.md"
    notes.write_text("how this tagger was made")
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    with pytest.raises(TaggerError, match=r"holds files the tagger did not write \(NOTES.md\)"):
        Tagger.create("attractions").train(records).save(saved, force=True)
    assert notes.read_text() == "how this tagger was made"
    assert os.path.exists(saved / MANIFEST)
