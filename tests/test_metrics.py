"""Evaluation figures checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tagger_core import Taxonomy
from tagger_core.evaluation.metrics import evaluate_matrices

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


# truth / prediction used below (rows: {A}, {A,B}, {B}, {}), predictions {A}, {A}, {B,C}, {}
TRUTH = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
PRED = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]])


def test_weighted_and_samples_averages_by_hand() -> None:
    e = evaluate_matrices(TRUTH, PRED, TAXONOMY)
    # weighted by support (A 2, B 2, C 0): P = (1·2 + 1·2)/4, R = (1·2 + ½·2)/4
    assert e.weighted_precision == pytest.approx(1.0)
    assert e.weighted_recall == pytest.approx(0.75)
    assert e.weighted_f1 == pytest.approx((1 * 2 + 2 / 3 * 2) / 4)
    # per row: P 1, 1, ½, (empty/empty = 1); R 1, ½, 1, 1; F1 1, 2/3, 2/3, 1; J 1, ½, ½, 1
    assert e.samples_precision == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert e.samples_recall == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    assert e.samples_f1 == pytest.approx((1 + 2 / 3 + 2 / 3 + 1) / 4)
    assert e.samples_jaccard == pytest.approx((1 + 0.5 + 0.5 + 1) / 4)


def test_samples_average_matches_scikit_learn_where_rows_have_labels() -> None:
    from sklearn.metrics import jaccard_score, precision_recall_fscore_support

    truth, pred = TRUTH[:3], PRED[:3]
    e = evaluate_matrices(truth, pred, TAXONOMY)
    p, r, f, _ = precision_recall_fscore_support(truth, pred, average="samples", zero_division=0)
    assert (e.samples_precision, e.samples_recall, e.samples_f1) == pytest.approx((p, r, f))
    assert e.samples_jaccard == pytest.approx(jaccard_score(truth, pred, average="samples"))


def test_hamming_loss_and_label_counts_by_hand() -> None:
    e = evaluate_matrices(TRUTH, PRED, TAXONOMY)
    # wrong cells: row 2 B, row 3 C → 2 of 12
    assert e.hamming_loss == pytest.approx(2 / 12)
    assert e.labels_per_row == pytest.approx(4 / 4) and e.predicted_per_row == pytest.approx(1)
    assert e.empty_truth == 1 and e.empty_predictions == 1


def test_lenient_criteria_of_the_reference_notebook_by_hand() -> None:
    truth = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]])
    pred = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [1, 1, 1], [0, 1, 0], [0, 0, 0]])
    e = evaluate_matrices(truth, pred, TAXONOMY)
    # A (≥1 predicted, none wrong): row 1 only (row 2 and 6 predict nothing)
    assert e.lenient_a == pytest.approx(1 / 6)
    # B (nothing missed, ≤1 extra): row 3 (one extra), row 6 (nothing to miss, nothing added)
    assert e.lenient_b == pytest.approx(2 / 6)


def test_ranking_and_auc_figures_by_hand() -> None:
    truth = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    scores = np.array([[0.9, 0.2, 0.1], [0.8, 0.7, 0.1], [0.6, 0.3, 0.2]])
    e = evaluate_matrices(truth, scores >= 0.5, TAXONOMY, scores=scores)
    # LRAP: row 1: A ranked 1st → 1; row 2: B ranked 2nd → ½; row 3: A 1st, B 2nd → 1
    assert e.lrap == pytest.approx((1 + 0.5 + 1) / 3)
    # ranking loss: misordered (positive, negative) pairs: row 2 (B < A) 1 of 2 → ½
    assert e.ranking_loss == pytest.approx((0 + 0.5 + 0) / 3)
    a, b, c = e.per_label
    # A: positives 0.9, 0.6 vs negative 0.8 → 1 of 2 pairs right
    assert a.roc_auc == pytest.approx(0.5)
    # AP of A: ranks 0.9 (pos), 0.8 (neg), 0.6 (pos) → (1 + 2/3) / 2
    assert a.pr_auc == pytest.approx((1 + 2 / 3) / 2)
    assert b.roc_auc == pytest.approx(1.0) and b.pr_auc == pytest.approx(1.0)
    # C has no positive: neither AUC is defined, and macro averages skip it
    assert c.roc_auc is None and c.pr_auc is None
    assert e.macro_roc_auc == pytest.approx(0.75)
    assert e.macro_pr_auc == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert e.micro_roc_auc is not None and e.micro_pr_auc is not None
    # without scores, the score figures stay empty
    assert evaluate_matrices(truth, scores >= 0.5, TAXONOMY).lrap is None


def test_confusion_view_and_most_confused_pairs_by_hand() -> None:
    truth = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    pred = np.array([[0, 1, 0], [0, 1, 1], [0, 1, 0], [0, 0, 0], [0, 0, 1]])
    e = evaluate_matrices(truth, pred, TAXONOMY)
    assert e.confusion == [
        # A missed twice while B was given (rows 1, 2), once while C was (row 2),
        # once with nothing wrong instead (row 4); B right once; C added with nothing missed
        [0, 2, 1, 1],
        [0, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 1, 0],
    ]
    pairs = [(p.true, p.predicted, p.count) for p in e.confused_pairs]
    assert pairs == [("A", "B", 2), ("A", "C", 1)]


def test_single_label_confusion_is_the_ordinary_matrix_with_a_classification_report() -> None:
    from sklearn.metrics import confusion_matrix

    from tagger_core.evaluation.metrics import classification_report_text

    single = Taxonomy.model_validate(
        {"name": "s", "mode": "single-label", "labels": [{"id": "A"}, {"id": "B"}, {"id": "C"}]}
    )
    truth_ids = [0, 0, 1, 2, 2, 2]
    pred_ids = [0, 1, 1, 2, 0, 2]
    truth = np.eye(3, dtype=int)[truth_ids]
    pred = np.eye(3, dtype=int)[pred_ids]
    e = evaluate_matrices(truth, pred, single)
    assert e.mode == "single-label"
    view = np.array(e.confusion)
    assert (view[:3, :3] == confusion_matrix(truth_ids, pred_ids)).all()
    assert view[3].sum() == 0 and view[:, 3].sum() == 0
    assert e.exact_match == pytest.approx(4 / 6) and e.micro_f1 == pytest.approx(4 / 6)
    report = classification_report_text(truth, pred, single)
    assert "A" in report and "accuracy" in report and "0.667" in report


def test_quick_figures_agree_with_evaluate_matrices() -> None:
    from tagger_core.evaluation.metrics import OBJECTIVES, quick_figures

    rng = np.random.default_rng(3)
    for _ in range(20):
        truth = rng.random((12, 3)) < 0.3
        pred = rng.random((12, 3)) < 0.3
        full = evaluate_matrices(truth, pred, TAXONOMY)
        quick = quick_figures(truth, pred)
        for name in OBJECTIVES:
            assert quick[name] == pytest.approx(full.figure(name)), name
        assert quick["empty_predictions"] == full.empty_predictions


def test_evaluation_figure_lookup_refuses_non_figures() -> None:
    e = evaluate_matrices(TRUTH, PRED, TAXONOMY)
    assert e.figure("micro_f1") == e.micro_f1
    with pytest.raises(KeyError):
        e.figure("per_label")
