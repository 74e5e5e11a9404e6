"""`tagger compare` and tagger_core.workflows.compare: the train-source × eval-source matrix and the
agreement of sources on shared names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, one_line_error, write_json

from tagger_core import Record, Tagger, resolve_taxonomy
from tagger_core.cli import cli
from tagger_core.workflows.compare import agreement, cohen_kappa, compare_sources

ATTRACTIONS = resolve_taxonomy("attractions")
# Names with telling characters, so that even a tiny TF-IDF tagger learns them.
STEMS = {
    "Water Parks": "水上乐园", "Villages": "古村", "Playgrounds": "欢乐谷",
    "Others": "古庙", "Natural Landscape": "风景区", "Gardens & Parks": "花园",
    "Observation Decks & Towers": "观景台", "Zoos & Animal Parks": "动物园",
    "Museums & Galleries": "博物馆",
}  # fmt: skip


def two_sources() -> tuple[list[dict], list[dict]]:
    """'site' labels every name by its stem; 'gpt' shares most names, calls temples museums."""
    site, gpt = [], []
    for label, stem in STEMS.items():
        for i in range(8):
            name = f"{'东南西北上下左右'[i]}城{stem}"
            site.append({"text": name, "label": [label]})
            if i < 6:
                gpt_label = "Museums & Galleries" if label == "Others" else label
                gpt.append({"text": name, "label": [gpt_label]})
        gpt.append({"text": f"新城{stem}", "label": [label]})
    return site, gpt


def test_cohen_kappa_matches_sklearn_and_is_none_when_undefined() -> None:
    from sklearn.metrics import cohen_kappa_score

    a = np.array([1, 1, 0, 0, 1, 0, 1, 0])
    b = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa(np.zeros(4), np.zeros(4)) is None
    assert cohen_kappa(np.zeros(4), np.array([0, 1, 0, 0])) == pytest.approx(0.0)


def test_agreement_on_a_two_source_conflict() -> None:
    records = [
        Record(text="黄大仙祠", labels=("Others",), source="site"),
        Record(text="香港海洋公园", labels=("Playgrounds", "Zoos & Animal Parks"), source="site"),
        Record(text="大澳渔村", labels=("Villages",), source="site"),
        Record(text="黃大仙祠", labels=("Museums & Galleries",), source="gpt"),
        Record(text="香港海洋公園", labels=("Playgrounds", "Zoos & Animal Parks"), source="gpt"),
        Record(text="北京动物园", labels=("Zoos & Animal Parks",), source="gpt"),
    ]
    result = agreement(records, ATTRACTIONS, "site", "gpt")
    assert (result.shared_names, result.identical) == (2, 1)
    by_label = {label.label: label for label in result.labels}
    assert (by_label["Others"].a, by_label["Others"].b, by_label["Others"].both) == (1, 0, 0)
    assert by_label["Others"].kappa == pytest.approx(0.0)
    assert by_label["Playgrounds"].kappa == pytest.approx(1.0)
    assert by_label["Water Parks"].kappa is None  # neither source uses it


def test_compare_sources_builds_the_full_matrix() -> None:
    site, gpt = two_sources()

    def records(rows: list[dict], source: str) -> list[Record]:
        return [Record(text=r["text"], labels=tuple(r["label"]), source=source) for r in rows]

    comparison = compare_sources(
        records(site, "site") + records(gpt, "gpt"),
        ATTRACTIONS,
        lambda: Tagger.create(ATTRACTIONS, rule="threshold"),
        seed=0,
        combined=True,
    )
    assert comparison.sources == ["site", "gpt"]
    assert [(c.train, c.eval) for c in comparison.cells] == [
        ("site", "site"), ("site", "gpt"), ("gpt", "site"), ("gpt", "gpt"),
        ("all", "site"), ("all", "gpt"),
    ]  # fmt: skip
    for cell in comparison.cells:
        assert 0.0 <= cell.exact_match <= 1.0 and 0.0 <= cell.micro_f1 <= 1.0
        assert cell.eval_rows > 0 and cell.train_rows > 0
        assert cell.valid_rows == 0  # the threshold rule has nothing to fit
    (pair,) = comparison.agreement
    assert pair.shared_names == 54 and pair.identical == 48
    others = next(label for label in pair.labels if label.label == "Others")
    assert (others.a, others.b, others.both) == (6, 0, 0)


def test_cli_prints_the_matrix_and_kappa(runner: CliRunner, tmp_path: Path) -> None:
    site_rows, gpt_rows = two_sources()
    site = write_json(tmp_path / "site.json", site_rows)
    gpt = write_json(tmp_path / "gpt.json", gpt_rows)
    metrics = tmp_path / "compare.json"
    result = runner.invoke(
        cli,
        ["compare", "--data", f"site={site}", "--data", f"gpt={gpt}", "--taxonomy", "attractions",
         "--metrics-file", str(metrics)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Exact match (rows: trained on; columns: evaluated on):" in out
    assert "Micro F1 (rows: trained on; columns: evaluated on):" in out
    lines = out.splitlines()
    header = lines.index("Exact match (rows: trained on; columns: evaluated on):") + 1
    assert lines[header].split() == ["TRAIN", "\\", "EVAL", "site", "gpt"]
    assert lines[header + 1].split()[0] == "site" and lines[header + 2].split()[0] == "gpt"
    assert "Agreement of site and gpt on 54 shared names: same labels for 48 (88.9%)" in out
    assert "+" in out and "to fit the rule" in out  # the default per-label rule is fitted
    saved = json.loads(metrics.read_text(encoding="utf-8"))
    assert len(saved["cells"]) == 4 and saved["agreement"][0]["a"] == "site"


def test_cli_needs_two_sources(runner: CliRunner, toy_file: Path) -> None:
    line = one_line_error(
        runner.invoke(cli, ["compare", str(toy_file), "--taxonomy", "attractions"])
    )
    assert "compare needs at least two sources" in line and "--data NAME=FILE" in line


def test_cli_bad_encoder_fails_before_reading(runner: CliRunner, toy_file: Path) -> None:
    args = ["compare", f"a={toy_file}", f"b={toy_file}", "--taxonomy", "attractions"]
    line = one_line_error(runner.invoke(cli, [*args, "--encoder", "tfidff"]))
    assert "unknown encoder 'tfidff'" in line


def test_bundled_second_source_demo(runner: CliRunner) -> None:
    demo = EXAMPLES / "second-source-demo.json"
    result = runner.invoke(
        cli,
        ["compare", "--data", f"hand={EXAMPLES / 'train.json'}",
         "--data", f"hand={EXAMPLES / 'validation.json'}", "--data", f"gpt={demo}",
         "--taxonomy", "attractions", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)
    assert comparison["sources"] == ["hand", "gpt"]
    assert comparison["agreement"][0]["shared_names"] > 200
