"""Built-in data sources: JSON (the reference format), JSON Lines, CSV/TSV, Excel, and plain
text with one name per line (names to tag, no labels)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, ClassVar

from tagger_core import (
    DataError,
    DataSource,
    FileOptions,
    Record,
    hookimpl,
    record_fields,
    record_from_fields,
)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", file=path) from None


def _check_mapping(item: Any, path: Path, row: int) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise DataError(f"expected an object, got {type(item).__name__}", file=path, row=row)
    return item


class JsonSource(DataSource):
    name = "json"
    description = 'A JSON list of objects: [{"text": ..., "label": [...]}] (the reference format).'
    suffixes: ClassVar[tuple[str, ...]] = (".json",)

    def read(self, path: Path, options: FileOptions) -> list[Record]:
        try:
            data = json.loads(_read_text(path))
        except json.JSONDecodeError as exc:
            raise DataError(
                f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=path
            ) from None
        if not isinstance(data, list):
            raise DataError(
                f"expected a JSON list of records, got {type(data).__name__}", file=path
            )
        return [
            record_from_fields(_check_mapping(item, path, row), file=path, row=row, options=options)
            for row, item in enumerate(data, start=1)
        ]

    def write(self, path: Path, records: list[Record], options: FileOptions) -> None:
        rows = [record_fields(record, options) for record in records]
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


class JsonLinesSource(DataSource):
    name = "jsonl"
    description = "One JSON object per line; rows are line numbers."
    suffixes: ClassVar[tuple[str, ...]] = (".jsonl", ".ndjson")

    def read(self, path: Path, options: FileOptions) -> list[Record]:
        records = []
        for row, line in enumerate(_read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"malformed JSON at column {exc.colno}: {exc.msg}", file=path, row=row
                ) from None
            records.append(
                record_from_fields(
                    _check_mapping(item, path, row), file=path, row=row, options=options
                )
            )
        return records

    def write(self, path: Path, records: list[Record], options: FileOptions) -> None:
        with path.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record_fields(record, options), ensure_ascii=False) + "\n")


def _flat_fields(record: Record, options: FileOptions) -> dict[str, object]:
    """Fields for a table: label lists joined by the separator, nested metadata (scores)
    as ``key:sub`` columns."""
    flat: dict[str, object] = {}
    for key, value in record_fields(record, options).items():
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            flat[key] = options.label_sep.join(value)  # labels, predicted labels
        elif isinstance(value, dict):
            flat.update({f"{key}:{sub}": subvalue for sub, subvalue in value.items()})
        elif isinstance(value, list):
            flat[key] = json.dumps(value, ensure_ascii=False)
        else:
            flat[key] = value
    return flat


def _columns(rows: list[dict[str, object]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return columns


class CsvSource(DataSource):
    name = "csv"
    description = "Comma-separated table with a header; labels joined by --label-sep (default |)."
    suffixes: ClassVar[tuple[str, ...]] = (".csv",)
    delimiter = ","

    def read(self, path: Path, options: FileOptions) -> list[Record]:
        lines = _read_text(path).splitlines(keepends=True)
        reader = csv.reader(lines, delimiter=self.delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise DataError("empty file: no header row", file=path)
            header = [column.strip() for column in header]
            for required in (
                options.text_field,
                *([options.label_field] if options.require_labels else []),
            ):
                if required not in header:
                    raise DataError(
                        f"no column '{required}' in header ({', '.join(header)})",
                        file=path,
                        row=1,
                        field=required,
                    )
            records = []
            for cells in reader:
                row = reader.line_num
                if not any(cell.strip() for cell in cells):
                    continue
                if len(cells) != len(header):
                    raise DataError(
                        f"expected {len(header)} cells as in the header, found {len(cells)}",
                        file=path,
                        row=row,
                    )
                fields: dict[str, object] = {
                    key: value for key, value in zip(header, cells, strict=True) if value != ""
                }
                fields.setdefault(options.text_field, "")
                if options.label_field in header:
                    fields.setdefault(options.label_field, "")
                records.append(record_from_fields(fields, file=path, row=row, options=options))
        except csv.Error as exc:
            raise DataError(
                f"malformed {self.name.upper()}: {exc}", file=path, row=reader.line_num
            ) from None
        return records

    def write(self, path: Path, records: list[Record], options: FileOptions) -> None:
        rows = [_flat_fields(record, options) for record in records]
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=_columns(rows), delimiter=self.delimiter)
            writer.writeheader()
            writer.writerows(rows)


class TsvSource(CsvSource):
    name = "tsv"
    description = "Tab-separated table with a header; labels joined by --label-sep (default |)."
    suffixes: ClassVar[tuple[str, ...]] = (".tsv", ".tab")
    delimiter = "\t"


class ExcelSource(DataSource):
    name = "xlsx"
    description = "Excel workbook: first sheet (or --sheet), header in row 1."
    suffixes: ClassVar[tuple[str, ...]] = (".xlsx",)

    def read(self, path: Path, options: FileOptions) -> list[Record]:
        import zipfile

        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
            raise DataError(f"not a readable .xlsx workbook ({exc})", file=path) from None
        try:
            if options.sheet is not None and options.sheet not in workbook.sheetnames:
                raise DataError(
                    f"no sheet '{options.sheet}' (sheets: {', '.join(workbook.sheetnames)})",
                    file=path,
                )
            sheet = workbook[options.sheet] if options.sheet else workbook.worksheets[0]
            rows = sheet.iter_rows(values_only=True)
            header_cells = next(rows, None)
            if header_cells is None:
                raise DataError("empty sheet: no header row", file=path)
            header = ["" if cell is None else str(cell).strip() for cell in header_cells]
            required = [
                options.text_field,
                *([options.label_field] if options.require_labels else []),
            ]
            for name in required:
                if name not in header:
                    raise DataError(
                        f"no column '{name}' in header ({', '.join(h for h in header if h)})",
                        file=path,
                        row=1,
                        field=name,
                    )
            records = []
            for row, cells in enumerate(rows, start=2):
                if all(cell is None or str(cell).strip() == "" for cell in cells):
                    continue
                fields: dict[str, object] = {
                    key: value
                    for key, value in zip(header, cells, strict=False)
                    if key and value is not None and value != ""
                }
                extra = [
                    value
                    for key, value in zip(header, cells, strict=False)
                    if not key and value is not None
                ]
                if extra or (
                    len(cells) > len(header) and any(c is not None for c in cells[len(header) :])
                ):
                    raise DataError("a cell has no column header", file=path, row=row)
                fields.setdefault(options.text_field, "")
                if options.label_field in header:
                    fields.setdefault(options.label_field, "")
                records.append(record_from_fields(fields, file=path, row=row, options=options))
            return records
        finally:
            workbook.close()

    def write(self, path: Path, records: list[Record], options: FileOptions) -> None:
        import openpyxl

        rows = [_flat_fields(record, options) for record in records]
        columns = _columns(rows)
        workbook = openpyxl.Workbook(write_only=True)
        sheet = workbook.create_sheet("records")
        sheet.append(columns)
        for row in rows:
            sheet.append([row.get(column) for column in columns])
        workbook.save(path)


class TextLinesSource(DataSource):
    name = "txt"
    description = "Plain text, one name per line, no labels (blank lines are skipped)."
    suffixes: ClassVar[tuple[str, ...]] = (".txt",)
    writable = False

    def read(self, path: Path, options: FileOptions) -> list[Record]:
        if options.require_labels:
            raise DataError(
                "plain text holds names only, no labels; give labelled data as .json, "
                ".jsonl, .csv, .tsv or .xlsx",
                file=path,
            )
        return [
            Record(text=line.strip(), source=options.source, file=str(path), row=row)
            for row, line in enumerate(_read_text(path).splitlines(), start=1)
            if line.strip()
        ]

    def write(self, path: Path, records: list[Record], options: FileOptions) -> None:
        raise DataError("plain text holds names only and cannot be written", file=path)


@hookimpl
def register_data_sources(register):  # type: ignore[no-untyped-def]
    for source in (JsonSource, JsonLinesSource, CsvSource, TsvSource, ExcelSource, TextLinesSource):
        register(source)
