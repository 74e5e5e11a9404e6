"""`tagger taxonomies` and `tagger taxonomy show|infer`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tagger_core.cli.options import data_options, file_options, format_table
from tagger_core.files import check_targets


@click.command("taxonomies")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def taxonomies_command(as_json: bool) -> None:
    """List the taxonomies that installed plugins provide."""
    from tagger_core.registry import taxonomies

    collection = taxonomies()
    rows = []
    for name in collection.names():
        registered = collection.items[name]
        taxonomy = registered.item
        rows.append(
            [
                name,
                taxonomy.entity_type,
                taxonomy.mode,
                len(taxonomy.labels),
                taxonomy.version,
                registered.plugin,
            ]
        )
    if as_json:
        keys = ["name", "entity_type", "mode", "labels", "version", "plugin"]
        click.echo(
            json.dumps(
                [dict(zip(keys, row, strict=True)) for row in rows], ensure_ascii=False, indent=2
            )
        )
    elif rows:
        click.echo(format_table(["NAME", "ENTITY", "MODE", "LABELS", "VERSION", "PLUGIN"], rows))
    else:
        click.echo("No taxonomies registered.")


@click.group("taxonomy")
def taxonomy_group() -> None:
    """Show a taxonomy, or infer a starting one from labelled data."""


@taxonomy_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the taxonomy as JSON.")
def taxonomy_show(name: str, as_json: bool) -> None:
    """Show taxonomy NAME (a registered name or a YAML/JSON file)."""
    from tagger_core.registry import resolve_taxonomy

    taxonomy = resolve_taxonomy(name)
    if as_json:
        click.echo(taxonomy.model_dump_json(indent=2))
        return
    click.echo(
        f"{taxonomy.name} (version {taxonomy.version}): {taxonomy.entity_type}, {taxonomy.mode}, {len(taxonomy.labels)} labels"
    )
    if taxonomy.description:
        click.echo(taxonomy.description)
    click.echo()
    click.echo(
        format_table(
            ["LABEL", "NAME", "DESCRIPTION"],
            [[label.id, label.name or "", label.description] for label in taxonomy.labels],
        )
    )
    if taxonomy.hierarchical:
        from tagger_core.taxonomy import tree_lines

        implied = "implied" if taxonomy.implies_ancestors else "not implied"
        click.echo()
        click.echo(f"Hierarchy (ancestors of a label are {implied}):")
        click.echo(format_table(["LABEL", "NAME"], [list(line) for line in tree_lines(taxonomy)]))
    with_keywords = [label for label in taxonomy.labels if label.keywords]
    if with_keywords:
        click.echo()
        click.echo("Keywords (words a name of the label often holds, for zero-shot tagging):")
        click.echo(
            format_table(
                ["LABEL", "KEYWORDS"],
                [[label.id, ", ".join(label.keywords)] for label in with_keywords],
            )
        )
    constraints = taxonomy.constraints
    notes = []
    if constraints.exclusive:
        notes.append(f"exclusive (stand alone): {', '.join(constraints.exclusive)}")
    for group in constraints.exclusive_groups:
        notes.append(f"at most one of: {', '.join(group)}")
    if constraints.min_labels:
        notes.append(f"at least {constraints.min_labels} label(s) per item")
    if constraints.max_labels:
        notes.append(f"at most {constraints.max_labels} label(s) per item")
    if notes:
        click.echo()
        click.echo("Constraints: " + "; ".join(notes))


@taxonomy_group.command("infer")
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="YAML or JSON file to write.",
)
@click.option("--name", help="Taxonomy name (default: the output file's stem).")
@click.option(
    "--mode",
    type=click.Choice(["multi-label", "single-label"]),
    help="Default: single-label if every record has one label.",
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@data_options
def taxonomy_infer(
    data: tuple[Path, ...], output: Path, name: str | None, mode: Any, force: bool, **kwargs: Any
) -> None:
    """Write a starting taxonomy from the labels found in DATA files."""
    from tagger_core.data.io import read_records
    from tagger_core.taxonomy import infer_taxonomy, write_taxonomy

    check_targets([output], force, inputs=data)
    records = [
        r for path in data for r in read_records(path, kwargs["data_format"], file_options(kwargs))
    ]
    taxonomy = infer_taxonomy(records, name or output.stem, mode)
    write_taxonomy(taxonomy, output)
    click.echo(
        f"Wrote {output}: {len(taxonomy.labels)} labels, {taxonomy.mode}, from {len(records)} records."
    )
    if taxonomy.constraints.min_labels:
        click.echo(
            "Every record has a label, so it declares min_labels: 1 (each name gets at least "
            "one); remove it if some items may have none."
        )


COMMANDS = [taxonomies_command, taxonomy_group]
