"""Threshold sweep: the evaluation figures against one global threshold.

Multi-label: every label whose score reaches the threshold (probability or logit space,
as the reference notebook swept logits). Single-label: the best label, only if its
probability reaches the threshold (a coverage/accuracy trade-off: lower thresholds answer
more rows).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from tagger_core.evaluation.metrics import quick_figures
from tagger_core.scores import Scores

Space = Literal["probability", "logit"]

SWEEP_COLUMNS = (
    "threshold",
    "exact_match",
    "micro_precision",
    "micro_recall",
    "micro_f1",
    "macro_f1",
    "samples_f1",
    "lenient_a",
    "lenient_b",
    "hamming_loss",
    "empty_predictions",
    "predicted_per_row",
)


class SweepPoint(BaseModel):
    threshold: float
    exact_match: float
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_f1: float
    samples_f1: float
    lenient_a: float
    lenient_b: float
    hamming_loss: float
    empty_predictions: int
    predicted_per_row: float


def default_thresholds(space: Space) -> np.ndarray:
    if space == "probability":
        return np.round(np.arange(0.02, 0.99, 0.02), 4)
    return np.round(np.arange(-5.0, 5.01, 0.25), 4)


def decisions_at(scores: Scores, threshold: float, space: Space) -> np.ndarray:
    """The 0/1 matrix a global ``threshold`` gives (see the module docstring)."""
    values = scores.probabilities if space == "probability" else scores.logits
    if scores.mode == "single-label":
        best = np.argmax(values, axis=1)
        chosen = np.zeros(values.shape, dtype=bool)
        rows = np.arange(len(best))
        chosen[rows, best] = values[rows, best] >= threshold
        return chosen
    return np.asarray(values >= threshold)


def point(truth: np.ndarray, pred: np.ndarray, threshold: float) -> SweepPoint:
    """The figures of one sweep point (numpy only, the definitions of evaluate_matrices)."""
    figures: dict[str, float | int] = dict(quick_figures(truth, pred))
    figures["empty_predictions"] = int(figures["empty_predictions"])
    return SweepPoint.model_validate(
        {"threshold": float(threshold), **{name: figures[name] for name in SWEEP_COLUMNS[1:]}}
    )


def threshold_sweep(
    scores: Scores,
    truth: np.ndarray,
    thresholds: Sequence[float] | np.ndarray | None = None,
    space: Space = "probability",
) -> list[SweepPoint]:
    grid = default_thresholds(space) if thresholds is None else np.asarray(thresholds, float)
    return [point(truth, decisions_at(scores, float(t), space), float(t)) for t in grid]


def best_point(sweep: Sequence[SweepPoint], objective: str = "micro_f1") -> SweepPoint:
    """The sweep point with the best ``objective`` (the lowest threshold among ties)."""
    lower = objective in ("hamming_loss", "empty_predictions")
    values = np.array([getattr(p, objective) for p in sweep], dtype=float)
    index = int(np.argmin(values) if lower else np.argmax(values))
    return sweep[index]


def write_sweep_csv(path: Path, sweep: Sequence[SweepPoint]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SWEEP_COLUMNS)
        for p in sweep:
            row = p.model_dump()
            writer.writerow(
                [f"{row[c]:.6g}" if isinstance(row[c], float) else row[c] for c in SWEEP_COLUMNS]
            )
