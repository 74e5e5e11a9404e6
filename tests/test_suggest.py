"""`tagger suggest`: the most uncertain names first, spread out, never an excluded or
repeated name, written in the labelled format with the tagger's guess."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TOY, one_line_error, train_toy

from tagger_core import Record, Scores, Tagger, read_records, resolve_taxonomy, suggest_names
from tagger_core.cli import cli
from tagger_core.workflows.suggest import uncertainty


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory) -> Tagger:
    return Tagger.load(train_toy(tmp_path_factory.mktemp("suggest")))


def test_uncertainty_is_closeness_to_the_threshold(tagger: Tagger) -> None:
    thresholds = tagger.rule.label_thresholds(tagger.taxonomy)
    assert thresholds is not None
    first = tagger.taxonomy.label_ids[0]
    at = np.full((1, len(thresholds)), 0.001)
    at[0, 0] = thresholds[first]  # one label exactly on its threshold
    far = np.full((1, len(thresholds)), 0.001)
    logits = np.log(np.vstack([at, far]) / (1 - np.vstack([at, far])))
    values = uncertainty(tagger, Scores(logits, "multi-label"))
    assert values[0] == pytest.approx(1.0)
    assert values[1] < 0.1


def test_a_wrapped_logit_threshold_is_read_as_a_probability() -> None:
    from tagger_core import make_rule
    from tagger_core.workflows.suggest import _probability_thresholds

    taxonomy = resolve_taxonomy("attractions")
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    trained = Tagger.create(taxonomy).train(records)
    for rule in (
        make_rule("threshold", {"space": "logit", "threshold": 0.0}),
        make_rule(
            "at-least-one",
            {"inner": {"name": "threshold", "params": {"space": "logit", "threshold": 0.0}}},
        ),
    ):
        trained.rule = rule
        assert _probability_thresholds(trained) == pytest.approx(0.5), rule.describe()


def test_single_label_uncertainty_is_the_margin_of_the_top_two() -> None:
    tagger = Tagger.create(
        resolve_taxonomy("attractions").model_copy(update={"mode": "single-label"})
    )
    tied = np.log(np.array([[0.45, 0.45, 0.1 / 7] + [0.1 / 7] * 6]))
    sure = np.log(np.array([[0.98, 0.01] + [0.01 / 7] * 7]))
    values = uncertainty(tagger, Scores(np.vstack([tied, sure]), "single-label"))
    assert values[0] == pytest.approx(1.0) and values[1] == pytest.approx(0.03, abs=0.01)


def test_the_most_uncertain_come_first_without_repeats(tagger: Tagger) -> None:
    pool = [
        Record(text=t) for t in ["故宫博物院", "某某大厦", "某某大楼", "迪士尼乐园", "故宫博物院"]
    ]
    chosen = suggest_names(tagger, pool, 10, diversity=0)
    assert len(chosen) == 4  # the repeated name once
    values = [s.uncertainty for s in chosen]
    assert values == sorted(values, reverse=True)
    scores = tagger.scores([s.record.text for s in chosen])
    np.testing.assert_allclose(values, uncertainty(tagger, scores))
    assert [s.guess for s in chosen] == [
        p.labels for p in tagger.predict([s.record.text for s in chosen])
    ]


def test_diversity_spreads_the_choice_over_unlike_names(tagger: Tagger) -> None:
    copies = [Record(text=f"阳光花园小区{i}号楼") for i in range(30)]  # one uncertain family
    others = [
        Record(text=t) for t in ["北京动物园", "黄山风景区", "香港艺术馆", "乌镇古镇", "庙街夜市"]
    ]
    pool = copies + others
    greedy = suggest_names(tagger, pool, 5, diversity=0)
    spread = suggest_names(tagger, pool, 5, diversity=0.9)
    family = lambda chosen: sum("阳光花园" in s.record.text for s in chosen)  # noqa: E731
    if family(greedy) < 5:
        pytest.skip("the family is not the most uncertain for this tagger")
    assert family(spread) <= 2


def test_excluded_names_are_not_suggested(tagger: Tagger) -> None:
    pool = [Record(text=t) for t in ["故宫博物院", "某某大厦", "迪士尼乐园"]]
    chosen = suggest_names(tagger, pool, 3, exclude=[Record(text="故宮博物院")])  # Traditional
    assert "故宫博物院" not in [s.record.text for s in chosen]


def test_the_command_writes_the_labelled_format(tmp_path: Path, tagger: Tagger) -> None:
    pool = tmp_path / "pool.csv"
    pool.write_text(
        "id,text,city\n"
        + "".join(f"{i},{t},城{i}\n" for i, (t, _) in enumerate(TOY))
        + "100,某某大厦,上海\n101,阳光小区,广州\n",
        encoding="utf-8",
    )
    out = tmp_path / "to-label.jsonl"
    runner = CliRunner()
    args = ["suggest", str(tagger.directory), str(pool), "-n", "3", "-o", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3
    assert all(
        set(row) >= {"id", "text", "label", "city", "predicted", "uncertainty"} for row in rows
    )
    assert all(row["label"] == row["predicted"] for row in rows)
    assert all(row["label"] for row in rows)  # attractions need a label: the guess has one
    records = read_records(out, taxonomy=tagger.taxonomy)  # ready for labelling and training
    assert len(records) == 3
    again = runner.invoke(cli, args)
    assert "exists" in one_line_error(again)
    missing = runner.invoke(
        cli,
        [
            "suggest",
            str(tagger.directory),
            str(tmp_path / "no.csv"),
            "-o",
            str(tmp_path / "x.jsonl"),
        ],
    )
    assert "no.csv" in one_line_error(missing)
