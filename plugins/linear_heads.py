"""One logistic regression per label (or one softmax), shared by the encoders that put a
linear head on fixed features: TF-IDF vectors and frozen BERT sentence vectors.

Not a plugin (it registers nothing); a helper module of the built-in plugins.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from tagger_core import Taxonomy, progress, ticking

log = logging.getLogger("tagger")

# Logit given to a class that never occurs in training data, under softmax.
ABSENT_CLASS_LOGIT = -30.0


def fit_logistic_heads(
    features: Any,
    targets: np.ndarray,
    taxonomy: Taxonomy,
    *,
    C: float,
    class_weight: str | None,
    max_iter: int,
    seed: int,
    desc: str,
) -> tuple[np.ndarray, np.ndarray]:
    """(L × V weights, L intercepts) so that ``logits = features @ W.T + b``.

    Multi-label: one binary model per label; a label with no (or only) positive examples
    gets its smoothed prior log-odds as a constant score, with a warning. Single-label: one
    multinomial model; classes absent from training get a very low constant logit.
    """
    from sklearn.linear_model import LogisticRegression

    n_labels = targets.shape[1]
    coef = np.zeros((n_labels, features.shape[1]), dtype=np.float64)
    intercept = np.zeros(n_labels, dtype=np.float64)

    def model() -> Any:
        return LogisticRegression(
            C=C, class_weight=class_weight, max_iter=max_iter, random_state=seed
        )

    if taxonomy.mode == "single-label":
        classes = targets.argmax(axis=1)
        present = np.unique(classes)
        intercept[:] = ABSENT_CLASS_LOGIT
        if len(present) == 1:
            intercept[present[0]] = 0.0
            return coef, intercept
        with ticking(f"{desc}: fitting the softmax head"):
            clf = model().fit(features, classes)
        if len(present) == 2:  # binary LR keeps one weight vector: split it ±½
            coef[present[1]], coef[present[0]] = clf.coef_[0] / 2, -clf.coef_[0] / 2
            intercept[present[1]] = clf.intercept_[0] / 2
            intercept[present[0]] = -clf.intercept_[0] / 2
        else:
            coef[present] = clf.coef_
            intercept[present] = clf.intercept_
        return coef, intercept
    for j in progress(range(n_labels), desc=f"{desc}: fitting labels"):
        column = targets[:, j]
        positives = int(column.sum())
        if positives in (0, len(column)):
            log.warning(
                "label '%s' has %s training examples: it gets a constant score",
                taxonomy.labels[j].id,
                "no positive" if positives == 0 else "only positive",
            )
            # Smoothed prior log-odds, finite so scores stay comparable.
            intercept[j] = np.log((positives + 0.5) / (len(column) - positives + 0.5))
            continue
        clf = model().fit(features, column.astype(int))
        coef[j], intercept[j] = clf.coef_[0], clf.intercept_[0]
    return coef, intercept
