"""Options and output helpers shared by the subcommands."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tagger_core.components import ReadOptions
    from tagger_core.data.sources import DataSpec
    from tagger_core.schemas import DataFile, Record


def data_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--format, --text-field, --label-field, --label-sep and --sheet for reading files."""
    options = [
        click.option("--format", "data_format", help="File format (default: from the suffix)."),
        click.option(
            "--text-field",
            default="text",
            show_default=True,
            help="Field or column holding the name.",
        ),
        click.option(
            "--label-field",
            default="label",
            show_default=True,
            help="Field or column holding the labels.",
        ),
        click.option(
            "--label-sep",
            default="|",
            show_default=True,
            help="Label separator inside one CSV/TSV/Excel cell.",
        ),
        click.option("--sheet", help="Excel sheet to read (default: the first)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def read_options(kwargs: dict[str, Any], require_labels: bool = True) -> ReadOptions:
    from tagger_core.components import ReadOptions

    return ReadOptions(
        text_field=kwargs["text_field"],
        label_field=kwargs["label_field"],
        label_sep=kwargs["label_sep"],
        sheet=kwargs["sheet"],
        require_labels=require_labels,
    )


def parse_params(values: Iterable[str], option: str) -> dict[str, Any]:
    """``key=value`` pairs; values are read as YAML scalars, so 4, 0.5, true and null work."""
    import yaml

    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got '{item}'", param_hint=option)
        try:
            params[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            params[key.strip()] = raw
    return params


def ensure_new_file(path: Path, force: bool) -> None:
    from tagger_core.errors import TaggerError

    if path.exists() and not force:
        raise TaggerError(f"{path} already exists; use --force to replace it")


def display_width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    def pad(value: str, width: int, right: bool) -> str:
        fill = " " * (width - display_width(value))
        return fill + value if right else value + fill

    cells = [[cell(value) for value in row] for row in rows]
    widths = [
        max([display_width(h)] + [display_width(r[i]) for r in cells]) for i, h in enumerate(header)
    ]
    lines = ["  ".join(pad(h, w, False) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in cells:
        padded = [
            pad(value, width, right=i > 0 and _numeric(value))
            for i, (value, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def _numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def read_all(
    paths: Sequence[Path], kwargs: dict[str, Any], require_labels: bool = True
) -> tuple[list[Record], list[DataFile]]:
    from tagger_core.data.io import fingerprint, read_records

    records: list[Record] = []
    files = []
    for path in paths:
        batch = read_records(path, kwargs["data_format"], read_options(kwargs, require_labels))
        records.extend(batch)
        files.append(fingerprint(path, len(batch)))
    return records, files


def data_sources_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--data NAME=FILE (repeatable): a labelled file whose records get source NAME."""
    return click.option(
        "--data",
        "data_values",
        multiple=True,
        metavar="NAME=FILE",
        help="Labelled file from source NAME (repeatable); records keep their source.",
    )(function)


def collect_data_specs(paths: Iterable[str], values: Iterable[str]) -> list[DataSpec]:
    """Positional files and ``--data`` values, each ``FILE`` or ``NAME=FILE``."""
    from tagger_core.data.sources import parse_data_spec

    out = [parse_data_spec(str(value)) for value in (*paths, *values)]
    if not out:
        raise click.UsageError("no data: give files as arguments or --data NAME=FILE")
    return out
