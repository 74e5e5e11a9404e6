"""Evaluation figures from 0/1 matrices, computed with scikit-learn."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from tagger_core.schemas import Taxonomy


class LabelMetrics(BaseModel):
    label: str
    support: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float


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

    def headline(self) -> dict[str, float]:
        return {
            "exact_match": self.exact_match,
            "micro_f1": self.micro_f1,
            "macro_f1": self.macro_f1,
        }


def evaluate_matrices(y_true: np.ndarray, y_pred: np.ndarray, taxonomy: Taxonomy) -> Evaluation:
    """Exact-match accuracy, micro/macro P/R/F1 and the per-label table.

    Macro averages run over every taxonomy label, including labels absent from the data
    (they count as 0 only if predicted); zero-division cases score 0.
    """
    from sklearn.metrics import (
        accuracy_score,
        multilabel_confusion_matrix,
        precision_recall_fscore_support,
    )

    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: truth {y_true.shape}, predictions {y_pred.shape}")
    micro = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    per_p, per_r, per_f, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    # Labels with neither truth nor prediction are undefined, not failures: leave them out.
    defined = (y_true.sum(axis=0) + y_pred.sum(axis=0)) > 0
    macro = (
        [float(np.mean(values[defined])) for values in (per_p, per_r, per_f)]
        if defined.any()
        else [0.0, 0.0, 0.0]
    )
    confusion = multilabel_confusion_matrix(y_true, y_pred)
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
        )
        for j, label in enumerate(taxonomy.labels)
    ]
    return Evaluation(
        rows=int(y_true.shape[0]),
        exact_match=float(accuracy_score(y_true, y_pred)),
        micro_precision=float(micro[0]),
        micro_recall=float(micro[1]),
        micro_f1=float(micro[2]),
        macro_precision=macro[0],
        macro_recall=macro[1],
        macro_f1=macro[2],
        empty_predictions=int((y_pred.sum(axis=1) == 0).sum()),
        per_label=per_label,
    )
