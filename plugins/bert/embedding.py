"""The ``embedding`` encoder: tags from the taxonomy's own words with no labelled name
(zero-shot), and from a few labelled names per label (few-shot), with a sentence-embedding
model. The scoring is in ``zero_shot``; this module loads the model and saves the state.

Importing it is cheap: torch and transformers are imported inside the methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from tagger_plugins.bert import ExtractorParams

from tagger_core import Encoder, ModelError, ParamRange, Taxonomy, check_weights

DEFAULT_EMBEDDING_MODEL = "moka-ai/m3e-small"
PROTOTYPES_FILE = "prototypes.npz"


class EmbeddingParams(ExtractorParams):
    """Options of the embedding encoder; the defaults are measured (docs/bert.md)."""

    model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        min_length=1,
        description="sentence-embedding model: local folder or hub id",
    )
    label_text: Literal["all", "names", "description"] = Field(
        default="all", description="label texts embedded: names, description, or both"
    )
    label_match: Literal["closest", "mean"] = Field(
        default="closest",
        description="a name against the closest of a label's texts, or their mean vector",
    )
    verbatim: bool = Field(
        default=True,
        description="a name holding a label's name, alias or keyword word for word scores 1",
    )
    description_weight: float = Field(
        default=4.0, ge=0, description="weight of a label's own texts against one example"
    )
    margin: float | None = Field(
        default=None, ge=0, le=2, description="cosine gap to the best label; unset: fitted"
    )
    scale: float | None = Field(
        default=None, gt=0, le=1000, description="cosine → logit factor; unset: fitted"
    )


class EmbeddingEncoder(Encoder[EmbeddingParams]):
    """Cosine similarity of sentence vectors to label prototypes (the taxonomy's names and
    descriptions, plus labelled names where there are some)."""

    name = "embedding"
    description = (
        "Zero-shot from label names and descriptions with a sentence-embedding model; "
        "few-shot with labelled names."
    )
    model_param = "model"
    uses_all_cpus = True
    needs_examples = False

    @classmethod
    def search_space(cls, params: dict[str, Any]) -> dict[str, ParamRange]:
        return {
            "label_text": ParamRange(choices=("all", "names", "description")),
            "label_match": ParamRange(choices=("closest", "mean")),
            "verbatim": ParamRange(choices=(True, False)),
            "description_weight": ParamRange(0.25, 16.0, log=True),
        }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.extractor: Any = None
        self.prototypes: np.ndarray | None = None  # L × H, unit rows
        self.text_vectors: np.ndarray | None = None  # the labels' texts, unit rows
        self.starts = np.zeros(0, dtype=np.int64)  # each label's first row of text_vectors
        self.with_examples = np.zeros(0, dtype=bool)  # labels whose prototype counts
        self.margin = 0.0
        self.scale = 1.0
        self.calibration_rows = 0
        self.multi_label = True
        self.patterns: list[Any] = []  # per label, its texts as a pattern (verbatim)

    @property
    def p(self) -> EmbeddingParams:
        return self.params

    def _vectors(self, texts: list[str], what: str | None = None) -> np.ndarray:
        from .runtime import using_threads

        with using_threads(self.p.threads):
            return np.asarray(self.extractor(texts, cache=None, write=False, what=what))

    def fit(
        self,
        texts: list[str],
        targets: np.ndarray,
        taxonomy: Taxonomy,
        *,
        valid: tuple[list[str], np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        from transformers import AutoModel

        from . import zero_shot
        from .frozen import extractor_for
        from .runtime import effective_max_length, load_tokenizer, load_weights, resolve_model

        source = resolve_model(self.p.model)
        tokenizer = load_tokenizer(source, match_vocabulary_case=True)
        backbone = load_weights(AutoModel, source)
        max_length = effective_max_length(self.p, backbone.config, tokenizer)
        self.extractor = extractor_for(self.p, backbone, tokenizer, max_length, strict=True)
        self.multi_label = taxonomy.mode == "multi-label"

        per_label = zero_shot.label_texts(taxonomy, self.p.label_text)
        self.patterns = self._patterns(taxonomy)
        owners = [j for j, group in enumerate(per_label) for _ in group]
        flat = [text for group in per_label for text in group]
        text_vectors = zero_shot.normalized(self._vectors(flat))
        self.text_vectors = text_vectors
        self.starts = np.searchsorted(np.asarray(owners), np.arange(len(per_label)))
        descriptions = zero_shot.description_vectors(text_vectors, owners, len(per_label))
        examples = self._vectors(texts, "training") if texts else None
        targets = np.asarray(targets, dtype=np.float32)
        self.with_examples = targets.sum(axis=0) > 0
        self.prototypes = zero_shot.prototypes(
            descriptions, examples, targets, self.p.description_weight
        )

        # Fitted on names the prototypes have not seen: validation names, and each training
        # name against prototypes built without it.
        cosines, truth = [], []
        if examples is not None:
            left_out = zero_shot.leave_one_out_cosines(
                descriptions, examples, targets, self.p.description_weight
            )
            units = zero_shot.normalized(examples)
            closest = zero_shot.text_cosines(units, text_vectors, self.starts, self.p.label_match)
            closest = self._verbatim(texts, closest)
            others = targets.sum(axis=0)[None, :] - targets > 0  # examples besides this one
            cosines.append(zero_shot.combine(closest, left_out, others))
            truth.append(targets)
        if valid is not None and len(valid[0]):
            cosines.append(self._cosines(valid[0]))
            truth.append(np.asarray(valid[1], dtype=np.float32))
        if cosines:
            fitted = zero_shot.calibrate(np.vstack(cosines), np.vstack(truth), self.multi_label)
            margin, scale, rows = fitted.margin, fitted.scale, fitted.rows
        else:
            margin, scale, rows = zero_shot.DEFAULT_MARGIN, zero_shot.DEFAULT_SCALE, 0
        self.margin = self.p.margin if self.p.margin is not None else margin
        self.scale = self.p.scale if self.p.scale is not None else scale
        self.calibration_rows = rows

    def _patterns(self, taxonomy: Taxonomy) -> list[Any]:
        from . import zero_shot

        if not self.p.verbatim:
            return []
        return zero_shot.verbatim_patterns(zero_shot.label_texts(taxonomy, "names"))

    def _verbatim(self, texts: list[str], cosines: np.ndarray) -> np.ndarray:
        from . import zero_shot

        if not self.patterns:
            return cosines
        return zero_shot.with_verbatim(cosines, zero_shot.verbatim_matches(texts, self.patterns))

    def _cosines(self, texts: list[str]) -> np.ndarray:
        from . import zero_shot

        assert self.prototypes is not None and self.text_vectors is not None
        units = zero_shot.normalized(self._vectors(texts))
        closest = zero_shot.text_cosines(units, self.text_vectors, self.starts, self.p.label_match)
        closest = self._verbatim(texts, closest)
        return zero_shot.combine(closest, units @ self.prototypes.T, self.with_examples)

    def logits(self, texts: list[str]) -> np.ndarray:
        if self.extractor is None or self.prototypes is None:
            raise ModelError("the embedding encoder is not trained")
        from . import zero_shot

        if not texts:
            return np.zeros((0, self.prototypes.shape[0]), dtype=np.float32)
        return zero_shot.logits_for(self._cosines(texts), self.multi_label, self.margin, self.scale)

    def save(self, directory: Path) -> None:
        if self.extractor is None or self.prototypes is None or self.text_vectors is None:
            raise ModelError("the embedding encoder is not trained")
        from tagger_plugins.bert import write_state

        from .frozen import save_extractor

        save_extractor(self.extractor, directory)
        np.savez(
            directory / PROTOTYPES_FILE,
            prototypes=self.prototypes,
            text_vectors=self.text_vectors,
            starts=self.starts,
            with_examples=self.with_examples,
        )
        write_state(
            directory,
            {
                "encoder": self.name,
                "pooling": self.p.pooling,
                "max_length": self.extractor.max_length,
                "labels": int(self.prototypes.shape[0]),
                "multi_label": self.multi_label,
                "margin": self.margin,
                "scale": self.scale,
                "calibration_rows": self.calibration_rows,
                "verbatim": self.p.verbatim,
            },
        )

    def load(self, directory: Path, taxonomy: Taxonomy) -> None:
        from tagger_plugins.bert import read_state

        from .frozen import load_extractor

        state = read_state(directory)
        try:
            with np.load(directory / PROTOTYPES_FILE, allow_pickle=False) as saved:
                prototypes, texts = saved["prototypes"], saved["text_vectors"]
                starts, with_examples = saved["starts"], saved["with_examples"]
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(
                f"missing or corrupt {PROTOTYPES_FILE}: {exc}", file=directory
            ) from None
        max_length = int(state.get("max_length", self.p.max_length))
        extractor, hidden = load_extractor(self.p, directory, max_length)
        where = directory / PROTOTYPES_FILE
        labels = len(taxonomy.labels)
        self.prototypes = check_weights(prototypes, where, (labels, hidden))
        self.text_vectors = check_weights(texts, where, (texts.shape[0], hidden))
        ordered = starts.ndim == 1 and len(starts) == labels and starts.dtype.kind == "i"
        if (
            not ordered
            or starts[0] != 0
            or (np.diff(starts) <= 0).any()
            or starts[-1] >= len(texts)
        ):
            raise ModelError("holds label text offsets that do not fit its labels", file=where)
        if with_examples.shape != (labels,) or with_examples.dtype != bool:
            raise ModelError("holds a label mask that does not fit its labels", file=where)
        self.starts, self.with_examples = starts, with_examples
        try:
            self.margin, self.scale = float(state["margin"]), float(state["scale"])
        except (KeyError, TypeError, ValueError):
            raise ModelError("the saved state has no margin and scale", file=directory) from None
        self.multi_label = taxonomy.mode == "multi-label"
        # A tagger saved before verbatim matches existed scores as it did then.
        verbatim = bool(state.get("verbatim", False))
        if verbatim != self.p.verbatim:
            self.params = self.params.model_copy(update={"verbatim": verbatim})
        self.patterns = self._patterns(taxonomy)
        self.calibration_rows = int(state.get("calibration_rows", 0))
        self.extractor = extractor
