"""The `tagger` CLI through click's CliRunner: the main job, every input path, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
import yaml
from click.testing import CliRunner
from conftest import EXAMPLES, TOY, one_line_error, write_json

from tagger_core import FileOptions, Tagger, read_records
from tagger_core.cli import cli
from tagger_core.cli.predict import interactive


@pytest.fixture
def model(runner: CliRunner, toy_file: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model"
    result = runner.invoke(
        cli,
        [
            "train",
            "--taxonomy",
            "attractions",
            "--train",
            str(toy_file),
            "--valid",
            str(toy_file),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_main_job_on_bundled_examples(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "attractions-model"
    result = runner.invoke(
        cli,
        [
            "train", "--taxonomy", "attractions",
            "--train", str(EXAMPLES / "train.json"), "--valid", str(EXAMPLES / "validation.json"),
            "-o", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Validation: exact match" in result.stdout and f"Saved tagger to {out}" in result.stdout
    result = runner.invoke(cli, ["predict", str(out), "故宫博物院", "香港海洋公园"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("故宫博物院\tMuseums & Galleries (")
    result = runner.invoke(cli, ["evaluate", str(out), str(EXAMPLES / "validation.json")])
    assert result.exit_code == 0
    assert "exact match" in result.stdout and "Museums & Galleries" in result.stdout


def test_plugins_and_taxonomy_listings(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["plugins"])
    assert "tfidf (tagger " in result.output and "encoders: tfidf" in result.output
    result = runner.invoke(cli, ["taxonomies"])
    assert result.output.splitlines()[1].split()[:4] == [
        "attractions",
        "attraction",
        "multi-label",
        "9",
    ]
    result = runner.invoke(cli, ["taxonomy", "show", "attractions"])
    assert "水上乐园" in result.output and "exclusive (stand alone): Others" in result.output
    shown = json.loads(runner.invoke(cli, ["taxonomy", "show", "attractions", "--json"]).output)
    assert len(shown["labels"]) == 9
    assert "Keywords" not in result.output  # the attraction taxonomy names none


def test_taxonomy_show_lists_keywords(runner: CliRunner) -> None:
    tours = Path(__file__).resolve().parents[1] / "examples/taxonomies/tours.yaml"
    shown = runner.invoke(cli, ["taxonomy", "show", str(tours)]).output
    keywords = shown.split("Keywords", 1)[1]
    assert any(line.split()[:2] == ["cruise", "游船,"] for line in keywords.splitlines())


def test_taxonomy_infer_writes_a_usable_file(
    runner: CliRunner, toy_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "inferred.yaml"
    result = runner.invoke(cli, ["taxonomy", "infer", str(toy_file), "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert data["name"] == "inferred" and data["mode"] == "multi-label"
    labelled = all(r.labels for r in read_records(toy_file))
    assert data.get("constraints", {}).get("min_labels", 0) == int(labelled)
    assert ("declares min_labels: 1" in result.output) == labelled
    assert {label["id"] for label in data["labels"]} == {
        label for r in read_records(toy_file) for label in r.labels
    }
    line = one_line_error(runner.invoke(cli, ["taxonomy", "infer", str(toy_file), "-o", str(out)]))
    assert line == f"Error: {out} already exists; use --force to replace it"
    result = runner.invoke(
        cli, ["train", "--taxonomy", str(out), "--train", str(toy_file), "-o", str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output


def test_predict_from_stdin_lines_as_json(runner: CliRunner, model: Path) -> None:
    result = runner.invoke(cli, ["predict", str(model), "--json"], input="故宫博物院\n\n海洋公园\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["故宫博物院", "海洋公园"]
    assert set(rows[0]["scores"]) == set(Tagger.load(model).taxonomy.label_ids)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".tsv", ".xlsx"])
def test_predict_file_to_file_in_every_format(
    runner: CliRunner, model: Path, tmp_path: Path, suffix: str
) -> None:
    names = tmp_path / "names.csv"
    names.write_text("id,text\n1,故宫博物院\n2,海洋公园\n", encoding="utf-8")
    out = tmp_path / f"predictions{suffix}"
    result = runner.invoke(cli, ["predict", str(model), "-i", str(names), "-o", str(out)])
    assert result.exit_code == 0, result.output
    back = read_records(out, options=FileOptions(label_field="predicted"))
    assert [(r.id, r.text) for r in back] == [("1", "故宫博物院"), ("2", "海洋公园")]
    assert "Museums & Galleries" in back[0].labels
    assert "label" not in back[0].metadata  # unlabelled input: no label field invented
    line = one_line_error(
        runner.invoke(cli, ["predict", str(model), "-i", str(names), "-o", str(out)])
    )
    assert "already exists; use --force" in line


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".tsv", ".xlsx"])
def test_predicting_a_labelled_file_keeps_its_gold_labels_and_fields(
    runner: CliRunner, model: Path, tmp_path: Path, suffix: str
) -> None:
    rows = [
        {"text": "故宫博物院", "label": ["Museums & Galleries", "Others"], "city": "北京"},
        {"text": "海洋公园", "label": ["Playgrounds"], "city": "香港"},
    ]
    labelled = write_json(tmp_path / "labelled.json", rows)
    out = tmp_path / f"tagged{suffix}"
    result = runner.invoke(cli, ["predict", str(model), "-i", str(labelled), "-o", str(out)])
    assert result.exit_code == 0, result.output
    gold = read_records(out)  # the label field is still the input's own labels
    assert [(r.text, list(r.labels), r.metadata["city"]) for r in gold] == [
        (row["text"], row["label"], row["city"]) for row in rows
    ]
    predicted = read_records(out, options=FileOptions(label_field="predicted"))
    assert "Museums & Galleries" in predicted[0].labels
    printed = runner.invoke(cli, ["predict", str(model), "-i", str(labelled), "--json"])
    line = json.loads(printed.stdout.splitlines()[0])
    assert list(line) == ["text", "label", "city", "predicted", "scores"]
    assert line["label"] == rows[0]["label"]


def test_an_input_field_named_like_a_prediction_is_not_overwritten(
    runner: CliRunner, model: Path, tmp_path: Path
) -> None:
    data = write_json(tmp_path / "d.json", [{"text": "故宫", "predicted": ["x"]}])
    line = one_line_error(runner.invoke(cli, ["predict", str(model), "-i", str(data), "--json"]))
    assert line == (
        f"Error: {data}, row 1, field 'predicted': the input already has a 'predicted' "
        "field; predictions would overwrite it"
    )


def test_interactive_prompt_until_q(model: Path, capsys) -> None:
    answers = iter(["故宫博物院", "", "q", "never reached"])
    interactive(Tagger.load(model), None, lambda: next(answers), as_json=False)
    out = capsys.readouterr().out
    assert out.startswith("故宫博物院\t") and "never reached" not in out


def test_evaluate_writes_metrics_file(
    runner: CliRunner, model: Path, toy_file: Path, tmp_path: Path
) -> None:
    metrics = tmp_path / "metrics.json"
    result = runner.invoke(
        cli, ["evaluate", str(model), str(toy_file), "--metrics-file", str(metrics)]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(metrics.read_text())
    assert figures["rows"] == 20 and len(figures["per_label"]) == 9
    assert f"{figures['exact_match']:.3f}" in result.stdout


def test_train_refuses_existing_directory_before_training(
    runner: CliRunner, model: Path, toy_file: Path
) -> None:
    line = one_line_error(
        runner.invoke(
            cli, ["train", "--taxonomy", "attractions", "--train", str(toy_file), "-o", str(model)]
        )
    )
    assert line == f"Error: {model} already exists; use --force to replace it"
    result = runner.invoke(
        cli,
        [
            "train",
            "--taxonomy",
            "attractions",
            "--train",
            str(toy_file),
            "-o",
            str(model),
            "--force",
        ],
    )
    assert result.exit_code == 0


# -- bad input: one line naming file, row and field; exit 2; no traceback --------------------


def _write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def _xlsx(tmp_path: Path, rows: list[list]) -> Path:
    path = tmp_path / "bad.xlsx"
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    workbook.save(path)
    return path


BAD_TRAINING_FILES = {
    "unknown label": (
        lambda p: _write(p, "d.json", '[{"text": "西湖", "label": ["Lakes"]}]'),
        "{f}, row 1, field 'label': unknown label 'Lakes' (not in taxonomy 'attractions')",
    ),
    "empty text": (
        lambda p: _write(
            p, "d.json", '[{"text": "西湖", "label": []}, {"text": "", "label": ["Others"]}]'
        ),
        "{f}, row 2, field 'text': empty text",
    ),
    "missing field": (
        lambda p: _write(p, "d.jsonl", '{"text": "西湖", "label": []}\n{"label": ["Others"]}\n'),
        "{f}, row 2, field 'text': missing field",
    ),
    "malformed JSON": (
        lambda p: _write(p, "d.json", '[{"text": "西湖", "label": [}]'),
        "{f}: malformed JSON at line 1 column 27: Expecting value",
    ),
    "malformed CSV row": (
        lambda p: _write(p, "d.csv", "text,label\n西湖,Others\n黄山\n"),
        "{f}, row 3: expected 2 cells as in the header, found 1",
    ),
    "malformed Excel row": (
        lambda p: _xlsx(p, [["text", "label"], ["西湖", "Others"], [None, "Others"]]),
        "{f}, row 3, field 'text': empty text",
    ),
    "unknown format": (
        lambda p: _write(p, "d.xml", "西湖"),
        "{f}: unknown file suffix '.xml' (known: .csv, .json, .jsonl, .ndjson, .parquet, .pq, .tab, .tsv, .txt, .xlsx); choose one with --format",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TRAINING_FILES))
def test_bad_training_file(runner: CliRunner, tmp_path: Path, case: str) -> None:
    make, expected = BAD_TRAINING_FILES[case]
    path = make(tmp_path)
    result = runner.invoke(
        cli, ["train", "--taxonomy", "attractions", "--train", str(path), "-o", str(tmp_path / "m")]
    )
    assert one_line_error(result) == "Error: " + expected.format(f=path)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        (
            "--taxonomy",
            "atractions",
            "unknown taxonomy 'atractions' (known: attractions, attractions-grouped; did you mean 'attractions'?) — or give a file path",
        ),
        ("--encoder", "bret", "unknown encoder 'bret'"),
        ("--rule", "treshold", "unknown decision rule 'treshold'"),
        ("--format", "avro", "unknown data source 'avro'"),
    ],
)
def test_unknown_component_names(
    runner: CliRunner, toy_file: Path, tmp_path: Path, option: str, value: str, expected: str
) -> None:
    args = {
        "--taxonomy": "attractions",
        "--train": str(toy_file),
        "-o": str(tmp_path / "m"),
        option: value,
    }
    result = runner.invoke(cli, ["train", *[item for pair in args.items() for item in pair]])
    assert expected in one_line_error(result)


def test_bad_encoder_parameter(runner: CliRunner, toy_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        cli,
        [
            "train",
            "--taxonomy",
            "attractions",
            "--train",
            str(toy_file),
            "-o",
            str(tmp_path / "m"),
            "-p",
            "C=-1",
        ],
    )
    assert (
        one_line_error(result)
        == "Error: encoder 'tfidf': parameter 'C': Input should be greater than 0"
    )


def test_missing_and_corrupt_model_directory(
    runner: CliRunner, model: Path, tmp_path: Path
) -> None:
    line = one_line_error(runner.invoke(cli, ["predict", str(tmp_path / "nope"), "西湖"]))
    assert line == f"Error: {tmp_path / 'nope'}: tagger directory does not exist"
    (model / "manifest.json").write_text("{ not json", encoding="utf-8")
    line = one_line_error(
        runner.invoke(cli, ["evaluate", str(model), str(EXAMPLES / "validation.json")])
    )
    assert line.startswith(
        f"Error: {model / 'manifest.json'}: corrupt manifest: malformed JSON at line 1"
    )


def test_empty_text_in_prediction_input(runner: CliRunner, model: Path, tmp_path: Path) -> None:
    names = _write(tmp_path, "names.csv", "text,city\n西湖,杭州\n,北京\n")
    line = one_line_error(runner.invoke(cli, ["predict", str(model), "-i", str(names)]))
    assert line == f"Error: {names}, row 3, field 'text': empty text"


def test_train_warns_when_validation_names_are_training_names(
    runner: CliRunner, tmp_path: Path
) -> None:
    rows = [{"text": t, "label": labels} for t, labels in TOY]
    train = tmp_path / "train.json"
    train.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    valid = tmp_path / "valid.json"  # two of them again, one with a trailing space
    valid.write_text(
        json.dumps([rows[0], {**rows[1], "text": rows[1]["text"] + " "}], ensure_ascii=False),
        encoding="utf-8",
    )
    args = ["train", "--taxonomy", "attractions", "--train", str(train), "--valid", str(valid)]
    result = runner.invoke(cli, [*args, "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "2 of 2 validation names are also training names" in result.stderr
