"""Evaluation figures checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tagger_core import Taxonomy
from tagger_core.metrics import evaluate_matrices

TAXONOMY = Taxonomy.model_validate({"name": "t", "labels": [{"id": "A"}, {"id": "B"}, {"id": "C"}]})


def test_multi_label_figures_by_hand() -> None:
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    pred = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]])
    e = evaluate_matrices(truth, pred, TAXONOMY)
    # rows 1 and 4 match exactly
    assert e.exact_match == pytest.approx(0.5)
    # TP = 3 (A,A,B), FP = 1 (C), FN = 1 (B in row 2)
    assert e.micro_precision == pytest.approx(3 / 4)
    assert e.micro_recall == pytest.approx(3 / 4)
    assert e.micro_f1 == pytest.approx(3 / 4)
    a, b, c = e.per_label
    assert (a.support, a.tp, a.fp, a.fn, a.f1) == (2, 2, 0, 0, 1.0)
    assert (b.support, b.tp, b.fp, b.fn) == (2, 1, 0, 1)
    assert b.precision == 1.0 and b.recall == 0.5 and b.f1 == pytest.approx(2 / 3)
    assert (c.support, c.tp, c.fp, c.fn, c.f1) == (0, 0, 1, 0, 0.0)
    # macro over the three labels (C was predicted, so it is defined and scores 0)
    assert e.macro_f1 == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert e.empty_predictions == 1


def test_labels_never_seen_nor_predicted_do_not_drag_macro_down() -> None:
    truth = np.array([[1, 0, 0], [0, 1, 0]])
    e = evaluate_matrices(truth, truth, TAXONOMY)
    assert e.macro_f1 == 1.0
    assert e.per_label[2].support == 0


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        evaluate_matrices(np.zeros((2, 3)), np.zeros((3, 3)), TAXONOMY)
