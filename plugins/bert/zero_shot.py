"""Zero- and few-shot scoring: names against label prototypes in a sentence-embedding space.

A name's similarity to a label is its cosine to the closest of the label's own texts
(display name, translations, aliases, keywords, description), or 1 — an identical text —
when the name holds one of its short texts word for word (``verbatim``: a small sentence
model does not know that 香格里拉 is a luxury brand, but the taxonomy can say so). Once the
label has labelled names, it is the larger of that and the cosine to the label's
prototype: the mean of its texts' vectors, weighted, plus its names' vectors. (On the
attraction examples' training file the closest text beat the mean of the texts by 5
points of micro F1 with no labelled name; with a few per label the prototype carries the
score.) Cosine similarities are then turned into logits. Raw cosines of embedding models
sit in a narrow band that moves from name to name, so a fixed cosine threshold does not
carry from one name to the next; what does is the distance to the name's best label. A
multi-label logit is therefore ``scale · (cos − best cos + margin)``: the best label
always scores ``scale · margin`` > 0, and others join it when they are within ``margin``.
Single-label logits are ``scale · cos`` (softmax over the labels).

Everything here is numpy on vectors; the model that makes the vectors is the caller's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tagger_core import Taxonomy

# Chosen on the bundled attraction examples' training file (docs/bert.md, "Zero-shot"):
# used when no labelled name is there to fit them.
# The margin is never 0: the best label's logit stays above 0, whatever a rule's threshold
# comparison. 0.001 is "the best label, and those tied with it".
DEFAULT_MARGIN = 0.001
DEFAULT_SCALE = 50.0
MARGINS = (0.001, 0.0025, *np.round(np.arange(0.005, 0.1501, 0.005), 3))
# A label text longer than this is a phrase, not a word a name would hold.
MAX_VERBATIM_CHARS = 24
VERBATIM_TIE_BREAK = 1e-4  # × 2 (the widest cosine gap) < the smallest margin, 0.001
SCALES = (5.0, 10.0, 20.0, 30.0, 50.0, 80.0, 120.0, 200.0)


def label_texts(taxonomy: Taxonomy, use: str = "all") -> list[list[str]]:
    """Per label, the texts its prototype is made from (distinct, in a fixed order):
    ``names`` — display name, translations, aliases and keywords; ``description`` — the
    description (the display name when there is none); ``all`` — both."""
    out = []
    for label in taxonomy.labels:
        names = [
            label.display_name,
            *label.translations.values(),
            *label.aliases,
            *label.keywords,
        ]
        description = [label.description] if label.description.strip() else []
        texts = {
            "names": names,
            "description": description or names[:1],
            "all": names + description,
        }[use]
        out.append(list(dict.fromkeys(t.strip() for t in texts if t.strip())))
    return out


def verbatim_patterns(per_label: list[list[str]]) -> list[re.Pattern[str] | None]:
    """Per label, one pattern for its short texts (display name, translations, aliases,
    keywords): Chinese as substrings, Latin as whole words, case-folded."""
    patterns: list[re.Pattern[str] | None] = []
    for texts in per_label:
        parts = []
        for text in texts:
            folded = text.casefold()
            if len(folded) > MAX_VERBATIM_CHARS or len(folded) < 2:
                continue
            escaped = re.escape(folded)
            parts.append(rf"(?<![a-z0-9]){escaped}(?![a-z0-9])" if folded.isascii() else escaped)
        patterns.append(re.compile("|".join(parts)) if parts else None)
    return patterns


def verbatim_matches(names: list[str], patterns: list[re.Pattern[str] | None]) -> np.ndarray:
    """n × L: whether the name holds one of the label's short texts word for word."""
    folded = [name.casefold() for name in names]
    out = np.zeros((len(names), len(patterns)), dtype=bool)
    for j, pattern in enumerate(patterns):
        if pattern is not None:
            out[:, j] = [pattern.search(name) is not None for name in folded]
    return out


def with_verbatim(cosines: np.ndarray, matches: np.ndarray) -> np.ndarray:
    """A label whose text the name holds word for word scores as an identical text would:
    1, plus a trace of its cosine so that a single-label tagger picks the closer of two
    labels held (the trace stays under the smallest multi-label margin: both are kept)."""
    held = 1.0 + VERBATIM_TIE_BREAK * cosines
    return np.asarray(np.where(matches, held, cosines), dtype=np.float32)


def normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def description_vectors(text_vectors: np.ndarray, owners: list[int], n_labels: int) -> np.ndarray:
    """One unit vector per label: the mean of its texts' unit vectors (``owners[i]`` is the
    label of text ``i``)."""
    sums = np.zeros((n_labels, text_vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, np.asarray(owners), normalized(text_vectors))
    return normalized(sums)


def prototypes(
    descriptions: np.ndarray,
    examples: np.ndarray | None,
    targets: np.ndarray | None,
    description_weight: float,
) -> np.ndarray:
    """Unit prototypes: ``description_weight`` × the description vector plus the unit
    vectors of the label's examples (``targets``: n × L, 0/1). Without examples, the
    description alone."""
    sums = float(description_weight) * descriptions.astype(np.float64)
    if examples is not None and targets is not None and len(examples):
        sums = sums + np.asarray(targets, dtype=np.float64).T @ normalized(examples)
    return normalized(sums)


def leave_one_out_cosines(
    descriptions: np.ndarray, examples: np.ndarray, targets: np.ndarray, description_weight: float
) -> np.ndarray:
    """Each example's cosines to prototypes built without it, so that the margin and scale
    are fitted on scores like those of unseen names."""
    units = normalized(examples).astype(np.float64)
    truth = np.asarray(targets, dtype=np.float64)
    sums = float(description_weight) * descriptions.astype(np.float64) + truth.T @ units
    # sum_l minus the example itself where it is labelled l: n × L × H is too big, so the
    # dot products are expanded: (s_l − t_il x_i)·x_i and |s_l − t_il x_i|².
    dots = units @ sums.T - truth  # x_i·s_l − t_il (|x_i| = 1)
    squares = (sums * sums).sum(axis=1)[None, :] - 2 * truth * (units @ sums.T) + truth
    return np.asarray(dots / np.sqrt(np.maximum(squares, 1e-12)), dtype=np.float32)


def text_cosines(
    units: np.ndarray, text_vectors: np.ndarray, starts: np.ndarray, match: str = "closest"
) -> np.ndarray:
    """Per label, the cosine of each name to the closest of the label's texts, or (``match``
    "mean") to the mean of their vectors. ``text_vectors``: unit rows grouped by label;
    ``starts``: each label's first row."""
    if match == "mean":
        owners = np.searchsorted(starts, np.arange(len(text_vectors)), side="right") - 1
        means = description_vectors(text_vectors, list(owners), len(starts))
        return np.asarray(units @ means.T, np.float32)
    return np.asarray(np.maximum.reduceat(units @ text_vectors.T, starts, axis=1), np.float32)


def combine(closest: np.ndarray, prototype: np.ndarray, with_examples: np.ndarray) -> np.ndarray:
    """n × L: the label-text cosine, or the prototype cosine where it is larger for the labels
    ``with_examples`` (a boolean per label, or n × L for leave-one-out)."""
    return np.asarray(np.where(with_examples, np.maximum(closest, prototype), closest), np.float32)


def relative_logits(cosines: np.ndarray, margin: float, scale: float) -> np.ndarray:
    best = cosines.max(axis=1, keepdims=True) if cosines.size else cosines
    return np.asarray(scale * (cosines - best + margin), dtype=np.float32)


def logits_for(cosines: np.ndarray, multi_label: bool, margin: float, scale: float) -> np.ndarray:
    if multi_label:
        return relative_logits(cosines, margin, scale)
    return np.asarray(scale * cosines, dtype=np.float32)


@dataclass(frozen=True)
class Calibration:
    margin: float
    scale: float
    rows: int  # labelled names it was fitted on (0: the defaults)


def calibrate(cosines: np.ndarray, truth: np.ndarray, multi_label: bool) -> Calibration:
    """The margin with the best micro F1 of "within margin of the best label" (multi-label
    only; ties go to the smaller margin), then the scale with the lowest log loss."""
    truth = np.asarray(truth, dtype=bool)
    margin = DEFAULT_MARGIN
    if multi_label:
        gap = cosines.max(axis=1, keepdims=True) - cosines
        best_f1 = -1.0
        for candidate in MARGINS:
            chosen = gap <= candidate
            tp = float((chosen & truth).sum())
            f1 = 2 * tp / max(float(chosen.sum() + truth.sum()), 1.0)
            if f1 > best_f1 + 1e-9:
                best_f1, margin = f1, float(candidate)
    losses = {
        s: _log_loss(logits_for(cosines, multi_label, margin, s), truth, multi_label)
        for s in SCALES
    }
    scale = min(losses, key=lambda s: losses[s])
    return Calibration(margin=margin, scale=float(scale), rows=len(cosines))


def _log_loss(logits: np.ndarray, truth: np.ndarray, multi_label: bool) -> float:
    z = logits.astype(np.float64)
    if multi_label:  # binary cross-entropy, written stably
        return float(np.mean(np.logaddexp(0.0, z) - truth * z))
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean((log_probs * truth).sum(axis=1)))
