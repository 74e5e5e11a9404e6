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
    ensure_new_file,
    file_options,
    rule_override,
    rule_override_options,
)

if TYPE_CHECKING:
    from tagger_core.schemas import Prediction, Taxonomy
    from tagger_core.tagger import Tagger

PREDICT_BATCH = 2048
DISPLAY_FIELD = "label_name"  # display names of the predicted labels, beside `label`


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


def prediction_fields(
    prediction: Prediction, taxonomy: Taxonomy, label_field: str, display: bool
) -> dict[str, Any]:
    """The fields a prediction gets in every output: the same names on --json and in files."""
    fields: dict[str, Any] = {"text": prediction.text, label_field: list(prediction.labels)}
    if display:
        fields[DISPLAY_FIELD] = [_display(taxonomy, label) for label in prediction.labels]
    fields["scores"] = prediction.scores
    return fields


def _echo_predictions(
    predictions: Iterable[Prediction], taxonomy: Taxonomy, as_json: bool, display: bool
) -> None:
    for prediction in predictions:
        if as_json:
            fields = prediction_fields(prediction, taxonomy, "label", display)
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
            predictions = tagger.predict([line], rule=rule)
            _echo_predictions(predictions, tagger.taxonomy, as_json, display)


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
    "--json", "as_json", is_flag=True, help="Print JSON lines (fields as in output files)."
)
@click.option(
    "--display",
    is_flag=True,
    help=f"Show the labels' display names (e.g. Chinese names) too; files get a "
    f"'{DISPLAY_FIELD}' field.",
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
    from tagger_core.data.io import read_records, write_records
    from tagger_core.errors import DataError
    from tagger_core.schemas import Record
    from tagger_core.tagger import Tagger

    if texts and input_path:
        raise click.UsageError("give names as arguments or with --input, not both")
    if output is not None:
        ensure_new_file(output, force)
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
    if output is None:
        _echo_predictions(predictions, tagger.taxonomy, as_json, display)
        return
    out_records = []
    for record, prediction in zip(records, predictions, strict=True):
        fields = prediction_fields(prediction, tagger.taxonomy, options.label_field, display)
        del fields["text"], fields[options.label_field]  # the record's own text and labels
        out_records.append(
            Record(
                text=record.text,
                labels=tuple(prediction.labels),
                id=record.id,
                metadata={**record.metadata, **fields},
            )
        )
    if input_path is not None and kwargs["label_field"] in {k for r in records for k in r.metadata}:
        raise DataError(
            "input already has a label column; predictions would overwrite it",
            file=input_path,
            field=kwargs["label_field"],
        )
    write_records(output, out_records, output_format, options)
    click.echo(f"Wrote {len(out_records)} predictions to {output}", err=True)


COMMANDS = [predict_command]
