"""The command line as a new user meets it: help states the defaults the commands really
use, every component parameter is listed with its default, and the defects a new user hit
(issue: one direction through the core, part 8) stay fixed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, TOY, one_line_error, train_args, write_json
from tagger_plugins.tfidf import TfidfEncoder

from tagger_core import (
    Record,
    Tagger,
    best_global_threshold,
    hookimpl,
    make_rule,
    read_records,
    registry,
    threshold_sweep,
)
from tagger_core.cli import cli
from tagger_core.evaluation.sweep import THRESHOLDS, best_point
from tagger_core.workflows.optimize import optimize, search_for


def help_text(*command: str) -> str:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def help_defaults(command: str) -> tuple[str, str, str]:
    """(encoder, multi-label rule, single-label rule) as ``command --help`` states them."""
    text = help_text(command)
    encoder = re.search(r"Encoder plugin \(.*?default: ([\w-]+)\)", text)
    rules = re.search(
        r"Decision rule \(default: ([\w-]+) for multi-label taxonomies.*?; ([\w-]+) for "
        r"single-label",
        text,
    )
    assert encoder and rules, text
    return encoder.group(1), rules.group(1), rules.group(2)


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    return Tagger.create("attractions").train(records, records).save(tmp_path / "model")


# -- help states the real defaults -----------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "cv", "compare"])
def test_help_states_the_registry_defaults(command: str) -> None:
    assert help_defaults(command) == (
        registry.default_encoder_name(),
        registry.default_rule_name("multi-label"),
        registry.default_rule_name("single-label"),
    )


def test_train_uses_the_defaults_its_help_states(tmp_path: Path, toy_file: Path) -> None:
    encoder, multi_rule, single_rule = help_defaults("train")
    runner = CliRunner()
    out = tmp_path / "multi"
    result = runner.invoke(cli, train_args(toy_file, out))
    assert result.exit_code == 0, result.output
    assert (_manifest(out)["encoder"]["name"], _manifest(out)["rule"]["name"]) == (
        encoder,
        multi_rule,
    )
    single = tmp_path / "single.yaml"
    single.write_text(
        "name: kinds\nmode: single-label\nlabels: [{id: park}, {id: museum}]\n", "utf-8"
    )
    data = write_json(
        tmp_path / "single.json",
        [{"text": t, "label": ["museum" if "馆" in t or "院" in t else "park"]} for t, _ in TOY],
    )
    out = tmp_path / "single-tagger"
    result = runner.invoke(
        cli, ["train", "--taxonomy", str(single), "--train", str(data), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert _manifest(out)["rule"]["name"] == single_rule


def test_optimize_tries_the_grid_its_help_states(model: Path) -> None:
    stated = re.search(r"\(default: ([\d.]+:[\d.]+:[\d.]+),", help_text("optimize"))
    assert stated, help_text("optimize")
    valid = str(EXAMPLES / "validation.json")
    runner = CliRunner()
    base = ["optimize", str(model), valid, "--dry-run", "--max-k", "1"]
    default = runner.invoke(cli, base)
    explicit = runner.invoke(cli, [*base, "--thresholds", stated.group(1)])
    assert default.exit_code == 0 and explicit.exit_code == 0, default.output
    assert default.stdout.splitlines()[0] == explicit.stdout.splitlines()[0]
    assert "candidate rules" in default.stdout.splitlines()[0]


def test_cv_holds_out_the_validation_share_its_help_states() -> None:
    stated = re.search(r"\(default: ([\d.]+) when the rule is fitted", help_text("cv"))
    assert stated
    data = str(EXAMPLES / "validation.json")
    base = ["cv", data, "--taxonomy", "attractions", "-k", "2", "--json"]
    runner = CliRunner()
    default = json.loads(runner.invoke(cli, base).stdout)
    explicit = json.loads(runner.invoke(cli, [*base, "--valid-ratio", stated.group(1)]).stdout)
    rows = [(f["train_rows"], f["valid_rows"]) for f in default["folds"]]
    assert rows == [(f["train_rows"], f["valid_rows"]) for f in explicit["folds"]]
    assert all(valid > 0 for _, valid in rows)


def test_plugins_options_lists_every_parameter_with_its_real_default() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--options", "--json"])
    assert result.exit_code == 0, result.output
    entries = {(e["kind"], e["name"]): e for e in json.loads(result.stdout)}
    for kind, collection in (
        ("encoder", registry.encoders()),
        ("decision rule", registry.decision_rules()),
        ("normalizer", registry.normalizers()),
    ):
        for name in collection.names():
            component = collection.get(name)
            listed = {o["name"]: o["default"] for o in entries[(kind, name)]["options"]}
            try:
                defaults = component.Params().model_dump(mode="json")
            except Exception:  # a required parameter: compare the names only
                defaults = dict.fromkeys(component.Params.model_fields)
                listed = dict.fromkeys(listed)
            assert listed == defaults, (kind, name)
    assert entries[("encoder", "bert")]["options"][1]["name"] == "epochs"
    text = CliRunner().invoke(cli, ["plugins", "--options"]).stdout
    assert "encoder bert:" in text and "max_length" in text


# -- data in, data out ----------------------------------------------------------------------


def test_predict_reads_plain_text_one_name_per_line(model: Path, tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("故宫博物院\n\n北京动物园\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["predict", str(model), "-i", str(names), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["故宫博物院", "北京动物园"]
    line = one_line_error(
        runner.invoke(cli, ["predict", str(model), "-i", str(names), "-o", str(tmp_path / "o.txt")])
    )
    assert line == (
        f"Error: {tmp_path / 'o.txt'}: the txt data source holds names only and cannot be "
        "written; write to .jsonl, .json, .csv, .tsv or .xlsx"
    )
    line = one_line_error(runner.invoke(cli, train_args(names, tmp_path / "x")))
    assert line.startswith(f"Error: {names}: plain text holds names only, no labels")


def test_json_lines_and_files_use_the_same_field_names(model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(cli, ["predict", str(model), "故宫博物院", "--json", "--display"])
    assert printed.exit_code == 0, printed.output
    line = json.loads(printed.stdout)
    out = tmp_path / "out.jsonl"
    written = runner.invoke(cli, ["predict", str(model), "故宫博物院", "--display", "-o", str(out)])
    assert written.exit_code == 0, written.output
    row = json.loads(out.read_text(encoding="utf-8"))
    assert list(line) == ["text", "predicted", "predicted_name", "scores"]
    assert set(row) == set(line)
    assert row["predicted"] == line["predicted"]
    assert row["predicted_name"] == line["predicted_name"]
    assert "Museums & Galleries" in line["predicted"] and "博物馆与美术馆" in line["predicted_name"]


def test_predictions_show_display_names(model: Path) -> None:
    result = CliRunner().invoke(cli, ["predict", str(model), "故宫博物院", "--display"])
    assert "Museums & Galleries · 博物馆与美术馆 (" in result.stdout
    plain = CliRunner().invoke(cli, ["predict", str(model), "故宫博物院"])
    assert "博物馆" not in plain.stdout.split("\t", 1)[1]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [{"text": "故宫", "label": ["Museums & Galleries"]}, {"text": "黄山", "label": ["Hills"]},
             {"text": " ", "label": ["Others"]}],
            "row 2, field 'label': unknown label 'Hills' (not in taxonomy 'attractions')",
        ),
        (
            [{"text": "故宫", "label": ["Museums & Galleries"]}, {"text": " ", "label": ["Others"]},
             {"text": "黄山", "label": ["Hills"]}],
            "row 2, field 'text': empty text",
        ),
    ],
)  # fmt: skip
def test_train_reports_the_first_bad_row(tmp_path: Path, rows: list, expected: str) -> None:
    data = write_json(tmp_path / "bad.json", rows)
    result = CliRunner().invoke(cli, train_args(data, tmp_path / "m"))
    assert one_line_error(result) == f"Error: {data}, {expected}"
    assert "Training" not in result.output


# -- the report and optimize agree ----------------------------------------------------------


def test_the_reports_best_threshold_is_the_one_optimize_fits(model: Path, tmp_path: Path) -> None:
    tagger = Tagger.load(model)
    records = read_records(EXAMPLES / "validation.json")
    scores, truth = tagger.score_records(records)
    best = best_point(threshold_sweep(scores, truth), "micro_f1").threshold
    assert best in THRESHOLDS
    assert best == best_global_threshold(scores, truth, "micro_f1")
    outcome = optimize(scores, truth, search_for(tagger.taxonomy, "micro_f1"))
    fitted = next(r for r in outcome.results if r.candidate.description.startswith("best global"))
    spec = fitted.rule
    while spec["name"] != "threshold":
        spec = spec["params"]["inner"]
    assert spec["params"]["threshold"] == best
    report = tmp_path / "report.html"
    CliRunner().invoke(
        cli, ["evaluate", str(model), str(EXAMPLES / "validation.json"), "--report", str(report)]
    )
    assert f"The best single global threshold here would be {best:g} " in report.read_text("utf-8")


# -- an ad-hoc rule is a candidate like any other -------------------------------------------


class OneLabelParams(__import__("pydantic").BaseModel):
    label: str = "Museums & Galleries"


class EveryRowOneLabel(__import__("tagger_core").DecisionRule[OneLabelParams]):
    """Gives every row the label it is told: a rule that knows the answer of the test data."""

    name = "one-label"
    description = "Every row gets one given label."

    def decide(self, scores, taxonomy):  # type: ignore[no-untyped-def]
        chosen = np.zeros(scores.logits.shape, dtype=bool)
        chosen[:, taxonomy.label_ids.index(self.params.label)] = True
        return chosen

    @classmethod
    def search_space(cls, search):  # type: ignore[no-untyped-def]
        from tagger_core import RuleChoice

        return [
            RuleChoice(f"only {label}", {"label": label}) for label in search.taxonomy.label_ids
        ]


class AdHocRules:
    @staticmethod
    @hookimpl
    def register_decision_rules(register):  # type: ignore[no-untyped-def]
        register(EveryRowOneLabel)


def test_an_adhoc_rule_is_an_optimize_candidate_and_shows_in_the_report(
    register_plugin, tmp_path: Path
) -> None:
    register_plugin(AdHocRules(), "adhoc-rules")
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    model = Tagger.create("attractions").train(records, records).save(tmp_path / "model")
    # Museum names all labelled Water Parks: only the ad-hoc rule can get them right.
    museums = write_json(
        tmp_path / "museums.json",
        [{"text": t, "label": ["Water Parks"]} for t in ["故宫博物院", "科学博物馆", "艺术馆"] * 4],
    )
    runner = CliRunner()
    result = runner.invoke(cli, ["optimize", str(model), str(museums), "--folds", "2"])
    assert result.exit_code == 0, result.output
    assert "Chosen: only Water Parks" in result.stdout
    assert (
        "only Zoos & Animal Parks"
        in runner.invoke(
            cli, ["optimize", str(model), str(museums), "--folds", "2", "--dry-run", "--top", "100"]
        ).stdout
    )
    rule = _manifest(model)["rule"]
    while rule["name"] != "one-label":  # inside the wrappers the taxonomy asks for
        rule = rule["params"]["inner"]
    assert rule["params"] == {"label": "Water Parks"}
    report = tmp_path / "report.html"
    result = runner.invoke(cli, ["evaluate", str(model), str(museums), "--report", str(report)])
    assert result.exit_code == 0, result.output
    # the default description: the name and the parameters that differ from the defaults
    assert "one-label (label Water Parks)" in result.stdout
    assert "one-label (label Water Parks)" in report.read_text(encoding="utf-8")
    assert make_rule("one-label", {"label": "Others"}).describe() == "one-label (label Others)"


# -- distributed runs: only the primary process talks and saves ----------------------------


class HelperProcessEncoder(TfidfEncoder):
    name = "helper-tfidf"
    default = False

    def is_primary(self) -> bool:
        return False


class HelperEncoders:
    @staticmethod
    @hookimpl
    def register_encoders(register):  # type: ignore[no-untyped-def]
        register(HelperProcessEncoder)


def test_a_helper_process_neither_announces_nor_saves(
    register_plugin, toy_file: Path, tmp_path: Path
) -> None:
    register_plugin(HelperEncoders(), "helper-encoders")
    out = tmp_path / "m"
    args = train_args(toy_file, out)
    result = CliRunner().invoke(cli, [*args, "--encoder", "helper-tfidf"])
    assert result.exit_code == 0, result.output
    assert result.output == "" and not out.exists()
    result = CliRunner().invoke(cli, args)
    assert "Training 'tfidf' on 20 records" in result.stderr and out.is_dir()


def test_model_option_needs_an_encoder_that_takes_one(toy_file: Path, tmp_path: Path) -> None:
    args = train_args(toy_file, tmp_path / "m")
    line = one_line_error(CliRunner().invoke(cli, [*args, "--model", "some/model", "--force"]))
    assert line == "Error: encoder 'tfidf' takes no pretrained model (--model)"


# -- bars that move, and a counter for folds -------------------------------------------------


def test_a_long_single_step_shows_a_moving_bar(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from tagger_core import ticking

    monkeypatch.setenv("TAGGER_PROGRESS", "1")
    with ticking("fitting", interval=0.05):
        time.sleep(0.4)
    frames = [f for f in re.split(r"[\r\n]", capsys.readouterr().err) if f.startswith("fitting")]
    seconds = [float(re.search(r"([\d.]+) s", f).group(1)) for f in frames]
    assert len(set(seconds)) >= 3 and seconds == sorted(seconds)


def test_single_label_tfidf_fit_uses_the_moving_bar(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("TAGGER_PROGRESS", "1")
    taxonomy = tmp_path / "kinds.yaml"
    taxonomy.write_text("name: kinds\nmode: single-label\nlabels: [{id: a}, {id: b}]\n", "utf-8")
    records = [Record(text=t, labels=("a" if i % 2 else "b",)) for i, (t, _) in enumerate(TOY)]
    Tagger.create(taxonomy).train(records)
    err = capsys.readouterr().err
    assert "tfidf: fitting the softmax head: " in err and " s" in err
    assert "0/1" not in err


def test_cv_prints_a_line_per_fold(toy_file: Path) -> None:
    result = CliRunner().invoke(cli, ["cv", str(toy_file), "--taxonomy", "attractions", "-k", "3"])
    assert result.exit_code == 0, result.output
    counters = re.findall(r"^fold (\d)/3: exact match [\d.]+, micro F1 [\d.]+", result.stderr, re.M)
    assert counters == ["1", "2", "3"]


# -- components enforce their contract -------------------------------------------------------


def test_a_component_missing_an_abstract_method_cannot_be_made() -> None:
    from tagger_core import DataSource, Normalizer

    class ReadOnly(DataSource):
        name = "read-only"

        def read(self, path, options):  # type: ignore[no-untyped-def]
            return []

    class NoNormalize(Normalizer):
        name = "nothing"

    for component in (ReadOnly, NoNormalize):
        with pytest.raises(TypeError, match="abstract"):
            component()


def test_params_come_from_the_type_argument_and_are_typed() -> None:
    from pydantic import BaseModel

    from tagger_core import DecisionRule

    class P(BaseModel):
        k: int = 3

    class Rule(DecisionRule[P]):
        name = "typed"

        def decide(self, scores, taxonomy):  # type: ignore[no-untyped-def]
            return scores.logits > 0

    assert Rule.Params is P and Rule(k=5).params.k == 5
    assert [o.name for o in Rule.options()] == ["k"] and Rule.options()[0].default == 3
