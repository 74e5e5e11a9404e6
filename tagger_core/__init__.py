"""tagger: plugin-based taxonomy tagging. The names below are the whole public API: the
docs teach these and nothing deeper, and plugins import only these.

Heavy modules load on first use, so importing the package (and ``tagger --help``) is fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tagger_core.hookspecs import hookimpl
from tagger_core.version import __version__

_EXPORTS = {
    # errors
    "TaggerError": "tagger_core.errors",
    "DataError": "tagger_core.errors",
    "TaxonomyError": "tagger_core.errors",
    "PluginError": "tagger_core.errors",
    "ModelError": "tagger_core.errors",
    # the data that flows between stages
    "Record": "tagger_core.schemas",
    "Label": "tagger_core.schemas",
    "Constraints": "tagger_core.schemas",
    "Taxonomy": "tagger_core.schemas",
    "Mode": "tagger_core.schemas",
    "Prediction": "tagger_core.schemas",
    "Scores": "tagger_core.scores",
    "ScoreSpace": "tagger_core.scores",
    # what plugins subclass
    "DataSource": "tagger_core.components",
    "Encoder": "tagger_core.components",
    "DecisionRule": "tagger_core.components",
    "Normalizer": "tagger_core.components",
    "FileOptions": "tagger_core.components",
    "RecordWriter": "tagger_core.components",
    "Row": "tagger_core.components",
    "RuleChoice": "tagger_core.components",
    "RuleSearch": "tagger_core.components",
    "ParamRange": "tagger_core.components",
    "check_weights": "tagger_core.components",
    # the registry
    "ENTRY_POINT_GROUP": "tagger_core.registry",
    "load_plugins": "tagger_core.registry",
    "plugin_manager": "tagger_core.registry",
    "resolve_taxonomy": "tagger_core.registry",
    "make_encoder": "tagger_core.registry",
    "make_rule": "tagger_core.registry",
    "default_rule_name": "tagger_core.registry",
    "make_normalizer": "tagger_core.registry",
    # taxonomies and data
    "TAXONOMY_SUFFIXES": "tagger_core.taxonomy",
    "load_taxonomy_file": "tagger_core.taxonomy",
    "label_matrix": "tagger_core.taxonomy",
    "read_records": "tagger_core.data.io",
    "write_records": "tagger_core.data.io",
    "iter_records": "tagger_core.data.io",
    "record_writer": "tagger_core.data.io",
    "record_from_fields": "tagger_core.data.io",
    "record_fields": "tagger_core.components",
    "json_default": "tagger_core.components",
    "DEFAULT_LABEL_SEP": "tagger_core.data.io",
    "DataSpec": "tagger_core.data.sources",
    "read_specs": "tagger_core.data.sources",
    "to_half_width": "tagger_core.data.normalize",
    "tidy_whitespace": "tagger_core.data.normalize",
    "to_simplified": "tagger_core.data.normalize",
    "match_key": "tagger_core.data.normalize",
    "validate_records": "tagger_core.data.validate",
    "split_records": "tagger_core.data.split",
    "find_shards": "tagger_core.data.shards",
    "plan_outputs": "tagger_core.data.shards",
    "Shard": "tagger_core.data.shards",
    "split_by_source": "tagger_core.data.split",
    "write_split": "tagger_core.data.split",
    # measurement
    "Evaluation": "tagger_core.evaluation.metrics",
    "evaluate_matrices": "tagger_core.evaluation.metrics",
    "quick_figures": "tagger_core.evaluation.metrics",
    "OBJECTIVES": "tagger_core.evaluation.metrics",
    "LOWER_IS_BETTER": "tagger_core.evaluation.metrics",
    "threshold_sweep": "tagger_core.evaluation.sweep",
    "best_global_threshold": "tagger_core.evaluation.sweep",
    "progress": "tagger_core.progress_bars",
    "ticking": "tagger_core.progress_bars",
    # the tagger and the workflows above it
    "Tagger": "tagger_core.tagger",
    "build_tagger": "tagger_core.workflows.train",
    "rule_chooser": "tagger_core.workflows.train",
    "tune": "tagger_core.workflows.tune",
    "evaluate_to_files": "tagger_core.workflows.evaluate",
    "EvaluationFiles": "tagger_core.workflows.evaluate",
    "optimize_rule": "tagger_core.workflows.optimize",
    "paired_bootstrap": "tagger_core.workflows.optimize",
    "cross_validate": "tagger_core.workflows.crossval",
    "compare_sources": "tagger_core.workflows.compare",
    "suggest_names": "tagger_core.workflows.suggest",
    "predict_shards": "tagger_core.workflows.predict",
    # a catalogue (Ray: the ray extra)
    "TagBatches": "tagger_core.catalogue.batches",
    "predict_with_ray": "tagger_core.catalogue.ray_job",
    "RaySettings": "tagger_core.catalogue.ray_job",
    # serving (the serve extra)
    "create_app": "tagger_core.serve.app",
    "ServeSettings": "tagger_core.serve.settings",
}

__all__ = ["__version__", "hookimpl", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        value = getattr(module, "pm" if name == "plugin_manager" else name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tagger_core' has no attribute '{name}'")


if TYPE_CHECKING:
    from tagger_core.catalogue.batches import TagBatches
    from tagger_core.catalogue.ray_job import RaySettings, predict_with_ray
    from tagger_core.components import (
        DataSource,
        DecisionRule,
        Encoder,
        FileOptions,
        Normalizer,
        ParamRange,
        RecordWriter,
        Row,
        RuleChoice,
        RuleSearch,
        check_weights,
        json_default,
        record_fields,
    )
    from tagger_core.data.io import (
        DEFAULT_LABEL_SEP,
        iter_records,
        read_records,
        record_from_fields,
        record_writer,
        write_records,
    )
    from tagger_core.data.normalize import match_key, tidy_whitespace, to_half_width, to_simplified
    from tagger_core.data.shards import Shard, find_shards, plan_outputs
    from tagger_core.data.sources import DataSpec, read_specs
    from tagger_core.data.split import split_by_source, split_records, write_split
    from tagger_core.data.validate import validate_records
    from tagger_core.errors import DataError, ModelError, PluginError, TaggerError, TaxonomyError
    from tagger_core.evaluation.metrics import (
        LOWER_IS_BETTER,
        OBJECTIVES,
        Evaluation,
        evaluate_matrices,
        quick_figures,
    )
    from tagger_core.evaluation.sweep import best_global_threshold, threshold_sweep
    from tagger_core.progress_bars import progress, ticking
    from tagger_core.registry import (
        ENTRY_POINT_GROUP,
        default_rule_name,
        load_plugins,
        make_encoder,
        make_normalizer,
        make_rule,
        resolve_taxonomy,
    )
    from tagger_core.registry import pm as plugin_manager
    from tagger_core.schemas import Constraints, Label, Mode, Prediction, Record, Taxonomy
    from tagger_core.scores import Scores, ScoreSpace
    from tagger_core.serve.app import create_app
    from tagger_core.serve.settings import ServeSettings
    from tagger_core.tagger import Tagger
    from tagger_core.taxonomy import TAXONOMY_SUFFIXES, label_matrix, load_taxonomy_file
    from tagger_core.workflows.compare import compare_sources
    from tagger_core.workflows.crossval import cross_validate
    from tagger_core.workflows.evaluate import EvaluationFiles, evaluate_to_files
    from tagger_core.workflows.optimize import optimize_rule, paired_bootstrap
    from tagger_core.workflows.predict import predict_shards
    from tagger_core.workflows.suggest import suggest_names
    from tagger_core.workflows.train import build_tagger, rule_chooser
    from tagger_core.workflows.tune import tune
