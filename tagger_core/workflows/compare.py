"""Compare labelling sources: which source's labels train the better tagger, and how far
do the sources agree?

The reference notebook trained on a travel site's tags and on LLM tags and evaluated each
model on each source's held-out names (a 2×2 table of accuracies). `compare_sources` does
that for any number of sources: one split by source (`split_by_source`), one tagger per
training source, evaluated on every source's validation part. `agreement` measures how
two sources label the names they share, per label, with Cohen's kappa.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
from pydantic import BaseModel

from tagger_core.data.normalize import match_key
from tagger_core.data.sources import source_names
from tagger_core.data.split import split_by_source
from tagger_core.errors import TaggerError
from tagger_core.progress_bars import progress
from tagger_core.schemas import Record, Taxonomy
from tagger_core.tagger import Tagger
from tagger_core.taxonomy import label_matrix
from tagger_core.workflows.train import quiet_training, train_held_out

ALL_SOURCES = "all"


class Cell(BaseModel):
    """One tagger (trained on ``train``) evaluated on one source's validation part."""

    train: str
    eval: str
    train_rows: int
    valid_rows: int  # held out of the training rows to fit the decision rule
    eval_rows: int
    exact_match: float
    micro_f1: float
    macro_f1: float


class LabelAgreement(BaseModel):
    label: str
    a: int  # shared names that source a gives this label
    b: int
    both: int
    kappa: float | None  # None: undefined (neither source uses the label on shared names)


class SourceAgreement(BaseModel):
    a: str
    b: str
    shared_names: int
    identical: int  # shared names with the same label set from both sources
    mean_kappa: float | None  # over the labels where kappa is defined
    labels: list[LabelAgreement]


class Comparison(BaseModel):
    taxonomy: str
    sources: list[str]
    ratios: list[float]
    seed: int
    parts: dict[str, int]  # rows per part of the split
    set_aside: int
    cells: list[Cell]
    agreement: list[SourceAgreement]
    warnings_suppressed: int = 0

    def cell(self, train: str, eval: str) -> Cell:
        for cell in self.cells:
            if cell.train == train and cell.eval == eval:
                return cell
        raise KeyError((train, eval))


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's kappa of two 0/1 vectors; None where it is undefined (no variation at all)."""
    from sklearn.metrics import cohen_kappa_score

    a = np.asarray(a, dtype=int)
    b = np.asarray(b, dtype=int)
    if len(a) == 0:
        return None
    if a.min() == a.max() == b.min() == b.max():
        return None  # both sources constant and equal: chance agreement is total
    return float(cohen_kappa_score(a, b))


def shared_names(records: Sequence[Record], a: str, b: str) -> list[tuple[Record, Record]]:
    """Pairs (a's record, b's record) for names both label, matched after normalisation;
    the first record of a name stands for its source."""
    firsts: dict[str, dict[str, Record]] = {}
    for record in records:
        if record.source in (a, b):
            firsts.setdefault(match_key(record.text), {}).setdefault(record.source, record)
    return [(pair[a], pair[b]) for pair in firsts.values() if a in pair and b in pair]


def agreement(records: Sequence[Record], taxonomy: Taxonomy, a: str, b: str) -> SourceAgreement:
    pairs = shared_names(records, a, b)
    matrix_a = label_matrix([p[0] for p in pairs], taxonomy).astype(int)
    matrix_b = label_matrix([p[1] for p in pairs], taxonomy).astype(int)
    labels = []
    for j, label in enumerate(taxonomy.labels):
        column_a, column_b = matrix_a[:, j], matrix_b[:, j]
        labels.append(
            LabelAgreement(
                label=label.id,
                a=int(column_a.sum()),
                b=int(column_b.sum()),
                both=int((column_a & column_b).sum()),
                kappa=cohen_kappa(column_a, column_b),
            )
        )
    kappas = [label.kappa for label in labels if label.kappa is not None]
    return SourceAgreement(
        a=a,
        b=b,
        shared_names=len(pairs),
        identical=int((matrix_a == matrix_b).all(axis=1).sum()) if pairs else 0,
        mean_kappa=float(np.mean(kappas)) if kappas else None,
        labels=labels,
    )


def compare_sources(
    records: Sequence[Record],
    taxonomy: Taxonomy,
    make_tagger: Callable[[], Tagger],
    *,
    ratios: Sequence[float] | None = None,
    seed: int = 0,
    combined: bool = False,
    valid_ratio: float | None = None,
    objective: str | None = None,
) -> Comparison:
    """Train on each source's labels of the training names; evaluate every tagger on each
    source's validation part (its own labels of its held-out names).

    ``ratios`` default to 4 for training and 1 per source; ``combined`` adds a tagger
    trained on all sources together. Each tagger's decision rule is fitted on a
    validation part of its own training records (``valid_ratio``, see
    :func:`tagger_core.workflows.train.valid_ratio_for`), or chosen there for
    ``objective``.
    """
    sources = source_names(records)
    if len(sources) < 2:
        raise TaggerError(
            "compare needs at least two sources: give them as --data NAME=FILE "
            f"(found {len(sources)}: {', '.join(sources) or 'none'})"
        )
    ratios = list(ratios) if ratios else [4.0, *([1.0] * len(sources))]
    split = split_by_source(records, ratios, taxonomy=taxonomy, seed=seed)
    train = split.parts[0]
    evaluations = {
        source: [r for r in split.parts[i] if r.source == source]
        for i, source in enumerate(sources, start=1)
    }
    trainers = [(s, [r for r in train if r.source == s]) for s in sources]
    if combined:
        trainers.append((ALL_SOURCES, list(train)))
    cells = []
    with quiet_training() as suppressed:
        for name, train_records in progress(trainers, desc="compare", unit="tagger"):
            if not train_records:
                raise TaggerError(f"source '{name}' has no record among the training names")
            tagger, n_train, n_valid = train_held_out(
                make_tagger,
                train_records,
                taxonomy,
                valid_ratio=valid_ratio,
                seed=seed,
                objective=objective,
            )
            for source in sources:
                held_out = evaluations[source]
                if not held_out:
                    raise TaggerError(f"source '{source}' has no record in its validation part")
                evaluation = tagger.evaluate(held_out)
                cells.append(
                    Cell(
                        train=name,
                        eval=source,
                        train_rows=n_train,
                        valid_rows=n_valid,
                        eval_rows=len(held_out),
                        exact_match=evaluation.exact_match,
                        micro_f1=evaluation.micro_f1,
                        macro_f1=evaluation.macro_f1,
                    )
                )
    return Comparison(
        taxonomy=taxonomy.name,
        sources=sources,
        ratios=ratios,
        seed=seed,
        parts={name: len(part) for name, part in zip(split.names, split.parts, strict=True)},
        set_aside=len(split.set_aside),
        cells=cells,
        agreement=[agreement(records, taxonomy, a, b) for a, b in combinations(sources, 2)],
        warnings_suppressed=suppressed.count,
    )
