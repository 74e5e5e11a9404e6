"""k-fold cross-validation: one split's figures can be luck; k folds show the spread.

Folds are built like `tagger split` parts: stratified on every label by iterative
stratification, with all records of one (normalised) name in the same fold, so that no
name is trained on and evaluated at once. A label with fewer names than folds stays in
every fold's training part where the data allows: its names go to different folds, and the
name of a label that has only one is kept in every training part (never tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from tagger_core.data.split import arrange, group_by_name, group_labels, only_names, stratify
from tagger_core.errors import TaggerError
from tagger_core.evaluation.metrics import Evaluation
from tagger_core.progress_bars import progress
from tagger_core.schemas import Record, Taxonomy
from tagger_core.tagger import Tagger
from tagger_core.taxonomy import label_matrix
from tagger_core.workflows.train import quiet_training, train_held_out

# Figures summarised as mean ± std, in display order.
SUMMARY_METRICS = (
    "exact_match",
    "micro_precision",
    "micro_recall",
    "micro_f1",
    "macro_f1",
    "empty_rate",
)


class Fold(BaseModel):
    fold: int
    train_rows: int
    valid_rows: int
    test_rows: int
    metrics: dict[str, Any]  # an Evaluation, plus empty_rate
    rule: str = ""  # the fold's decision rule, as fitted or chosen
    rule_choice: dict[str, Any] | None = None  # how training chose it (with an objective)
    combination: str = ""  # how an encoder with members weighed them in this fold


class MeanStd(BaseModel):
    mean: float
    std: float


class CrossValidation(BaseModel):
    k: int
    seed: int
    rows: int
    names: int
    taxonomy: str
    tagger: dict[str, Any]  # encoder, rule and normalizers, as in a manifest
    folds: list[Fold]
    summary: dict[str, MeanStd]
    warnings_suppressed: int = 0
    # Records kept in every fold's training part (the only name of some label), and the
    # labels that no fold could test for that reason.
    always_trained: int = 0
    untested_labels: list[str] = Field(default_factory=list)


ALWAYS_TRAINED = -1  # the fold of a record that is in every fold's training part


def fold_of_records(records: Sequence[Record], taxonomy: Taxonomy, k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of each record: stratified by label, every label with at least k
    names in every fold, all records of a name in one fold. A label with fewer names than
    folds has them in different folds (so every training part holds one), and the name of
    a label with only one is in no fold (:data:`ALWAYS_TRAINED`): always trained on."""
    groups = group_by_name(records)
    if k < 2:
        raise TaggerError(f"-k must be at least 2, got {k}")
    if len(groups) < k:
        raise TaggerError(f"{len(groups)} distinct names are too few for {k} folds")
    labels = group_labels(label_matrix(records, taxonomy), groups)
    folded = np.flatnonzero(~only_names(labels))
    if len(folded) < k:
        raise TaggerError(
            f"{len(folded)} of {len(groups)} names can be tested (the others are the only "
            f"name of a label, kept in training): too few for {k} folds"
        )
    group_folds = np.full(len(groups), ALWAYS_TRAINED)
    part = labels[folded]
    assign = stratify(part, [1.0] * k, seed)
    # Equal fold sizes, and every label with at least k names in every fold.
    sizes = [len(groups[g]) for g in folded]
    arrange(assign, np.broadcast_to(part, (k, *part.shape)), [1.0] * k, weights=sizes)
    group_folds[folded] = assign
    # A name with several rare labels goes where the rarest needs it, which can leave all
    # the names of another label in one fold: untrained when that fold is tested. One of
    # them is then trained on in every fold, as a label's only name is.
    for label in range(labels.shape[1]):
        members = folded[labels[folded, label] > 0]
        if len(members) >= 2 and len(set(group_folds[members].tolist())) == 1:
            group_folds[members[-1]] = ALWAYS_TRAINED
    folds = np.empty(len(records), dtype=int)
    for group, fold in zip(groups, group_folds, strict=True):
        folds[group] = fold
    return folds


def _empty_rate(evaluation: Evaluation) -> float:
    """The share of test names given no label."""
    return evaluation.empty_predictions / max(evaluation.rows, 1)


def summarise(folds: Sequence[Fold]) -> dict[str, MeanStd]:
    """Mean and sample standard deviation (ddof=1) of each summary metric over folds."""
    out = {}
    for metric in SUMMARY_METRICS:
        values = np.array([fold.metrics[metric] for fold in folds], dtype=float)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[metric] = MeanStd(mean=float(values.mean()), std=std)
    return out


def cross_validate(
    records: Sequence[Record],
    taxonomy: Taxonomy,
    make_tagger: Callable[[], Tagger],
    *,
    k: int = 5,
    seed: int = 0,
    valid_ratio: float | None = None,
    on_fold: Callable[[Fold], None] | None = None,
    objective: str | None = None,
) -> CrossValidation:
    """Train ``make_tagger()`` k times, each time testing on one fold.

    A stratified validation part of each training set (``valid_ratio``, see
    :func:`tagger_core.workflows.train.valid_ratio_for`) fits the decision rule and lets
    encoders stop early; with ``objective`` it also chooses each fold's rule
    (:func:`tagger_core.workflows.optimize.choose_rule`). ``on_fold`` hears of each fold
    as soon as it is done.
    """
    folds = fold_of_records(records, taxonomy, k, seed)
    results: list[Fold] = []
    tagger: Tagger | None = None
    with quiet_training() as suppressed:
        for fold in progress(range(k), desc="cross-validation", unit="fold"):
            test = [r for r, f in zip(records, folds, strict=True) if f == fold]
            train = [r for r, f in zip(records, folds, strict=True) if f != fold]
            tagger, n_train, n_valid = train_held_out(
                make_tagger,
                train,
                taxonomy,
                valid_ratio=valid_ratio,
                seed=(seed + fold) % 2**32,
                objective=objective,
            )
            scores, truth, parts = tagger.score_records_and_members(test)
            evaluation = tagger.evaluate_scores(scores, truth)
            metrics = evaluation.model_dump(mode="json", exclude={"confusion"})
            metrics["empty_rate"] = _empty_rate(evaluation)
            if parts:  # an ensemble's members, each alone: the same folds, one training
                metrics["members"] = {
                    name: {
                        **{m: getattr(e, m) for m in SUMMARY_METRICS if m != "empty_rate"},
                        "empty_rate": _empty_rate(e),
                    }
                    for name, e in tagger.evaluate_member_scores(parts, truth).items()
                }
            results.append(
                Fold(
                    fold=fold + 1,
                    train_rows=n_train,
                    valid_rows=n_valid,
                    test_rows=len(test),
                    metrics=metrics,
                    rule=tagger.rule.describe(),
                    rule_choice=tagger.training.rule_choice,
                    combination=tagger.encoder.combination(),
                )
            )
            if on_fold is not None:
                on_fold(results[-1])
    assert tagger is not None
    manifest = tagger.manifest()
    kept = [r for r, f in zip(records, folds, strict=True) if f == ALWAYS_TRAINED]
    tested = label_matrix([r for r, f in zip(records, folds, strict=True) if f >= 0], taxonomy)
    present = label_matrix(records, taxonomy).sum(axis=0) > 0
    untested = [
        label.id for j, label in enumerate(taxonomy.labels) if present[j] and not tested[:, j].any()
    ]
    return CrossValidation(
        k=k,
        seed=seed,
        rows=len(records),
        names=len(group_by_name(records)),
        taxonomy=taxonomy.name,
        tagger={
            "encoder": manifest.encoder.model_dump(),
            "rule": manifest.rule.model_dump(),
            "normalizers": [n.model_dump() for n in manifest.normalizers],
        },
        folds=results,
        summary=summarise(results),
        warnings_suppressed=suppressed.count,
        always_trained=len(kept),
        untested_labels=untested,
    )
