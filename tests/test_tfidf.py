"""The TF-IDF encoder: learns, saves without pickles, restores identical scores."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import TOY

from tagger_core import ModelError, PluginError, Taxonomy, make_encoder

MULTI = Taxonomy.model_validate(
    {"name": "m", "labels": [{"id": "park"}, {"id": "museum"}, {"id": "never"}]}
)
TEXTS = ["中央公园", "湿地公园", "森林公园", "历史博物馆", "艺术博物馆", "科技博物馆", "博物馆公园"]
TARGETS = np.array(
    [[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 1, 0]], dtype=float
)


def test_learns_character_ngrams_and_never_seen_label_scores_low(caplog) -> None:
    encoder = make_encoder("tfidf")
    with caplog.at_level(logging.WARNING, logger="tagger"):
        encoder.fit(TEXTS, TARGETS, MULTI)
    assert "label 'never' has no positive training examples" in caplog.text
    logits = encoder.logits(["城市公园", "海事博物馆"])
    assert logits.shape == (2, 3)
    assert logits[0, 0] > 0 > logits[0, 1]
    assert logits[1, 1] > 0 > logits[1, 0]
    assert (logits[:, 2] < -2).all()


def test_save_and_load_give_identical_logits(tmp_path: Path) -> None:
    encoder = make_encoder("tfidf", {"C": 3.0, "ngram_max": 2})
    encoder.fit(TEXTS, TARGETS, MULTI)
    encoder.save(tmp_path)
    assert not list(tmp_path.glob("*.pkl"))
    restored = make_encoder("tfidf", encoder.params_dict())
    restored.load(tmp_path, MULTI)
    probe = ["公园", "博物馆", "完全无关"]
    assert np.array_equal(encoder.logits(probe), restored.logits(probe))


def test_single_label_with_a_class_absent_from_training() -> None:
    taxonomy = Taxonomy.model_validate(
        {"name": "s", "mode": "single-label", "labels": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}
    )
    texts = [text for text, _ in TOY[:12]]
    classes = np.array([0, 1] * 6)
    targets = np.eye(3)[classes]
    encoder = make_encoder("tfidf")
    encoder.fit(texts, targets, taxonomy)
    logits = encoder.logits(texts)
    assert (logits.argmax(axis=1) == classes).mean() == 1.0
    assert (logits[:, 2] <= -30).all()


def test_same_seed_same_scores() -> None:
    texts = [text for text, _ in TOY]
    targets = np.eye(3)[np.arange(len(texts)) % 3]
    first, second = make_encoder("tfidf"), make_encoder("tfidf")
    first.fit(texts, targets, MULTI, seed=7)
    second.fit(texts, targets, MULTI, seed=7)
    assert np.array_equal(first.logits(texts), second.logits(texts))


def test_bad_parameters_are_one_line_errors() -> None:
    with pytest.raises(PluginError, match="encoder 'tfidf': parameter 'ngram_min'"):
        make_encoder("tfidf", {"ngram_min": 0})
    with pytest.raises(
        PluginError, match=r"^encoder 'tfidf': ngram_max must be at least ngram_min$"
    ):
        make_encoder("tfidf", {"ngram_min": 3, "ngram_max": 2})


def test_missing_or_mismatched_state(tmp_path: Path) -> None:
    encoder = make_encoder("tfidf")
    with pytest.raises(ModelError, match="missing or corrupt"):
        encoder.load(tmp_path, MULTI)
    encoder.fit(TEXTS, TARGETS, MULTI)
    encoder.save(tmp_path)
    two_labels = Taxonomy.model_validate({"name": "x", "labels": [{"id": "a"}, {"id": "b"}]})
    with pytest.raises(ModelError, match=r"coef.npy: has shape \(\d+, \d+\), expected \(2, \d+\)"):
        make_encoder("tfidf").load(tmp_path, two_labels)
