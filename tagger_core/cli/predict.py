"""`tagger predict`: names from arguments, a file, standard input or a prompt."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tagger_core.cli.options import (
    data_options,
    file_options,
    rule_override,
    rule_override_options,
)
from tagger_core.components import FileOptions
from tagger_core.data.io import record_fields
from tagger_core.errors import DataError
from tagger_core.files import check_target
from tagger_core.schemas import Record

if TYPE_CHECKING:
    from tagger_core.schemas import Prediction, Taxonomy
    from tagger_core.tagger import Tagger

PREDICT_BATCH = 2048
# The fields predictions add to every output row, beside the input's own fields (its gold
# labels included, which pass through unchanged): the same in every format and on --json.
PREDICTED = "predicted"
PREDICTED_NAME = "predicted_name"  # display names of the predicted labels, with --display
SCORES = "scores"


def _display(taxonomy: Taxonomy, label: str) -> str:
    return taxonomy.label(label).display_name


def format_prediction(prediction: Prediction, taxonomy: Taxonomy, display: bool) -> str:
    """One line: the name, a tab, the labels with their scores."""

    def shown(label: str) -> str:
        name = _display(taxonomy, label)
        return f"{label} · {name}" if display and name != label else label

    if prediction.labels:
        labels = ", ".join(
            f"{shown(label)} ({prediction.scores[label]:.2f})" for label in prediction.labels
        )
    else:
        best = max(prediction.scores, key=prediction.scores.__getitem__)
        labels = f"(no label; best: {shown(best)} {prediction.scores[best]:.2f})"
    return f"{prediction.text}\t{labels}"


def tagged(record: Record, prediction: Prediction, taxonomy: Taxonomy, display: bool) -> Record:
    """``record`` with the prediction in its own fields; nothing of the input is replaced."""

    added: dict[str, Any] = {PREDICTED: list(prediction.labels)}
    if display:
        added[PREDICTED_NAME] = [_display(taxonomy, label) for label in prediction.labels]
    added[SCORES] = prediction.scores
    clash = [key for key in added if key in record.metadata]
    if clash:
        raise DataError(
            f"the input already has a '{clash[0]}' field; predictions would overwrite it",
            file=record.file,
            row=record.row,
            field=clash[0],
        )
    return record.model_copy(update={"metadata": {**record.metadata, **added}})


def _echo(
    records: Iterable[Record],
    predictions: Iterable[Prediction],
    taxonomy: Taxonomy,
    options: FileOptions,
    as_json: bool,
    display: bool,
) -> None:

    for record, prediction in zip(records, predictions, strict=True):
        if as_json:
            fields = record_fields(tagged(record, prediction, taxonomy, display), options)
            click.echo(json.dumps(fields, ensure_ascii=False))
        else:
            click.echo(format_prediction(prediction, taxonomy, display))


def _predict_in_batches(tagger: Tagger, texts: list[str], rule: Any) -> list[Prediction]:
    from tagger_core.progress_bars import progress

    predictions: list[Prediction] = []
    with progress(total=len(texts), desc="predicting", unit="name") as bar:
        for start in range(0, len(texts), PREDICT_BATCH):
            batch = texts[start : start + PREDICT_BATCH]
            predictions.extend(tagger.predict(batch, rule=rule))
            bar.update(len(batch))
    return predictions


def interactive(
    tagger: Tagger, rule: Any, ask: Callable[[], str], as_json: bool, display: bool = False
) -> None:
    """Read names at a prompt until 'q', 'quit', 'exit' or end of input."""
    while True:
        try:
            line = ask().strip()
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        if line.lower() in {"q", "quit", "exit"}:
            return
        if line:
            from tagger_core.components import FileOptions
            from tagger_core.schemas import Record

            record = Record(text=line)
            options = FileOptions(write_labels=False)
            _echo(
                [record],
                tagger.predict([line], rule=rule),
                tagger.taxonomy,
                options,
                as_json,
                display,
            )


@click.command("predict")
@click.argument("tagger_dir", metavar="TAGGER", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option(
    "-i",
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    help="File of names to tag (any data source, or .txt with one name per line).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write predictions to this file (format from suffix).",
)
@click.option("--output-format", help="Data source (file format) of --output.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help=f"Print JSON lines: the input's fields, then '{PREDICTED}' and '{SCORES}' (as files get).",
)
@click.option(
    "--display",
    is_flag=True,
    help=f"Show the labels' display names (e.g. Chinese names) too; files get a "
    f"'{PREDICTED_NAME}' field.",
)
@rule_override_options
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@data_options
def predict_command(
    tagger_dir: Path,
    texts: tuple[str, ...],
    input_path: Path | None,
    output: Path | None,
    output_format: str | None,
    as_json: bool,
    display: bool,
    rule: str | None,
    rule_params: tuple[str, ...],
    force: bool,
    **kwargs: Any,
) -> None:
    """Tag names with a saved TAGGER.

    Names come from the arguments, from --input FILE, from lines on standard input, or —
    on a terminal with none of these — from an interactive prompt (q to quit).
    """
    from tagger_core.data.io import read_records, write_records, writer_for
    from tagger_core.schemas import Record
    from tagger_core.tagger import Tagger

    if texts and input_path:
        raise click.UsageError("give names as arguments or with --input, not both")
    if output is not None:
        check_target(output, force)
        writer_for(output, output_format)  # a format that cannot be written: refused now
    tagger = Tagger.load(tagger_dir)
    override = rule_override(rule, rule_params)
    options = file_options(kwargs, require_labels=False)
    if input_path is not None:
        records = read_records(input_path, kwargs["data_format"], options)
    elif texts:
        records = [Record(text=t, file="arguments", row=i) for i, t in enumerate(texts, start=1)]
    elif not sys.stdin.isatty():
        records = [
            Record(text=line.strip(), file="<stdin>", row=i)
            for i, line in enumerate(sys.stdin, start=1)
            if line.strip()
        ]
    else:
        if output is not None:
            raise click.UsageError("--output needs names from arguments, --input or standard input")
        click.echo(
            f"Tagger '{tagger_dir}' ({tagger.taxonomy.name}). Type a name, q to quit.", err=True
        )
        interactive(tagger, override, lambda: input("name> "), as_json, display)
        return
    for record in records:
        if not record.text.strip():
            raise DataError(
                "empty text", file=record.file, row=record.row, field=kwargs["text_field"]
            )
    predictions = _predict_in_batches(tagger, [r.text for r in records], override)
    # Gold labels pass through where the input has them; unlabelled input gets no label field.
    options = options.model_copy(update={"write_labels": any(r.labels for r in records)})
    if output is None:
        _echo(records, predictions, tagger.taxonomy, options, as_json, display)
        return
    out_records = [
        tagged(record, prediction, tagger.taxonomy, display)
        for record, prediction in zip(records, predictions, strict=True)
    ]
    write_records(output, out_records, output_format, options)
    click.echo(f"Wrote {len(out_records)} predictions to {output}", err=True)


COMMANDS = [predict_command]
