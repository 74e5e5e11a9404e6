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

import numpy as np
from pydantic import BaseModel

from tagger_core.evaluation.metrics import LOWER_IS_BETTER, quick_figures
from tagger_core.files import atomic_path
from tagger_core.schemas import Taxonomy
from tagger_core.scores import Scores, ScoreSpace
from tagger_core.taxonomy import with_ancestors

# The global probability thresholds that the sweep, the report and `tagger optimize` all
# try: one grid, so that the report's "best global threshold" is one optimize tries too.
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 … 0.95

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


def default_thresholds(space: ScoreSpace) -> np.ndarray:
    if space == "probability":
        return np.array(THRESHOLDS)
    return np.round(np.arange(-5.0, 5.01, 0.25), 4)


def neutral_threshold(space: ScoreSpace) -> float:
    """Where a threshold leans neither way: 0.5 as a probability, 0 as a logit."""
    return 0.5 if space == "probability" else 0.0


def decisions_at(
    scores: Scores, threshold: float, space: ScoreSpace, taxonomy: Taxonomy | None = None
) -> np.ndarray:
    """The 0/1 matrix a global ``threshold`` gives (see the module docstring), with the
    ancestors ``taxonomy`` implies added as every rule's decisions have them."""
    values = scores.values(space)
    if scores.mode == "single-label":
        best = np.argmax(values, axis=1)
        chosen = np.zeros(values.shape, dtype=bool)
        rows = np.arange(len(best))
        chosen[rows, best] = values[rows, best] >= threshold
        return chosen
    chosen = np.asarray(values >= threshold)
    return with_ancestors(chosen, taxonomy) if taxonomy is not None else chosen


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
    space: ScoreSpace = "probability",
    taxonomy: Taxonomy | None = None,
) -> list[SweepPoint]:
    grid = default_thresholds(space) if thresholds is None else np.asarray(thresholds, float)
    return [point(truth, decisions_at(scores, float(t), space, taxonomy), float(t)) for t in grid]


def _best_index(
    values: Sequence[float], thresholds: Sequence[float], objective: str, neutral: float
) -> int:
    """The best value's index; among ties, the threshold nearest ``neutral``."""
    sign = -1.0 if objective in LOWER_IS_BETTER else 1.0
    signed = sign * np.asarray(values, dtype=float)
    ties = np.flatnonzero(signed >= signed.max() - 1e-12)
    distance = np.abs(np.asarray(thresholds, dtype=float)[ties] - neutral)
    return int(ties[np.argmin(distance)])


def best_point(
    sweep: Sequence[SweepPoint], objective: str = "micro_f1", space: ScoreSpace = "probability"
) -> SweepPoint:
    """The sweep point with the best ``objective`` (nearest the neutral threshold among
    ties), chosen exactly as :func:`best_global_threshold` chooses."""
    values = [getattr(p, objective) for p in sweep]
    index = _best_index(values, [p.threshold for p in sweep], objective, neutral_threshold(space))
    return sweep[index]


def best_global_threshold(
    scores: Scores,
    truth: np.ndarray,
    objective: str = "micro_f1",
    grid: Sequence[float] = THRESHOLDS,
    taxonomy: Taxonomy | None = None,
) -> float:
    """The global probability threshold of ``grid`` with the best ``objective`` on these
    rows (nearest 0.5 among ties), on decisions with ``taxonomy``'s implied ancestors."""
    truth = np.asarray(truth) > 0.5
    values = [
        quick_figures(truth, decisions_at(scores, t, "probability", taxonomy))[objective]
        for t in grid
    ]
    return float(grid[_best_index(values, grid, objective, neutral_threshold("probability"))])


def write_sweep_csv(path: Path, sweep: Sequence[SweepPoint]) -> None:
    with (
        atomic_path(path) as temporary,
        open(temporary, "w", newline="", encoding="utf-8") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(SWEEP_COLUMNS)
        for p in sweep:
            row = p.model_dump()
            writer.writerow(
                [f"{row[c]:.6g}" if isinstance(row[c], float) else row[c] for c in SWEEP_COLUMNS]
            )
