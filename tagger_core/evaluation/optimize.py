"""Choose and fit the decision rule on validation scores (`tagger optimize`).

Candidates, as Annif's ``optimize`` and further:

- fixed rules: a grid of global thresholds × top-k (k = 1…max_k, or unlimited);
- fitted rules: the best global threshold, and per-label thresholds around 0.5 and around
  the best global threshold;
- each with and without the at-least-one wrapper; where the taxonomy declares exclusive
  labels or groups, every candidate applies them.

Fixed rules are scored on the validation rows. A fitted rule would look better on the rows
it was fitted on, so it is scored out of fold: fitted on k-1 folds of the validation rows,
applied to the held-out fold, pooled. The winner has the best of these scores, so a fitted
rule wins only where it beats every fixed rule out of sample.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagger_core.components import DecisionRule
from tagger_core.errors import PluginError, TaggerError
from tagger_core.evaluation.metrics import LOWER_IS_BETTER, OBJECTIVES, quick_figures
from tagger_core.schemas import Taxonomy
from tagger_core.scores import Scores

DEFAULT_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 … 0.95

Spec = dict[str, Any]


def spec(name: str, **params: Any) -> Spec:
    return {"name": name, "params": params}


def _make(rule: Spec) -> DecisionRule:
    from tagger_core.tagger import make_rule

    return make_rule(rule["name"], rule["params"])


@dataclass
class Candidate:
    """A rule to try: ``rule`` as a manifest spec, or ``fit`` that builds one from data."""

    description: str
    family: str
    rule: Spec | None = None
    fit: Callable[[Scores, np.ndarray], Spec] | None = None

    @property
    def fitted(self) -> bool:
        return self.fit is not None


@dataclass
class Result:
    candidate: Candidate
    figures: dict[str, float]  # on the validation rows (a fitted rule: fitted on all of them)
    cv_figures: dict[str, float] | None = None  # fitted rules: out of fold
    rule: Spec | None = None  # the rule as fitted on every validation row
    same: int = 0  # later candidates that decided every validation row identically

    def score(self, objective: str) -> float:
        figures = self.cv_figures if self.cv_figures is not None else self.figures
        return figures[objective]


@dataclass
class Outcome:
    objective: str
    results: list[Result]  # best first
    baseline: Result  # global threshold 0.5 (or argmax)
    current: Result | None = None  # the tagger's saved rule, on the validation rows
    notes: list[str] = field(default_factory=list)

    @property
    def winner(self) -> Result:
        return self.results[0]


def _key(objective: str) -> Callable[[Result], float]:
    sign = -1.0 if objective in LOWER_IS_BETTER else 1.0
    return lambda r: sign * r.score(objective)


def _decide(rule: Spec, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
    return np.asarray(_make(rule).decide(scores, taxonomy), dtype=bool)


def _wrap(rule: Spec, exclusive: bool, at_least_one: bool) -> Spec:
    if exclusive and rule["name"] != "per-label":  # per-label applies them itself
        rule = spec("exclusive", inner=rule)
    if at_least_one:
        rule = spec("at-least-one", inner=rule)
    return rule


def _suffix(exclusive: bool, at_least_one: bool) -> str:
    return (" + exclusive" if exclusive else "") + (" + at-least-one" if at_least_one else "")


def _row_folds(n: int, folds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = np.arange(n) % folds
    rng.shuffle(ids)
    return ids


def best_global_threshold(
    scores: Scores, truth: np.ndarray, objective: str, grid: Sequence[float]
) -> float:
    """The grid threshold with the best objective (the one nearest 0.5 among ties)."""
    key = _key(objective)
    best: tuple[float, float] | None = None
    for t in sorted(grid, key=lambda t: abs(t - 0.5)):
        figures = quick_figures(truth, scores.probabilities >= t)
        value = key(Result(Candidate("", ""), figures))
        if best is None or value > best[0] + 1e-12:
            best = (value, t)
    assert best is not None
    return best[1]


def candidates(
    taxonomy: Taxonomy,
    objective: str,
    grid: Sequence[float] = DEFAULT_GRID,
    max_k: int = 5,
    at_least_one: Sequence[bool] = (False, True),
    per_label_params: dict[str, Any] | None = None,
) -> list[Candidate]:
    """The candidate rules for a multi-label taxonomy, simplest first."""
    from tagger_core import plugins

    available = set(plugins.decision_rules().names())
    exclusive = bool(taxonomy.constraints.exclusive or taxonomy.constraints.exclusive_groups)
    if exclusive and "exclusive" not in available:
        raise PluginError("the taxonomy has exclusive labels but no 'exclusive' rule is installed")
    out: list[Candidate] = []
    n_labels = len(taxonomy.labels)
    ks = [k for k in range(1, min(max_k, n_labels - 1) + 1)]
    per_label_params = dict(per_label_params or {})
    fitted: dict[tuple[str, str], Spec] = {}
    for alo in at_least_one:
        if alo and "at-least-one" not in available:
            continue
        suffix = _suffix(exclusive, alo)
        for t in grid:
            out.append(
                Candidate(
                    f"threshold {t:g}{suffix}",
                    "threshold",
                    rule=_wrap(spec("threshold", threshold=t), exclusive, alo),
                )
            )
        if "top-k" in available:
            for k in ks:
                # top-k without a minimum never leaves a row empty: at-least-one adds nothing
                floors = ([] if alo else [0.0]) + list(grid)
                for floor in floors:
                    text = f"top-{k}" + (f" ≥ {floor:g}" if floor else "")
                    out.append(
                        Candidate(
                            text + suffix,
                            "top-k",
                            rule=_wrap(spec("top-k", k=k, min_probability=floor), exclusive, alo),
                        )
                    )

        def fit_global(
            scores: Scores, truth: np.ndarray, _alo: bool = alo, _suffix: str = suffix
        ) -> Spec:
            t = best_global_threshold(scores, truth, objective, grid)
            return _wrap(spec("threshold", threshold=t), exclusive, _alo)

        out.append(Candidate(f"best global threshold{suffix}", "fitted threshold", fit=fit_global))
        if "per-label" not in available:
            continue
        for objective_kind, around_best in itertools.product(("label", "micro"), (False, True)):

            def fit_per_label(
                scores: Scores,
                truth: np.ndarray,
                _alo: bool = alo,
                _kind: str = objective_kind,
                _around_best: bool = around_best,
            ) -> Spec:
                params = {"objective": _kind, **per_label_params}
                if _around_best:
                    params["default"] = best_global_threshold(scores, truth, objective, grid)
                # The same fit serves the candidates with and without at-least-one.
                key = (
                    json.dumps(params, sort_keys=True),
                    hashlib.sha1(scores.logits.tobytes() + truth.tobytes()).hexdigest(),
                )
                if key not in fitted:
                    rule = _make(spec("per-label", **params))
                    rule.fit(scores, truth, taxonomy)
                    fitted[key] = {"name": rule.name, "params": rule.params_dict()}
                return _wrap(fitted[key], exclusive, _alo)

            goal = "each label's F1" if objective_kind == "label" else "micro F1"
            where = "best global threshold" if around_best else "default threshold"
            out.append(
                Candidate(
                    f"per-label for {goal}, around the {where}{' + at-least-one' if alo else ''}",
                    "per-label",
                    fit=fit_per_label,
                )
            )
    return out


def _cross_validated(
    candidate: Candidate,
    scores: Scores,
    truth: np.ndarray,
    taxonomy: Taxonomy,
    folds: int,
    seed: int,
) -> np.ndarray:
    assert candidate.fit is not None
    pred = np.zeros(truth.shape, dtype=bool)
    ids = _row_folds(len(truth), folds, seed)
    for fold in range(folds):
        held = np.flatnonzero(ids == fold)
        kept = np.flatnonzero(ids != fold)
        rule = candidate.fit(scores.subset(kept), truth[kept])
        pred[held] = _decide(rule, scores.subset(held), taxonomy)
    return pred


def optimize(
    scores: Scores,
    truth: np.ndarray,
    taxonomy: Taxonomy,
    objective: str = "micro_f1",
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    max_k: int = 5,
    folds: int = 5,
    at_least_one: Sequence[bool] = (False, True),
    per_label_params: dict[str, Any] | None = None,
    current: DecisionRule | None = None,
    seed: int = 0,
    progress: Callable[[int], Any] | None = None,
) -> Outcome:
    """Score every candidate on validation ``scores``/``truth`` and rank them."""
    if objective not in OBJECTIVES:
        raise TaggerError(f"unknown objective '{objective}' (known: {', '.join(OBJECTIVES)})")
    truth = np.asarray(truth) > 0.5
    if len(truth) < 2 * folds:
        raise TaggerError(
            f"{len(truth)} validation rows are too few to cross-validate in {folds} folds"
        )
    notes = []
    if taxonomy.mode == "single-label":
        options = [Candidate("argmax", "argmax", rule=spec("argmax"))]
        notes.append("single-label taxonomy: argmax is the only rule that gives one label a row")
    else:
        options = candidates(taxonomy, objective, grid, max_k, at_least_one, per_label_params)
    results = []
    seen: dict[bytes, Result] = {}
    for candidate in options:
        if candidate.rule is not None:
            rule = candidate.rule
            pred = _decide(rule, scores, taxonomy)
            key = np.packbits(pred).tobytes()
            if key in seen:  # decides exactly as a simpler candidate: count it there
                seen[key].same += 1
            else:
                seen[key] = Result(candidate, quick_figures(truth, pred), rule=rule)
                results.append(seen[key])
        else:
            assert candidate.fit is not None
            rule = candidate.fit(scores, truth)
            figures = quick_figures(truth, _decide(rule, scores, taxonomy))
            cv = _cross_validated(candidate, scores, truth, taxonomy, folds, seed)
            results.append(Result(candidate, figures, quick_figures(truth, cv), rule=rule))
        if progress is not None:
            progress(1)
    exclusive = bool(taxonomy.constraints.exclusive or taxonomy.constraints.exclusive_groups)
    if taxonomy.mode == "single-label":
        baseline_rule, baseline_text = spec("argmax"), "argmax"
    else:
        baseline_rule = _wrap(spec("threshold", threshold=0.5), exclusive, False)
        baseline_text = "global threshold 0.5" + _suffix(exclusive, False)
    baseline = Result(
        Candidate(baseline_text, "baseline"),
        quick_figures(truth, _decide(baseline_rule, scores, taxonomy)),
        rule=baseline_rule,
    )
    saved = None
    if current is not None:
        saved = Result(
            Candidate(f"saved rule: {current.name}", "saved"),
            quick_figures(truth, np.asarray(current.decide(scores, taxonomy), dtype=bool)),
            rule={"name": current.name, "params": current.params_dict()},
        )
    # Stable sort: among equal scores the simpler (earlier) candidate stays first.
    results.sort(key=_key(objective), reverse=True)
    return Outcome(objective, results, baseline, saved, notes)


def count_candidates(
    taxonomy: Taxonomy,
    objective: str,
    grid: Sequence[float] = DEFAULT_GRID,
    max_k: int = 5,
    at_least_one: Sequence[bool] = (False, True),
) -> int:
    if taxonomy.mode == "single-label":
        return 1
    return len(candidates(taxonomy, objective, grid, max_k, at_least_one))
