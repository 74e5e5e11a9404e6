"""Inputs that once produced a traceback or a silent surprise: each is now one line naming
the file, row and field, with exit status 2 (or 1 from validate)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TOY, one_line_error, train_args

from tagger_core import DataError, FileOptions, Record, Tagger, read_records, write_records
from tagger_core.cli import cli


def _train(path: Path, *extra: str):
    return CliRunner().invoke(cli, train_args(path, path.parent / "m", *extra))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000, "JSON nested too deeply to read"),
        ("deep.jsonl", '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
         "row 1: JSON nested too deeply to read"),
        ("long.json", '[{"text": "a", "label": [], "n": ' + "9" * 5000 + "}]",
         "unreadable JSON value (Exceeds the limit (4300 digits)"),
        ("nan.json", '[{"text": NaN, "label": ["Others"]}]', "unreadable JSON value (NaN is not valid JSON)"),
        ("inf.jsonl", '{"text": "a", "label": ["Others"], "w": Infinity}\n',
         "row 1: unreadable JSON value (Infinity is not valid JSON)"),
        ("number.json", '[{"text": "a", "label": [3]}]',
         "row 1, field 'label': labels must be non-empty strings, got 3"),
        # A lone surrogate escape is no character: no UTF-8 output could hold it.
        ("surrogate.jsonl", '{"text": "a\\ud800b", "label": ["Others"]}\n',
         "row 1: text holds a lone surrogate escape (\\ud800), which is not a character"),
        ("surrogate.json", '[{"text": "a\\udc00b", "label": ["Others"]}]',
         "text holds a lone surrogate escape (\\udc00) at byte 12, which is not a character"),
        ("string.json", '[{"text": "故宫", "label": "Museums & Galleries|Others"}]',
         "row 1, field 'label': expected a list of labels, got the string 'Museums & Galleries|Others'; "
         "name a separator (--label-sep) to split strings into labels"),
    ],
)  # fmt: skip
def test_hostile_json_is_one_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    line = one_line_error(_train(path))
    assert line.startswith(f"Error: {path}") and message in line, line


def test_a_label_string_splits_once_a_separator_is_named(tmp_path: Path) -> None:
    path = tmp_path / "string.json"
    path.write_text('[{"text": "故宫", "label": "Museums & Galleries|Others"}]', "utf-8")
    [record] = read_records(path, options=FileOptions(label_sep="|"))
    assert record.labels == ("Museums & Galleries", "Others")
    csv = tmp_path / "cells.csv"
    csv.write_text("text,label\n故宫,Museums & Galleries|Others\n", encoding="utf-8")
    assert read_records(csv)[0].labels == ("Museums & Galleries", "Others")  # cells: "|"


def test_a_zip_bomb_is_refused_before_unpacking(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"0" * (80 << 20))  # 80 MB of zeros
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(
        DataError, match=r"unpacks to 80 MB from 0 MB: refused as a possible zip bomb"
    ):
        read_records(bomb)


def test_validate_says_no_records_and_exits_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("[]", encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(empty), "--taxonomy", "attractions"])
    assert result.exit_code == 1
    assert result.stdout.strip() == f"No records in {empty}: nothing to check."


def test_plain_text_output_escapes_control_characters(tmp_path: Path) -> None:
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    model = Tagger.create("attractions").train(records).save(tmp_path / "m")
    names = tmp_path / "names.jsonl"
    rows = [{"text": "故宫\x1b[31m红"}, {"text": "两行\n名字"}, {"text": "分\u2028隔"}]
    names.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = CliRunner().invoke(cli, ["predict", str(model), "-i", str(names)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and "\x1b" not in result.stdout
    assert [line.split("\t")[0] for line in lines] == [
        "故宫\\x1b[31m红",
        "两行\\n名字",
        "分\\u2028隔",
    ]


def _sheet(path: Path, rows: list[list[object]], merged: tuple[str, ...] = ()) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    for span in merged:
        sheet.merge_cells(span)
    workbook.save(path)
    return path


@pytest.mark.parametrize(
    ("rows", "merged", "message"),
    [
        # Two names sharing one merged label cell: the second would read as unlabelled.
        ([["text", "label"], ["故宫", "Museums & Galleries"], ["国博", None]], ("B2:B3",),
         "row 3, field 'label': cell B3 is merged into B2 (B2:B3), so it reads as empty"),
        # A row that is all merged cells would read as blank and vanish.
        ([["text", "label"], ["故宫", "Others"], [None, None]], ("A2:A3", "B2:B3"),
         "row 3, field 'text': cell A3 is merged into A2 (A2:A3)"),
        ([["text", "label", "x", "y"], ["故宫", "Others", "m", None]], ("C2:D2",),
         "row 2, field 'y': cell D2 is merged into C2 (C2:D2)"),
        # openpyxl saves formulas without results: nothing to read until Excel computes it.
        ([["text", "label"], ["故宫", '=CONCAT("Oth", "ers")']], (),
         "row 2, field 'label': cell B2 holds a formula saved without its result"),
    ],
)  # fmt: skip
def test_cells_whose_value_cannot_be_read_are_one_line(
    tmp_path: Path, rows: list[list[object]], merged: tuple[str, ...], message: str
) -> None:
    path = _sheet(tmp_path / "sheet.xlsx", rows, merged)
    line = one_line_error(_train(path))
    assert line.startswith(f"Error: {path}, {message}"), line


def test_merged_cells_outside_the_data_are_fine(tmp_path: Path) -> None:
    """A merged title above unused columns, or merged columns with no header, hide nothing
    that is read."""
    rows = [["text", "label", None, None], ["故宫", "Others", "note", None]]
    path = _sheet(tmp_path / "sheet.xlsx", rows, ("C2:D2",))
    with pytest.raises(DataError, match="a cell has no column header"):  # as without merging
        read_records(path)
    path = _sheet(tmp_path / "ok.xlsx", [["text", "label"], ["故宫", "Others"]], ("D5:E6",))
    assert [(r.text, r.labels) for r in read_records(path)] == [("故宫", ("Others",))]


def test_an_escaped_surrogate_pair_is_one_character(tmp_path: Path) -> None:
    for name, content in (
        ("pair.jsonl", '{"text": "a\\ud83d\\ude00b", "label": []}\n'),
        ("pair.json", '[{"text": "a\\ud83d\\ude00b", "label": []}]'),
    ):
        (tmp_path / name).write_text(content, encoding="utf-8")
        assert read_records(tmp_path / name)[0].text == "a\U0001f600b"


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".xlsx", ".parquet"])
def test_a_column_named_twice_is_refused(tmp_path: Path, suffix: str) -> None:
    """A repeated header would keep only one of its cells (the other lost unseen)."""
    path = tmp_path / f"names{suffix}"
    if suffix == ".xlsx":
        _sheet(path, [["text", "label", "text"], ["故宫", "Others", "外滩"]])
    elif suffix == ".parquet":
        arrow = pytest.importorskip("pyarrow")
        parquet = pytest.importorskip("pyarrow.parquet")
        table = arrow.table([["故宫"], ["Others"], ["外滩"]], names=["text", "label", "text"])
        parquet.write_table(table, path)
    else:
        sep = "," if suffix == ".csv" else "\t"
        path.write_text(
            sep.join(["text", "label", "text"])
            + "\n"
            + sep.join(["故宫", "Others", "外滩"])
            + "\n",
            encoding="utf-8",
        )
    with pytest.raises(DataError, match="column 'text' appears twice in the header") as error:
        read_records(path)
    assert error.value.row == 1 and error.value.field == "text"


def test_a_csv_cell_longer_than_the_csv_modules_default_is_read(tmp_path: Path) -> None:
    long = "长" * 200_000  # csv's own limit is 131,072 characters
    path = tmp_path / "long.csv"
    path.write_text(f"text,label\n{long},Others\n", encoding="utf-8")
    assert read_records(path)[0].text == long


def test_rows_past_an_xlsx_sheets_declared_size_are_read(tmp_path: Path) -> None:
    """Read-only openpyxl trusts the <dimension> a writer declared; a wrong one must not
    cut the rows short."""
    path = _sheet(
        tmp_path / "ten.xlsx", [["text", "label"]] + [[f"名字{i}", "Others"] for i in range(9)]
    )
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    parts[sheet] = parts[sheet].replace(b'<dimension ref="A1:B10" />', b'<dimension ref="A1:B3" />')
    assert b'ref="A1:B3"' in parts[sheet]
    with zipfile.ZipFile(path, "w") as target:
        for name, data in parts.items():
            target.writestr(name, data)
    assert len(read_records(path)) == 9


def test_a_file_that_is_not_utf8_names_its_first_bad_line(tmp_path: Path) -> None:
    rows = ["text,label"] + [f"名{i},Others" for i in range(3000)] + ["café,Others"]
    path = tmp_path / "latin.csv"
    path.write_bytes(
        "\n".join(rows).encode("utf-8").replace("café".encode(), "café".encode("latin-1"))
    )
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte 4 of the line") as error:
        read_records(path)
    assert error.value.row == 3002


def test_names_from_standard_input(tmp_path: Path) -> None:
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    model = str(Tagger.create("attractions").train(records).save(tmp_path / "m"))
    marked = CliRunner().invoke(
        cli, ["predict", model, "--json"], input="\ufeff故宫\n外滩\n".encode()
    )
    assert [json.loads(line)["text"] for line in marked.stdout.splitlines()] == ["故宫", "外滩"]
    broken = CliRunner().invoke(cli, ["predict", model], input=b"ok\nfine\ncaf\xe9\n")
    assert one_line_error(broken) == "Error: <stdin>, row 3: not UTF-8 text (byte 4 of the line)"
    output = tmp_path / "out.csv"
    output.write_text("earlier\n")
    empty = CliRunner().invoke(
        cli, ["predict", model, "-o", str(output), "--force"], input=b"\n \n"
    )
    assert "no names to tag" in one_line_error(empty) and "unchanged" in one_line_error(empty)
    assert output.read_text() == "earlier\n"


def test_an_input_column_shaped_like_a_score_is_not_overwritten(tmp_path: Path) -> None:
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    model = str(Tagger.create("attractions").train(records).save(tmp_path / "m"))
    names = tmp_path / "names.csv"
    names.write_text("text,scores:Others\n故宫,MY_VALUE\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["predict", model, "-i", str(names), "-o", str(tmp_path / "o.csv")]
    )
    assert "'scores:Others' field; predictions would overwrite it" in one_line_error(result)


def test_dates_decimals_and_nan_cells_are_written_as_json(tmp_path: Path) -> None:
    """Spreadsheet dates and Parquet decimals have no JSON type, and NaN no JSON form:
    each output is still JSON that tagger reads back."""
    import datetime
    import decimal

    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    model = str(Tagger.create("attractions").train(records).save(tmp_path / "m"))
    sheet = _sheet(
        tmp_path / "dated.xlsx", [["text", "opened"], ["故宫", datetime.datetime(1925, 10, 10)]]
    )
    inputs = [sheet]
    arrow = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    table = arrow.table(
        {
            "text": ["外滩", "西湖"],
            "price": arrow.array([decimal.Decimal("12.50"), None], arrow.decimal128(5, 2)),
            "rating": [float("nan"), 4.5],
        }
    )
    parquet.write_table(table, tmp_path / "priced.parquet")
    inputs.append(tmp_path / "priced.parquet")
    for source in inputs:
        for suffix in (".json", ".jsonl"):
            out = tmp_path / f"{source.stem}{suffix}"
            result = CliRunner().invoke(cli, ["predict", model, "-i", str(source), "-o", str(out)])
            assert result.exit_code == 0, result.output
            rows = read_records(out, options=FileOptions(require_labels=False))
            assert rows[0].text == ("故宫" if source == sheet else "外滩")
        shown = CliRunner().invoke(cli, ["predict", model, "-i", str(source), "--json"])
        assert shown.exit_code == 0, shown.output
        first = json.loads(shown.stdout.splitlines()[0])
        if source == sheet:
            assert first["opened"] == "1925-10-10T00:00:00"
        else:
            assert first["price"] == "12.50" and first["rating"] is None


def test_xlsx_cells_are_text_or_refused_never_formulas_or_cut(tmp_path: Path) -> None:
    import openpyxl

    formula = [Record(text='=HYPERLINK("http://x","点我")', labels=("Others",))]
    out = tmp_path / "names.xlsx"
    write_records(out, formula)
    cell = openpyxl.load_workbook(out).active["A2"]
    assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")
    assert read_records(out)[0].text == formula[0].text
    for text, problem in [("长" * 40_000, "40000 characters"), ("a\x07b", "control character")]:
        with pytest.raises(DataError, match=problem) as error:
            write_records(tmp_path / "bad.xlsx", [Record(text=text, labels=("Others",))])
        assert error.value.row == 1 and error.value.field == "text"


def test_a_label_holding_the_separator_is_refused_in_a_table(tmp_path: Path) -> None:
    records = [Record(text="动物园", labels=("Zoos & Animal Parks", "Playgrounds"))]
    with pytest.raises(DataError, match="holds the separator '&'") as error:
        write_records(tmp_path / "o.csv", records, options=FileOptions(label_sep="&"))
    assert error.value.row == 1 and error.value.field == "label"
    write_records(tmp_path / "o.csv", records)  # the default "|" is fine
    assert read_records(tmp_path / "o.csv")[0].labels == records[0].labels


def test_a_parquet_output_never_drops_a_later_rows_field(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from tagger_core import record_writer

    lacks = r"output row 2 has a field the first rows lack \('city'\)"
    with (
        pytest.raises(DataError, match=lacks),
        record_writer(tmp_path / "o.parquet") as writer,
    ):
        writer.write_rows([{"text": "故宫"}])
        writer.write_rows([{"text": "外滩", "city": "上海"}])


def test_outputs_never_land_on_inputs_or_on_each_other(tmp_path: Path) -> None:
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    model = Tagger.create("attractions").train(records).save(tmp_path / "m")
    data = tmp_path / "gold.json"
    data.write_text(
        json.dumps([{"text": t, "label": labels} for t, labels in TOY], ensure_ascii=False)
    )
    before = data.read_text()
    runner = CliRunner()
    split = ["split", str(data), "--taxonomy", "attractions", "-o", str(tmp_path / "s")]
    cases = [
        (
            ["evaluate", str(model), str(data), "--metrics-file", str(data), "--force"],
            "is an input",
        ),
        (
            [
                "evaluate",
                str(model),
                str(data),
                "--errors-file",
                str(model / "manifest.json"),
                "--force",
            ],
            "is an input",
        ),
        (
            [
                "evaluate",
                str(model),
                str(data),
                "--metrics-file",
                str(tmp_path / "a.json"),
                "--sweep-file",
                str(tmp_path / "a.json"),
            ],
            "two outputs",
        ),
        (["predict", str(model), "-i", str(data), "-o", str(data), "--force"], "is an input"),
        (["taxonomy", "infer", str(data), "-o", str(data), "--force"], "is an input"),
        ([*split, "--names", "../x,b,c"], "not a plain file name"),
        ([*split, "--ratios", "inf:1"], "positive finite"),
        (
            ["optimize", str(model), str(data), "--thresholds", "0.1:0.9:0.0000001"],
            "at most 1000 steps",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(cli, args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert data.read_text() == before and Tagger.load(model)
    assert not (tmp_path / "x.json").exists()


def test_a_log_scale_search_range_must_start_above_zero() -> None:
    from tagger_core import ParamRange, PluginError

    with pytest.raises(PluginError, match="log scale needs low > 0"):
        ParamRange(low=-1.0, high=1.0, log=True)
    assert ParamRange(low=0.1, high=1.0, log=True).low == 0.1
