"""Data commands, which train nothing: `tagger validate` and `tagger split`.

Data files are positional arguments or ``--data NAME=FILE`` (a named source); both forms
take ``NAME=FILE``. Exit status of `validate`: 0 without errors (warnings allowed), 1
when the data has errors (or warnings, with --strict), 2 when the input is unusable
(unreadable file, unknown taxonomy), like every other command.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tagger_core.cli.options import (
    collect_data_specs,
    data_options,
    data_sources_option,
    file_options,
    format_table,
    percent,
    read_data,
    seed_option,
    taxonomy_option,
)

if TYPE_CHECKING:
    from tagger_core.data.split import Split
    from tagger_core.data.validate import ValidationReport

EXIT_DATA_ERRORS = 1


# -- validate ---------------------------------------------------------------------------


def _short_names(groups: Sequence[str]) -> dict[str, str]:
    """Column titles: file names without folders where that stays unambiguous."""
    short = {g: Path(g).name for g in groups}
    if len(set(short.values())) < len(short):
        return {g: g for g in groups}
    return short


def print_validation(report: ValidationReport, max_shown: int, inferred: bool = False) -> None:
    n_labels = sum(1 for c in report.label_counts if c.known)
    against = (
        f"the {n_labels} labels found in the data (no --taxonomy)"
        if inferred
        else f"taxonomy '{report.taxonomy}' ({n_labels} labels)"
    )
    what = "source" if report.named_sources else "file"
    plural = "s" if len(report.groups) > 1 else ""
    click.echo(
        f"Checked {report.records} records ({report.names} distinct names) from "
        f"{len(report.groups)} {what}{plural} against {against}."
    )
    click.echo()
    titles = _short_names(report.groups)
    # One column per source or file, when there are several.
    groups = report.groups if len(report.groups) > 1 else []
    header = ["LABEL", *(titles[g] for g in groups), "RECORDS", "NAMES"]
    rows: list[list[Any]] = []
    for count in report.label_counts:
        label = count.label if count.known else f"{count.label} (unknown)"
        rows.append(
            [
                label,
                *(count.counts.get(g, 0) for g in groups),
                count.total,
                count.names if count.known else "",
            ]
        )
    if report.unlabelled:
        rows.append(["(no label)", *([""] * len(groups)), report.unlabelled, ""])
    rows.append(["(all)", *(report.rows[g] for g in groups), report.records, report.names])
    click.echo(format_table(header, rows))
    for pair in report.agreement:
        click.echo()
        click.echo(
            f"Sources {pair.a} and {pair.b} share {pair.shared_names} names; they give the same "
            f"labels to {pair.identical} ({percent(pair.identical, pair.shared_names)})."
        )
    click.echo()
    errors, warnings = len(report.errors), len(report.warnings)
    if not report.problems:
        click.echo("No problems found.")
        return
    click.echo(f"{errors} error(s), {warnings} warning(s).")
    codes: dict[tuple[str, str], list[Any]] = {}
    for problem in report.problems:
        codes.setdefault((problem.severity, problem.code), []).append(problem)
    for (severity, code), problems in codes.items():
        shown = problems if max_shown <= 0 else problems[:max_shown]
        more = len(problems) - len(shown)
        note = f", {len(shown)} shown (--max-shown 0 shows all)" if more else ""
        click.echo()
        click.echo(f"{severity} {code} ({len(problems)}{note}):")
        for problem in shown:
            click.echo(f"  {problem}")


@click.command("validate", short_help="Check labelled data for errors before training.")
@click.argument("data", nargs=-1, metavar="[[NAME=]FILE]...")
@data_sources_option
@taxonomy_option(required=False)
@click.option(
    "--ratios",
    default="4:1:1",
    show_default=True,
    help="The split you plan: labels with fewer names than parts are reported.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option(
    "--max-shown",
    default=10,
    show_default=True,
    help="Problems shown per kind (0: all).",
)
@click.option("--strict", is_flag=True, help="Exit with status 1 on warnings too.")
@data_options
@click.pass_context
def validate_command(
    ctx: click.Context,
    data: tuple[str, ...],
    data_values: tuple[str, ...],
    taxonomy_name: str | None,
    ratios: str,
    as_json: bool,
    max_shown: int,
    strict: bool,
    **kwargs: Any,
) -> None:
    """Check labelled data: unknown labels, empty names, duplicates, conflicting labels
    within a file and between sources, label frequencies, labels too rare to split.

    Without --taxonomy the labels found in the data stand for it (a first look, before
    `tagger taxonomy infer`): unknown labels cannot be detected then.

    \b
    Exit status: 0 no errors (warnings allowed), 1 errors found (or warnings, with
    --strict), 2 unusable input (unreadable file, unknown taxonomy).
    """
    from tagger_core.data.sources import read_raw
    from tagger_core.data.split import parse_ratios
    from tagger_core.data.validate import validate_records
    from tagger_core.registry import resolve_taxonomy
    from tagger_core.taxonomy import infer_taxonomy

    taxonomy = resolve_taxonomy(taxonomy_name) if taxonomy_name else None
    specs = collect_data_specs(data, data_values)
    options = file_options(kwargs)
    records = [r for spec in specs for r in read_raw(spec, kwargs["data_format"], options)]
    if not records:  # nothing to check is a data error, as `train` says "no records"
        click.echo(
            f"No records in {', '.join(str(spec.path) for spec in specs)}: nothing to check."
        )
        ctx.exit(EXIT_DATA_ERRORS)
    if taxonomy is None:
        taxonomy = infer_taxonomy(records, "labels-in-data")
    report = validate_records(
        records,
        taxonomy,
        parts=len(parse_ratios(ratios)),
        text_field=kwargs["text_field"],
        label_field=kwargs["label_field"],
    )
    if as_json:
        payload = report.model_dump(mode="json")
        payload["errors"], payload["warnings"] = len(report.errors), len(report.warnings)
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        print_validation(report, max_shown, inferred=taxonomy_name is None)
    if report.errors or (strict and report.warnings):
        ctx.exit(EXIT_DATA_ERRORS)


# -- split ------------------------------------------------------------------------------


def print_split(split: Split, files: Sequence[Path]) -> None:
    counts = split.label_counts()
    header = ["LABEL", *(name.upper() for name in split.names), "NAMES"]
    totals = split.name_totals()
    missing = {label for label, _ in split.missing()}
    rows: list[list[Any]] = []
    for label, row, total in zip(split.taxonomy.labels, counts, totals, strict=True):
        mark = " !" if label.id in missing else (" *" if 0 < total < len(split.names) else "")
        rows.append([label.id + mark, *row, total])
    rows.append(["(records)", *(len(part) for part in split.parts), ""])
    rows.append(["(names)", *split.groups, sum(split.groups)])
    click.echo(format_table(header, rows))
    sources = split.sources()
    if any(set(s) - {"-"} for s in sources):
        click.echo()
        for name, per_source in zip(split.names, sources, strict=True):
            listing = ", ".join(f"{source} {n}" for source, n in per_source.items())
            click.echo(f"{name}: {listing}")
    placement = split.rare_placement()
    if placement:
        click.echo()
        click.echo(
            f"* {len(placement)} label(s) have fewer names than parts, so they cannot be in "
            "every part; each went to the earliest parts, training first:"
        )
        by_parts: dict[tuple[str, ...], list[str]] = {}
        for rare_label, held_in in placement.items():
            by_parts.setdefault(tuple(held_in), []).append(rare_label)
        for where_parts, rare_labels in sorted(by_parts.items(), key=lambda item: len(item[0])):
            where = " and ".join(where_parts) if len(where_parts) > 1 else f"{where_parts[0]} only"
            click.echo(f"  {where}: {', '.join(rare_labels)}")
    untrainable = [name for name, held_in in placement.items() if split.names[0] not in held_in]
    if untrainable:
        click.echo(f"  Not in {split.names[0]} (cannot be learned): {', '.join(untrainable)}")
    if missing:
        click.echo()
        click.echo("! Missing from a part although it has enough names:")
        total_of = dict(zip(split.taxonomy.label_ids, totals, strict=True))
        for absent, part in split.missing():
            held = split.held_by_rare(absent)
            why = (
                f"{held} of its {total_of[absent]} names also carry labels with fewer names than "
                "parts, which go to training first"
                if held
                else "no move kept every other label in place"
            )
            click.echo(f"  {absent} in {part} ({why})")
    if split.set_aside:
        click.echo()
        click.echo(f"Set aside {len(split.set_aside)} records: {split.set_aside_reason}.")
    click.echo()
    click.echo("Wrote " + ", ".join(str(path) for path in files))


@click.command("split")
@click.argument("data", nargs=-1, metavar="[[NAME=]FILE]...")
@data_sources_option
@taxonomy_option(required=False)
@click.option(
    "--ratios",
    default="4:1:1",
    show_default=True,
    help="Relative part sizes (train:valid:test; with --by-source: train, then one per source).",
)
@seed_option("Random seed.")
@click.option(
    "-o",
    "--output",
    "output_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory for the part files.",
)
@click.option(
    "--by-source",
    is_flag=True,
    help="One validation part per source, drawn from its own names first (needs --data).",
)
@click.option("--names", help="Comma-separated part names (default: train,valid,test).")
@click.option(
    "--output-format",
    help="Format of the part files (default: that of the first input file).",
)
@click.option("--force", is_flag=True, help="Replace existing part files.")
@data_options
def split_command(
    data: tuple[str, ...],
    data_values: tuple[str, ...],
    taxonomy_name: str | None,
    ratios: str,
    seed: int,
    output_dir: Path,
    by_source: bool,
    names: str | None,
    output_format: str | None,
    force: bool,
    **kwargs: Any,
) -> None:
    """Split labelled data into parts stratified on every label.

    Every label with at least as many distinct names as parts appears in every part;
    all records of one name (after normalisation) stay in one part. Without --taxonomy
    the labels found in the data are used.
    """
    from tagger_core.data.split import parse_ratios, split_by_source, split_records, write_split
    from tagger_core.registry import make_data_source, resolve_taxonomy

    ratio_list = parse_ratios(ratios)
    taxonomy = resolve_taxonomy(taxonomy_name) if taxonomy_name else None
    specs = collect_data_specs(data, data_values)
    records = read_data(specs, kwargs)
    if by_source:
        if names:
            raise click.UsageError(
                "--names does not go with --by-source (parts are named by source)"
            )
        split = split_by_source(records, ratio_list, taxonomy=taxonomy, seed=seed)
    else:
        part_names = [n.strip() for n in names.split(",")] if names else None
        split = split_records(records, ratio_list, taxonomy=taxonomy, seed=seed, names=part_names)
    if output_format:
        suffix = make_data_source(output_format).suffixes[0]
    else:
        suffix = specs[0].path.suffix.lower() or ".json"
    files = write_split(
        split,
        output_dir,
        suffix=suffix,
        format=output_format,
        options=file_options(kwargs),
        force=force,
    )
    print_split(split, files)


COMMANDS = [validate_command, split_command]
