"""Base classes for what plugins provide: data sources, encoders and decision rules.

Each component has a ``name`` (what users type), a one-line ``description`` and a pydantic
``Params`` model, so that parameters from the CLI or a manifest are validated the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from tagger_core.errors import PluginError, validation_problem
from tagger_core.schemas import Record, Taxonomy
from tagger_core.scores import Scores


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Component:
    name: ClassVar[str]
    kind: ClassVar[str] = "component"
    description: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, **params: Any) -> None:
        try:
            self.params = self.Params(**params)
        except ValidationError as exc:
            field, message = validation_problem(exc)
            where = f"parameter '{field}': " if field else ""
            raise PluginError(f"{self.kind} '{self.name}': {where}{message}") from None

    def params_dict(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")


class ReadOptions(BaseModel):
    """How to find texts and labels in a tabular or JSON file."""

    model_config = ConfigDict(extra="forbid")

    text_field: str = "text"
    label_field: str = "label"
    label_sep: str = "|"
    require_labels: bool = True
    source: str | None = None
    sheet: str | None = None


class DataSource(Component):
    """Reads records from and writes records to one file format."""

    kind: ClassVar[str] = "format"
    suffixes: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def read(self, path: Path, options: ReadOptions) -> list[Record]:
        """All records of ``path``; raise :class:`DataError` naming the row and field."""

    @abstractmethod
    def write(self, path: Path, records: list[Record], options: ReadOptions) -> None:
        """Write text, labels and metadata (e.g. scores) of ``records`` to ``path``."""


class Encoder(Component, ABC):
    """A trainable map from texts to an n × L matrix of logits. Knows no thresholds."""

    kind: ClassVar[str] = "encoder"

    @abstractmethod
    def fit(
        self,
        texts: list[str],
        targets: np.ndarray,
        taxonomy: Taxonomy,
        *,
        valid: tuple[list[str], np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        """Train on ``targets`` (n × L, 0/1); ``valid`` may drive early stopping."""

    @abstractmethod
    def logits(self, texts: list[str]) -> np.ndarray:
        """Raw scores, n × L in taxonomy label order."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the trained state into an existing empty ``directory``."""

    @abstractmethod
    def load(self, directory: Path, taxonomy: Taxonomy) -> None:
        """Restore the state written by :meth:`save`."""


class DecisionRule(Component, ABC):
    """Turns scores into label sets; may be fitted on validation scores. Knows no text.

    A fitted rule keeps what it learned in its params, so the manifest restores it.
    """

    kind: ClassVar[str] = "decision rule"
    fittable: ClassVar[bool] = False

    def fit(self, scores: Scores, targets: np.ndarray, taxonomy: Taxonomy) -> None:
        """Learn from validation scores; the default rule has nothing to learn."""
        return None

    @abstractmethod
    def decide(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        """A boolean n × L matrix of chosen labels."""


class Normalizer(Component):
    """A text clean-up chosen at training, saved in the tagger and applied identically at
    prediction, so that the encoder sees the same kind of text both times."""

    kind: ClassVar[str] = "normalizer"

    @abstractmethod
    def normalize(self, text: str) -> str:
        """The normalised form of one text."""
