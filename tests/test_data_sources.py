"""Readers and writers of every built-in format: round trips and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from tagger_core import DataError, FileOptions, PluginError, Record, read_records, write_records

RECORDS = [
    Record(text="香港海洋公园", labels=("Playgrounds", "Zoos & Animal Parks"), id="hk-1"),
    Record(text="大三巴牌坊", labels=("Others",), id="mo-7"),
    Record(text='Name, with "quotes"\tand tab', labels=("Museums & Galleries",), id="x"),
    Record(text="未标注的地方", labels=(), id="y"),
]

FORMATS = [".json", ".jsonl", ".csv", ".tsv", ".xlsx"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_keeps_text_labels_and_ids(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    write_records(path, RECORDS)
    back = read_records(path)
    assert [(r.text, r.labels, r.id) for r in back] == [(r.text, r.labels, r.id) for r in RECORDS]
    assert all(r.file == str(path) for r in back)


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_with_custom_fields_and_separator(tmp_path: Path, suffix: str) -> None:
    options = FileOptions(text_field="name", label_field="tags", label_sep=";")
    path = tmp_path / f"data{suffix}"
    write_records(path, RECORDS, options=options)
    back = read_records(path, options=options)
    assert [r.labels for r in back] == [r.labels for r in RECORDS]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".xlsx"])
def test_table_writers_flatten_scores_into_columns(tmp_path: Path, suffix: str) -> None:
    record = Record(
        text="太平山顶", labels=("Natural Landscape",), metadata={"scores": {"A": 0.25}}
    )
    path = tmp_path / f"out{suffix}"
    write_records(path, [record])
    back = read_records(path)[0]
    assert float(back.metadata["scores:A"]) == 0.25


def test_json_reference_format_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "ref.json"
    path.write_text(
        json.dumps(
            [{"text": "西湖", "label": ["Natural Landscape"], "city": "杭州"}], ensure_ascii=False
        ),
        encoding="utf-8",
    )
    [record] = read_records(path, options=FileOptions(source="klook"))
    assert record.labels == ("Natural Landscape",)
    assert record.metadata == {"city": "杭州"}
    assert record.source == "klook"
    assert record.row == 1


def test_csv_label_cell_split_by_separator(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\n海洋公园,Playgrounds|Zoos & Animal Parks\n", encoding="utf-8")
    assert read_records(path)[0].labels == ("Playgrounds", "Zoos & Animal Parks")


def test_csv_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "excel-export.csv"
    path.write_bytes("text,label\n西湖,Natural Landscape\n".encode("utf-8-sig"))
    assert read_records(path)[0].text == "西湖"


def test_unlabelled_input_allowed_when_labels_not_required(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("text\n西湖\n", encoding="utf-8")
    assert read_records(path, options=FileOptions(require_labels=False))[0].labels == ()


def test_format_overrides_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text('{"text": "西湖", "label": []}\n', encoding="utf-8")
    assert read_records(path, format="jsonl")[0].text == "西湖"


def _error(path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_records(path, **kwargs)
    return str(info.value)


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"text": "a", "label": []},\n {"text": }]', encoding="utf-8")
    message = _error(path)
    assert message.startswith(f"{path}: malformed JSON at line 2 column")


def test_malformed_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": []}\n{"text": "b", \n', encoding="utf-8")
    assert _error(path).startswith(f"{path}, row 2: malformed JSON")


def test_json_item_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"text": "a", "label": []}, "b"]', encoding="utf-8")
    assert _error(path) == f"{path}, row 2: expected an object, got str"


def test_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"text": "a", "label": []}, {"label": ["Others"]}]', encoding="utf-8")
    assert _error(path) == f"{path}, row 2, field 'text': missing field"


def test_missing_label_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"text": "a"}]', encoding="utf-8")
    assert _error(path) == f"{path}, row 1, field 'label': missing field"


def test_labels_of_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"text": "a", "label": {"x": 1}}]', encoding="utf-8")
    assert "row 1, field 'label': expected a list of labels, got dict" in _error(path)


def test_empty_text_is_an_error_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"text": "a", "label": []}, {"text": "  ", "label": []}]', encoding="utf-8")
    assert _error(path) == f"{path}, row 2, field 'text': empty text"


def test_csv_row_with_wrong_number_of_cells(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "text,label\n西湖,Natural Landscape\n黄山,Natural Landscape,extra\n", encoding="utf-8"
    )
    assert _error(path) == f"{path}, row 3: expected 2 cells as in the header, found 3"


def test_csv_unterminated_quote(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('text,label\n"西湖,Natural Landscape\n', encoding="utf-8")
    assert "malformed CSV" in _error(path)


def test_csv_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,label\n西湖,Natural Landscape\n", encoding="utf-8")
    assert _error(path) == f"{path}, row 1, field 'text': no column 'text' in header (name, label)"


def test_csv_empty_text_cell(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("text,label\n,Others\n", encoding="utf-8")
    assert _error(path) == f"{path}, row 2, field 'text': empty text"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes("text,label\n西湖,Others\n".encode("gbk"))
    assert "not UTF-8 text" in _error(path)


def test_excel_row_without_text(tmp_path: Path) -> None:
    path = tmp_path / "bad.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["text", "label"])
    sheet.append(["西湖", "Natural Landscape"])
    sheet.append([None, "Others"])
    workbook.save(path)
    assert _error(path) == f"{path}, row 3, field 'text': empty text"


def test_excel_cell_outside_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["text", "label"])
    sheet.append(["西湖", "Natural Landscape", "stray"])
    workbook.save(path)
    assert _error(path) == f"{path}, row 2: a cell has no column header"


def test_excel_numbers_become_text_and_sheet_choice(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.title = "first"
    sheet = workbook.create_sheet("names")
    sheet.append(["text", "label"])
    sheet.append([798, "Museums & Galleries"])
    workbook.save(path)
    [record] = read_records(path, options=FileOptions(sheet="names"))
    assert record.text == "798"
    assert "no sheet 'nope'" in _error(path, options=FileOptions(sheet="nope"))


def test_corrupt_excel_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.xlsx"
    path.write_bytes(b"this is not a zip file")
    assert _error(path).startswith(f"{path}: not a readable .xlsx workbook")


def test_missing_file(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.json") == f"{tmp_path / 'nope.json'}: file does not exist"


def test_empty_file_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("[]", encoding="utf-8")
    assert _error(path) == f"{path}: no records in file"


def test_unknown_suffix_and_format(tmp_path: Path) -> None:
    path = tmp_path / "data.avro"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(PluginError, match=r"unknown file suffix '\.avro'.*--format"):
        read_records(path)
    with pytest.raises(PluginError, match=r"unknown data source 'jsn'.*did you mean 'json'"):
        read_records(path, format="jsn")
