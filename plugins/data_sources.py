"""Built-in data sources: JSON (the reference format), JSON Lines, CSV/TSV, Excel, and plain
text with one name per line (names to tag, no labels)."""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeGuard

from tagger_core import (
    DEFAULT_LABEL_SEP,
    DataError,
    DataSource,
    FileOptions,
    Record,
    RecordWriter,
    Row,
    hookimpl,
    json_default,
    record_fields,
    record_from_fields,
)

# The largest CSV/TSV cell read: what a 32-bit C long holds (csv's own limit type)
CSV_FIELD_LIMIT = 2**31 - 1
XLSX_CELL_CHARS = 32_767  # what an Excel cell holds


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _not_utf8(path) from None


def _text_lines(path: Path, newline: str | None = None) -> Iterator[str]:
    """The lines of a UTF-8 file one at a time (a BOM is skipped), in bounded memory."""
    try:
        with open(path, encoding="utf-8-sig", newline=newline) as handle:
            yield from handle
    except UnicodeDecodeError:
        raise _not_utf8(path) from None


def _not_utf8(path: Path) -> DataError:
    """The error for a file that is not UTF-8, naming the first line that is not: the
    decoder reads in blocks and knows only a block's offset. No UTF-8 character holds a
    newline byte, so line by line decoding finds it exactly."""
    with open(path, "rb") as handle:
        for row, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return DataError(
                    f"not UTF-8 text (byte {exc.start + 1} of the line; save it as UTF-8)",
                    file=path,
                    row=row,
                )
    return DataError("not UTF-8 text (save it as UTF-8)", file=path)


class _LineWriter(RecordWriter):
    """Appends each chunk to an open text file: memory does not grow with the output."""

    def __init__(self, source: DataSource, path: Path, options: FileOptions) -> None:
        super().__init__(source, path, options)
        self.handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self.count = 0

    def close(self) -> None:
        self.handle.close()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=json_default)

try:  # JSON Lines read and written ten times faster; the standard library decides the rest
    import orjson
except ImportError:  # a --no-deps install: the standard library alone, slower
    orjson = None  # type: ignore[assignment]

# orjson reads integers past 64 bits as floats (changing them): lines with a run of this
# many digits are parsed by the standard library, which keeps them exact.
_LONG_DIGITS = re.compile(r"\d{19}")


def _parse_json_line(line: str, path: Path, row: int) -> Any:
    """One line of JSON Lines: fast where orjson reads it exactly; anything it refuses or
    might change goes to :func:`_parse_json`, which accepts it or names the problem."""
    if orjson is not None and not _LONG_DIGITS.search(line):
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
    return _parse_json(line, path, row)


def _json_line(row: Row) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(row, default=json_default, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # an integer past 64 bits, a key that is not a string
            pass
    return (_ENCODER.encode(row) + "\n").encode("utf-8")


def _parse_json(text: str, path: Path, row: int | None = None) -> Any:
    """JSON, with every way it can fail as one line: malformed, nested too deeply, numbers
    too long to convert, NaN and Infinity (which JSON does not have)."""
    try:
        value = _DECODER.decode(text)
        if _SURROGATE_ESCAPE.search(text):
            _check_unicode(value, path, row)
        return value
    except json.JSONDecodeError as exc:
        at = f"column {exc.colno}" if row is not None else f"line {exc.lineno} column {exc.colno}"
        raise DataError(f"malformed JSON at {at}: {exc.msg}", file=path, row=row) from None
    except RecursionError:
        raise DataError("JSON nested too deeply to read", file=path, row=row) from None
    except ValueError as exc:
        raise DataError(f"unreadable JSON value ({exc})", file=path, row=row) from None


# A \uD800-\uDFFF escape: half of a surrogate pair, or (alone) not a character at all.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _check_unicode(value: Any, path: Path, row: int | None) -> None:
    """Refuse text holding a lone surrogate escape (such as "\\ud800" without its pair): it
    is no character, and no UTF-8 file can hold it, so it would fail at writing."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(
            f"text holds a lone surrogate escape (\\u{ord(exc.object[exc.start]):04x}), "
            "which is not a character",
            file=path,
            row=row,
        ) from None


_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _refuse_lone_surrogates(path: Path) -> None:
    """The incremental parser turns a lone surrogate escape into "?" (changing the text):
    one fast pass over the bytes refuses such a file first, as the other readers do."""
    settled = 12  # bytes at a buffer's end whose verdict waits for the next block
    offset, buffer, start = 0, b"", 0  # offset: where the buffer starts in the file
    with open(path, "rb") as handle:
        while True:
            block = handle.read(1 << 22)
            buffer += block
            limit = len(buffer) - (settled if block else 0)
            found = _LONE_SURROGATE.search(buffer, start)
            if found and found.start() < limit:
                raise DataError(
                    f"text holds a lone surrogate escape ({found[0].decode()}) at byte "
                    f"{offset + found.start()}, which is not a character",
                    file=path,
                )
            if not block:
                return
            keep = settled + 6  # and 6 more: the lookbehind's context for what waits
            offset += max(len(buffer) - keep, 0)
            start = max(limit - max(len(buffer) - keep, 0), 0)  # where the verdicts stopped
            buffer = buffer[-keep:]


def _check_mapping(item: Any, path: Path, row: int) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise DataError(f"expected an object, got {type(item).__name__}", file=path, row=row)
    return item


class _WrittenInChunks(DataSource):
    """A format whose whole-file write is its chunk writer given everything at once."""

    def write(self, path: Path, records: list[Record], options: FileOptions) -> None:
        writer = self.open_writer(path, options)
        writer.write(records)
        writer.close()


class JsonSource(DataSource):
    name = "json"
    description = 'A JSON list of objects: [{"text": ..., "label": [...]}] (the reference format).'
    suffixes: ClassVar[tuple[str, ...]] = (".json",)

    def read(self, path: Path, options: FileOptions) -> list[Record]:
        data = _parse_json(_read_text(path), path)
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
        text = json.dumps(rows, ensure_ascii=False, indent=2, default=json_default)
        path.write_text(text + "\n", encoding="utf-8")

    def iter_read(self, path: Path, options: FileOptions) -> Iterator[Record]:
        """The array's objects one at a time, with an incremental parser (ijson)."""
        try:
            import ijson
        except ImportError:  # a --no-deps install: whole-file parsing still works
            yield from self.read(path, options)
            return

        _refuse_lone_surrogates(path)
        with open(path, "rb") as handle:
            if handle.read(3) != b"\xef\xbb\xbf":
                handle.seek(0)
            events = _depth_limited(ijson.parse(handle, buf_size=4096, use_float=True), path)
            row = 0
            try:
                first = next(events, None)
                if first is None or first[1] != "start_array":
                    for _ in events:  # malformed JSON says so (below), not "got dict"
                        pass
                    kind = {"start_map": "dict", None: "nothing"}.get(first and first[1], "a value")
                    raise DataError(f"expected a JSON list of records, got {kind}", file=path)
                for row, item in enumerate(ijson.items(events, "item"), start=1):
                    fields = _check_mapping(item, path, row)
                    yield record_from_fields(fields, file=path, row=row, options=options)
            except ijson.JSONError as exc:
                if path.stat().st_size <= EXACT_ERRORS_BELOW:  # say where, as json does
                    _parse_json(_read_text(path), path)
                problem = str(exc).strip().splitlines()[0]
                raise DataError(f"malformed JSON after row {row}: {problem}", file=path) from None
            except UnicodeDecodeError:
                raise DataError("not UTF-8 text", file=path, row=row + 1) from None

    def open_writer(self, path: Path, options: FileOptions) -> RecordWriter:
        return _JsonArrayWriter(self, path, options)


# Deeper JSON is refused: no record is nested this deep, and the parser's event prefixes
# grow with the depth (an input of brackets alone would take gigabytes).
MAX_JSON_DEPTH = 512


def _depth_limited(events: Iterator[Any], path: Path) -> Iterator[Any]:
    depth = 0
    for event in events:
        kind = event[1]
        if kind in ("start_map", "start_array"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise DataError("JSON nested too deeply to read", file=path)
        elif kind in ("end_map", "end_array"):
            depth -= 1
        yield event


# A malformed JSON file up to this size is parsed once more to name the line and column.
EXACT_ERRORS_BELOW = 256 << 20


class _JsonArrayWriter(_LineWriter):
    def write_rows(self, rows: Sequence[Row]) -> None:
        for row in rows:
            text = json.dumps(row, ensure_ascii=False, indent=2, default=json_default)
            self.handle.write(("[\n" if self.count == 0 else ",\n") + _indented(text))
            self.count += 1

    def close(self) -> None:
        self.handle.write("\n]\n" if self.count else "[]\n")
        super().close()


def _indented(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


class JsonLinesSource(_WrittenInChunks):
    name = "jsonl"
    description = "One JSON object per line; rows are line numbers."
    suffixes: ClassVar[tuple[str, ...]] = (".jsonl", ".ndjson")

    def read(self, path: Path, options: FileOptions) -> list[Record]:
        return list(self.iter_read(path, options))

    def iter_read(self, path: Path, options: FileOptions) -> Iterator[Record]:
        for row, line in enumerate(_text_lines(path), start=1):
            if not line.strip():
                continue
            item = _parse_json_line(line, path, row)
            yield record_from_fields(
                _check_mapping(item, path, row), file=path, row=row, options=options
            )

    def open_writer(self, path: Path, options: FileOptions) -> RecordWriter:
        return _JsonLinesWriter(self, path, options)


class _JsonLinesWriter(RecordWriter):
    def __init__(self, source: DataSource, path: Path, options: FileOptions) -> None:
        super().__init__(source, path, options)
        self.handle = open(path, "wb")  # noqa: SIM115

    def write_rows(self, rows: Sequence[Row]) -> None:
        self.handle.write(b"".join([_json_line(row) for row in rows]))

    def close(self) -> None:
        self.handle.close()


def _flat_fields(row: Row, options: FileOptions) -> Row:
    """Fields for a table: label lists joined by the separator, nested metadata (scores)
    as ``key:sub`` columns."""
    flat: Row = {}
    sep = options.label_sep or DEFAULT_LABEL_SEP
    for key, value in row.items():
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            for item in value:
                if sep in item:  # joined, it would read back as other items
                    raise DataError(
                        f"'{item}' holds the separator '{sep}' that joins the items of a "
                        "table cell; name another with --label-sep",
                        field=key,
                    )
            flat[key] = sep.join(value)  # labels, predicted
        elif isinstance(value, dict):
            flat.update(
                {
                    f"{key}:{sub}": json.dumps(subvalue, ensure_ascii=False, default=json_default)
                    if isinstance(subvalue, dict | list)
                    else subvalue
                    for sub, subvalue in value.items()
                }
            )
        elif isinstance(value, list):
            flat[key] = json.dumps(value, ensure_ascii=False, default=json_default)
        else:
            flat[key] = value
    return flat


def _flat_rows(rows: Sequence[Row], options: FileOptions, path: Path, done: int) -> list[Row]:
    """:func:`_flat_fields` of each row; a refusal names the output file and row."""
    flat = []
    for number, row in enumerate(rows, start=done + 1):
        try:
            flat.append(_flat_fields(row, options))
        except DataError as error:
            raise DataError(error.message, file=path, row=number, field=error.field) from None
    return flat


def check_unique_header(header: Sequence[str], path: Path) -> None:
    """A column name given twice would keep only its last cell: refused, naming it."""
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise DataError(
                f"column '{name}' appears twice in the header", file=path, row=1, field=name
            )
        seen.add(name)


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
        return list(self.iter_read(path, options))

    def iter_read(self, path: Path, options: FileOptions) -> Iterator[Record]:
        csv.field_size_limit(CSV_FIELD_LIMIT)  # the module's default, 131,072, is below ours
        reader = csv.reader(_text_lines(path, newline=""), delimiter=self.delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise DataError("empty file: no header row", file=path)
            header = [column.strip() for column in header]
            check_unique_header(header, path)
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
                yield record_from_fields(fields, file=path, row=row, options=options, cells=True)
        except csv.Error as exc:
            raise DataError(
                f"malformed {self.name.upper()}: {exc}", file=path, row=reader.line_num
            ) from None

    def write(self, path: Path, records: list[Record], options: FileOptions) -> None:
        rows = _flat_rows([record_fields(record, options) for record in records], options, path, 0)
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=_columns(rows), delimiter=self.delimiter)
            writer.writeheader()
            writer.writerows(rows)

    def open_writer(self, path: Path, options: FileOptions) -> RecordWriter:
        return _TableWriter(self, path, options)


def check_fixed_columns(
    rows: Sequence[Row], columns: Collection[str], path: Path, done: int
) -> None:
    """A table's columns are those of its first chunk: a later row with a field they lack
    stops with one line rather than losing it."""
    known = set(columns)
    for offset, row in enumerate(rows):
        extra = [key for key in row if key not in known]
        if extra:
            raise DataError(
                f"output row {done + offset + 1} has a field the first rows lack "
                f"('{extra[0]}'); write .jsonl for rows with varying fields",
                file=path,
            )


class _TableWriter(_LineWriter):
    """CSV/TSV in chunks (columns: see :func:`check_fixed_columns`)."""

    def __init__(self, source: CsvSource, path: Path, options: FileOptions) -> None:
        super().__init__(source, path, options)
        self.delimiter = source.delimiter
        self.writer: csv.DictWriter[str] | None = None

    def write_rows(self, rows: Sequence[Row]) -> None:
        flat = _flat_rows(rows, self.options, self.path, self.count)
        if not flat:
            return
        if self.writer is None:
            self.writer = csv.DictWriter(
                self.handle, fieldnames=_columns(flat), delimiter=self.delimiter
            )
            self.writer.writeheader()
        check_fixed_columns(flat, self.writer.fieldnames, self.path, self.count)
        self.writer.writerows(flat)
        self.count += len(flat)


class TsvSource(CsvSource):
    name = "tsv"
    description = "Tab-separated table with a header; labels joined by --label-sep (default |)."
    suffixes: ClassVar[tuple[str, ...]] = (".tsv", ".tab")
    delimiter = "\t"


# An .xlsx is a zip archive: refuse one that would unpack to more than this before reading
# it (a "zip bomb" of 1 MB can unpack to gigabytes), or that is this much smaller packed.
MAX_UNPACKED_BYTES = 1 << 30
MAX_PACKING_RATIO = 200


def _check_unpacked_size(path: Path) -> None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"not a readable .xlsx workbook ({exc})", file=path) from None
    packed = max(path.stat().st_size, 1)
    if unpacked > MAX_UNPACKED_BYTES or (
        unpacked > 1 << 26 and unpacked / packed > MAX_PACKING_RATIO
    ):
        raise DataError(
            f"unpacks to {unpacked >> 20} MB from {packed >> 20} MB: refused as a possible zip "
            "bomb (save large sheets as CSV)",
            file=path,
        )


# Per row: (first column, last column, the merged range or None for a formula, its first cell)
_Hidden = dict[int, list[tuple[int, int, str | None, str]]]


def _hidden_values(path: Path, sheet_xml: str | None) -> _Hidden:
    """Cells whose value a reader cannot see, by row. A merged range keeps its value in
    its first cell only (the others read as empty, which would silently drop labels), and
    a formula saved without its result (a workbook written by a program and never opened
    in Excel) has no value to read. One streamed pass over the sheet's XML, which
    openpyxl's read-only mode does not report."""
    import zipfile
    from xml.etree.ElementTree import iterparse

    from openpyxl.utils.cell import get_column_letter, range_boundaries

    if sheet_xml is None:
        return {}
    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    hidden: _Hidden = {}
    with zipfile.ZipFile(path) as archive, archive.open(sheet_xml) as xml:
        data = None
        for event, element in iterparse(xml, events=("start", "end")):
            if event == "start":
                if element.tag == f"{main}sheetData":
                    data = element
            elif element.tag == f"{main}c" and element.find(f"{main}f") is not None:
                value = element.find(f"{main}v")
                where = element.get("r")
                if (value is None or value.text is None) and where:
                    column, row = range_boundaries(where)[:2]
                    hidden.setdefault(row, []).append((column, column, None, where))
            elif element.tag == f"{main}row" and data is not None:
                data.clear()  # rows already read: memory stays flat on a long sheet
            elif element.tag == f"{main}mergeCell" and element.get("ref"):
                span = element.get("ref", "")
                first_column, first_row, last_column, last_row = range_boundaries(span)
                first = f"{get_column_letter(first_column)}{first_row}"
                if first_column < last_column:  # the first row, right of the first cell
                    hidden.setdefault(first_row, []).append(
                        (first_column + 1, last_column, span, first)
                    )
                for row in range(first_row + 1, last_row + 1):
                    hidden.setdefault(row, []).append((first_column, last_column, span, first))
    return hidden


def _hidden_problem(hidden: _Hidden, row: int, header: list[str]) -> tuple[str, str] | None:
    """(the problem, the field) for the first named column of ``row`` with a hidden value."""
    from openpyxl.utils.cell import get_column_letter

    for first_column, last_column, span, first in sorted(hidden.get(row, ())):
        for column in range(first_column, min(last_column, len(header)) + 1):
            if header[column - 1]:
                cell = f"{get_column_letter(column)}{row}"
                if span is None:
                    problem = (
                        f"cell {cell} holds a formula saved without its result; open and "
                        "save the workbook in Excel, or paste the values"
                    )
                else:
                    problem = (
                        f"cell {cell} is merged into {first} ({span}), so it reads as empty; "
                        "unmerge the cells and give every row its own value"
                    )
                return problem, header[column - 1]
    return None


class ExcelSource(_WrittenInChunks):
    name = "xlsx"
    description = "Excel workbook: first sheet (or --sheet), header in row 1."
    suffixes: ClassVar[tuple[str, ...]] = (".xlsx",)

    def read(self, path: Path, options: FileOptions) -> list[Record]:
        return list(self.iter_read(path, options))

    def iter_read(self, path: Path, options: FileOptions) -> Iterator[Record]:
        """Rows one at a time (openpyxl's read-only mode streams the sheet)."""
        import zipfile

        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException

        _check_unpacked_size(path)
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
            hidden = _hidden_values(path, getattr(sheet, "_worksheet_path", None))
            if hasattr(sheet, "reset_dimensions"):
                # read-only mode trusts the sheet's declared size, which writers may get
                # wrong: rows past it would be skipped without a word
                sheet.reset_dimensions()
            rows = sheet.iter_rows(values_only=True)
            header_cells = next(rows, None)
            if header_cells is None:
                raise DataError("empty sheet: no header row", file=path)
            header = ["" if cell is None else str(cell).strip() for cell in header_cells]
            check_unique_header(header, path)
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
            for row, cells in enumerate(rows, start=2):
                if row in hidden and (found := _hidden_problem(hidden, row, header)):
                    raise DataError(found[0], file=path, row=row, field=found[1])
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
                yield record_from_fields(fields, file=path, row=row, options=options, cells=True)
        finally:
            workbook.close()

    def open_writer(self, path: Path, options: FileOptions) -> RecordWriter:
        return _ExcelWriter(self, path, options)


def _looks_like_formula(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.startswith("=")


class _ExcelWriter(RecordWriter):
    """A sheet in chunks: openpyxl's write-only mode keeps rows out of memory; columns as
    for CSV (:func:`check_fixed_columns`)."""

    def __init__(self, source: ExcelSource, path: Path, options: FileOptions) -> None:
        super().__init__(source, path, options)
        # made with the first row: a write-only sheet left unwritten complains when collected
        self.workbook: Any = None
        self.sheet: Any = None
        self.columns: list[str] | None = None
        self.count = 0

    def _open(self, header: list[str]) -> None:
        import openpyxl

        self.workbook = openpyxl.Workbook(write_only=True)
        self.sheet = self.workbook.create_sheet("records")
        self.sheet.append(header)

    def write_rows(self, rows: Sequence[Row]) -> None:
        flat = _flat_rows(rows, self.options, self.path, self.count)
        if not flat:
            return
        columns = self.columns or _columns(flat)
        try:  # every cell checked before the chunk's first is written
            check_fixed_columns(flat, columns, self.path, self.count)
            chunk = [
                [self._cell(row.get(column), number, column) for column in columns]
                for number, row in enumerate(flat, start=self.count + 1)
            ]
        except DataError:
            if self.sheet is not None:  # rows went out: end openpyxl's sheet writer, which
                with contextlib.suppress(Exception):  # complains when collected unended
                    self.sheet.close()
            raise
        if self.columns is None:
            self.columns = columns
            self._open(columns)
        for cells in chunk:
            self.sheet.append([self._text_cell(c) if _looks_like_formula(c) else c for c in cells])
        self.count += len(flat)

    def _text_cell(self, value: str) -> object:
        """Text stored as text: openpyxl would store a string starting with '=' as a
        formula, run when the sheet is opened."""
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(self.sheet, value=value)
        cell.data_type = "s"
        return cell

    def _cell(self, value: object, row: int, column: str) -> object:
        """``value`` checked for a cell: text that a cell cannot hold is refused, not cut."""
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        if not isinstance(value, str):
            return value
        if len(value) > XLSX_CELL_CHARS:
            problem = f"{len(value)} characters; an .xlsx cell holds {XLSX_CELL_CHARS}"
        elif found := ILLEGAL_CHARACTERS_RE.search(value):
            problem = f"control character {found.group()!r}, which an .xlsx cell cannot hold"
        else:
            return value
        raise DataError(
            f"{problem} (write .csv or .jsonl instead)", file=self.path, row=row, field=column
        )

    def close(self) -> None:
        if self.workbook is None:
            self._open([self.options.text_field])
        self.workbook.save(self.path)


class TextLinesSource(DataSource):
    name = "txt"
    description = "Plain text, one name per line, no labels (blank lines are skipped)."
    suffixes: ClassVar[tuple[str, ...]] = (".txt",)
    writable = False

    def read(self, path: Path, options: FileOptions) -> list[Record]:
        return list(self.iter_read(path, options))

    def iter_read(self, path: Path, options: FileOptions) -> Iterator[Record]:
        if options.require_labels:
            raise DataError(
                "plain text holds names only, no labels; give labelled data as .json, "
                ".jsonl, .csv, .tsv or .xlsx",
                file=path,
            )
        for row, line in enumerate(_text_lines(path), start=1):
            if line.strip():
                yield Record(text=line.strip(), source=options.source, file=str(path), row=row)

    def write(self, path: Path, records: list[Record], options: FileOptions) -> None:
        raise DataError("plain text holds names only and cannot be written", file=path)


@hookimpl
def register_data_sources(register):  # type: ignore[no-untyped-def]
    for source in (JsonSource, JsonLinesSource, CsvSource, TsvSource, ExcelSource, TextLinesSource):
        register(source)
