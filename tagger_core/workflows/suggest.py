"""`tagger suggest`: which unlabelled names a person should label next.

A name teaches the tagger most where its decision is closest to flipping: a label whose
probability sits at the rule's threshold (multi-label), or two labels nearly tied
(single-label). Taken alone, the most uncertain names are often near-copies of one another
(one chain's branches), so the choice trades uncertainty against distance from the names
already chosen (greedy max-min on character n-gram TF-IDF vectors, which every tagger has
whatever its encoder). The pool streams through in chunks; only the most uncertain few
thousand are kept for the diversity step."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tagger_core.data.normalize import match_key
from tagger_core.schemas import Record
from tagger_core.scores import Scores, sigmoid
from tagger_core.tagger import Tagger
from tagger_core.taxonomy import labels_of

CHUNK = 2048
SHORTLIST_PER_PICK = 20  # the diversity step looks at this many candidates per name wanted
MIN_SHORTLIST = 500
# Chosen on POI's validation split (bench/active_learning.py --evaluate-on validation):
# 0.2 gained over random sampling at every labelled count; 0 and 0.5 gained less early.
DIVERSITY = 0.2


@dataclass(frozen=True)
class Suggestion:
    record: Record
    uncertainty: float  # 1: a label exactly at its threshold (or two labels tied); 0: sure
    guess: list[str]  # the tagger's labels: a starting point for the person labelling
    scores: dict[str, float]


def uncertainty(tagger: Tagger, scores: Scores) -> np.ndarray:
    """Per name, how close its decision is to flipping, from 0 (sure) to 1."""
    probabilities = scores.probabilities
    if tagger.taxonomy.mode == "single-label" or probabilities.shape[1] < 2:
        top = -np.sort(-probabilities, axis=1)
        second = top[:, 1] if top.shape[1] > 1 else np.zeros(len(top))
        return np.asarray(1.0 - (top[:, 0] - second))
    thresholds = _probability_thresholds(tagger)
    room = np.maximum(thresholds, 1.0 - thresholds)  # the farthest a score can be
    closeness = 1.0 - np.abs(probabilities - thresholds) / room
    return np.asarray(closeness.max(axis=1))


def _probability_thresholds(tagger: Tagger) -> np.ndarray:
    """Each label's threshold as a probability (0.5 where the rule states none)."""
    stated = tagger.rule.label_thresholds(tagger.taxonomy) or {}
    values = np.array([stated.get(label, np.nan) for label in tagger.taxonomy.label_ids])
    rule: Any = tagger.rule
    while rule.wraps and getattr(rule, "inner", None) is not None:  # the rule that thresholds
        rule = rule.inner
    if getattr(rule.params, "space", "probability") == "logit":
        values = sigmoid(values)
    return np.where(np.isnan(values), 0.5, values)


def suggest_names(
    tagger: Tagger,
    records: Iterable[Record],
    n: int,
    *,
    diversity: float = DIVERSITY,
    exclude: Iterable[Record] = (),
) -> list[Suggestion]:
    """The ``n`` names of ``records`` to label next, most useful first. ``diversity`` from
    0 (the most uncertain, however alike) to 1 (as spread out as possible); names that
    match one in ``exclude`` (already labelled) or an earlier one in the pool are skipped."""
    if n < 1:
        return []
    seen = {match_key(record.text) for record in exclude}
    keep = max(MIN_SHORTLIST, SHORTLIST_PER_PICK * n)
    shortlist: list[tuple[float, int, Suggestion]] = []  # a min-heap on uncertainty
    counter = itertools.count()
    ids = tagger.taxonomy.label_ids
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, CHUNK)):
        batch = _fresh(chunk, seen)
        if not batch:
            continue
        scores = tagger.scores([record.text for record in batch])
        chosen = tagger.decide(scores)
        probabilities = scores.probabilities.round(6).tolist()
        values = uncertainty(tagger, scores).tolist()
        for record, value, row, probs in zip(batch, values, chosen, probabilities, strict=True):
            if len(shortlist) >= keep and value <= shortlist[0][0]:
                continue
            suggestion = Suggestion(
                record=record,
                uncertainty=value,
                guess=labels_of(row, tagger.taxonomy),
                scores=dict(zip(ids, probs, strict=True)),
            )
            entry = (value, next(counter), suggestion)
            if len(shortlist) < keep:
                heapq.heappush(shortlist, entry)
            else:
                heapq.heapreplace(shortlist, entry)
    candidates = [entry[2] for entry in sorted(shortlist, key=lambda e: (-e[0], e[1]))]
    return _spread(candidates, n, diversity)


def _fresh(batch: list[Record], seen: set[str]) -> list[Record]:
    """``batch`` less the names seen before (the same after normalisation); notes them."""
    fresh = []
    for record in batch:
        key = match_key(record.text)
        if key and key not in seen:
            seen.add(key)
            fresh.append(record)
    return fresh


def _spread(candidates: list[Suggestion], n: int, diversity: float) -> list[Suggestion]:
    """Greedy: each pick maximises (1 − diversity) · uncertainty + diversity · distance to
    the nearest name already picked (cosine, on character 1–3-gram TF-IDF vectors)."""
    if len(candidates) <= n or diversity <= 0:
        return candidates[:n]
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3)).fit_transform(
        [candidate.record.text for candidate in candidates]
    )
    values = np.array([candidate.uncertainty for candidate in candidates])
    nearest = np.full(len(candidates), 1.0)  # distance to the closest pick so far
    picked: list[int] = []
    available = np.ones(len(candidates), dtype=bool)
    for _ in range(n):
        gain = (1.0 - diversity) * values + diversity * nearest
        gain[~available] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        available[best] = False
        similarity = np.asarray((vectors @ vectors[best].T).todense()).ravel()
        nearest = np.minimum(nearest, 1.0 - similarity)
    return [candidates[i] for i in picked]
