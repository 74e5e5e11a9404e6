"""Raw model outputs plus the activation that the taxonomy's mode implies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tagger_core.schemas import Mode

# Where thresholds apply: probabilities (sigmoid or softmax) or raw logits.
ScoreSpace = Literal["probability", "logit"]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    # Split by sign so that large magnitudes neither overflow nor lose precision.
    out = np.empty_like(logits, dtype=np.float64)
    positive = logits >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-logits[positive]))
    exp = np.exp(logits[~positive])
    out[~positive] = exp / (1.0 + exp)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Scores:
    """An n × L matrix of logits; probabilities are sigmoid (multi-label) or softmax."""

    logits: np.ndarray
    mode: Mode
    _probabilities: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def probabilities(self) -> np.ndarray:
        if self._probabilities is None:
            logits = np.asarray(self.logits, dtype=np.float64)
            probs = sigmoid(logits) if self.mode == "multi-label" else softmax(logits)
            object.__setattr__(self, "_probabilities", probs)
        assert self._probabilities is not None
        return self._probabilities

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def subset(self, rows: np.ndarray | list[int]) -> Scores:
        return Scores(self.logits[rows], self.mode)

    def values(self, space: ScoreSpace) -> np.ndarray:
        """The matrix that thresholds in ``space`` compare against."""
        return np.asarray(self.probabilities if space == "probability" else self.logits)
