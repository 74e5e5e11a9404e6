"""`tagger suggest`: the unlabelled names to label next, with the tagger's guesses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tagger_core.cli.options import data_options, file_options, no_verify_option
from tagger_core.files import check_target

# Fields each suggestion adds beside the name's own (its label field holds the guess).
ADDED = ("predicted", "uncertainty")


@click.command("suggest")
@click.argument("tagger_dir", metavar="TAGGER", type=click.Path(path_type=Path))
@click.argument("unlabelled", type=click.Path(path_type=Path))
@click.option("-n", "count", default=100, show_default=True, type=click.IntRange(min=1))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="e.g. to-label.jsonl"
)
@click.option(
    "--diversity",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="0: the most uncertain names, however alike; 1: as spread out as possible.",
)
@click.option(
    "--exclude",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Labelled file(s) whose names are not suggested again (e.g. the training data).",
)
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@no_verify_option
@data_options
def suggest_command(
    tagger_dir: Path,
    unlabelled: Path,
    count: int,
    output: Path,
    diversity: float,
    exclude: tuple[Path, ...],
    force: bool,
    no_verify: bool,
    **kwargs: Any,
) -> None:
    """The N names of UNLABELLED whose labels would teach TAGGER most: decisions closest
    to flipping, spread out so that they are not near-copies. Written most useful first,
    with the tagger's guess as the starting label set (also in 'predicted', which the
    review page of `tagger serve` proposes) and each name's 'uncertainty' (1: on the
    threshold)."""
    from tagger_core.components import record_fields
    from tagger_core.data.io import iter_records, record_writer, writer_for
    from tagger_core.errors import DataError
    from tagger_core.tagger import Tagger
    from tagger_core.workflows.suggest import suggest_names

    check_target(output, force)
    writer_for(output, None)
    tagger = Tagger.load(tagger_dir, verify=not no_verify)
    options = file_options(kwargs, require_labels=False)
    known = [
        record for path in exclude for record in iter_records(path, kwargs["data_format"], options)
    ]
    pool = iter_records(unlabelled, kwargs["data_format"], options)
    suggestions = suggest_names(tagger, pool, count, diversity=diversity, exclude=known)
    write_options = options.model_copy(update={"write_labels": True})
    with record_writer(output, None, write_options) as writer:
        rows = []
        for suggestion in suggestions:
            record = suggestion.record
            clash = sorted(set(ADDED) & record.metadata.keys())
            if clash:
                raise DataError(
                    f"the input already has a '{clash[0]}' field; the suggestion would "
                    "overwrite it",
                    file=record.file,
                    row=record.row,
                    field=clash[0],
                )
            row = record_fields(record, write_options)
            if not record.labels:  # the guess is where the labels go, ready to correct
                row[write_options.label_field] = suggestion.guess
            row["predicted"] = suggestion.guess
            row["uncertainty"] = round(suggestion.uncertainty, 4)
            rows.append(row)
        writer.write_rows(rows)
    shown = f"{len(suggestions)} names to label" + (
        f" (the pool had only {len(suggestions)})" if len(suggestions) < count else ""
    )
    click.echo(f"Wrote {shown} to {output}, most useful first", err=True)


COMMANDS = [suggest_command]
