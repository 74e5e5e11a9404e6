"""Evaluation figures from 0/1 matrices (and, where given, scores), checked against
scikit-learn's definitions.

Every figure is defined for multi-label and single-label taxonomies alike:

- exact match (subset accuracy); micro, macro, weighted and samples precision/recall/F1;
  samples Jaccard; Hamming loss;
- the two lenient criteria of the reference notebook: (A) every predicted label is true and
  at least one label is predicted; (B) every true label is predicted, with at most one extra;
- with scores: label-ranking average precision, ranking loss, micro/macro and per-label
  ROC-AUC and PR-AUC (average precision) where defined (a label needs positives — and, for
  ROC-AUC, negatives);
- the per-label table (support, TP, FP, FN, P, R, F1), a confusion view and the most
  confused label pairs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, Field

from tagger_core.schemas import Mode, Taxonomy

NONE_LABEL = "(none)"

# Figures where lower is better; every other numeric figure is better higher.
LOWER_IS_BETTER = frozenset({"hamming_loss", "ranking_loss", "empty_predictions"})


class LabelMetrics(BaseModel):
    label: str
    support: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    roc_auc: float | None = None
    pr_auc: float | None = None
    threshold: float | None = Field(
        default=None, description="the decision rule's threshold for this label, if it has one"
    )


class ConfusedPair(BaseModel):
    """In ``count`` rows, label ``true`` was missed while ``predicted`` was wrongly given."""

    true: str
    predicted: str
    count: int


class LevelMetrics(BaseModel):
    """The figures of one depth of a nested taxonomy: its labels' columns alone."""

    level: int = Field(description="0: the roots, 1: their children, …")
    labels: int
    exact_match: float
    micro_f1: float
    macro_f1: float


class Evaluation(BaseModel):
    rows: int
    exact_match: float
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    empty_predictions: int
    per_label: list[LabelMetrics]
    mode: Mode = "multi-label"
    weighted_precision: float = 0.0
    weighted_recall: float = 0.0
    weighted_f1: float = 0.0
    samples_precision: float = 0.0
    samples_recall: float = 0.0
    samples_f1: float = 0.0
    samples_jaccard: float = 0.0
    hamming_loss: float = 0.0
    lenient_a: float = Field(
        default=0.0, description="share of rows: ≥1 label predicted and every predicted one true"
    )
    lenient_b: float = Field(
        default=0.0, description="share of rows: every true label predicted, ≤1 extra"
    )
    empty_truth: int = Field(default=0, description="rows without any true label")
    labels_per_row: float = 0.0
    predicted_per_row: float = 0.0
    lrap: float | None = None
    ranking_loss: float | None = None
    micro_roc_auc: float | None = None
    macro_roc_auc: float | None = None
    micro_pr_auc: float | None = None
    macro_pr_auc: float | None = None
    confusion: list[list[int]] = Field(
        default_factory=list,
        description="(L+1)×(L+1), rows true, columns predicted, last of each '(none)': "
        "diagonal = TP; [a, b] = rows where a was missed and b wrongly predicted; "
        "[a, none] = a missed with no wrong label; [none, b] = b wrongly added, nothing missed",
    )
    confused_pairs: list[ConfusedPair] = Field(default_factory=list)
    levels: list[LevelMetrics] = Field(
        default_factory=list, description="per depth of a nested taxonomy (empty when flat)"
    )

    def headline(self) -> dict[str, float]:
        return {
            "exact_match": self.exact_match,
            "micro_f1": self.micro_f1,
            "macro_f1": self.macro_f1,
        }

    def figure(self, name: str) -> float:
        """A scalar figure by name (for objectives); raises KeyError if there is none."""
        value = getattr(self, name, None)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise KeyError(name)
        return float(value)


# Figures that depend on the decision rule, and so can be optimised (see `tagger optimize`).
OBJECTIVES = (
    "micro_f1",
    "macro_f1",
    "weighted_f1",
    "samples_f1",
    "exact_match",
    "samples_jaccard",
    "lenient_a",
    "lenient_b",
    "hamming_loss",
    "micro_precision",
    "micro_recall",
    "macro_precision",
    "macro_recall",
    "weighted_precision",
    "weighted_recall",
    "samples_precision",
    "samples_recall",
)


def _safe_div(num: np.ndarray, den: np.ndarray, empty: float = 0.0) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.full(num.shape, empty), where=den > 0)


def row_figures(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row correctness used by several figures (0/1 bool matrices in, vectors out)."""
    truth = np.asarray(y_true, dtype=bool)
    pred = np.asarray(y_pred, dtype=bool)
    tp = (truth & pred).sum(axis=1)
    n_true = truth.sum(axis=1)
    n_pred = pred.sum(axis=1)
    both_empty = (n_true == 0) & (n_pred == 0)
    union = n_true + n_pred - tp
    return {
        "exact": (truth == pred).all(axis=1),
        "lenient_a": (n_pred >= 1) & (tp == n_pred),
        "lenient_b": (tp == n_true) & (n_pred - tp <= 1),
        "precision": np.where(both_empty, 1.0, _safe_div(tp, n_pred)),
        "recall": np.where(both_empty, 1.0, _safe_div(tp, n_true)),
        "f1": np.where(both_empty, 1.0, _safe_div(2 * tp, n_true + n_pred)),
        "jaccard": np.where(both_empty, 1.0, _safe_div(tp, union)),
        "n_true": n_true,
        "n_pred": n_pred,
    }


def quick_figures(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """The rule-dependent figures of :func:`evaluate_matrices` (those in
    :data:`OBJECTIVES`, plus ``empty_predictions`` and ``predicted_per_row``), with numpy
    only: fast enough to score hundreds of candidate rules. Same definitions, checked by
    the tests."""
    truth = np.asarray(y_true, dtype=bool)
    pred = np.asarray(y_pred, dtype=bool)
    n_rows = max(truth.shape[0], 1)
    tp = (truth & pred).sum(axis=0)
    fp = (~truth & pred).sum(axis=0)
    fn = (truth & ~pred).sum(axis=0)
    support = tp + fn
    per_p = _safe_div(tp, tp + fp)
    per_r = _safe_div(tp, support)
    per_f = _safe_div(2 * tp, 2 * tp + fp + fn)
    defined = (support + tp + fp) > 0
    total = support.sum()
    rows = row_figures(truth, pred)
    figures = {
        "micro_precision": float(_safe_div(tp.sum(), tp.sum() + fp.sum())),
        "micro_recall": float(_safe_div(tp.sum(), total)),
        "micro_f1": float(_safe_div(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())),
        "exact_match": float(rows["exact"].sum() / n_rows),
        "hamming_loss": float(np.mean(truth != pred)) if truth.size else 0.0,
        "empty_predictions": float((rows["n_pred"] == 0).sum()),
        "predicted_per_row": float(rows["n_pred"].sum() / n_rows),
    }
    for name, values in (("precision", per_p), ("recall", per_r), ("f1", per_f)):
        figures[f"macro_{name}"] = float(values[defined].mean()) if defined.any() else 0.0
        figures[f"weighted_{name}"] = float(np.dot(values, support) / total) if total else 0.0
    for name in ("precision", "recall", "f1", "jaccard"):
        figures[f"samples_{name}"] = float(rows[name].sum() / n_rows)
    figures["lenient_a"] = float(rows["lenient_a"].sum() / n_rows)
    figures["lenient_b"] = float(rows["lenient_b"].sum() / n_rows)
    return figures


def confusion_view(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The (L+1)×(L+1) confusion view described on :attr:`Evaluation.confusion`.

    For a single-label taxonomy (one true and one predicted label per row) the L×L part is
    the ordinary confusion matrix and the '(none)' row and column stay 0.
    """
    truth = np.asarray(y_true, dtype=bool)
    pred = np.asarray(y_pred, dtype=bool)
    missed = (truth & ~pred).astype(np.int64)
    extra = (pred & ~truth).astype(np.int64)
    n_labels = truth.shape[1]
    view = np.zeros((n_labels + 1, n_labels + 1), dtype=np.int64)
    view[:n_labels, :n_labels] = missed.T @ extra
    np.fill_diagonal(view[:n_labels, :n_labels], (truth & pred).sum(axis=0))
    no_extra = ~extra.any(axis=1)
    no_missed = ~missed.any(axis=1)
    view[:n_labels, n_labels] = missed[no_extra].sum(axis=0)
    view[n_labels, :n_labels] = extra[no_missed].sum(axis=0)
    return view


def confused_pairs(view: np.ndarray, label_ids: list[str], top: int = 20) -> list[ConfusedPair]:
    """The most frequent (missed label, wrongly predicted label) pairs of a confusion view."""
    n_labels = len(label_ids)
    core = view[:n_labels, :n_labels].copy()
    np.fill_diagonal(core, 0)
    pairs = [
        ConfusedPair(true=label_ids[a], predicted=label_ids[b], count=int(core[a, b]))
        for a, b in zip(*np.nonzero(core), strict=True)
    ]
    pairs.sort(key=lambda p: -p.count)  # stable: ties stay in taxonomy order
    return pairs[:top]


def _score_figures(
    truth: np.ndarray, scores: np.ndarray
) -> tuple[dict[str, float | None], list[tuple[float | None, float | None]]]:
    from sklearn.metrics import (
        average_precision_score,
        label_ranking_average_precision_score,
        label_ranking_loss,
        roc_auc_score,
    )

    positives = truth.sum(axis=0)
    n = truth.shape[0]
    per_label: list[tuple[float | None, float | None]] = []
    for j in range(truth.shape[1]):
        roc = float(roc_auc_score(truth[:, j], scores[:, j])) if 0 < positives[j] < n else None
        pr = float(average_precision_score(truth[:, j], scores[:, j])) if positives[j] else None
        per_label.append((roc, pr))
    rocs = [r for r, _ in per_label if r is not None]
    prs = [p for _, p in per_label if p is not None]
    any_positive = bool(positives.sum())
    any_negative = bool((1 - truth).sum())
    figures: dict[str, float | None] = {
        "lrap": float(label_ranking_average_precision_score(truth, scores)) if n else None,
        "ranking_loss": float(label_ranking_loss(truth, scores)) if n else None,
        "macro_roc_auc": float(np.mean(rocs)) if rocs else None,
        "macro_pr_auc": float(np.mean(prs)) if prs else None,
        "micro_roc_auc": float(roc_auc_score(truth.ravel(), scores.ravel()))
        if any_positive and any_negative
        else None,
        "micro_pr_auc": float(average_precision_score(truth.ravel(), scores.ravel()))
        if any_positive
        else None,
    }
    return figures, per_label


def evaluate_matrices(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    taxonomy: Taxonomy,
    scores: np.ndarray | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> Evaluation:
    """Every figure of :class:`Evaluation` for truth and prediction matrices (n × L, 0/1).

    Macro averages run over every taxonomy label that occurs in the truth or the
    predictions; a label with neither is undefined, not a failure, and is left out.
    Zero-division cases score 0, except in the samples averages, where a row with no true
    and no predicted label counts as fully right. ``scores`` (n × L probabilities) add the
    ranking figures and ROC-AUC/PR-AUC; ``thresholds`` (label → threshold) fill the
    per-label threshold column.
    """
    from sklearn.metrics import multilabel_confusion_matrix, precision_recall_fscore_support

    truth = np.asarray(y_true, dtype=int)
    pred = np.asarray(y_pred, dtype=int)
    if truth.shape != pred.shape:
        raise ValueError(f"shape mismatch: truth {truth.shape}, predictions {pred.shape}")
    if truth.ndim != 2 or truth.shape[1] != len(taxonomy.labels):
        raise ValueError(
            f"expected n × {len(taxonomy.labels)} matrices for taxonomy '{taxonomy.name}', "
            f"got {truth.shape}"
        )
    n_rows = truth.shape[0]
    micro = precision_recall_fscore_support(truth, pred, average="micro", zero_division=0)
    per_p, per_r, per_f, support = precision_recall_fscore_support(
        truth, pred, average=None, zero_division=0
    )
    # Labels with neither truth nor prediction are undefined, not failures: leave them out.
    defined = (truth.sum(axis=0) + pred.sum(axis=0)) > 0
    macro = (
        [float(np.mean(values[defined])) for values in (per_p, per_r, per_f)]
        if defined.any()
        else [0.0, 0.0, 0.0]
    )
    total_support = support.sum()
    weighted = (
        [float(np.dot(values, support) / total_support) for values in (per_p, per_r, per_f)]
        if total_support
        else [0.0, 0.0, 0.0]
    )
    rows = row_figures(truth, pred)

    def mean(values: np.ndarray) -> float:
        return float(np.mean(values)) if n_rows else 0.0

    score_figures: dict[str, float | None] = {}
    per_label_scores: list[tuple[float | None, float | None]] = [(None, None)] * truth.shape[1]
    if scores is not None and n_rows:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != truth.shape:
            raise ValueError(f"shape mismatch: truth {truth.shape}, scores {scores.shape}")
        score_figures, per_label_scores = _score_figures(truth, scores)
    confusion = multilabel_confusion_matrix(truth, pred)
    thresholds = thresholds or {}
    per_label = [
        LabelMetrics(
            label=label.id,
            support=int(support[j]),
            tp=int(confusion[j, 1, 1]),
            fp=int(confusion[j, 0, 1]),
            fn=int(confusion[j, 1, 0]),
            precision=float(per_p[j]),
            recall=float(per_r[j]),
            f1=float(per_f[j]),
            roc_auc=per_label_scores[j][0],
            pr_auc=per_label_scores[j][1],
            threshold=thresholds.get(label.id),
        )
        for j, label in enumerate(taxonomy.labels)
    ]
    view = confusion_view(truth, pred)
    return Evaluation(
        rows=n_rows,
        exact_match=mean(rows["exact"]),
        micro_precision=float(micro[0]),
        micro_recall=float(micro[1]),
        micro_f1=float(micro[2]),
        macro_precision=macro[0],
        macro_recall=macro[1],
        macro_f1=macro[2],
        empty_predictions=int((rows["n_pred"] == 0).sum()),
        per_label=per_label,
        mode=taxonomy.mode,
        weighted_precision=weighted[0],
        weighted_recall=weighted[1],
        weighted_f1=weighted[2],
        samples_precision=mean(rows["precision"]),
        samples_recall=mean(rows["recall"]),
        samples_f1=mean(rows["f1"]),
        samples_jaccard=mean(rows["jaccard"]),
        hamming_loss=float(np.mean(truth != pred)) if truth.size else 0.0,
        lenient_a=mean(rows["lenient_a"]),
        lenient_b=mean(rows["lenient_b"]),
        empty_truth=int((rows["n_true"] == 0).sum()),
        labels_per_row=mean(rows["n_true"]),
        predicted_per_row=mean(rows["n_pred"]),
        confusion=view.tolist(),
        confused_pairs=confused_pairs(view, taxonomy.label_ids),
        levels=level_figures(truth, pred, taxonomy),
        **score_figures,
    )


def level_figures(truth: np.ndarray, pred: np.ndarray, taxonomy: Taxonomy) -> list[LevelMetrics]:
    """Exact match, micro and macro F1 on each depth's columns of a nested taxonomy: how
    well the tagger knows the broad groups, and how well the fine kinds within them."""
    from tagger_core.taxonomy import label_depths

    if not taxonomy.hierarchical or not len(truth):
        return []
    depths = np.asarray(label_depths(taxonomy))
    out = []
    for level in range(int(depths.max()) + 1):
        columns = depths == level
        t, p = truth[:, columns].astype(bool), pred[:, columns].astype(bool)
        tp = (t & p).sum(axis=0)
        errors = (t != p).sum(axis=0)  # FP + FN per label
        f1 = _safe_div(2 * tp, 2 * tp + errors)
        defined = (t.sum(axis=0) + p.sum(axis=0)) > 0  # as in the macro average above
        out.append(
            LevelMetrics(
                level=level,
                labels=int(columns.sum()),
                exact_match=float((t == p).all(axis=1).mean()),
                micro_f1=float(_safe_div(2 * tp.sum(), 2 * tp.sum() + errors.sum())),
                macro_f1=float(f1[defined].mean()) if defined.any() else 0.0,
            )
        )
    return out


def classification_report_text(
    y_true: np.ndarray, y_pred: np.ndarray, taxonomy: Taxonomy, digits: int = 3
) -> str:
    """scikit-learn's classification report with the taxonomy's label names."""
    from sklearn.metrics import classification_report

    truth = np.asarray(y_true, dtype=int)
    pred = np.asarray(y_pred, dtype=int)
    names = [label.id for label in taxonomy.labels]
    if taxonomy.mode == "single-label":
        return str(
            classification_report(
                truth.argmax(axis=1),
                np.where(pred.any(axis=1), pred.argmax(axis=1), -1),
                labels=list(range(len(names))),
                target_names=names,
                digits=digits,
                zero_division=0,
            )
        )
    return str(
        classification_report(truth, pred, target_names=names, digits=digits, zero_division=0)
    )
