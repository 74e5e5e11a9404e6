"""Choose and fit the decision rule on validation scores (`tagger optimize`).

The candidates come from the installed rules themselves: each declares the choices it
offers (:meth:`DecisionRule.search_space`), and each wrapper rule (one with an ``inner``
rule) is tried around every other candidate, applied or not as it says. A rule from a
third-party plugin is a candidate exactly as a built-in one is.

Fixed rules are scored on the validation rows. A fitted rule would look better on the rows
it was fitted on, so it is scored out of fold: fitted on k-1 folds of the validation rows,
applied to the held-out fold, pooled. The winner has the best of these scores, so a fitted
rule wins only where it beats every fixed rule out of sample.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagger_core.components import DecisionRule, RuleChoice, RuleSearch
from tagger_core.errors import PluginError, TaggerError
from tagger_core.evaluation.metrics import LOWER_IS_BETTER, OBJECTIVES, quick_figures
from tagger_core.evaluation.sweep import THRESHOLDS
from tagger_core.registry import decision_rules, default_rule_name, make_rule
from tagger_core.schemas import DataFile, Record, Taxonomy
from tagger_core.scores import Scores
from tagger_core.tagger import Tagger

Spec = dict[str, Any]
Fitter = Callable[[Scores, np.ndarray], Spec]


@dataclass
class Candidate:
    """A rule to try: ``rule`` as a manifest spec, or ``fit`` that builds one from data."""

    description: str
    family: str  # the name of the rule that offered it
    rule: Spec | None = None
    fit: Fitter | None = None

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
    baseline: Result  # the taxonomy's default rule with its default parameters, unfitted
    current: Result | None = None  # the tagger's saved rule, on the validation rows
    notes: list[str] = field(default_factory=list)

    @property
    def winner(self) -> Result:
        return self.results[0]


def _key(objective: str) -> Callable[[Result], float]:
    sign = -1.0 if objective in LOWER_IS_BETTER else 1.0
    return lambda r: sign * r.score(objective)


def _decide(rule: Spec, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
    return make_rule(rule["name"], rule["params"]).decisions(scores, taxonomy)


def _row_folds(n: int, folds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = np.arange(n) % folds
    rng.shuffle(ids)
    return ids


@dataclass(frozen=True)
class _Wrapping:
    """One way to wrap a candidate: the wrapper rules applied, innermost first."""

    layers: tuple[tuple[str, RuleChoice], ...]

    def apply(self, spec: Spec) -> Spec:
        for name, choice in self.layers:
            spec = {"name": name, "params": {**(choice.params or {}), "inner": spec}}
        return spec

    @property
    def suffix(self) -> str:
        return "".join(choice.description for _, choice in self.layers)


def _wrappings(
    wrappers: list[tuple[str, Sequence[RuleChoice]]], require: set[str]
) -> list[_Wrapping]:
    """Every combination of wrapper choices; those a wrapper cannot go without (no "not
    applied" choice, e.g. a taxonomy's exclusive labels) sit innermost."""
    options = []
    for name, choices in sorted(wrappers, key=lambda w: any(c.params is None for c in w[1])):
        kept = [c for c in choices if not (name in require and c.params is None)]
        options.append([(name, c) for c in kept] or [(name, RuleChoice("", None))])
    return [
        _Wrapping(tuple((name, c) for name, c in combo if c.params is not None))
        for combo in itertools.product(*options)
    ]


def _fitter(name: str, choice: RuleChoice, taxonomy: Taxonomy) -> Fitter:
    """Fits ``choice`` of rule ``name``; one fit serves every wrapping of it."""
    cache: dict[str, Spec] = {}

    def fit(scores: Scores, truth: np.ndarray) -> Spec:
        key = hashlib.sha1(scores.logits.tobytes() + truth.tobytes()).hexdigest()
        if key not in cache:
            if choice.fit is not None:
                params = choice.fit(scores, truth)
            else:
                rule = make_rule(name, choice.params)
                rule.fit(scores, truth, taxonomy)
                params = rule.params_dict()
            cache[key] = {"name": name, "params": params}
        return cache[key]

    return fit


def _wrapped(fit: Fitter, wrapping: _Wrapping) -> Fitter:
    return lambda scores, truth: wrapping.apply(fit(scores, truth))


def candidates(
    search: RuleSearch, *, exclude: Sequence[str] = (), require: Sequence[str] = ()
) -> list[Candidate]:
    """The candidates every installed rule offers for ``search``, fixed ones first (the
    simpler ones first among equals), each in every combination of wrappers."""
    rules = decision_rules()
    unknown = [name for name in (*exclude, *require) if name not in rules.items]
    if unknown:
        rules.get(unknown[0])  # the one-line "unknown decision rule" error
    base: list[tuple[str, RuleChoice, bool]] = []
    wrappers: list[tuple[str, Sequence[RuleChoice]]] = []
    for name, registered in rules.items.items():  # registration order
        rule_class: type[DecisionRule[Any]] = registered.item
        if name in exclude:
            continue
        choices = list(rule_class.search_space(search))
        if rule_class.wraps:
            wrappers.append((name, choices or [RuleChoice("", None)]))
            continue
        if name in require:
            raise TaggerError(f"only wrapper rules can be required; '{name}' is not one")
        for choice in choices:
            fitted = choice.fit is not None or make_rule(name, choice.params).fittable
            base.append((name, choice, fitted))
    base.sort(key=lambda item: item[2])  # stable: fixed before fitted
    out = []
    for wrapping in _wrappings(wrappers, set(require)):
        for name, choice, fitted in base:
            description = choice.description + wrapping.suffix
            if not fitted:
                spec = wrapping.apply({"name": name, "params": dict(choice.params or {})})
                out.append(Candidate(description, name, rule=spec))
                continue
            out.append(
                Candidate(
                    description,
                    name,
                    fit=_wrapped(_fitter(name, choice, search.taxonomy), wrapping),
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


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise TaggerError(f"unknown objective '{objective}' (known: {', '.join(OBJECTIVES)})")


def check_rule_params(params: dict[str, dict[str, Any]]) -> None:
    """Fail on a bad candidate parameter now, not in the middle of the search."""
    for name, values in params.items():
        make_rule(name, values)


def search_for(
    taxonomy: Taxonomy,
    objective: str = "micro_f1",
    thresholds: Sequence[float] = THRESHOLDS,
    max_k: int = 5,
    rule_params: dict[str, dict[str, Any]] | None = None,
) -> RuleSearch:
    return RuleSearch(taxonomy, objective, tuple(thresholds), max_k, dict(rule_params or {}))


def optimize(
    scores: Scores,
    truth: np.ndarray,
    search: RuleSearch,
    *,
    folds: int = 5,
    exclude: Sequence[str] = (),
    require: Sequence[str] = (),
    current: DecisionRule[Any] | None = None,
    seed: int = 0,
    progress: Callable[[int], Any] | None = None,
) -> Outcome:
    """Score every candidate on validation ``scores``/``truth`` and rank them."""
    objective, taxonomy = search.objective, search.taxonomy
    check_objective(objective)
    truth = np.asarray(truth) > 0.5
    if len(truth) < 2 * folds:
        raise TaggerError(
            f"{len(truth)} validation rows are too few to cross-validate in {folds} folds"
        )
    options = candidates(search, exclude=exclude, require=require)
    if not options:
        raise PluginError(f"no installed decision rule offers a candidate for '{taxonomy.name}'")
    notes = []
    if len(options) == 1:
        notes.append(f"{taxonomy.mode} taxonomy: {options[0].description} is the only candidate")
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
    default = make_rule(default_rule_name(taxonomy.mode))
    baseline = Result(
        Candidate(f"default rule, unfitted: {default.describe()}", default.name),
        quick_figures(truth, default.decisions(scores, taxonomy)),
        rule={"name": default.name, "params": default.params_dict()},
    )
    saved = None
    if current is not None:
        saved = Result(
            Candidate(f"saved rule: {current.describe()}", current.name),
            quick_figures(truth, current.decisions(scores, taxonomy)),
            rule={"name": current.name, "params": current.params_dict()},
        )
    # Stable sort: among equal scores the simpler (earlier) candidate stays first.
    results.sort(key=_key(objective), reverse=True)
    return Outcome(objective, results, baseline, saved, notes)


@dataclass
class RuleSelection:
    """What `tagger optimize` found: the ranking, and the winner fitted on every row."""

    outcome: Outcome
    rule: DecisionRule[Any]
    rows: int
    saved_to: Path | None = None


def optimize_rule(
    tagger: Tagger,
    records: Sequence[Record],
    search: RuleSearch,
    *,
    output: Path | None,
    folds: int = 5,
    exclude: Sequence[str] = (),
    require: Sequence[str] = (),
    seed: int = 0,
    progress: Callable[[int], Any] | None = None,
    valid_files: Sequence[DataFile] = (),
) -> RuleSelection:
    """Choose the rule of ``tagger`` on labelled ``records`` (read from ``valid_files``);
    with ``output``, save the tagger there with the winner, its validation figures and the
    files they were measured on, else change nothing."""
    scores, truth = tagger.score_records(records)
    outcome = optimize(
        scores,
        truth,
        search,
        folds=folds,
        exclude=exclude,
        require=require,
        current=tagger.rule,
        seed=seed,
        progress=progress,
    )
    winner = outcome.winner.rule
    assert winner is not None
    rule = make_rule(winner["name"], winner["params"])
    if outcome.winner.candidate.fitted:
        # Refit on every validation row to report why each label got its threshold.
        rule.fit(scores, truth, tagger.taxonomy)
    selection = RuleSelection(outcome, rule, len(records))
    if output is not None:
        tagger.rule = rule
        tagger.record_validation(scores, truth)
        # the figures and the rule now come from these rows; training's own choice of
        # rule, if it made one, no longer describes the saved rule
        tagger.training.valid = list(valid_files)
        tagger.training.valid_rows = len(records)
        tagger.training.rule_choice = None
        selection.saved_to = tagger.save(output, force=True)
    return selection


# -- choosing the rule at training -------------------------------------------------------

CHOICE_FOLDS = 5  # folds of optimize() inside the choice
CHECK_FOLDS = 3  # folds of the check that the choice, made out of fold, beats the default
BOOTSTRAP_RESAMPLES = 1000
# The default rule is replaced only where the chosen one is better in at least this share
# of paired bootstrap resamples of the validation rows (a one-sided 90 % test).
SWITCH_CONFIDENCE = 0.9


def _spec_of(rule: DecisionRule[Any]) -> Spec:
    return {"name": rule.name, "params": rule.params_dict()}


def _out_of_fold(
    choose: Callable[[Scores, np.ndarray], Spec],
    scores: Scores,
    truth: np.ndarray,
    taxonomy: Taxonomy,
    seed: int,
) -> np.ndarray:
    """Decisions on each fold of the rows by a rule chosen or fitted on the others."""
    pred = np.zeros(truth.shape, dtype=bool)
    ids = _row_folds(len(truth), CHECK_FOLDS, seed)
    for fold in range(CHECK_FOLDS):
        held, kept = np.flatnonzero(ids == fold), np.flatnonzero(ids != fold)
        rule = choose(scores.subset(kept), truth[kept])
        pred[held] = _decide(rule, scores.subset(held), taxonomy)
    return pred


def paired_bootstrap(
    truth: np.ndarray, a: np.ndarray, b: np.ndarray, objective: str, seed: int = 0
) -> tuple[float, float]:
    """How much better decisions ``a`` are than ``b`` on ``objective`` (the difference on
    all rows), and the share of paired bootstrap resamples of the rows where ``a`` wins
    (ties count half)."""
    sign = -1.0 if objective in LOWER_IS_BETTER else 1.0
    gain = sign * (quick_figures(truth, a)[objective] - quick_figures(truth, b)[objective])
    rng = np.random.default_rng(seed)
    wins = 0.0
    for _ in range(BOOTSTRAP_RESAMPLES):
        rows = rng.integers(0, len(truth), len(truth))
        delta = sign * (
            quick_figures(truth[rows], a[rows])[objective]
            - quick_figures(truth[rows], b[rows])[objective]
        )
        wins += 1.0 if delta > 0 else 0.5 if delta == 0 else 0.0
    return gain, wins / BOOTSTRAP_RESAMPLES


def describe_choice(choice: dict[str, Any]) -> str:
    """How training chose its rule, in one line (train, evaluate, the report)."""
    kept = "kept the default rule" if choice["chosen"] == "default" else "replaced the default"
    return (
        f"chosen at training for {choice['objective']} among "
        f"{choice.get('candidates', 1)} candidates: {kept}; {choice['reason']}"
    )


def rule_choices(taxonomy: Taxonomy, objective: str) -> int:
    """How many candidate rules training would choose among."""
    return len(candidates(search_for(taxonomy, objective)))


def choose_rule(
    scores: Scores,
    truth: np.ndarray,
    taxonomy: Taxonomy,
    objective: str,
    default: DecisionRule[Any],
    *,
    seed: int = 0,
) -> tuple[DecisionRule[Any], dict[str, Any]]:
    """The decision rule training keeps, and why: every installed rule's candidates are
    ranked as `tagger optimize` ranks them, and the best replaces ``default`` only where
    that whole choice, made out of fold, beats ``default`` out of fold in at least 90 % of
    paired bootstrap resamples of the validation rows. On a few dozen rows the noise is
    large and ``default`` stays; the returned rule is fitted on every row if fittable."""
    check_objective(objective)
    truth = np.asarray(truth) > 0.5
    search = search_for(taxonomy, objective)
    info: dict[str, Any] = {"objective": objective, "validation_rows": len(truth)}

    def fitted_default(s: Scores, t: np.ndarray) -> DecisionRule[Any]:
        rule = make_rule(default.name, default.params_dict())
        if rule.fittable:
            rule.fit(s, t, taxonomy)
        return rule

    def fit_default(s: Scores, t: np.ndarray) -> Spec:
        return _spec_of(fitted_default(s, t))

    def kept(reason: str) -> tuple[DecisionRule[Any], dict[str, Any]]:
        rule = fitted_default(scores, truth)  # fitted once, with its fit report
        return rule, {**info, "chosen": "default", "rule": rule.describe(), "reason": reason}

    options = candidates(search)
    info["candidates"] = len(options)
    if len(options) < 2:
        return kept(f"{taxonomy.mode} taxonomy: one candidate rule")
    if len(truth) < 2 * CHOICE_FOLDS * 2:
        return kept(f"{len(truth)} validation rows are too few to choose a rule")

    def choose(s: Scores, t: np.ndarray) -> Spec:
        outcome = optimize(s, t, search, folds=CHOICE_FOLDS, seed=seed)
        return _winner_spec(outcome)

    outcome = optimize(scores, truth, search, folds=CHOICE_FOLDS, seed=seed)
    winner = outcome.winner
    check_seed = (seed + 1) % 2**32  # the check's folds: the same for the choice and the default
    chosen_pred = _out_of_fold(choose, scores, truth, taxonomy, check_seed)
    default_pred = _out_of_fold(fit_default, scores, truth, taxonomy, check_seed)
    gain, share = paired_bootstrap(truth, chosen_pred, default_pred, objective, seed)
    info.update(
        {
            "best_candidate": winner.candidate.description,
            "best_score": round(winner.score(objective), 6),
            "gain": round(gain, 6),  # the choice against the default, both out of fold
            "better_in": round(share, 4),
        }
    )
    if share < SWITCH_CONFIDENCE or gain <= 0:
        return kept(
            f"the best candidate ({winner.candidate.description}) differs from it by "
            f"{gain:+.4f} {objective} out of fold and is better in {share:.0%} of "
            f"resamples (needs {SWITCH_CONFIDENCE:.0%})"
        )
    spec = _winner_spec(outcome)
    rule = make_rule(spec["name"], spec["params"])
    if winner.candidate.fitted:
        rule.fit(scores, truth, taxonomy)  # again, to keep why each label got its threshold
    reason = (
        f"{winner.candidate.description} beats it by {gain:+.4f} {objective} out of fold, "
        f"better in {share:.0%} of resamples"
    )
    return rule, {**info, "chosen": "best candidate", "rule": rule.describe(), "reason": reason}


def _winner_spec(outcome: Outcome) -> Spec:
    """The best candidate as a manifest spec (a fitted one: fitted on every row given)."""
    assert outcome.winner.rule is not None
    return outcome.winner.rule
