"""The whole plugin contract. Every hook hands the plugin a ``register`` callback.

A plugin is any module or object with functions decorated by ``hookimpl`` and named
after one of the specs below, registered under the ``tagger`` entry-point group::

    [project.entry-points.tagger]
    hotels = "tagger_hotels"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("tagger")
hookimpl = pluggy.HookimplMarker("tagger")


@hookspec
def register_data_sources(register: Callable[[type], None]) -> None:
    """Register :class:`tagger_core.DataSource` subclasses: file formats to read and write."""


@hookspec
def register_taxonomies(register: Callable[[Any], None]) -> None:
    """Register taxonomies: a :class:`tagger_core.Taxonomy` or a path to a YAML/JSON file."""


@hookspec
def register_encoders(register: Callable[[type], None]) -> None:
    """Register :class:`tagger_core.Encoder` subclasses: trainable text → score models."""


@hookspec
def register_decision_rules(register: Callable[[type], None]) -> None:
    """Register :class:`tagger_core.DecisionRule` subclasses: scores → label sets."""


@hookspec
def register_normalizers(register: Callable[[type], None]) -> None:
    """Register :class:`tagger_core.Normalizer` subclasses: text clean-ups applied alike at
    training and prediction (e.g. full-width → half-width, Traditional → Simplified)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add subcommands to the ``tagger`` click group ``cli``."""
