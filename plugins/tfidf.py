"""The embedded default encoder: character n-gram TF-IDF with one linear model per label.

It needs no download and trains in seconds on a CPU. The trained state is stored as plain
arrays and JSON (vocabulary, idf, weights) rather than pickles, so a saved tagger loads
across scikit-learn versions and loading one never runs code.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tagger_plugins.linear_heads import fit_logistic_heads

from tagger_core import Encoder, ModelError, ParamRange, Taxonomy, check_weights, hookimpl

log = logging.getLogger("tagger")


class TfidfParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    analyzer: Literal["char", "char_wb", "word"] = "char"
    ngram_min: int = Field(default=1, ge=1)
    ngram_max: int = Field(default=3, ge=1)
    max_features: int | None = Field(default=300_000, ge=1)
    min_df: int = Field(default=1, ge=1)
    sublinear_tf: bool = True
    lowercase: bool = True
    C: float = Field(default=10.0, gt=0, description="inverse regularisation strength")
    # "balanced" by measurement: on multi-label data it lifts micro-F1 and halves empty
    # predictions (docs/benchmarks.md); on single-label data it is neutral.
    class_weight: Literal["balanced"] | None = "balanced"
    max_iter: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _ngram_order(self) -> TfidfParams:
        if self.ngram_max < self.ngram_min:
            raise ValueError("ngram_max must be at least ngram_min")
        return self


class TfidfEncoder(Encoder[TfidfParams]):
    name = "tfidf"
    description = "Character n-gram TF-IDF + one logistic regression per label (no download)."
    default = True  # embedded: needs no download, trains in seconds

    @classmethod
    def search_space(cls, params: dict[str, Any]) -> dict[str, ParamRange]:
        return {
            "C": ParamRange(0.3, 100.0, log=True),
            "ngram_max": ParamRange(2, 5, integer=True),
            "analyzer": ParamRange(choices=("char", "char_wb", "word")),
            "sublinear_tf": ParamRange(choices=(True, False)),
            "class_weight": ParamRange(choices=("balanced", None)),
        }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.vectorizer: Any = None
        self.coef: np.ndarray | None = None  # L × V
        self.intercept: np.ndarray | None = None  # L

    def _vectorizer(self, vocabulary: dict[str, int] | None = None) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        p = self.params
        return TfidfVectorizer(
            analyzer=p.analyzer,
            ngram_range=(p.ngram_min, p.ngram_max),
            max_features=p.max_features,
            min_df=p.min_df,
            sublinear_tf=p.sublinear_tf,
            lowercase=p.lowercase,
            vocabulary=vocabulary,
            dtype=np.float32,
        )

    def fit(
        self,
        texts: list[str],
        targets: np.ndarray,
        taxonomy: Taxonomy,
        *,
        valid: tuple[list[str], np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        p = self.params
        self.vectorizer = self._vectorizer()
        features = self.vectorizer.fit_transform(texts)
        coef, intercept = fit_logistic_heads(
            features,
            targets,
            taxonomy,
            C=p.C,
            class_weight=p.class_weight,
            max_iter=p.max_iter,
            seed=seed,
            desc="tfidf",
        )
        self.coef, self.intercept = coef.astype(np.float32), intercept.astype(np.float32)

    def logits(self, texts: list[str]) -> np.ndarray:
        if self.vectorizer is None or self.coef is None or self.intercept is None:
            raise ModelError("the tfidf encoder is not trained")
        features = self.vectorizer.transform(texts)
        return np.asarray(features @ self.coef.T + self.intercept, dtype=np.float32)

    def save(self, directory: Path) -> None:
        assert self.vectorizer is not None and self.coef is not None and self.intercept is not None
        vocabulary = {term: int(index) for term, index in self.vectorizer.vocabulary_.items()}
        (directory / "vocabulary.json").write_text(
            json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8"
        )
        np.save(directory / "idf.npy", self.vectorizer.idf_.astype(np.float32))
        np.save(directory / "coef.npy", self.coef)
        np.save(directory / "intercept.npy", self.intercept)

    def load(self, directory: Path, taxonomy: Taxonomy) -> None:
        try:
            vocabulary = json.loads((directory / "vocabulary.json").read_text(encoding="utf-8"))
            idf, coef, intercept = (
                np.load(directory / name, allow_pickle=False)
                for name in ("idf.npy", "coef.npy", "intercept.npy")
            )
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"tfidf encoder state is missing or corrupt: {exc}", file=directory
            ) from None
        if not isinstance(vocabulary, dict):
            raise ModelError("not a vocabulary (a JSON object)", file=directory / "vocabulary.json")
        n_labels, n_terms = len(taxonomy.labels), len(vocabulary)
        check_weights(idf, directory / "idf.npy", (n_terms,))
        check_weights(coef, directory / "coef.npy", (n_labels, n_terms))
        check_weights(intercept, directory / "intercept.npy", (n_labels,))
        self.vectorizer = self._vectorizer(vocabulary)
        self.vectorizer.idf_ = idf
        self.coef, self.intercept = coef, intercept


@hookimpl
def register_encoders(register):  # type: ignore[no-untyped-def]
    register(TfidfEncoder)
