"""No default tagger breaks its taxonomy's constraints: trained on each bundled taxonomy that
declares them (attractions, hotels, tours; and attractions with `max_labels`), with the
rule kept or chosen at training for each objective, it never leaves a name without a label,
never gives more than `max_labels`, never puts an exclusive label beside another and never
two labels of one exclusive group."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, REPO

from tagger_core import Taxonomy, read_records, resolve_taxonomy
from tagger_core.workflows.train import build_tagger, rule_chooser

HOTELS = REPO / "examples" / "tagger-hotels"
TOURS = REPO / "examples" / "taxonomies"


def _attractions_at_most_two() -> Taxonomy:
    base = resolve_taxonomy("attractions")
    limits = base.constraints.model_copy(update={"max_labels": 2})
    return base.model_copy(update={"constraints": limits})


CASES = {
    "attractions": (
        lambda: resolve_taxonomy("attractions"),
        [EXAMPLES / "train.json", EXAMPLES / "validation.json"],
    ),
    "attractions, max_labels 2": (
        _attractions_at_most_two,
        [EXAMPLES / "train.json", EXAMPLES / "validation.json"],
    ),
    "hotels": (
        lambda: resolve_taxonomy(str(HOTELS / "tagger_hotels" / "hotels.yaml")),
        [HOTELS / "data" / "train.json", HOTELS / "data" / "validation.json"],
    ),
    "tours": (
        lambda: resolve_taxonomy(str(TOURS / "tours.yaml")),
        [TOURS / "tours-sample.csv"],
    ),
}


def _broken(labels: set[str], taxonomy: Taxonomy) -> str | None:
    c = taxonomy.constraints
    if len(labels) < c.min_labels:
        return f"{len(labels)} labels, min_labels {c.min_labels}"
    if c.max_labels is not None and len(labels) > c.max_labels:
        return f"{len(labels)} labels, max_labels {c.max_labels}"
    for label in c.exclusive:
        if label in labels and len(labels) > 1:
            return f"exclusive {label} beside {labels - {label}}"
    for group in c.exclusive_groups:
        if len(labels & set(group)) > 1:
            return f"two of the exclusive group {group}"
    return None


def _names(records: list, seed: int = 0) -> list[str]:
    """The data's names, and names the tagger has never seen the like of."""
    rng = random.Random(seed)
    alphabet = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
    noise = ["".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(200)]
    return [r.text for r in records] + noise + ["", " ", "x", "123", "The Louvre"]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("objective", [None, "micro_f1", "exact_match", "macro_f1", "samples_f1"])
def test_no_default_tagger_breaks_a_constraint(case: str, objective: str | None) -> None:
    make_taxonomy, files = CASES[case]
    taxonomy = make_taxonomy()
    assert taxonomy.constraints.min_labels == 1  # each bundled one declares it
    records = [r for f in files for r in read_records(Path(f), taxonomy=taxonomy)]
    cut = len(records) * 4 // 5
    tagger = build_tagger(taxonomy)
    tagger.train(records[:cut], records[cut:], choose_rule=rule_chooser(objective))
    names = _names(records)
    for prediction in tagger.predict(names):
        problem = _broken(set(prediction.labels), taxonomy)
        assert problem is None, (
            prediction.text,
            prediction.labels,
            problem,
            tagger.rule.describe(),
        )
    # The decisions as a matrix too (what evaluate and predict files use).
    chosen = tagger.decide(tagger.scores(names))
    assert np.all(chosen.sum(axis=1) >= 1)
