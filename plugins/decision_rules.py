"""Built-in decision rules: global threshold, top-k and argmax."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tagger_core import DecisionRule, Scores, Taxonomy, hookimpl


class ThresholdParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(
        default=None, description="default 0.5 in probability space, 0.0 in logit space"
    )
    space: Literal["probability", "logit"] = "probability"

    @model_validator(mode="after")
    def _default_and_range(self) -> ThresholdParams:
        if self.threshold is None:
            self.threshold = 0.5 if self.space == "probability" else 0.0
        if self.space == "probability" and not 0.0 < self.threshold < 1.0:
            raise ValueError("a probability threshold lies strictly between 0 and 1")
        return self


class ThresholdRule(DecisionRule):
    name = "threshold"
    description = "Every label whose score reaches one global threshold (probability or logit)."
    Params = ThresholdParams

    def decide(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        params = self.params
        assert isinstance(params, ThresholdParams) and params.threshold is not None
        values = scores.probabilities if params.space == "probability" else scores.logits
        return np.asarray(values >= params.threshold)


class TopKParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=1, ge=1)
    min_probability: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="drop top-k labels scoring below this"
    )


class TopKRule(DecisionRule):
    name = "top-k"
    description = "The k best-scoring labels, optionally only those above a minimum probability."
    Params = TopKParams

    def decide(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        params = self.params
        assert isinstance(params, TopKParams)
        probabilities = scores.probabilities
        k = min(params.k, probabilities.shape[1])
        # Stable sort on the negated scores: ties go to the label listed first.
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        chosen = np.zeros(probabilities.shape, dtype=bool)
        np.put_along_axis(chosen, order, True, axis=1)
        return chosen & (probabilities >= params.min_probability)


class ArgmaxRule(DecisionRule):
    name = "argmax"
    description = "Exactly one label, the best-scoring one (single-label taxonomies)."

    def decide(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        best = np.argmax(scores.logits, axis=1)
        chosen = np.zeros(scores.logits.shape, dtype=bool)
        chosen[np.arange(len(best)), best] = True
        return chosen


@hookimpl
def register_decision_rules(register):  # type: ignore[no-untyped-def]
    for rule in (ThresholdRule, TopKRule, ArgmaxRule):
        register(rule)
