"""Tests of the tagger-hotels plugin. Run them with ``pytest`` from this folder.

They work whether or not the plugin is installed: the ``hotels_plugin`` fixture registers
the module with tagger's plugin manager for one test when its entry point is not loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import tagger_hotels
from click.testing import CliRunner
from tagger_hotels.cli import count_labels

from tagger_core import Tagger, load_plugins, read_records, resolve_taxonomy

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def hotels_plugin():
    pm = load_plugins()
    if pm.is_registered(tagger_hotels):  # installed: loaded from its entry point
        yield tagger_hotels
        return
    pm.register(tagger_hotels, name="hotels")
    try:
        yield tagger_hotels
    finally:
        pm.unregister(name="hotels")


def test_register_taxonomies(hotels_plugin):
    taxonomy = resolve_taxonomy("hotels")
    assert taxonomy.entity_type == "hotel"
    assert taxonomy.mode == "multi-label"
    assert len(taxonomy.labels) == 10
    assert taxonomy.label("hot-spring-spa").name == "温泉水疗"
    assert taxonomy.resolve("青年旅舍") == "budget"  # aliases resolve to label ids


def test_example_data_covers_every_label_in_both_files(hotels_plugin):
    taxonomy = resolve_taxonomy("hotels")
    for name in ("train.json", "validation.json"):
        counts = count_labels(read_records(DATA / name), taxonomy)
        assert not counts.unknown_labels
        assert min(counts.labels.values()) >= 2, counts.labels


def test_train_and_predict(hotels_plugin, tmp_path):
    tagger = Tagger.create("hotels")
    tagger.train(read_records(DATA / "train.json"), read_records(DATA / "validation.json"))
    tagger.save(tmp_path / "hotels-tagger")
    [prediction] = Tagger.load(tmp_path / "hotels-tagger").predict(["三亚海棠湾喜来登度假酒店"])
    assert "resort" in prediction.labels
    assert set(prediction.scores) == set(resolve_taxonomy("hotels").label_ids)


def test_stats_command(hotels_plugin):
    # tagger adds plugin commands once per process, so test the hook on a fresh group.
    cli = click.Group()
    tagger_hotels.register_commands(cli=cli)
    result = CliRunner().invoke(
        cli, ["hotels", "stats", str(DATA / "train.json"), str(DATA / "validation.json")]
    )
    assert result.exit_code == 0, result.output
    assert "温泉水疗" in result.output
    assert "multi-label rows" in result.output


def test_stats_reports_missing_and_unknown_labels(hotels_plugin, tmp_path):
    data = tmp_path / "few.json"
    data.write_text(
        json.dumps([{"text": "香港半岛酒店", "label": ["luxury", "palace"]}], ensure_ascii=False),
        encoding="utf-8",
    )
    cli = click.Group()
    tagger_hotels.register_commands(cli=cli)
    result = CliRunner().invoke(cli, ["hotels", "stats", "--json", str(data)])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["files"][str(data)]["labels"]["luxury"] == 1
    assert report["files"][str(data)]["unknown_labels"] == {"palace": 1}
    assert len(report["problems"]) == 2
