"""Training workflows: build a tagger from plugin names, train it and save it once; train
many taggers quietly (for cross-validation and source comparison)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from tagger_core.data.normalize import match_key
from tagger_core.data.split import hold_out
from tagger_core.errors import PluginError, TaggerError
from tagger_core.files import exclusive
from tagger_core.registry import default_encoder_name, encoders
from tagger_core.schemas import DataFile, Record, Taxonomy
from tagger_core.tagger import (
    MANIFEST,
    NormalizerSpec,
    RuleChooser,
    Tagger,
    check_tagger_target,
    leftover_folders,
)
from tagger_core.workflows.optimize import check_objective, choose_rule, rule_choices

DEFAULT_OBJECTIVE = "micro_f1"

log = logging.getLogger("tagger")

DEFAULT_VALID_RATIO = 0.2


def build_tagger(
    taxonomy: str | Path | Taxonomy,
    *,
    encoder: str | None = None,
    encoder_params: dict[str, Any] | None = None,
    model: str | None = None,
    rule: str | None = None,
    rule_params: dict[str, Any] | None = None,
    normalizers: Sequence[NormalizerSpec] = (),
) -> Tagger:
    """An untrained tagger; ``model`` sets the pretrained model of encoders that take one
    (the parameter the encoder names in ``model_param``)."""
    params = dict(encoder_params or {})
    if model is not None:
        encoder = encoder or default_encoder_name()
        key = encoders().get(encoder).model_param
        if key is None:
            raise PluginError(f"encoder '{encoder}' takes no pretrained model (--model)")
        if key in params and params[key] != model:
            raise TaggerError(f"--model and -p {key}=… name different models; give one")
        params[key] = model
    return Tagger.create(
        taxonomy,
        encoder=encoder,
        encoder_params=params,
        rule=rule,
        rule_params=rule_params,
        normalizers=normalizers,
    )


def train_and_save(
    tagger: Tagger,
    train: Sequence[Record],
    valid: Sequence[Record],
    output: Path,
    *,
    seed: int = 0,
    force: bool = False,
    train_files: Sequence[DataFile] = (),
    valid_files: Sequence[DataFile] = (),
    on_start: Callable[[], None] | None = None,
    objective: str | None = None,
) -> bool:
    """Train, then save from the primary process only (every process of a distributed run
    trains); True where this process saved. The target is checked and locked first (a
    second writer is refused before any work), then ``on_start`` runs, then training.
    With ``objective``, training chooses the decision rule for it (:func:`rule_chooser`),
    and the encoder's own validation measures it (:meth:`Encoder.aim_at`)."""
    check_tagger_target(output, force)
    primary = tagger.encoder.is_primary()
    with exclusive(output) if primary else nullcontext():
        if primary:
            if remove_leftovers(output):
                check_tagger_target(output, force)  # a restored backup is a tagger to replace
            if on_start is not None:
                on_start()
        if not valid and primary:
            log.warning("no --valid file: the tagger is saved without validation metrics")
        if valid and primary:
            warn_overlap(train, valid)
        tagger.train(
            train,
            valid,
            seed=seed,
            train_files=train_files,
            valid_files=valid_files,
            choose_rule=rule_chooser(objective, seed),
            objective=objective,
        )
        if not primary:
            return False
        tagger.save(output, force=force)
    return True


def warn_overlap(train: Sequence[Record], valid: Sequence[Record]) -> int:
    """Warn when validation names are also training names (as `tagger validate` matches
    them): the validation figures, and whatever is fitted on them, would be optimistic.
    Returns how many are."""
    seen = {match_key(record.text) for record in train}
    shared = sum(match_key(record.text) in seen for record in valid)
    if shared:
        log.warning(
            "%d of %d validation names are also training names: the validation figures "
            "(and the thresholds fitted on them) are optimistic; `tagger split` makes "
            "disjoint parts",
            shared,
            len(valid),
        )
    return shared


def remove_leftovers(output: Path) -> list[Path]:
    """Remove the hidden ``.NAME.*.partial`` and ``.NAME.*.old`` folders a killed save left
    beside ``output`` (call it holding the target's lock); returns what was removed. A
    backup that is the only copy of the tagger (a kill between a save's two renames) is
    first moved back to ``output``."""
    found = [*leftover_folders(output, "partial"), *leftover_folders(output, "old")]
    for leftover in found:
        backup = leftover / "tagger"
        if not output.exists() and (backup / MANIFEST).is_file():
            backup.rename(output)
            log.info("restored %s from %s, left by an interrupted save", output, leftover)
        shutil.rmtree(leftover, ignore_errors=True)
        log.info("removed %s, left by an interrupted save", leftover)
    return found


class _Counter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.count += 1
        return False


@contextmanager
def quiet_training() -> Iterator[_Counter]:
    """Hold back the per-run training warnings (labels without examples in a fold…) that
    would repeat for every tagger; they are counted, and shown with -v."""
    counter = _Counter()
    if log.isEnabledFor(logging.INFO):  # -v: show everything
        yield counter
        return
    log.addFilter(counter)
    try:
        yield counter
    finally:
        log.removeFilter(counter)


def rule_chooser(objective: str | None, seed: int = 0) -> RuleChooser | None:
    """What chooses the rule at training for ``objective`` (None: the rule is kept and
    fitted): :func:`tagger_core.workflows.optimize.choose_rule`."""
    if objective is None:
        return None
    check_objective(objective)

    def choose(scores: Any, truth: Any, taxonomy: Taxonomy, rule: Any) -> Any:
        return choose_rule(scores, truth, taxonomy, objective, rule, seed=seed)

    return choose


def valid_ratio_for(
    tagger: Tagger, valid_ratio: float | None, objective: str | None = None
) -> float:
    """The validation share of each training set: as asked, or by default 0.2 when the
    decision rule is fitted or chosen on validation scores (as in `tagger train --valid`)
    or the encoder learns from them (early stopping, an ensemble's weights), else 0."""
    if valid_ratio is None:
        chosen = objective is not None and rule_choices(tagger.taxonomy, objective) > 1
        needed = tagger.rule.fittable or chosen or tagger.encoder.learns_from_validation
        return DEFAULT_VALID_RATIO if needed else 0.0
    if not 0.0 <= valid_ratio < 1.0:
        raise TaggerError(f"--valid-ratio must be in [0, 1), got {valid_ratio}")
    return valid_ratio


def train_held_out(
    make_tagger: Callable[[], Tagger],
    records: Sequence[Record],
    taxonomy: Taxonomy,
    *,
    valid_ratio: float | None,
    seed: int,
    objective: str | None = None,
) -> tuple[Tagger, int, int]:
    """A new tagger trained on ``records`` less a validation part (see
    :func:`valid_ratio_for`); returns it with the train and validation row counts."""
    tagger = make_tagger()
    train: list[Record] = list(records)
    valid: list[Record] = []
    ratio = valid_ratio_for(tagger, valid_ratio, objective)
    if ratio > 0:
        train, valid = hold_out(train, ratio, taxonomy, seed)
    tagger.train(
        train,
        valid or None,
        seed=seed,
        choose_rule=rule_chooser(objective, seed),
        objective=objective,
    )
    return tagger, len(train), len(valid)
