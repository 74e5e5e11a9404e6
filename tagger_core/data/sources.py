"""Labelled data from several named sources (a partner site's tags, an LLM's tags, hand
labels), each record remembering which source it came from.

On the command line a source is ``--data NAME=FILE``; a plain ``FILE`` keeps the source
written in its records (the ``source`` field that `tagger split` writes), if any.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tagger_core.components import FileOptions
from tagger_core.data.io import read_records, read_unchecked
from tagger_core.errors import TaggerError
from tagger_core.schemas import Record, Taxonomy

SOURCE_FIELD = "source"
# Source names end up in file names (valid-<source>.json): keep them to word characters.
_SOURCE_NAME = re.compile(r"^\w[\w.-]*$")


@dataclass(frozen=True)
class DataSpec:
    """One data file, with the source name its records get (None: as written in the file)."""

    path: Path
    source: str | None = None

    @property
    def label(self) -> str:
        """How reports name this file: its source, or else its file name."""
        return self.source or self.path.name


def parse_data_spec(value: str) -> DataSpec:
    """``NAME=FILE`` or ``FILE``; an existing file whose name holds '=' stays a file."""
    name, sep, path = value.partition("=")
    if not sep or Path(value).exists():
        return DataSpec(Path(value))
    if not _SOURCE_NAME.match(name):
        raise TaggerError(
            f"bad source name '{name}' in '{value}': use letters, digits, '_', '-' or '.'"
        )
    if not path:
        raise TaggerError(f"no file after '{name}=' in '{value}'")
    return DataSpec(Path(path), name)


def with_source(record: Record, source: str | None) -> Record:
    """``record`` with ``source`` set; the file's own ``source`` field applies otherwise."""
    if source is None:
        written = record.metadata.get(SOURCE_FIELD)
        if record.source is not None or not isinstance(written, str):
            return record
        source = written
    metadata = {k: v for k, v in record.metadata.items() if k != SOURCE_FIELD}
    return record.model_copy(update={"source": source, "metadata": metadata})


def for_writing(record: Record) -> Record:
    """``record`` with its source stored as a field, so that the written file keeps it."""
    if record.source is None:
        return record
    return record.model_copy(update={"metadata": {**record.metadata, SOURCE_FIELD: record.source}})


def read_spec(
    spec: DataSpec, format: str | None, options: FileOptions, taxonomy: Taxonomy | None = None
) -> list[Record]:
    """The records of one file, every one carrying the spec's source."""
    options = options.model_copy(update={"source": spec.source})
    records = read_records(spec.path, format, options, taxonomy)
    return [with_source(record, spec.source) for record in records]


def read_specs(
    specs: Sequence[DataSpec],
    format: str | None,
    options: FileOptions,
    taxonomy: Taxonomy | None = None,
) -> list[Record]:
    """The records of every file, in order, each carrying its spec's source."""
    return [record for spec in specs for record in read_spec(spec, format, options, taxonomy)]


def read_raw(spec: DataSpec, format: str | None, options: FileOptions) -> list[Record]:
    """Like :func:`read_spec` but keeps empty names, so that a checker can report them all
    instead of stopping at the first."""
    options = options.model_copy(update={"source": spec.source})
    return [
        with_source(record, spec.source) for record in read_unchecked(spec.path, format, options)
    ]


def source_names(records: Sequence[Record]) -> list[str]:
    """The distinct sources of ``records``, in order of first appearance."""
    return list(dict.fromkeys(r.source for r in records if r.source is not None))
