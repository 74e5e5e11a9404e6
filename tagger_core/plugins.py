"""The plugin manager: loads every ``tagger`` entry point and collects what they register.

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
from typing import Any, TypeVar

import pluggy

from tagger_core import hookspecs
from tagger_core.errors import PluginError, TaggerError, unknown

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


T = TypeVar("T")


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
    conflicts: list[str] = field(default_factory=list)

    def get(self, name: str) -> Any:
        if name not in self.items:
            raise PluginError(unknown(self.kind, name, list(self.items)))
        return self.items[name].item

    def names(self) -> list[str]:
        return sorted(self.items)


def _collect(hook_name: str, kind: str, key: Callable[[Any], str]) -> Collection:
    """Call one hook plugin by plugin, remembering who registered what.

    Two plugins registering the same name is an error that names both: nothing is
    silently replaced.
    """
    load_plugins()
    collection = Collection(kind)
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order
        plugin_name = impl.plugin_name

        def register(item: Any, _plugin: str = plugin_name) -> None:
            name = key(item)
            if name in collection.items:
                first = collection.items[name].plugin
                raise PluginError(
                    f"{kind} '{name}' is registered by both plugin '{first}' and plugin '{_plugin}'"
                )
            collection.items[name] = Registered(name, item, _plugin)

        try:
            impl.function(register=register)
        except TaggerError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin '{plugin_name}' failed in {hook_name}: {type(exc).__name__}: {exc}"
            ) from exc
    return collection


def _component_name(item: Any) -> str:
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"registered component {item!r} has no 'name'")
    return name


def _taxonomy_item(item: Any) -> Any:
    from tagger_core.schemas import Taxonomy
    from tagger_core.taxonomy import load_taxonomy_file

    if isinstance(item, Taxonomy):
        return item
    if isinstance(item, str | Path):
        return load_taxonomy_file(Path(item))
    raise PluginError(f"register_taxonomies got {item!r}; expected a Taxonomy or a file path")


def data_sources() -> Collection:
    return _collect("register_data_sources", "format", _component_name)


def encoders() -> Collection:
    return _collect("register_encoders", "encoder", _component_name)


def decision_rules() -> Collection:
    return _collect("register_decision_rules", "decision rule", _component_name)


def normalizers() -> Collection:
    return _collect("register_normalizers", "normalizer", _component_name)


def taxonomies() -> Collection:
    collection = Collection("taxonomy")
    raw = _collect("register_taxonomies", "taxonomy", lambda item: repr(item))
    for registered in raw.items.values():
        taxonomy = _taxonomy_item(registered.item)
        if taxonomy.name in collection.items:
            first = collection.items[taxonomy.name].plugin
            raise PluginError(
                f"taxonomy '{taxonomy.name}' is registered by both plugin '{first}' "
                f"and plugin '{registered.plugin}'"
            )
        collection.items[taxonomy.name] = Registered(taxonomy.name, taxonomy, registered.plugin)
    return collection


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
