"""Tag records in chunks: read, score and write a chunk at a time, so that memory stays
flat however long the input, and an output file is complete or untouched."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tagger_core.components import FileOptions
from tagger_core.data.io import record_writer
from tagger_core.errors import DataError
from tagger_core.schemas import Prediction, Record, Taxonomy
from tagger_core.tagger import RuleSpec, Tagger

CHUNK = 2048
# The fields predictions add to every output row, beside the input's own fields (its gold
# labels included, which pass through unchanged): the same in every format and on --json.
PREDICTED = "predicted"
PREDICTED_NAME = "predicted_name"  # display names of the predicted labels, with --display
SCORES = "scores"


def tagged(record: Record, prediction: Prediction, taxonomy: Taxonomy, display: bool) -> Record:
    """``record`` with the prediction in its own fields; nothing of the input is replaced."""
    added: dict[str, Any] = {PREDICTED: list(prediction.labels)}
    if display:
        added[PREDICTED_NAME] = [taxonomy.label(label).display_name for label in prediction.labels]
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


def tagged_chunks(
    tagger: Tagger,
    records: Iterable[Record],
    *,
    options: FileOptions,
    rule: RuleSpec = None,
    display: bool = False,
    progress: Callable[[int], Any] | None = None,
) -> Iterator[tuple[list[Record], list[Prediction], FileOptions]]:
    """(tagged records, predictions, the options to write them with) a chunk at a time.

    Gold labels pass through where the input has them (seen in the first chunk);
    unlabelled input gets no invented label field, and a later row with labels is refused
    rather than losing them."""
    write_options: FileOptions | None = None
    iterator = iter(records)
    while batch := list(itertools.islice(iterator, CHUNK)):
        if write_options is None:
            write_options = options.model_copy(
                update={"write_labels": any(r.labels for r in batch)}
            )
        for record in batch:
            if not record.text.strip():
                raise DataError(
                    "empty text", file=record.file, row=record.row, field=options.text_field
                )
            if record.labels and not write_options.write_labels:
                raise DataError(
                    "has labels although the first rows have none; the output has no label "
                    "field for them: give every row its labels, or none",
                    file=record.file,
                    row=record.row,
                    field=options.label_field,
                )
        predictions = tagger.predict([r.text for r in batch], rule=rule)  # checked first
        if progress is not None:
            progress(len(batch))
        out = [
            tagged(record, prediction, tagger.taxonomy, display)
            for record, prediction in zip(batch, predictions, strict=True)
        ]
        yield out, predictions, write_options


def predict_to_file(
    tagger: Tagger,
    records: Iterable[Record],
    output: Path,
    *,
    format: str | None = None,
    options: FileOptions | None = None,
    rule: RuleSpec = None,
    display: bool = False,
    progress: Callable[[int], Any] | None = None,
) -> int:
    """Tag ``records`` into ``output`` chunk by chunk; returns the rows written."""
    chunks = tagged_chunks(
        tagger,
        records,
        options=options or FileOptions(),
        rule=rule,
        display=display,
        progress=progress,
    )
    first = next(chunks, None)
    if first is None:
        return 0
    written = 0
    with record_writer(output, format, first[2]) as writer:
        for out, _, _ in itertools.chain([first], chunks):
            writer.write(out)
            written += len(out)
    return written
