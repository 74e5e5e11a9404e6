"""The Tagger object: train → save → load → predict/evaluate, and its saved directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tagger_core
from tagger_core import (
    DataError,
    ModelError,
    PluginError,
    Tagger,
    TaggerError,
    make_rule,
    read_records,
)
from tagger_core.data.io import fingerprint
from tagger_core.tagger import MANIFEST


def toy_records():
    from conftest import TOY

    from tagger_core import Record

    return [Record(text=text, labels=tuple(labels)) for text, labels in TOY]


@pytest.fixture
def trained(toy_file: Path) -> Tagger:
    records = read_records(toy_file)
    return Tagger.create("attractions").train(
        records, records, seed=3, train_files=[fingerprint(toy_file, len(records))]
    )


def test_untrained_defaults_follow_taxonomy_mode(tmp_path: Path) -> None:
    assert Tagger.create("attractions").rule.name == "per-label"
    single = tmp_path / "s.yaml"
    single.write_text("mode: single-label\nlabels: [{id: a}, {id: b}]\n", encoding="utf-8")
    assert Tagger.create(str(single)).rule.name == "argmax"


def test_predict_returns_labels_and_all_scores_in_input_order(trained: Tagger) -> None:
    texts = ["故宫博物院", "海洋公园", "黄山风景区"]
    predictions = trained.predict(texts)
    assert [p.text for p in predictions] == texts
    assert "Museums & Galleries" in predictions[0].labels
    assert set(predictions[0].scores) == set(trained.taxonomy.label_ids)
    assert all(0.0 <= s <= 1.0 for p in predictions for s in p.scores.values())
    # scores are the sigmoid of the encoder's logits, and labels follow the 0.5 threshold
    logits = trained.encoder.logits(texts)
    assert np.allclose([list(p.scores.values()) for p in predictions], 1 / (1 + np.exp(-logits)))
    assert all((p.scores[label] >= 0.5) for p in predictions for label in p.labels)


def test_rule_can_be_overridden_per_call(trained: Tagger) -> None:
    [top2] = trained.predict(["故宫博物院"], rule=make_rule("top-k", {"k": 2}))
    assert len(top2.labels) == 2
    [top1] = trained.predict(["故宫博物院"], rule="top-k")  # a plugin name with default params
    assert top1.labels == ["Museums & Galleries"]
    assert trained.evaluate(toy_records(), rule="top-k").empty_predictions == 0


def test_save_load_round_trip_and_manifest(trained: Tagger, tmp_path: Path, toy_file: Path) -> None:
    path = trained.save(tmp_path / "model")
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["format"] == "tagger-model/1"
    assert manifest["versions"]["tagger"] == tagger_core.__version__
    assert {"python", "numpy", "scikit-learn"} <= set(manifest["versions"])
    assert manifest["taxonomy"]["name"] == "attractions"
    assert manifest["encoder"]["name"] == "tfidf" and manifest["encoder"]["params"]["C"] > 0
    # the default multi-label rule is fitted on the validation file and saved with its fit
    assert manifest["rule"]["name"] == "per-label"
    assert manifest["rule"]["params"]["default"] == 0.5
    assert isinstance(manifest["rule"]["params"]["thresholds"], dict)
    train = manifest["training"]["train"][0]
    assert train["rows"] == 20 and len(train["sha256"]) == 64 and train["path"] == str(toy_file)
    assert manifest["training"]["seed"] == 3
    assert manifest["training"]["validation_metrics"]["rows"] == 20
    loaded = Tagger.load(path)
    texts = ["故宫博物院", "海洋公园", "完全没见过的名字"]
    assert loaded.predict(texts) == trained.predict(texts)
    assert loaded.training.validation_metrics == trained.training.validation_metrics


def test_existing_directory_needs_force_and_is_replaced_whole(
    trained: Tagger, tmp_path: Path
) -> None:
    path = trained.save(tmp_path / "out" / "model")
    (path / "encoder" / "stale.npy").write_bytes(b"old")
    with pytest.raises(TaggerError, match="already exists; use --force"):
        trained.save(path)
    # --force replaces what the tagger wrote, never a file someone else put there
    with pytest.raises(TaggerError, match=r"holds files the tagger did not write \(encoder/stale"):
        trained.save(path, force=True)
    (path / "encoder" / "stale.npy").unlink()
    (path / "encoder" / "coef.npy").write_bytes(b"changed by hand")  # the tagger's own: replaced
    trained.save(path, force=True)
    assert Tagger.load(path).predict(["故宫博物院"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model"]  # no temp folders left


def test_force_never_replaces_a_foreign_directory(trained: Tagger, tmp_path: Path) -> None:
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(TaggerError, match="not a tagger directory; not replacing it"):
        trained.save(foreign, force=True)
    assert (foreign / "holiday.jpg").exists()


def test_failed_save_leaves_nothing_behind(trained: Tagger, tmp_path: Path, monkeypatch) -> None:
    def broken_save(directory: Path) -> None:
        (directory / "half.bin").write_bytes(b"x")
        raise OSError("disk full")

    monkeypatch.setattr(trained.encoder, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        trained.save(tmp_path / "out" / "model")
    assert list((tmp_path / "out").iterdir()) == []


def test_load_errors_name_the_problem(trained: Tagger, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="tagger directory does not exist"):
        Tagger.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"not a tagger directory \(no manifest.json\)"):
        Tagger.load(tmp_path / "empty")
    path = trained.save(tmp_path / "model")
    manifest = path / MANIFEST
    good = manifest.read_text(encoding="utf-8")
    manifest.write_text(good[:40], encoding="utf-8")
    with pytest.raises(ModelError, match="corrupt manifest: malformed JSON"):
        Tagger.load(path)
    data = json.loads(good)
    del data["taxonomy"]
    manifest.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelError, match="field 'taxonomy': corrupt manifest: Field required"):
        Tagger.load(path)
    data = json.loads(good)
    data["encoder"]["name"] = "no-such-encoder"
    manifest.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(PluginError, match="unknown encoder 'no-such-encoder'"):
        Tagger.load(path)
    manifest.write_text(good, encoding="utf-8")
    (path / "encoder" / "coef.npy").unlink()
    with pytest.raises(
        ModelError, match=r"coef\.npy: missing: the tagger was saved with this file"
    ):
        Tagger.load(path)
    with pytest.raises(ModelError, match="tfidf encoder state is missing or corrupt"):
        Tagger.load(path, verify=False)


def test_evaluate_and_unknown_label_in_training(toy_file: Path, tmp_path: Path) -> None:
    records = read_records(toy_file)
    tagger = Tagger.create("attractions").train(records)
    evaluation = tagger.evaluate(records)
    assert evaluation.rows == 20 and 0 <= evaluation.micro_f1 <= 1
    bad = tmp_path / "bad.json"
    bad.write_text('[{"text": "x", "label": ["Beaches"]}]', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.json, row 1, field 'label': unknown label 'Beaches'"):
        Tagger.create("attractions").train(read_records(bad))


def test_learns_the_bundled_examples_well_above_chance() -> None:
    examples = Path(__file__).resolve().parents[1] / "examples" / "attractions"
    tagger = Tagger.create("attractions").train(read_records(examples / "train.json"))
    evaluation = tagger.evaluate(read_records(examples / "validation.json"))
    # Most frequent label alone would give micro-F1 ≈ 0.3; character n-grams do far better.
    assert evaluation.micro_f1 > 0.5
