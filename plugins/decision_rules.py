"""Built-in decision rules: how a score matrix becomes label sets.

- ``threshold``: one global threshold, in probability or logit space;
- ``per-label``: a threshold per label fitted on validation scores, made robust (minimum
  positives, shrinkage toward the global threshold, cross-validated and kept only where it
  beats the global threshold out of sample), then the taxonomy's constraints; the default
  rule of multi-label taggers;
- ``top-k``: the k best labels, optionally only those above a minimum probability;
- ``at-least-one``: wraps any rule; takes the best label when the wrapped rule chose none;
- ``exclusive``: wraps any rule; applies the taxonomy's constraints: exclusive labels and
  groups (the higher-scoring side wins), ``max_labels`` and ``min_labels``;
- ``argmax``: exactly one label (single-label taxonomies).

A fitted rule keeps what it learned in its params, so the saved tagger restores it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tagger_core import (
    DecisionRule,
    Mode,
    PluginError,
    RuleChoice,
    RuleSearch,
    Scores,
    ScoreSpace,
    Taxonomy,
    best_global_threshold,
    hookimpl,
    make_rule,
)

log = logging.getLogger("tagger")

# Probabilities are clipped this far from 0 and 1 before taking their logit.
_EPS = 1e-12
# Bootstrap resamples of the validation rows that measure how sure a label's gain is.
_BOOTSTRAP = 200


def _default_threshold(space: ScoreSpace) -> float:
    return 0.5 if space == "probability" else 0.0


def _check_threshold(value: float, space: ScoreSpace) -> None:
    if space == "probability" and not 0.0 < value < 1.0:
        raise ValueError("a probability threshold lies strictly between 0 and 1")


_TINY = float(np.finfo(np.float64).tiny)
_BELOW_ONE = float(np.nextafter(1.0, 0.0))


def _to_logit(values: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(values, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.asarray(np.log(p) - np.log1p(-p))


def _stated(probability: float, space: str) -> float:
    """A threshold of the search grid (a probability) as a rule in ``space`` states it."""
    return float(_to_logit(probability)) if space == "logit" else probability


def _from_logit(values: np.ndarray | float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(values, dtype=np.float64))))


def _label_index(taxonomy: Taxonomy) -> dict[str, int]:
    return {label_id: j for j, label_id in enumerate(taxonomy.label_ids)}


# -- global threshold ----------------------------------------------------------------------


class ThresholdParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(
        default=None, description="default 0.5 in probability space, 0.0 in logit space"
    )
    space: ScoreSpace = "probability"

    @model_validator(mode="after")
    def _default_and_range(self) -> ThresholdParams:
        if self.threshold is None:
            self.threshold = _default_threshold(self.space)
        _check_threshold(self.threshold, self.space)
        return self


class ThresholdRule(DecisionRule[ThresholdParams]):
    name = "threshold"
    description = "Every label whose score reaches one global threshold (probability or logit)."

    @property
    def _threshold(self) -> float:
        assert self.params.threshold is not None  # filled in by the params validator
        return self.params.threshold

    def decide(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        return np.asarray(scores.values(self.params.space) >= self._threshold)

    def label_thresholds(self, taxonomy: Taxonomy) -> dict[str, float]:
        return dict.fromkeys(taxonomy.label_ids, self._threshold)

    @classmethod
    def search_space(cls, search: RuleSearch) -> Sequence[RuleChoice]:
        """Every global threshold of the grid, and the best of them fitted on the rows (a
        parameter the user fixed is in every candidate; the grid is of probabilities, and a
        rule in logit space states them as logits)."""
        if search.taxonomy.mode != "multi-label":
            return ()
        fixed = search.fixed(cls.name)
        if "threshold" in fixed:
            return [RuleChoice(f"threshold {fixed['threshold']:g}", fixed)]
        space = fixed.get("space", "probability")

        def fit(scores: Scores, truth: np.ndarray) -> dict[str, Any]:
            best = best_global_threshold(
                scores, truth, search.objective, search.thresholds, search.taxonomy
            )
            return {**fixed, "threshold": _stated(best, space)}

        grid = [
            RuleChoice(f"threshold {t:g}", {**fixed, "threshold": _stated(t, space)})
            for t in search.thresholds
        ]
        return [*grid, RuleChoice("best global threshold", fit=fit)]


# -- per-label thresholds ------------------------------------------------------------------


class PerLabelParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    space: ScoreSpace = "probability"
    default: float | None = Field(
        default=None,
        description="global threshold for labels without their own "
        "(default 0.5 in probability space, 0.0 in logit space)",
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="fitted: label id → its own threshold"
    )
    objective: Literal["label", "micro"] = Field(
        default="label",
        description="label: each threshold maximises its label's F-beta (lifts macro F1); "
        "micro: the thresholds jointly maximise micro F-beta over all labels",
    )
    beta: float = Field(
        default=1.0,
        gt=0,
        description="F-beta to maximise: 1 = F1, 0.5 favours precision, 2 favours recall",
    )
    min_positives: int = Field(
        default=5, ge=1, description="validation positives a label needs for its own threshold"
    )
    shrinkage: float = Field(
        default=20.0,
        ge=0,
        description="pseudo-positives pulling a fitted threshold toward the default "
        "(in logit space): weight = positives / (positives + shrinkage)",
    )
    folds: int = Field(
        default=5,
        ge=0,
        description="cross-validation folds over the validation rows; a label keeps its own "
        "threshold only if it beats the default out of sample (0: no check)",
    )
    repeats: int = Field(default=3, ge=1, description="repetitions of the cross-validation")
    min_gain: float = Field(
        default=0.0,
        ge=0,
        description="out-of-sample gain (in F-beta) a label's own threshold must exceed",
    )
    confidence: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="how sure (share of bootstrap resamples of the validation rows) the "
        "out-of-sample gain must be",
    )
    constraints: bool = Field(
        default=True,
        description="apply the taxonomy's constraints: exclusive labels and groups (higher "
        "score wins), at most max_labels and at least min_labels (the best-scoring ones)",
    )
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """Taggers saved before min/max labels were enforced call the switch 'exclusive'."""
        if isinstance(data, dict) and "exclusive" in data and "constraints" not in data:
            data = {**data, "constraints": data["exclusive"]}
            del data["exclusive"]
        return data

    @model_validator(mode="after")
    def _defaults_and_ranges(self) -> PerLabelParams:
        if self.default is None:
            self.default = _default_threshold(self.space)
        _check_threshold(self.default, self.space)
        for label, value in self.thresholds.items():
            if self.space == "probability" and not 0.0 < value < 1.0:
                raise ValueError(f"threshold of label '{label}' must lie strictly between 0 and 1")
        return self


def fbeta_from_counts(tp: Any, fp: Any, fn: Any, beta: float) -> np.ndarray:
    """F-beta from counts; 0 where undefined (no positives and none predicted)."""
    b2 = beta * beta
    tp = np.asarray(tp, dtype=np.float64)
    denominator = (1 + b2) * tp + b2 * np.asarray(fn, dtype=np.float64) + np.asarray(fp)
    return np.divide((1 + b2) * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def _cuts(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct way to cut ``z``: (threshold, TP, FP) per cut. Thresholds lie halfway
    between consecutive distinct scores (never on a validation score); the first cut
    predicts nothing, the last everything."""
    order = np.argsort(-z, kind="stable")
    v = z[order]
    t = y[order].astype(np.float64)
    n = len(v)
    tp = np.cumsum(t)
    fp = np.cumsum(1.0 - t)
    # cut after these positions (np.concatenate: np.r_ costs more than the rest here)
    ends = np.flatnonzero(np.concatenate((v[:-1] > v[1:], [True])))
    below = np.where(ends < n - 1, v[np.minimum(ends + 1, n - 1)], v[-1] - 2.0)
    thresholds = np.concatenate(([v[0] + 2.0], (v[ends] + below) / 2.0))
    return thresholds, np.concatenate(([0.0], tp[ends])), np.concatenate(([0.0], fp[ends]))


@dataclass(frozen=True)
class Utility:
    """What one label's threshold maximises, from its TP and FP counts.

    For a label's own F-beta, ``micro`` is None. For micro F-beta over all labels, the
    thresholds maximise it jointly when each label maximises ``a·TP - c·FP`` with
    ``a = (1+β²)(1-F*) + β²F*`` and ``c = F*`` at the optimum F* (Dinkelbach), so each
    label is still fitted on its own; ``scale`` (micro F-beta's denominator) turns a
    utility gain into an approximate gain in micro F-beta.
    """

    beta: float
    micro: tuple[float, float, float] | None = None  # (a, c, scale)

    def values(self, tp: np.ndarray, fp: np.ndarray, positives: float) -> np.ndarray:
        if self.micro is None:
            return fbeta_from_counts(tp, fp, positives - np.asarray(tp), self.beta)
        a, c, _ = self.micro
        return a * np.asarray(tp) - c * np.asarray(fp)

    def gain(self, tuned: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Gain in F-beta of counts ``tuned`` (TP, FP, FN) over ``base``; each count may
        be an array (one value per bootstrap sample)."""
        if self.micro is None:
            tuned_f = fbeta_from_counts(tuned[0], tuned[1], tuned[2], self.beta)
            return tuned_f - fbeta_from_counts(base[0], base[1], base[2], self.beta)
        a, c, scale = self.micro
        delta = a * (tuned[0] - base[0]) - c * (tuned[1] - base[1])
        return np.asarray(delta / scale if scale > 0 else delta * 0.0)

    @classmethod
    def micro_at(cls, truth: np.ndarray, chosen: np.ndarray, beta: float) -> Utility:
        tp = float((truth & chosen).sum())
        fp = float((~truth & chosen).sum())
        fn = float((truth & ~chosen).sum())
        b2 = beta * beta
        scale = (1 + b2) * tp + b2 * fn + fp
        f_star = (1 + b2) * tp / scale if scale > 0 else 0.0
        return cls(beta, ((1 + b2) * (1 - f_star) + b2 * f_star, f_star, scale))


def best_threshold(
    z: np.ndarray, y: np.ndarray, beta: float, anchor: float, utility: Utility | None = None
) -> float:
    """The threshold on ``z`` that maximises F-beta of ``y`` (or ``utility``); among ties
    the one nearest ``anchor``."""
    utility = utility or Utility(beta)
    thresholds, tp, fp = _cuts(z, y)
    values = utility.values(tp, fp, float(y.sum()))
    best = np.flatnonzero(values >= values.max() - 1e-12)
    return float(thresholds[best[np.argmin(np.abs(thresholds[best] - anchor))]])


def _stratified_folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold ids that spread positives and negatives evenly over the folds."""
    ids = np.empty(len(y), dtype=np.int64)
    for value in (0, 1):
        rows = np.flatnonzero(y == value)
        rng.shuffle(rows)
        ids[rows] = (np.arange(len(rows)) + int(rng.integers(folds))) % folds
    return ids


class PerLabelRule(DecisionRule[PerLabelParams]):
    name = "per-label"
    description = (
        "A threshold per label fitted on validation scores (robust: minimum positives, "
        "shrinkage, kept only where it beats the global threshold in cross-validation)."
    )
    default_for: ClassVar[tuple[Mode, ...]] = ("multi-label",)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        # Why each label has (or lacks) its own threshold, filled by fit(); not saved.
        self._fit_report: list[dict[str, Any]] = []

    @property
    def fittable(self) -> bool:
        return True

    def fit_report(self) -> list[dict[str, Any]]:
        return list(self._fit_report)

    @property
    def _p(self) -> PerLabelParams:
        assert self.params.default is not None  # filled in by the params validator
        return self.params

    def describe(self) -> str:
        own = len(self._p.thresholds)
        counted = (
            f"{own} label(s) with their own threshold"
            if own
            else f"every label at {self._p.default:g}"
        )
        return f"{self.name} ({', '.join([*self.changed_params('thresholds'), counted])})"

    @classmethod
    def search_space(cls, search: RuleSearch) -> Sequence[RuleChoice]:
        """Thresholds fitted for each label's F1 or for micro F1, around the default
        threshold or around the best global threshold."""
        if search.taxonomy.mode != "multi-label":
            return ()
        fixed = search.fixed(cls.name)
        out = []
        # a default the user fixed is kept: no candidate moves it to the best global one
        starts = (False,) if "default" in fixed else (False, True)
        for kind, around_best in itertools.product(("label", "micro"), starts):

            def fit(
                scores: Scores, truth: np.ndarray, _kind: str = kind, _best: bool = around_best
            ) -> dict[str, Any]:
                params: dict[str, Any] = {"objective": _kind, **fixed}
                if _best:
                    best = best_global_threshold(
                        scores, truth, search.objective, search.thresholds, search.taxonomy
                    )
                    params["default"] = _stated(best, params.get("space", "probability"))
                rule = cls(**params)
                rule.fit(scores, truth, search.taxonomy)
                return rule.params_dict()

            goal = "each label's F1" if kind == "label" else "micro F1"
            where = "best global threshold" if around_best else "default threshold"
            out.append(RuleChoice(f"per-label for {goal}, around the {where}", fit=fit))
        return out

    def _threshold_vector(self, taxonomy: Taxonomy) -> np.ndarray:
        p = self._p
        index = _label_index(taxonomy)
        unknown = [label for label in p.thresholds if label not in index]
        if unknown:
            raise PluginError(
                f"decision rule 'per-label': threshold for label '{unknown[0]}', "
                f"which taxonomy '{taxonomy.name}' does not have"
            )
        vector = np.full(len(index), p.default, dtype=np.float64)
        for label, value in p.thresholds.items():
            vector[index[label]] = value
        return vector

    def label_thresholds(self, taxonomy: Taxonomy) -> dict[str, float]:
        """The threshold each label is held to (for evaluation reports)."""
        vector = self._threshold_vector(taxonomy)
        return {label: float(v) for label, v in zip(taxonomy.label_ids, vector, strict=True)}

    def decide(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        chosen = scores.values(self._p.space) >= self._threshold_vector(taxonomy)
        if self._p.constraints:
            chosen = apply_constraints(chosen, _ranking(scores), taxonomy)
        return np.asarray(chosen)

    def _fit_one(
        self,
        z: np.ndarray,
        y: np.ndarray,
        anchor: float,
        utility: Utility,
        rng: np.random.Generator,
        weights: np.ndarray,
    ) -> tuple[float | None, dict[str, Any]]:
        """(own threshold in logit terms or None, details) for one label's scores ``z``."""
        p = self._p
        positives = int(y.sum())
        details: dict[str, Any] = {"positives": positives}
        if positives < p.min_positives:
            details["reason"] = f"{positives} positive(s) < min_positives {p.min_positives}"
            return None, details
        if positives == len(y):
            details["reason"] = "every validation row is positive"
            return None, details

        def fit(zs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
            raw = best_threshold(zs, ys, p.beta, anchor, utility)
            n_pos = float(ys.sum())
            weight = n_pos / (n_pos + p.shrinkage) if n_pos + p.shrinkage > 0 else 1.0
            return raw, anchor + weight * (raw - anchor)

        details["raw"], own = fit(z, y)
        details["fitted"] = own
        if p.folds >= 2:
            folds = min(p.folds, positives, len(y) - positives)
            if folds < 2:
                details["reason"] = "too few rows to cross-validate"
                return None, details
            truth = y == 1
            # How often each row is predicted positive out of fold, over the repeats.
            rate = np.zeros(len(y))
            for _ in range(p.repeats):
                ids = _stratified_folds(y, folds, rng)
                for fold in range(folds):
                    held = ids == fold
                    _, cut = fit(z[~held], y[~held])
                    rate[held] += z[held] >= cut
            rate /= p.repeats
            base = (z >= anchor).astype(np.float64)
            per_row = np.stack(
                [rate * truth, rate * ~truth, (1 - rate) * truth, base * truth, base * ~truth,
                 (1 - base) * truth]
            )  # fmt: skip
            counts = per_row.sum(axis=1)
            gain = float(utility.gain(counts[:3], counts[3:]))
            details["cv_gain"] = gain
            # Bootstrap the validation rows: how sure is it that the gain is real?
            resampled = (per_row.astype(np.float32) @ weights).astype(np.float64)  # 6 × B
            confidence = float(np.mean(utility.gain(resampled[:3], resampled[3:]) > 0))
            details["confidence"] = confidence
            if not (gain > p.min_gain and confidence >= p.confidence):
                details["reason"] = (
                    f"no sure out-of-sample gain ({gain:+.4f}, {100 * confidence:.0f}% sure)"
                )
                return None, details
        details["reason"] = "own threshold"
        return own, details

    def fit(self, scores: Scores, targets: np.ndarray, taxonomy: Taxonomy) -> None:
        p = self._p
        assert p.default is not None
        values = scores.values(p.space)
        # Fit in logit terms: shrinkage and midpoints behave alike for every label.
        z_all = _to_logit(values) if p.space == "probability" else np.asarray(values, float)
        anchor = float(_to_logit(p.default)) if p.space == "probability" else p.default
        truth = np.asarray(targets) > 0.5
        cuts = np.full(truth.shape[1], anchor)
        # The micro objective needs F* at the optimum: start from the default thresholds'
        # F*, fit, and fit once more at the F* the fitted thresholds reach.
        for _ in range(2 if p.objective == "micro" else 1):
            utility = (
                Utility.micro_at(truth, z_all >= cuts, p.beta)
                if p.objective == "micro"
                else Utility(p.beta)
            )
            rng = np.random.default_rng(p.seed)
            weights = rng.poisson(1.0, size=(len(truth), _BOOTSTRAP)).astype(np.float32)
            results = [
                self._fit_one(
                    z_all[:, j], truth[:, j].astype(np.int8), anchor, utility, rng, weights
                )
                for j in range(truth.shape[1])
            ]
            cuts = np.array([anchor if own is None else own for own, _ in results])
        thresholds: dict[str, float] = {}
        self._fit_report = []
        for label, (own, details) in zip(taxonomy.label_ids, results, strict=True):
            if own is not None:
                value = float(_from_logit(own)) if p.space == "probability" else float(own)
                if p.space == "probability":  # strictly inside (0, 1), as a threshold must be
                    value = min(max(value, _TINY), _BELOW_ONE)
                # saved unrounded (JSON keeps every digit of a float): a rounded threshold
                # could cross the validation scores it was fitted between
                thresholds[label] = value
            details["threshold"] = thresholds.get(label, p.default)
            if "raw" in details and p.space == "probability":
                details["raw"] = float(_from_logit(details["raw"]))
                details["fitted"] = float(_from_logit(details["fitted"]))
            self._fit_report.append({"label": label, **details})
        self.params = p.model_copy(update={"thresholds": thresholds})
        log.info(
            "per-label thresholds: %d of %d labels have their own (others %.3g)",
            len(thresholds),
            len(taxonomy.labels),
            p.default,
        )


# -- top-k and argmax ----------------------------------------------------------------------


class TopKParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=1, ge=1)
    min_probability: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="drop top-k labels scoring below this"
    )


class TopKRule(DecisionRule[TopKParams]):
    name = "top-k"
    description = "The k best-scoring labels, optionally only those above a minimum probability."

    @classmethod
    def search_space(cls, search: RuleSearch) -> Sequence[RuleChoice]:
        """k = 1 … max_k (fewer than the labels), each alone or with a minimum probability
        from the threshold grid."""
        if search.taxonomy.mode != "multi-label":
            return ()
        fixed = search.fixed(cls.name)  # a parameter the user fixed is not searched
        ks = (
            [fixed["k"]]
            if "k" in fixed
            else range(1, min(search.max_k, len(search.taxonomy.labels) - 1) + 1)
        )
        floors = (
            [fixed["min_probability"]] if "min_probability" in fixed else [0.0, *search.thresholds]
        )
        out = []
        for k in ks:
            for floor in floors:
                text = f"top-{k}" + (f" ≥ {floor:g}" if floor else "")
                out.append(RuleChoice(text, {**fixed, "k": k, "min_probability": floor}))
        return out

    def decide(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        params = self.params
        probabilities = scores.probabilities
        k = min(params.k, probabilities.shape[1])
        # Stable sort on the negated scores: ties go to the label listed first.
        order = np.argsort(-_ranking(scores), axis=1, kind="stable")[:, :k]
        chosen = np.zeros(probabilities.shape, dtype=bool)
        np.put_along_axis(chosen, order, True, axis=1)
        return chosen & (probabilities >= params.min_probability)


class ArgmaxRule(DecisionRule):
    name = "argmax"
    description = "Exactly one label, the best-scoring one (single-label taxonomies)."
    default_for: ClassVar[tuple[Mode, ...]] = ("single-label",)

    @classmethod
    def search_space(cls, search: RuleSearch) -> Sequence[RuleChoice]:
        """The one rule that gives a single-label taxonomy one label a row."""
        return [RuleChoice("argmax")] if search.taxonomy.mode == "single-label" else ()

    def decide(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        best = np.argmax(scores.logits, axis=1)
        chosen = np.zeros(scores.logits.shape, dtype=bool)
        chosen[np.arange(len(best)), best] = True
        return chosen


# -- wrappers ------------------------------------------------------------------------------


class InnerRule(BaseModel):
    """The wrapped rule, as saved in the manifest: ``{"name": ..., "params": {...}}``."""

    model_config = ConfigDict(extra="forbid")

    name: str = "threshold"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the wrapped rule needs a name")
        return value


class _WrapperParams(BaseModel):
    inner: InnerRule


W = TypeVar("W", bound=_WrapperParams)


class WrapperRule(DecisionRule[W]):
    """A rule that post-processes the decisions of another rule (``inner``)."""

    wraps = True

    def __init__(self, **params: Any) -> None:
        inner = params.get("inner")
        if isinstance(inner, str):  # `--rule-param inner=top-k` is short for {name: top-k}
            params = {**params, "inner": {"name": inner}}
        super().__init__(**params)
        spec = self._spec
        try:
            self.inner = make_rule(spec.name, spec.params)
        except PluginError as exc:
            raise PluginError(f"decision rule '{self.name}': inner rule: {exc}") from None
        # Store the inner rule's validated parameters (defaults filled in).
        self._store_inner()

    @property
    def _spec(self) -> InnerRule:
        return self.params.inner

    @property
    def fittable(self) -> bool:
        return self.inner.fittable

    def _store_inner(self) -> None:
        self.params = self.params.model_copy(
            update={"inner": InnerRule(name=self.inner.name, params=self.inner.params_dict())}
        )

    def fit(self, scores: Scores, targets: np.ndarray, taxonomy: Taxonomy) -> None:
        if self.inner.fittable:
            self.inner.fit(scores, targets, taxonomy)
            self._store_inner()

    def fit_report(self) -> list[dict[str, Any]]:
        return self.inner.fit_report()

    def label_thresholds(self, taxonomy: Taxonomy) -> dict[str, float] | None:
        return self.inner.label_thresholds(taxonomy)

    def describe(self) -> str:
        shown = self.changed_params("inner")
        own = f" ({', '.join(shown)})" if shown else ""
        return f"{self.name}{own} of {self.inner.describe()}"


class AtLeastOneParams(_WrapperParams):
    model_config = ConfigDict(extra="forbid")

    inner: InnerRule = Field(default_factory=InnerRule, description="the wrapped rule")
    min_probability: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="take the best label only if it scores at least this",
    )


class AtLeastOneRule(WrapperRule[AtLeastOneParams]):
    name = "at-least-one"
    description = "Wraps a rule (inner); when it chooses no label, takes the best-scoring one."

    @classmethod
    def search_space(cls, search: RuleSearch) -> Sequence[RuleChoice]:
        """Every candidate with and without it."""
        if search.taxonomy.mode != "multi-label":
            return [RuleChoice("", None)]
        return [RuleChoice("", None), RuleChoice(" + at-least-one", {})]

    def decide(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        params = self.params
        chosen = np.array(self.inner.decide(scores, taxonomy), dtype=bool)
        probabilities = scores.probabilities
        empty = np.flatnonzero(~chosen.any(axis=1))
        if len(empty):
            best = np.argmax(_ranking(scores)[empty], axis=1)
            ok = probabilities[empty, best] >= params.min_probability
            chosen[empty[ok], best[ok]] = True
        return chosen


class ExclusiveParams(_WrapperParams):
    model_config = ConfigDict(extra="forbid")

    inner: InnerRule = Field(default_factory=InnerRule, description="the wrapped rule")


class ExclusiveRule(WrapperRule[ExclusiveParams]):
    name = "exclusive"
    description = (
        "Wraps a rule (inner) and applies the taxonomy's constraints: exclusive labels and "
        "groups (the higher-scoring side wins), max_labels and min_labels."
    )

    @classmethod
    def search_space(cls, search: RuleSearch) -> Sequence[RuleChoice]:
        """Around every candidate where the taxonomy declares a constraint."""
        if has_constraints(search.taxonomy):
            return [RuleChoice(" + exclusive", {})]
        return [RuleChoice("", None)]

    def decide(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        chosen = np.asarray(self.inner.decide(scores, taxonomy), dtype=bool)
        return apply_constraints(chosen, _ranking(scores), taxonomy)


def _ranking(scores: Scores) -> np.ndarray:
    """What labels are ranked by: logits, which order a row as its probabilities do but
    do not saturate (a sigmoid is exactly 1.0 from a logit of about 37, and ties there
    would go to the label listed first)."""
    return np.asarray(scores.logits, dtype=np.float64)


def has_constraints(taxonomy: Taxonomy) -> bool:
    c = taxonomy.constraints
    return bool(c.exclusive or c.exclusive_groups or c.min_labels or c.max_labels is not None)


def apply_constraints(chosen: np.ndarray, values: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """Every constraint of ``taxonomy``, in this order: exclusive labels and groups
    (:func:`apply_exclusive`), at most ``max_labels`` (the best-scoring stay), at least
    ``min_labels`` (the best-scoring labels that can stand with those chosen are added;
    an exclusive label alone is never joined, so exclusivity wins over a minimum above 1)."""
    if not has_constraints(taxonomy):
        return chosen
    limits = taxonomy.constraints
    out = apply_exclusive(chosen, values, taxonomy)
    if limits.max_labels is not None:
        over = np.flatnonzero(out.sum(axis=1) > limits.max_labels)
        if len(over):
            masked = np.where(out[over], values[over], -np.inf)
            best = np.argsort(-masked, axis=1, kind="stable")[:, : limits.max_labels]
            out[over] = False
            out[over[:, None], best] = True
    if limits.min_labels:
        counts = out.sum(axis=1)
        empty = np.flatnonzero(counts == 0)  # any one label may stand alone: the best
        out[empty, np.argmax(values[empty], axis=1)] = True
        counts[empty] = 1
        short = np.flatnonzero(counts < limits.min_labels)
        if len(short):
            index = _label_index(taxonomy)
            exclusive = {index[label] for label in limits.exclusive}
            group_of = {
                index[label]: number
                for number, group in enumerate(limits.exclusive_groups)
                for label in group
            }
            for row in short:
                _fill(out[row], values[row], limits.min_labels, exclusive, group_of)
    return out


def _fill(
    chosen: np.ndarray,
    values: np.ndarray,
    minimum: int,
    exclusive: set[int],
    group_of: dict[int, int],
) -> None:
    """Add the best-scoring compatible labels to one row until it has ``minimum``
    (``exclusive``: columns that stand alone; ``group_of``: column → its exclusive group)."""
    for j in np.argsort(-values, kind="stable"):
        if chosen.sum() >= minimum or exclusive & set(np.flatnonzero(chosen)):
            return
        taken_groups = {group_of[int(i)] for i in np.flatnonzero(chosen) if int(i) in group_of}
        if chosen[j] or j in exclusive or group_of.get(int(j), -1) in taken_groups:
            continue
        chosen[j] = True


def apply_exclusive(chosen: np.ndarray, values: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """Enforce ``taxonomy.constraints``: an exclusive label stands alone, a group keeps one.

    Where an exclusive label was chosen with others, it stays alone if it scores higher than
    every other chosen label and is dropped otherwise; within an exclusive group only the
    best-scoring chosen label stays. Never empties a row that had a label.
    """
    constraints = taxonomy.constraints
    if not constraints.exclusive and not constraints.exclusive_groups:
        return chosen
    index = _label_index(taxonomy)
    out = np.array(chosen, dtype=bool)
    for label in constraints.exclusive:
        j = index[label]
        others = out.copy()
        others[:, j] = False
        conflict = out[:, j] & others.any(axis=1)
        if not conflict.any():
            continue
        best_other = np.where(others, values, -np.inf).max(axis=1)
        alone = conflict & (values[:, j] > best_other)
        out[alone] = False
        out[alone, j] = True
        out[conflict & ~alone, j] = False
    for group in constraints.exclusive_groups:
        columns = np.array([index[label] for label in group])
        members = out[:, columns]
        crowded = np.flatnonzero(members.sum(axis=1) > 1)
        if not len(crowded):
            continue
        masked = np.where(members[crowded], values[np.ix_(crowded, columns)], -np.inf)
        keep = columns[np.argmax(masked, axis=1)]
        out[np.ix_(crowded, columns)] = False
        out[crowded, keep] = True
    return out


@hookimpl
def register_decision_rules(register):  # type: ignore[no-untyped-def]
    for rule in (
        ThresholdRule,
        PerLabelRule,
        TopKRule,
        AtLeastOneRule,
        ExclusiveRule,
        ArgmaxRule,
    ):
        register(rule)
