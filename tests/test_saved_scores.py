"""Saved taggers answer correctly: sigmoid for multi-label, softmax for single-label, and the
thresholds fitted at training are the ones applied after loading (and can be overridden)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TOY

from tagger_core import Record, Tagger, Taxonomy, make_rule, resolve_taxonomy
from tagger_core.cli import cli
from tagger_core.tagger import MANIFEST

SINGLE = [
    ("故宫博物院", "museum"),
    ("香港艺术馆", "museum"),
    ("科学博物馆", "museum"),
    ("上海博物馆", "museum"),
    ("北京动物园", "zoo"),
    ("海洋馆动物园", "zoo"),
    ("野生动物园", "zoo"),
    ("长隆动物园", "zoo"),
    ("维多利亚公园", "park"),
    ("拙政园花园", "park"),
    ("中山公园", "park"),
    ("森林公园", "park"),
]


def _records(rows) -> list[Record]:
    return [Record(text=t, labels=tuple(labels)) for t, labels in rows]


@pytest.fixture
def unconstrained() -> Taxonomy:
    """The attraction taxonomy without its exclusive label, so decisions are pure thresholds."""
    data = resolve_taxonomy("attractions").model_dump()
    data["constraints"] = {}
    return Taxonomy.model_validate(data)


@pytest.fixture
def multi_label_dir(tmp_path: Path, unconstrained: Taxonomy) -> Path:
    records = _records(TOY)
    tagger = Tagger.create(
        unconstrained, rule_params={"min_positives": 1, "shrinkage": 0, "folds": 0}
    )
    return tagger.train(records, records).save(tmp_path / "multi")


@pytest.fixture
def single_label_dir(tmp_path: Path) -> Path:
    taxonomy = Taxonomy.model_validate(
        {
            "name": "kinds",
            "mode": "single-label",
            "labels": [{"id": "museum"}, {"id": "zoo"}, {"id": "park"}],
        }
    )
    records = _records([(t, [label]) for t, label in SINGLE])
    return Tagger.create(taxonomy).train(records, records).save(tmp_path / "single")


TEXTS = ["故宫博物院", "海洋公园", "完全没见过的名字", "动物园"]


def test_saved_multi_label_tagger_gives_sigmoid_scores(multi_label_dir: Path) -> None:
    tagger = Tagger.load(multi_label_dir)
    logits = tagger.encoder.logits(TEXTS)
    probabilities = np.array([list(p.scores.values()) for p in tagger.predict(TEXTS)])
    assert np.allclose(probabilities, 1 / (1 + np.exp(-logits)))
    assert not np.allclose(probabilities.sum(axis=1), 1.0)


def test_saved_single_label_tagger_gives_softmax_scores_and_one_label(
    single_label_dir: Path,
) -> None:
    tagger = Tagger.load(single_label_dir)
    assert tagger.rule.name == "argmax"
    logits = tagger.encoder.logits(TEXTS)
    predictions = tagger.predict(TEXTS)
    probabilities = np.array([list(p.scores.values()) for p in predictions])
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(probabilities, expected)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert all(len(p.labels) == 1 for p in predictions)
    assert predictions[0].labels == ["museum"]


def test_thresholds_fitted_at_training_are_saved_and_applied_after_loading(
    multi_label_dir: Path,
) -> None:
    manifest = json.loads((multi_label_dir / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["rule"]["name"] == "per-label"
    saved = manifest["rule"]["params"]["thresholds"]
    assert saved, "training on --valid fits per-label thresholds"
    tagger = Tagger.load(multi_label_dir)
    thresholds = tagger.rule.label_thresholds(tagger.taxonomy)
    assert thresholds is not None
    assert {k: thresholds[k] for k in saved} == saved
    # every predicted label reaches its own threshold, and every label that does is predicted
    for prediction in tagger.predict(TEXTS + [text for text, _ in TOY]):
        passing = [label for label, p in prediction.scores.items() if p >= thresholds[label]]
        assert prediction.labels == passing
    # the validation figures at training used the same thresholds
    per_label = manifest["training"]["validation_metrics"]["per_label"]
    assert {m["label"]: m["threshold"] for m in per_label} == thresholds


def test_saved_rule_can_be_overridden_per_call(multi_label_dir: Path) -> None:
    tagger = Tagger.load(multi_label_dir)
    strict = make_rule("threshold", {"threshold": 0.999})
    assert all(p.labels == [] for p in tagger.predict(TEXTS, rule=strict))
    top2 = tagger.predict(TEXTS, rule=make_rule("top-k", {"k": 2}))
    assert all(len(p.labels) == 2 for p in top2)
    # the saved rule is untouched by an override
    assert tagger.predict(TEXTS) == Tagger.load(multi_label_dir).predict(TEXTS)


def test_cli_override_of_the_saved_rule(multi_label_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "predict",
            str(multi_label_dir),
            "故宫博物院",
            "--rule",
            "threshold",
            "--rule-param",
            "threshold=0.999",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "(no label; best:" in result.stdout
    result = runner.invoke(
        cli, ["predict", str(multi_label_dir), "故宫博物院", "--rule", "at-least-one",
              "--rule-param", "inner={name: threshold, params: {threshold: 0.999}}"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("故宫博物院\tMuseums & Galleries (")


def test_default_training_fits_per_label_thresholds(tmp_path: Path) -> None:
    taxonomy = resolve_taxonomy("attractions")
    assert Tagger.create(taxonomy).rule.name == "per-label"
    single = Taxonomy.model_validate(
        {"name": "s", "mode": "single-label", "labels": [{"id": "a"}, {"id": "b"}]}
    )
    assert Tagger.create(single).rule.name == "argmax"
