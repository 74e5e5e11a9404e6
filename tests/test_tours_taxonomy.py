"""The zero-code path: the tours taxonomy is a data file alone, usable by path or, once its
folder is on TAGGER_TAXONOMY_PATH, by name, everywhere a taxonomy name is accepted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tagger_core import Tagger, load_taxonomy_file, read_records
from tagger_core.cli import cli

FOLDER = Path(__file__).resolve().parent.parent / "examples" / "taxonomies"
TOURS = FOLDER / "tours.yaml"
SAMPLE = FOLDER / "tours-sample.csv"


def invoke(*args: str):
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def taxonomy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGGER_TAXONOMY_PATH", str(FOLDER))


def test_tours_is_data_only() -> None:
    assert not [p for p in FOLDER.rglob("*") if p.suffix == ".py"], "no code in the folder"
    taxonomy = load_taxonomy_file(TOURS)
    assert (taxonomy.name, taxonomy.entity_type, taxonomy.mode) == ("tours", "tour", "multi-label")
    assert taxonomy.label("day-trip").name == "一日游"
    assert taxonomy.constraints.exclusive_groups == [["day-trip", "multi-day"]]
    assert all(label.name and label.description for label in taxonomy.labels)


def test_sample_uses_every_label() -> None:
    taxonomy = load_taxonomy_file(TOURS)
    used = {label for record in read_records(SAMPLE) for label in record.labels}
    assert used == set(taxonomy.label_ids)


def test_unknown_without_the_folder_on_the_path() -> None:
    result = CliRunner().invoke(cli, ["taxonomy", "show", "tours"])
    assert result.exit_code == 2
    assert "unknown taxonomy 'tours'" in result.stderr


def test_listed_by_name_from_taxonomy_path(taxonomy_path: None) -> None:
    listing = json.loads(invoke("taxonomies", "--json").stdout)
    tours = next(entry for entry in listing if entry["name"] == "tours")
    assert tours["plugin"] == "taxonomy_folders"
    assert tours["entity_type"] == "tour"
    assert "一日游" in invoke("taxonomy", "show", "tours").stdout


def test_folders_are_separated_like_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAGGER_TAXONOMY_PATH", os.pathsep.join([str(tmp_path), str(FOLDER)]))
    names = [entry["name"] for entry in json.loads(invoke("taxonomies", "--json").stdout)]
    assert "tours" in names


@pytest.mark.parametrize("how", ["name", "path"])
def test_train_and_predict_cli(how: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if how == "name":
        monkeypatch.setenv("TAGGER_TAXONOMY_PATH", str(FOLDER))
    taxonomy = "tours" if how == "name" else str(TOURS)
    model = tmp_path / "tours-tagger"
    invoke("train", "--taxonomy", taxonomy, "--train", SAMPLE, "-o", model)
    # The saved tagger carries a snapshot of the taxonomy: no path or variable needed.
    monkeypatch.delenv("TAGGER_TAXONOMY_PATH", raising=False)
    prediction = json.loads(invoke("predict", model, "--json", "澳门美食一日游").stdout)
    assert "day-trip" in prediction["predicted"]
    manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["taxonomy"]["name"] == "tours"


def test_python_api_by_name(taxonomy_path: None) -> None:
    tagger = Tagger.create("tours")
    tagger.train(read_records(SAMPLE))
    [prediction] = tagger.predict(["长江游轮三日游"])
    assert "cruise" in prediction.labels
    assert "day-trip" not in prediction.labels
