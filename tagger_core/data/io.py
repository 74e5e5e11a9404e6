"""Reading and writing labelled files through the registered data sources."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tagger_core.components import DataSource, FileOptions, RecordWriter
from tagger_core.errors import DataError, TaggerError
from tagger_core.files import atomic_path, sha256_of
from tagger_core.registry import data_source_for
from tagger_core.schemas import DataFile, Record, Taxonomy
from tagger_core.taxonomy import LabelEncoder


def existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError("file does not exist" if not path.exists() else "not a file", file=path)
    return path


def read_unchecked(path: str | Path, format: str | None, options: FileOptions) -> list[Record]:
    """The records of ``path`` as its data source reads them, empty names included, so
    that a checker can report them all instead of stopping at the first."""
    path = existing_file(path)
    return data_source_for(path, format).read(path, options)


def read_records(
    path: str | Path,
    format: str | None = None,
    options: FileOptions | None = None,
    taxonomy: Taxonomy | None = None,
) -> list[Record]:
    """Every record of ``path``; empty texts are errors, never silently dropped. With a
    ``taxonomy``, labels are checked too, row by row, so the first bad row is reported."""
    return list(iter_records(path, format, options, taxonomy))


def iter_records(
    path: str | Path,
    format: str | None = None,
    options: FileOptions | None = None,
    taxonomy: Taxonomy | None = None,
) -> Iterator[Record]:
    """The records of ``path`` one at a time, checked as :func:`read_records` checks them:
    a file larger than memory is read in bounded memory where its format allows."""
    path = existing_file(path)
    options = options or FileOptions()
    labels = LabelEncoder(taxonomy) if taxonomy is not None else None
    empty = True
    for record in data_source_for(path, format).iter_read(path, options):
        if not record.text.strip():
            raise DataError(
                "empty text", file=record.file, row=record.row, field=options.text_field
            )
        if labels is not None:
            labels.columns(record, options.label_field)
        empty = False
        yield record
    if empty:
        raise DataError("no records in file", file=path)


def write_records(
    path: str | Path,
    records: Sequence[Record],
    format: str | None = None,
    options: FileOptions | None = None,
) -> None:
    with record_writer(path, format, options) as writer:
        writer.write(records)


@contextmanager
def record_writer(
    path: str | Path, format: str | None = None, options: FileOptions | None = None
) -> Iterator[RecordWriter]:
    """A writer that takes records in chunks and leaves ``path`` complete or untouched:
    it writes a temporary file beside it, renamed over it only when the block ends."""
    path = Path(path)
    source = writer_for(path, format)
    with atomic_path(path) as temporary:
        try:
            writer = source.open_writer(temporary, options or FileOptions())
            yield writer
            writer.close()
        except TaggerError as error:  # name the target, not the temporary file
            if error.file == str(temporary):
                error.file = str(path)
            raise


def writer_for(path: str | Path, format: str | None = None) -> DataSource[Any]:
    """The data source that writes ``path``; one that cannot write is refused at once."""
    source = data_source_for(Path(path), format)
    if not source.writable:
        raise DataError(
            f"the {source.name} data source holds names only and cannot be written; "
            "write to .jsonl, .json, .csv, .tsv or .xlsx",
            file=path,
        )
    return source


def fingerprint(path: str | Path, rows: int) -> DataFile:
    return DataFile(path=str(path), sha256=sha256_of(path), rows=rows)


DEFAULT_LABEL_SEP = "|"


def record_from_fields(
    fields: dict[str, object], *, file: Path, row: int, options: FileOptions, cells: bool = False
) -> Record:
    """A record from one parsed row, shared by all readers so they fail alike.

    Labels are a list, or one string joined by ``options.label_sep``: always in table
    ``cells`` (default "|"), in JSON only when a separator is named. Other fields are kept
    as metadata rather than dropped.
    """
    text = fields.get(options.text_field)
    if type(text) is not str:  # the common case costs one check: names are strings
        text = _text_of(text, file=file, row=row, options=options)
    raw_labels = fields.get(options.label_field)
    labels: list[str] = []
    if raw_labels is None:
        if options.require_labels:
            raise DataError("missing field", file=file, row=row, field=options.label_field)
    elif isinstance(raw_labels, str):
        sep = options.label_sep or (DEFAULT_LABEL_SEP if cells else None)
        if sep is None:
            raise DataError(
                f"expected a list of labels, got the string {raw_labels!r}; name a separator "
                "(--label-sep) to split strings into labels",
                file=file,
                row=row,
                field=options.label_field,
            )
        labels = [part.strip() for part in raw_labels.split(sep) if part.strip()]
    elif isinstance(raw_labels, list):
        for item in raw_labels:
            if not isinstance(item, str) or not item.strip():
                raise DataError(
                    f"labels must be non-empty strings, got {item!r}",
                    file=file,
                    row=row,
                    field=options.label_field,
                )
        labels = [item.strip() for item in raw_labels]
    else:
        raise DataError(
            f"expected a list of labels, got {type(raw_labels).__name__}",
            file=file,
            row=row,
            field=options.label_field,
        )
    if len(set(labels)) != len(labels):
        raise DataError("a label is repeated", file=file, row=row, field=options.label_field)
    record_id = fields.get("id")
    if record_id is not None and (type(record_id) is not int and type(record_id) is not str):
        record_id = str(record_id)  # ints and strings are kept as they were read
    # A null id stays a field (null passes through like any other value).
    skipped = (options.text_field, options.label_field, "id" if record_id is not None else "")
    return Record(
        text=text,
        labels=tuple(labels),
        source=options.source,
        id=record_id,
        metadata={key: value for key, value in fields.items() if key not in skipped},
        file=str(file),
        row=row,
    )


def _text_of(value: object, *, file: Path, row: int, options: FileOptions) -> str:
    """A name that is not a string: a number is its digits; anything else is an error."""
    field = options.text_field
    if value is None:
        raise DataError("missing field", file=file, row=row, field=field)
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"expected a name, got {value}", file=file, row=row, field=field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise DataError(f"expected text, got {type(value).__name__}", file=file, row=row, field=field)
