"""Parquet files (the `parquet` extra: pyarrow), read and written one row group at a time,
so a catalogue's shards stream through `tagger predict` in bounded memory.

Labels are a list-of-strings column, or one string joined by the label separator as in
CSV; every other column is kept, and predictions add a list column of labels and a
struct column of scores."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tagger_plugins.data_sources import check_fixed_columns, check_unique_header

from tagger_core import (
    DataError,
    DataSource,
    FileOptions,
    Record,
    RecordWriter,
    Row,
    TaggerError,
    hookimpl,
    record_from_fields,
)

BATCH_ROWS = 4096  # rows converted to Python objects at a time
ROW_GROUP_ROWS = 65_536  # rows per row group written


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise TaggerError(
            'Parquet files need the parquet extra: pip install "tagger[parquet]"'
        ) from None
    return pyarrow, pyarrow.parquet


def _finite(fields: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities as null (a missing value): JSON has no form for them, and one
    written as NaN would be refused when read back."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in fields.items()
    }


class ParquetSource(DataSource):
    name = "parquet"
    description = "Apache Parquet (pyarrow); labels a list column or a joined string."
    suffixes: ClassVar[tuple[str, ...]] = (".parquet", ".pq")

    def read(self, path: Path, options: FileOptions) -> list[Record]:
        return list(self.iter_read(path, options))

    def iter_read(self, path: Path, options: FileOptions) -> Iterator[Record]:
        arrow, parquet = _pyarrow()
        try:
            handle = parquet.ParquetFile(path)
        except (arrow.ArrowException, OSError) as error:
            raise DataError(
                f"not a readable Parquet file: {_first_line(error)}", file=path
            ) from None
        check_unique_header(handle.schema_arrow.names, path)
        row = 0
        with handle:
            batches = handle.iter_batches(batch_size=BATCH_ROWS)
            while True:
                try:
                    batch = next(batches, None)
                except (arrow.ArrowException, OSError) as error:
                    raise DataError(
                        f"cannot read the rows after row {row}: {_first_line(error)}", file=path
                    ) from None
                if batch is None:
                    return
                for fields in batch.to_pylist():
                    row += 1
                    yield record_from_fields(
                        _finite(fields), file=path, row=row, options=options, cells=True
                    )

    def write(self, path: Path, records: list[Record], options: FileOptions) -> None:
        writer = self.open_writer(path, options)
        writer.write(records)
        writer.close()

    def open_writer(self, path: Path, options: FileOptions) -> RecordWriter:
        return _ParquetWriter(self, path, options)


class _ParquetWriter(RecordWriter):
    """Writes each chunk of rows as row groups; the first chunk fixes the columns."""

    def __init__(self, source: DataSource, path: Path, options: FileOptions) -> None:
        super().__init__(source, path, options)
        self.arrow, self.parquet = _pyarrow()
        self.writer: Any = None
        self.schema: Any = None
        self.written = 0

    def write_rows(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        if self.schema is not None:  # from_pylist would drop a field the schema lacks
            check_fixed_columns(rows, self.schema.names, self.path, self.written)
        try:
            table = self.arrow.Table.from_pylist(list(rows), schema=self.schema)
        except (self.arrow.ArrowException, TypeError, ValueError) as error:
            raise DataError(
                f"a column's values do not fit the types of the first rows ({_first_line(error)})",
                file=self.path,
                row=self.written + 1,
            ) from None
        if self.writer is None:
            self.schema = table.schema
            self.writer = self.parquet.ParquetWriter(self.path, self.schema)
        self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.written += len(rows)

    def close(self) -> None:
        if self.writer is None:  # no rows: an empty file with no columns is still Parquet
            self.parquet.write_table(self.arrow.table({}), self.path)
            return
        self.writer.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@hookimpl
def register_data_sources(register):  # type: ignore[no-untyped-def]
    register(ParquetSource)
