"""``tagger hotels stats``: label counts per file, checked against the hotel taxonomy."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from tagger_core import Record, Taxonomy, read_records, resolve_taxonomy


@click.group()
def hotels() -> None:
    """Commands added by the tagger-hotels plugin."""


@hotels.command()
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--taxonomy",
    "taxonomy_name",
    default="hotels",
    show_default=True,
    help="Taxonomy name or YAML/JSON file to check the labels against.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def stats(data: tuple[Path, ...], taxonomy_name: str, as_json: bool) -> None:
    """Count the records of each label in labelled DATA files.

    Give the train and validation files together to check a split. A label missing from
    a file, or a label the taxonomy does not know, is reported and the exit status is 1.

    \b
    tagger hotels stats train.json validation.json
    """
    taxonomy = resolve_taxonomy(taxonomy_name)
    counts = {str(path): count_labels(read_records(path), taxonomy) for path in data}
    problems = find_problems(counts, taxonomy)
    if as_json:
        report = {
            "taxonomy": taxonomy.name,
            "files": {path: asdict(file_counts) for path, file_counts in counts.items()},
            "problems": problems,
        }
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        click.echo(render(counts, taxonomy))
        for problem in problems:
            click.echo(f"Problem: {problem}", err=True)
    if problems:
        click.get_current_context().exit(1)


@dataclass
class FileCounts:
    rows: int
    multi_label_rows: int
    labels: dict[str, int]  # every taxonomy label id, in taxonomy order
    unknown_labels: dict[str, int]


def count_labels(records: list[Record], taxonomy: Taxonomy) -> FileCounts:
    """Records per label; an alias counts for the label it stands for."""
    known: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    for record in records:
        for name in record.labels:
            label_id = taxonomy.resolve(name)
            if label_id is None:
                unknown[name] += 1
            else:
                known[label_id] += 1
    return FileCounts(
        rows=len(records),
        multi_label_rows=sum(len(record.labels) > 1 for record in records),
        labels={label_id: known[label_id] for label_id in taxonomy.label_ids},
        unknown_labels=dict(sorted(unknown.items())),
    )


def find_problems(counts: dict[str, FileCounts], taxonomy: Taxonomy) -> list[str]:
    problems = []
    for path, file_counts in counts.items():
        missing = [label for label, count in file_counts.labels.items() if count == 0]
        if missing:
            problems.append(f"{path}: no record of label(s) {', '.join(missing)}")
        if file_counts.unknown_labels:
            unknown = ", ".join(file_counts.unknown_labels)
            problems.append(f"{path}: label(s) not in taxonomy '{taxonomy.name}': {unknown}")
    return problems


def render(counts: dict[str, FileCounts], taxonomy: Taxonomy) -> str:
    """A table: one row per label, one column per file, then the totals."""
    files = list(counts.values())
    rows = [["LABEL", "NAME", *(Path(path).name for path in counts), "TOTAL"]]
    for label in taxonomy.labels:
        values = [file_counts.labels[label.id] for file_counts in files]
        rows.append([label.id, label.display_name, *map(str, values), str(sum(values))])
    for title, values in (
        ("rows", [file_counts.rows for file_counts in files]),
        ("multi-label rows", [file_counts.multi_label_rows for file_counts in files]),
    ):
        rows.append([title, "", *map(str, values), str(sum(values))])
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell + " " * (width - _width(cell)) if i < 2 else " " * (width - _width(cell)) + cell
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
