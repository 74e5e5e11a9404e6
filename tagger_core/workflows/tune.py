"""Search an encoder's parameters (`tagger tune`) with optuna's TPE sampler.

Each trial builds a tagger with the sampled parameters and measures the objective either
on the user's validation rows (the tagger trains on the training rows, holding out its own
validation part for the decision rule and early stopping, so the measured rows stay
unseen) or by k-fold cross-validation of all rows (the mean over the folds). The first
trial is always the encoder's defaults, so the best is never worse than the defaults on
what is measured. The best tagger is kept: with validation rows, the best trial's own
tagger; with cross-validation, a tagger trained on all rows with the best parameters.
Ctrl-C ends the search between or inside trials and keeps the best so far.

optuna is an optional dependency (``pip install 'tagger[tune]'``), imported here only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagger_core.components import ParamRange
from tagger_core.errors import PluginError, TaggerError
from tagger_core.evaluation.metrics import LOWER_IS_BETTER
from tagger_core.registry import encoders
from tagger_core.schemas import Record, Taxonomy
from tagger_core.tagger import Tagger
from tagger_core.workflows.crossval import cross_validate
from tagger_core.workflows.optimize import check_objective
from tagger_core.workflows.train import quiet_training, train_held_out

log = logging.getLogger("tagger")


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise TaggerError(
            "tagger tune needs optuna: pip install 'tagger[tune]' (or pip install optuna)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass
class Trial:
    number: int
    values: dict[str, Any]  # the sampled parameters (empty: the defaults)
    score: float | None  # the objective (mean over folds with cross-validation)
    std: float | None = None  # over folds
    seconds: float = 0.0
    state: str = "complete"  # complete, failed, interrupted
    error: str = ""


@dataclass
class TuneResult:
    objective: str
    encoder: str
    measured_on: str  # "validation rows" or "k-fold cross-validation"
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None
    tagger: Tagger | None = None  # the best tagger (None where no trial completed)
    interrupted: bool = False

    @property
    def defaults(self) -> Trial | None:
        return next((t for t in self.trials if t.number == 0), None)


def parse_space(raw: dict[str, Any]) -> dict[str, ParamRange]:
    """A user's search space (from YAML): ``KEY: [choice, …]`` or ``KEY: {low, high, log,
    int}``; a scalar fixes the parameter (one choice)."""
    out = {}
    for key, value in raw.items():
        try:
            if isinstance(value, list):
                out[key] = ParamRange(choices=tuple(value))
            elif isinstance(value, dict):
                unknown = set(value) - {"low", "high", "log", "int"}
                if unknown:
                    raise PluginError(f"unknown field(s) {', '.join(sorted(unknown))}")
                out[key] = ParamRange(
                    low=value.get("low"),
                    high=value.get("high"),
                    log=bool(value.get("log", False)),
                    integer=bool(value.get("int", False)),
                )
            else:
                out[key] = ParamRange(choices=(value,))
        except PluginError as exc:
            raise TaggerError(f"search space, parameter '{key}': {exc}") from None
    return out


def resolve_space(
    encoder: str, base_params: dict[str, Any], space: dict[str, ParamRange] | None
) -> dict[str, ParamRange]:
    """``space``, or the encoder's own; refused in one line where it names a parameter the
    encoder lacks (an ensemble's ``MEMBER.KEY`` is checked when its member is built)."""
    encoder_class = encoders().get(encoder)
    space = dict(space if space is not None else encoder_class.search_space(base_params))
    if not space:
        raise TaggerError(
            f"encoder '{encoder}' declares no parameters to tune; give a search space (--space)"
        )
    for key in space:
        if "." not in key and key not in encoder_class.Params.model_fields:
            raise TaggerError(f"search space: encoder '{encoder}' has no parameter '{key}'")
    return space


def _sample(trial: Any, key: str, where: ParamRange) -> Any:
    if where.choices:
        # optuna records categorical choices by position, so any YAML value works
        index = trial.suggest_categorical(key, list(range(len(where.choices))))
        return where.choices[index]
    assert where.low is not None and where.high is not None
    if where.integer:
        return trial.suggest_int(key, int(where.low), int(where.high), log=where.log)
    return trial.suggest_float(key, float(where.low), float(where.high), log=where.log)


def tune(
    records: Sequence[Record],
    taxonomy: Taxonomy,
    make_tagger: Callable[[dict[str, Any]], Tagger],
    *,
    encoder: str,
    base_params: dict[str, Any],
    objective: str = "micro_f1",
    rule_objective: str | None = "micro_f1",
    valid: Sequence[Record] = (),
    folds: int = 5,
    trials: int | None = 20,
    minutes: float | None = None,
    space: dict[str, ParamRange] | None = None,
    seed: int = 0,
    on_trial: Callable[[Trial, Trial | None], None] | None = None,
) -> TuneResult:
    """Search ``encoder``'s parameters; ``make_tagger(params)`` builds an untrained tagger
    with the encoder's parameters; each trial's training chooses its rule for
    ``rule_objective`` (None: the tagger's rule is kept). ``space`` defaults to the
    encoder's own (:meth:`Encoder.search_space`). Stops after ``trials`` or ``minutes``,
    or on Ctrl-C."""
    check_objective(objective)
    optuna = import_optuna()
    encoder_class = encoders().get(encoder)
    space = resolve_space(encoder, base_params, space)
    sign = -1.0 if objective in LOWER_IS_BETTER else 1.0
    measured_on = "validation rows" if valid else f"{folds}-fold cross-validation"
    result = TuneResult(objective, encoder, measured_on)
    best_tagger: list[Tagger] = []

    def measure(values: dict[str, Any]) -> tuple[float, float | None, Tagger | None]:
        params = encoder_class.with_values(base_params, values)

        def build() -> Tagger:
            return make_tagger(params)

        if valid:
            tagger, _, _ = train_held_out(
                build, records, taxonomy, valid_ratio=None, seed=seed, objective=rule_objective
            )
            return float(getattr(tagger.evaluate(valid), objective)), None, tagger
        cv = cross_validate(records, taxonomy, build, k=folds, seed=seed, objective=rule_objective)
        scores = np.array([fold.metrics[objective] for fold in cv.folds], dtype=float)
        return float(scores.mean()), float(scores.std(ddof=1)) if len(scores) > 1 else 0.0, None

    def run_trial(trial: Any) -> float:
        values = {} if trial.number == 0 else {k: _sample(trial, k, w) for k, w in space.items()}
        started = time.perf_counter()
        record = Trial(trial.number, values, None)
        result.trials.append(record)
        try:
            with quiet_training():
                score, std, tagger = measure(values)
        except KeyboardInterrupt:
            record.state, record.seconds = "interrupted", time.perf_counter() - started
            raise
        except TaggerError as exc:  # a bad combination (e.g. a parameter out of range)
            record.state, record.error = "failed", str(exc)
            record.seconds = time.perf_counter() - started
            if on_trial is not None:
                on_trial(record, result.best)
            raise optuna.TrialPruned() from None
        record.score, record.std = score, std
        record.seconds = time.perf_counter() - started
        if result.best is None or sign * score > sign * (result.best.score or 0.0):
            result.best = record
            if tagger is not None:
                best_tagger[:] = [tagger]
        if on_trial is not None:
            on_trial(record, result.best)
        return score

    study = optuna.create_study(
        direction="minimize" if sign < 0 else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    try:
        study.optimize(
            run_trial,
            n_trials=trials,
            timeout=None if minutes is None else minutes * 60,
            catch=(),
        )
    except KeyboardInterrupt:
        result.interrupted = True
    if result.best is not None:
        if best_tagger:
            result.tagger = best_tagger[0]
        else:  # cross-validation: train on every row once (after Ctrl-C too)
            params = encoder_class.with_values(base_params, result.best.values)
            with quiet_training():
                result.tagger, _, _ = train_held_out(
                    lambda: make_tagger(params),
                    records,
                    taxonomy,
                    valid_ratio=None,
                    seed=seed,
                    objective=rule_objective,
                )
    return result
