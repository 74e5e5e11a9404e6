"""The registry: loads every ``tagger`` entry point, owns every lookup by name and every
factory (encoders, decision rules, normalizers, data sources, taxonomies).

``TAGGER_PLUGINS`` limits which plugins load: a comma-separated list of entry-point names
(``TAGGER_PLUGINS=data_sources,tfidf``); an empty value loads none. Use it to rule out a
broken plugin while debugging.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from tagger_core import hookspecs
from tagger_core.components import DataSource, DecisionRule, Encoder, Normalizer
from tagger_core.errors import PluginError, TaggerError, TaxonomyError, unknown
from tagger_core.schemas import Mode, Taxonomy
from tagger_core.taxonomy import TAXONOMY_SUFFIXES, load_taxonomy_file

ENTRY_POINT_GROUP = "tagger"
PLUGINS_ENV = "TAGGER_PLUGINS"

pm = pluggy.PluginManager("tagger")
pm.add_hookspecs(hookspecs)

_loaded = False
# plugin name → (distribution, version) of the package that declared its entry point
_distributions: dict[str, tuple[str, str]] = {}


def allowed_plugins() -> set[str] | None:
    """The entry-point names ``TAGGER_PLUGINS`` allows, or None when it is unset."""
    value = os.environ.get(PLUGINS_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def load_plugins() -> pluggy.PluginManager:
    """Register every allowed entry point once; later calls return the same manager."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    allowed = allowed_plugins()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry_point.name not in allowed:
            continue
        if pm.has_plugin(entry_point.name):
            continue
        try:
            module = entry_point.load()
        except Exception as exc:
            raise PluginError(
                f"plugin '{entry_point.name}' ({entry_point.value}) failed to import: "
                f"{type(exc).__name__}: {exc} (set {PLUGINS_ENV} to skip it)"
            ) from exc
        pm.register(module, name=entry_point.name)
        if entry_point.dist is not None:
            _distributions[entry_point.name] = (entry_point.dist.name, entry_point.dist.version)
    return pm


def plugin_distribution(name: str) -> tuple[str | None, str | None]:
    """The distribution and version that installed plugin ``name``; None for ad-hoc ones."""
    return _distributions.get(name, (None, None))


@dataclass
class Registered:
    """One registered item and the plugin that provided it."""

    name: str
    item: Any
    plugin: str


@dataclass
class Collection:
    kind: str
    items: dict[str, Registered] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        if name not in self.items:
            raise PluginError(unknown(self.kind, name, list(self.items)))
        return self.items[name].item

    def names(self) -> list[str]:
        return sorted(self.items)

    def add(self, name: str, item: Any, plugin: str) -> None:
        """Two plugins registering one name is an error naming both: nothing is replaced."""
        if name in self.items:
            first = self.items[name].plugin
            raise PluginError(
                f"{self.kind} '{name}' is registered by both plugin '{first}' and plugin '{plugin}'"
            )
        self.items[name] = Registered(name, item, plugin)


def _collect(hook_name: str, kind: str, convert: Callable[[Any], tuple[str, Any]]) -> Collection:
    """Call one hook plugin by plugin, remembering who registered what."""
    load_plugins()
    collection = Collection(kind)
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order
        plugin_name = impl.plugin_name

        def register(item: Any, _plugin: str = plugin_name) -> None:
            collection.add(*convert(item), _plugin)

        try:
            impl.function(register=register)
        except TaggerError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin '{plugin_name}' failed in {hook_name}: {type(exc).__name__}: {exc}"
            ) from exc
    return collection


def _component(base: type) -> Callable[[Any], tuple[str, Any]]:
    def convert(item: Any) -> tuple[str, Any]:
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"registered component {item!r} has no 'name'")
        if not (isinstance(item, type) and issubclass(item, base)):
            raise PluginError(f"registered {name!r} is not a subclass of {base.__name__}")
        return name, item

    return convert


def _taxonomy(item: Any) -> tuple[str, Taxonomy]:
    if isinstance(item, str | Path):
        item = load_taxonomy_file(Path(item))
    if not isinstance(item, Taxonomy):
        raise PluginError(f"register_taxonomies got {item!r}; expected a Taxonomy or a file path")
    return item.name, item


# -- collections ---------------------------------------------------------------------------


def data_sources() -> Collection:
    return _collect("register_data_sources", "data source", _component(DataSource))


def encoders() -> Collection:
    return _collect("register_encoders", "encoder", _component(Encoder))


def decision_rules() -> Collection:
    return _collect("register_decision_rules", "decision rule", _component(DecisionRule))


def normalizers() -> Collection:
    return _collect("register_normalizers", "normalizer", _component(Normalizer))


def taxonomies() -> Collection:
    return _collect("register_taxonomies", "taxonomy", _taxonomy)


# -- factories -----------------------------------------------------------------------------


def make_encoder(name: str, params: dict[str, Any] | None = None) -> Encoder[Any]:
    return encoders().get(name)(**(params or {}))


def make_rule(name: str, params: dict[str, Any] | None = None) -> DecisionRule[Any]:
    return decision_rules().get(name)(**(params or {}))


def make_normalizer(name: str, params: dict[str, Any] | None = None) -> Normalizer[Any]:
    return normalizers().get(name)(**(params or {}))


def make_data_source(name: str) -> DataSource[Any]:
    return data_sources().get(name)()


def data_source_for(path: Path, name: str | None = None) -> DataSource[Any]:
    """The data source called ``name``, or else the one whose suffix ``path`` has."""
    if name is not None:
        return make_data_source(name)
    sources = data_sources()
    suffix = path.suffix.lower()
    for registered in sources.items.values():
        if suffix in registered.item.suffixes:
            return registered.item()
    known = ", ".join(sorted(s for r in sources.items.values() for s in r.item.suffixes))
    raise PluginError(
        f"unknown file suffix '{suffix or '(none)'}' (known: {known}); choose one with --format",
        file=path,
    )


def resolve_taxonomy(name_or_path: str | Path) -> Taxonomy:
    """A registered taxonomy by name, or one loaded from a file path."""
    registered = taxonomies()
    key = str(name_or_path)
    if key in registered.items:
        return registered.get(key)
    path = Path(key)
    if path.suffix.lower() in TAXONOMY_SUFFIXES or path.exists():
        if not path.is_file():
            raise TaxonomyError("taxonomy file does not exist", file=path)
        return load_taxonomy_file(path)
    raise TaxonomyError(unknown("taxonomy", key, registered.names()) + " — or give a file path")


# -- defaults ------------------------------------------------------------------------------


def _only(kind: str, names: list[str], purpose: str) -> str:
    if not names:
        raise PluginError(f"no installed {kind} is the default {purpose}; name one")
    if len(names) > 1:
        raise PluginError(f"{kind}s {', '.join(names)} each claim to be the default {purpose}")
    return names[0]


def default_encoder_name() -> str:
    """The encoder that declares itself the default (``Encoder.default``)."""
    collection = encoders()
    found = [name for name in collection.names() if collection.get(name).default]
    return _only("encoder", found, "encoder")


def default_rule_name(mode: Mode) -> str:
    """The decision rule that declares itself the default for taxonomies of ``mode``."""
    collection = decision_rules()
    found = [name for name in collection.names() if mode in collection.get(name).default_for]
    return _only("decision rule", found, f"for {mode} taxonomies")


# -- commands ------------------------------------------------------------------------------


def commands_by_plugin() -> dict[str, list[str]]:
    """The subcommands each plugin adds, found by letting it register on a scratch group."""
    import click

    load_plugins()
    found: dict[str, list[str]] = {}
    for impl in pm.hook.register_commands.get_hookimpls():
        scratch = click.Group()
        impl.function(cli=scratch)
        found[impl.plugin_name] = sorted(scratch.commands)
    return found


def add_commands(cli: Any) -> None:
    load_plugins()
    pm.hook.register_commands(cli=cli)
