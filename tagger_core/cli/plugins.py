"""`tagger plugins`: what is installed, what each plugin provides, and with --options every
parameter of every component (``-p KEY=VALUE`` for encoders, ``--rule-param`` for rules)."""

from __future__ import annotations

import json
from typing import Any

import click

from tagger_core.cli.options import format_table


def _component_options(collection: Any) -> list[dict[str, Any]]:
    out = []
    for name in collection.names():
        component = collection.get(name)
        out.append(
            {
                "kind": collection.kind,
                "name": name,
                "description": component.description,
                "options": [vars(option) for option in component.options()],
            }
        )
    return out


def _print_options(entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        click.echo(f"{entry['kind']} {entry['name']}: {entry['description']}")
        if not entry["options"]:
            click.echo("  (no parameters)")
        else:
            rows = [
                [
                    f"  {o['name']}",
                    o["type"],
                    json.dumps(o["default"], ensure_ascii=False),
                    o["help"],
                ]
                for o in entry["options"]
            ]
            click.echo(format_table(["  PARAMETER", "TYPE", "DEFAULT", "HELP"], rows))
        click.echo()


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--options",
    "show_options",
    is_flag=True,
    help="List every encoder's, rule's, normalizer's and data source's parameters with "
    "their types and defaults.",
)
def plugins_command(as_json: bool, show_options: bool) -> None:
    """List installed plugins and what each provides."""
    from tagger_core import registry

    if show_options:
        entries = [
            entry
            for collection in (
                registry.encoders(),
                registry.decision_rules(),
                registry.normalizers(),
                registry.data_sources(),
            )
            for entry in _component_options(collection)
        ]
        if as_json:
            click.echo(json.dumps(entries, ensure_ascii=False, indent=2))
        else:
            _print_options(entries)
        return
    manager = registry.load_plugins()
    provided: dict[str, dict[str, list[str]]] = {}
    for kind, collection in (
        ("data_sources", registry.data_sources()),
        ("taxonomies", registry.taxonomies()),
        ("encoders", registry.encoders()),
        ("decision_rules", registry.decision_rules()),
        ("normalizers", registry.normalizers()),
    ):
        for registered in collection.items.values():
            provided.setdefault(registered.plugin, {}).setdefault(kind, []).append(registered.name)
    for plugin_name, commands in registry.commands_by_plugin().items():
        provided.setdefault(plugin_name, {})["commands"] = commands
    listing: list[dict[str, Any]] = []
    for name, plugin in sorted(manager.list_name_plugin(), key=lambda item: item[0]):
        distribution, version = registry.plugin_distribution(name)
        hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [])
        listing.append(
            {
                "name": name,
                "distribution": distribution,
                "version": version,
                "hooks": hooks,
                "provides": provided.get(name, {}),
            }
        )
    if as_json:
        click.echo(json.dumps(listing, ensure_ascii=False, indent=2))
        return
    if not listing:
        click.echo("No plugins loaded.")
    for entry in listing:
        origin = f" ({entry['distribution']} {entry['version']})" if entry["distribution"] else ""
        click.echo(f"{entry['name']}{origin}")
        for kind, names in sorted(entry["provides"].items()):
            click.echo(f"  {kind.replace('_', ' ')}: {', '.join(names)}")


COMMANDS = [plugins_command]
