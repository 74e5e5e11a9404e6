"""tagger: plugin-based taxonomy tagging. The names below are the whole public API.

Heavy modules load on first use, so importing the package (and ``tagger --help``) is fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tagger_core.hookspecs import hookimpl

__version__ = "0.1.0"

_EXPORTS = {
    "TaggerError": "tagger_core.errors",
    "DataError": "tagger_core.errors",
    "TaxonomyError": "tagger_core.errors",
    "PluginError": "tagger_core.errors",
    "ModelError": "tagger_core.errors",
    "Record": "tagger_core.schemas",
    "Label": "tagger_core.schemas",
    "Constraints": "tagger_core.schemas",
    "Taxonomy": "tagger_core.schemas",
    "Prediction": "tagger_core.schemas",
    "TrainingConfig": "tagger_core.schemas",
    "Scores": "tagger_core.scores",
    "DataSource": "tagger_core.components",
    "Encoder": "tagger_core.components",
    "DecisionRule": "tagger_core.components",
    "ReadOptions": "tagger_core.components",
    "Normalizer": "tagger_core.components",
    "Evaluation": "tagger_core.evaluation.metrics",
    "Tagger": "tagger_core.tagger",
    "read_records": "tagger_core.data.io",
    "write_records": "tagger_core.data.io",
    "resolve_taxonomy": "tagger_core.taxonomy",
    "load_taxonomy_file": "tagger_core.taxonomy",
}

__all__ = ["__version__", "hookimpl", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tagger_core' has no attribute '{name}'")


if TYPE_CHECKING:
    from tagger_core.components import (
        DataSource,
        DecisionRule,
        Encoder,
        Normalizer,
        ReadOptions,
    )
    from tagger_core.data.io import read_records, write_records
    from tagger_core.errors import DataError, ModelError, PluginError, TaggerError, TaxonomyError
    from tagger_core.evaluation.metrics import Evaluation
    from tagger_core.schemas import Constraints, Label, Prediction, Record, Taxonomy, TrainingConfig
    from tagger_core.scores import Scores
    from tagger_core.tagger import Tagger
    from tagger_core.taxonomy import load_taxonomy_file, resolve_taxonomy
