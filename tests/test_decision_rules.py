"""Built-in decision rules on small hand-made score matrices."""

from __future__ import annotations

import numpy as np
import pytest

from tagger_core import PluginError, Scores, Taxonomy
from tagger_core.tagger import make_rule

TAXONOMY = Taxonomy.model_validate({"name": "t", "labels": [{"id": "A"}, {"id": "B"}, {"id": "C"}]})
# sigmoid(0) = 0.5, sigmoid(2) ≈ 0.88, sigmoid(-1) ≈ 0.27, sigmoid(-3) ≈ 0.05
LOGITS = np.array([[2.0, -1.0, 0.0], [-3.0, -1.0, -2.0], [2.0, 2.0, -3.0]])


def decide(name: str, logits=LOGITS, mode="multi-label", **params) -> list[list[int]]:
    return make_rule(name, params).decide(Scores(logits, mode), TAXONOMY).astype(int).tolist()


def test_threshold_in_probability_space() -> None:
    assert decide("threshold") == [[1, 0, 1], [0, 0, 0], [1, 1, 0]]
    assert decide("threshold", threshold=0.6) == [[1, 0, 0], [0, 0, 0], [1, 1, 0]]
    assert decide("threshold", threshold=0.25) == [[1, 1, 1], [0, 1, 0], [1, 1, 0]]


def test_threshold_in_logit_space_as_in_the_reference() -> None:
    assert decide("threshold", space="logit") == [[1, 0, 1], [0, 0, 0], [1, 1, 0]]
    assert decide("threshold", space="logit", threshold=-1.5) == [[1, 1, 1], [0, 1, 0], [1, 1, 0]]


def test_probability_threshold_must_be_inside_zero_one() -> None:
    with pytest.raises(PluginError, match=r"decision rule 'threshold'.*strictly between 0 and 1"):
        make_rule("threshold", {"threshold": 1.5})
    with pytest.raises(PluginError, match="parameter 'treshold'"):
        make_rule("threshold", {"treshold": 0.3})


def test_top_k_takes_best_labels_and_breaks_ties_by_label_order() -> None:
    assert decide("top-k", k=1) == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert decide("top-k", k=2) == [[1, 0, 1], [0, 1, 1], [1, 1, 0]]
    assert decide("top-k", k=2, min_probability=0.3) == [[1, 0, 1], [0, 0, 0], [1, 1, 0]]
    assert decide("top-k", k=10) == [[1, 1, 1]] * 3


def test_argmax_gives_exactly_one_label_under_softmax() -> None:
    chosen = decide("argmax", mode="single-label")
    assert chosen == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    probabilities = Scores(LOGITS, "single-label").probabilities
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_unknown_rule_suggests_a_known_one() -> None:
    with pytest.raises(PluginError, match=r"unknown decision rule 'top_k'.*did you mean 'top-k'"):
        make_rule("top_k")
