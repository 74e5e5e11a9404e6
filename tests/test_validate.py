"""`tagger validate` and tagger_core.data.validate on small files built in the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, SHARED_DATA, one_line_error, write_json

from tagger_core import Record, resolve_taxonomy
from tagger_core.cli import cli
from tagger_core.data.validate import CODES, validate_records

ATTRACTIONS = resolve_taxonomy("attractions")


def rows(*items: tuple[str, list[str]]) -> list[dict]:
    return [{"text": text, "label": labels} for text, labels in items]


def run(runner: CliRunner, *args: str):
    return runner.invoke(cli, ["validate", *args])


def problems(result, code: str) -> list[dict]:
    report = json.loads(result.stdout)
    return [p for p in report["problems"] if p["code"] == code]


def test_bundled_examples_are_clean(runner: CliRunner) -> None:
    result = run(
        runner, str(EXAMPLES / "train.json"), str(EXAMPLES / "validation.json"),
        "--taxonomy", "attractions",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "No problems found." in result.stdout
    assert "Museums & Galleries" in result.stdout and "train.json" in result.stdout


def test_every_error_is_collected_with_file_row_field(runner: CliRunner, tmp_path: Path) -> None:
    data = write_json(
        tmp_path / "bad.json",
        rows(
            ("故宫博物院", ["Musems & Galleries"]),
            ("   ", ["Others"]),
            ("", ["Others"]),
            ("黄山", ["Natural Landscape"]),
            ("颐和园", ["Garden"]),
        ),
    )
    result = run(runner, str(data), "--taxonomy", "attractions")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "3 error(s)" not in out  # four errors: two unknown labels, two empty names
    assert "4 error(s)" in out
    assert (
        f"{data}, row 1, field 'label': unknown label 'Musems & Galleries' (not in taxonomy "
        "'attractions'; did you mean 'Museums & Galleries'?)"
    ) in out
    assert f"{data}, row 2, field 'text': empty name" in out
    assert f"{data}, row 3, field 'text': empty name" in out
    assert "unknown label 'Garden'" in out
    assert "Musems & Galleries (unknown)" in out  # in the frequency table too


def test_json_output_for_machines(runner: CliRunner, tmp_path: Path) -> None:
    data = write_json(
        tmp_path / "d.json", rows(("故宫", ["Museum"]), ("黄山", ["Natural Landscape"]))
    )
    result = run(runner, str(data), "--taxonomy", "attractions", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["errors"] == 1
    (problem,) = [p for p in report["problems"] if p["severity"] == "error"]
    assert problem["code"] == "unknown-label" and problem["row"] == 1
    assert problem["field"] == "label" and problem["file"] == str(data)
    counts = {c["label"]: c for c in report["label_counts"]}
    assert counts["Natural Landscape"]["total"] == 1
    assert counts["Museum"]["known"] is False


def test_duplicates_exact_and_after_normalisation(runner: CliRunner, tmp_path: Path) -> None:
    data = write_json(
        tmp_path / "d.json",
        rows(
            ("香港海洋公园", ["Playgrounds"]),
            ("香港海洋公园", ["Playgrounds"]),  # exact
            ("香港海洋公園", ["Playgrounds"]),  # Traditional
            ("Ｏｃｅａｎ　Park", ["Playgrounds"]),
            ("ocean park", ["Playgrounds"]),  # width, case, spaces
        ),
    )
    result = run(runner, str(data), "--taxonomy", "attractions", "--json")
    assert result.exit_code == 0, result.output  # warnings only
    (exact,) = problems(result, "duplicate")
    assert exact["row"] == 2 and "repeats row 1" in exact["message"]
    near = problems(result, "near-duplicate")
    assert [p["row"] for p in near] == [3, 5]
    assert "Traditional/Simplified" in near[0]["message"]
    assert "full/half width, case" in near[1]["message"]
    assert json.loads(result.stdout)["names"] == 2


def test_same_name_with_different_labels_in_one_file_is_an_error(
    runner: CliRunner, tmp_path: Path
) -> None:
    data = write_json(
        tmp_path / "d.json",
        rows(
            ("黄大仙祠", ["Others"]),
            ("维多利亚公园", ["Gardens & Parks"]),
            ("黃大仙祠", ["Museums & Galleries"]),
        ),
    )
    result = run(runner, str(data), "--taxonomy", "attractions")
    assert result.exit_code == 1
    assert (
        f"{data}, row 3, field 'label': '黃大仙祠' has labels [Museums & Galleries] but [Others] "
        "in row 1 as '黄大仙祠' (differs in Traditional/Simplified)"
    ) in result.stdout


def test_two_sources_that_disagree(runner: CliRunner, tmp_path: Path) -> None:
    site = write_json(
        tmp_path / "site.json",
        rows(("黄大仙祠", ["Others"]), ("香港海洋公园", ["Playgrounds", "Zoos & Animal Parks"]),
             ("大澳渔村", ["Villages"])),
    )  # fmt: skip
    gpt = write_json(
        tmp_path / "gpt.json",
        rows(("黄大仙祠", ["Museums & Galleries"]), ("香港海洋公園", ["Playgrounds", "Zoos & Animal Parks"]),
             ("北京动物园", ["Zoos & Animal Parks"])),
    )  # fmt: skip
    result = run(
        runner, "--data", f"site={site}", "--data", f"gpt={gpt}", "--taxonomy", "attractions"
    )
    # Sources may disagree: a warning, not an error.
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "from 2 sources" in out
    assert "LABEL" in out and "site" in out and "gpt" in out
    assert "Sources site and gpt share 2 names; they give the same labels to 1 (50.0%)." in out
    assert (
        f"{gpt}, row 1, field 'label': '黄大仙祠' is labelled [Museums & Galleries] by gpt but "
        f"[Others] by site ({site} row 1)"
    ) in out
    # The same name in the same file twice is still a conflict within one source.
    result = run(runner, f"site={site}", f"site={gpt}", "--taxonomy", "attractions")
    assert result.exit_code == 1
    assert "error conflict (1)" in result.stdout


def test_a_name_in_two_files_of_a_split_is_a_leak(runner: CliRunner, tmp_path: Path) -> None:
    train = write_json(
        tmp_path / "train.json",
        rows(("黄山", ["Natural Landscape"]), ("故宫", ["Museums & Galleries"])),
    )
    valid = write_json(tmp_path / "valid.json", rows(("黄 山", ["Natural Landscape"])))
    result = run(runner, str(train), str(valid), "--taxonomy", "attractions", "--json")
    assert result.exit_code == 0
    (leak,) = problems(result, "cross-file")
    assert leak["file"] == str(valid) and f"also in {train} row 1" in leak["message"]


def test_rare_and_unused_labels_and_strict(runner: CliRunner, tmp_path: Path) -> None:
    data = write_json(
        tmp_path / "d.json",
        rows(*[(f"水上乐园{i}", ["Water Parks"]) for i in range(3)],
             ("大澳渔村", ["Villages"]), ("乌镇", ["Villages"])),
    )  # fmt: skip
    result = run(runner, str(data), "--taxonomy", "attractions", "--json")
    assert result.exit_code == 0
    rare = problems(result, "rare-label")
    assert [p["message"] for p in rare] == [
        "label 'Villages' has 2 distinct name(s): too few to appear in each of 3 split parts"
    ]
    assert len(problems(result, "unused-label")) == 7
    # Fewer parts: two names are enough.
    result = run(runner, str(data), "--taxonomy", "attractions", "--json", "--ratios", "4:1")
    assert problems(result, "rare-label") == []
    result = run(runner, str(data), "--taxonomy", "attractions", "--strict")
    assert result.exit_code == 1


def test_constraints_and_label_counts() -> None:
    records = [
        Record(text="黄大仙祠", labels=("Others", "Museums & Galleries"), file="f", row=1),
        Record(text="无标签", labels=(), file="f", row=2),
    ]
    report = validate_records(records, ATTRACTIONS)
    codes = [p.code for p in report.problems]
    assert "constraint" in codes and "no-label" in codes
    assert not report.errors
    single = ATTRACTIONS.model_copy(
        update={"mode": "single-label", "constraints": ATTRACTIONS.constraints}
    )
    report = validate_records(records, single)
    assert [p.code for p in report.errors] == ["label-count", "label-count"]


def test_every_code_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-workflow.md").read_text("utf-8")
    for code, (severity, meaning) in CODES.items():
        assert severity in ("error", "warning") and meaning
        assert f"`{code}`" in doc, code


def test_without_taxonomy_labels_come_from_the_data(runner: CliRunner, tmp_path: Path) -> None:
    data = write_json(
        tmp_path / "d.json", rows(("Central Park", ["Parks"]), ("MoMA", ["Art Museums"]))
    )
    result = run(runner, str(data))
    assert result.exit_code == 0, result.output
    assert "against the 2 labels found in the data (no --taxonomy)" in result.stdout


def test_unusable_input_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    line = one_line_error(run(runner, str(tmp_path / "missing.json"), "--taxonomy", "attractions"))
    assert "missing.json: file does not exist" in line
    data = write_json(tmp_path / "d.json", rows(("黄山", ["Natural Landscape"])))
    line = one_line_error(run(runner, str(data), "--taxonomy", "atractions"))
    assert "did you mean 'attractions'" in line
    line = one_line_error(run(runner, f"bad name={data}", "--taxonomy", "attractions"))
    assert "bad source name 'bad name'" in line


@pytest.mark.integration
def test_tripadvisor_all(runner: CliRunner) -> None:
    path = SHARED_DATA / "tripadvisor_attractions_en" / "all.json"
    if not path.exists():
        pytest.skip("../shared data not present")
    result = run(runner, str(path), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    empty = [p for p in report["problems"] if p["code"] == "empty-text"]
    assert [p["row"] for p in empty] == [531]
    assert len([c for c in report["label_counts"] if c["total"]]) == 85
    assert len([p for p in report["problems"] if p["code"] == "conflict"]) >= 4


def doc_output(command: str) -> tuple[str, int]:
    """The output docs/data-workflow.md shows for ``$ command``, and its exit status."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-workflow.md").read_text("utf-8")
    start = doc.index(f"$ {command}\n") + len(command) + 3
    end = doc.index("[exit status ", start)
    status = int(doc[end:].split("]", 1)[0].removeprefix("[exit status "))
    return doc[start:end], status


@pytest.mark.parametrize(
    "command",
    [
        "tagger validate examples/attractions/train.json examples/attractions/validation.json "
        "--taxonomy attractions",
        "tagger validate --data hand=examples/attractions/train.json --data "
        "hand=examples/attractions/validation.json --data "
        "gpt=examples/attractions/second-source-demo.json --taxonomy attractions --max-shown 4",
    ],
)
def test_docs_show_the_real_output(
    command: str, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected, status = doc_output(command)
    (tmp_path / "examples").symlink_to(EXAMPLES.parent)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, command.split()[1:])
    assert (result.output, result.exit_code) == (expected, status)
