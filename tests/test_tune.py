"""`tagger tune`: optuna's search over an encoder's parameters, the defaults as trial 0, the
best tagger saved, a trials table, Ctrl-C keeping the best so far."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, one_line_error
from tagger_plugins.ensemble import EnsembleEncoder

from tagger_core import Tagger, read_records, resolve_taxonomy
from tagger_core.cli import cli
from tagger_core.tagger import MANIFEST
from tagger_core.workflows.train import build_tagger
from tagger_core.workflows.tune import parse_space, tune

pytest.importorskip("optuna")

TRAIN, VALID = str(EXAMPLES / "train.json"), str(EXAMPLES / "validation.json")
BASE = ["tune", TRAIN, "--taxonomy", "attractions"]


def test_tune_on_validation_rows_keeps_the_best_and_writes_the_trials(tmp_path: Path) -> None:
    out, table = tmp_path / "best", tmp_path / "trials.csv"
    args = [*BASE, "--valid", VALID, "--trials", "3", "-o", str(out), "--trials-file", str(table)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert [r["trial"] for r in rows] == ["0", "1", "2"]
    assert rows[0]["params"] == "{}"  # the defaults come first
    assert json.loads(rows[1]["params"]).keys() <= {
        "C", "ngram_max", "analyzer", "sublinear_tf", "class_weight",
    }  # fmt: skip
    scores = [float(r["micro_f1"]) for r in rows]
    assert f"Best: trial {scores.index(max(scores))}" in result.output
    # The saved tagger is the best trial's: it scores the best figure on the same rows.
    saved = Tagger.load(out)
    assert saved.evaluate(read_records(VALID)).micro_f1 == pytest.approx(max(scores))
    again = CliRunner().invoke(cli, args)
    assert "already exists" in one_line_error(again)


def test_tune_by_cross_validation_with_a_space_file(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("C: [1, 30]\nngram_max: {low: 2, high: 4, int: true}\n", encoding="utf-8")
    out = tmp_path / "best"
    result = CliRunner().invoke(
        cli, [*BASE, "-k", "3", "--trials", "2", "--space", str(space), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "3-fold cross-validation" in result.output
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["training"]["train_rows"] > 0  # trained on all rows with the best params
    assert "±" in result.output  # a cv trial shows the spread over its folds


def test_bad_spaces_and_missing_optuna_fail_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("nope: [1, 2]\n", encoding="utf-8")
    args = [*BASE, "--valid", VALID, "--space", str(space), "-o", str(tmp_path / "o")]
    assert "has no parameter 'nope'" in one_line_error(CliRunner().invoke(cli, args))
    with pytest.raises(Exception, match="low ≤ high"):
        parse_space({"C": {"low": 5, "high": 1}})
    monkeypatch.setitem(sys.modules, "optuna", None)
    missing = CliRunner().invoke(cli, [*BASE, "--valid", VALID, "-o", str(tmp_path / "o")])
    assert "pip install 'tagger[tune]'" in one_line_error(missing)


def test_an_ensembles_space_holds_its_members() -> None:
    space = EnsembleEncoder.search_space({"members": "tfidf,bert"})
    assert {"weights", "tfidf.C", "bert.lr"} <= set(space)
    params = EnsembleEncoder.with_values(
        {"members": "tfidf,bert"}, {"tfidf.C": 3.0, "bert.lr": 1e-4, "weights": "equal"}
    )
    assert params["weights"] == "equal"
    assert params["members"][0] == {"name": "tfidf", "params": {"C": 3.0}}
    assert params["members"][1]["params"] == {"lr": 1e-4}


def test_ctrl_c_keeps_the_best_so_far() -> None:
    taxonomy = resolve_taxonomy("attractions")
    seen: list[Any] = []

    def stop_after_two(trial: Any, best: Any) -> None:
        seen.append(trial)
        if len(seen) == 2:
            raise KeyboardInterrupt

    result = tune(
        read_records(TRAIN),
        taxonomy,
        lambda params: build_tagger(taxonomy, encoder="tfidf", encoder_params=params),
        encoder="tfidf",
        base_params={},
        valid=read_records(VALID),
        trials=10,
        on_trial=stop_after_two,
    )
    assert result.interrupted and len(result.trials) == 2
    assert result.best is not None and result.tagger is not None
    assert result.best.score == max(t.score for t in result.trials if t.score is not None)
