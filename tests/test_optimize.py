"""`tagger optimize`: the candidate grid, out-of-fold scoring of fitted rules, and saving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, TOY, one_line_error

from tagger_core import Record, Scores, Tagger, TaggerError, Taxonomy
from tagger_core.cli import cli
from tagger_core.tagger import MANIFEST
from tagger_core.workflows.optimize import candidates, optimize, search_for

TAXONOMY = Taxonomy.model_validate({"name": "t", "labels": [{"id": "A"}, {"id": "B"}, {"id": "C"}]})


def _data(n: int = 300, seed: int = 0) -> tuple[Scores, np.ndarray]:
    """Label A separates around probability 0.88 (logit 2), B and C around 0.5."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, 3)) < 0.3).astype(float)
    logits = np.where(truth == 1, 1.2, -1.2) + rng.normal(0, 0.6, (n, 3))
    logits[:, 0] += 2.0
    return Scores(logits, "multi-label"), truth


def test_candidates_cover_the_grid_fitted_rules_and_at_least_one() -> None:
    options = candidates(search_for(TAXONOMY, "micro_f1", [0.3, 0.5], max_k=2))
    descriptions = [c.description for c in options]
    assert descriptions[:2] == ["threshold 0.3", "threshold 0.5"]
    assert "top-2 ≥ 0.5" in descriptions and "top-1" in descriptions
    assert "threshold 0.5 + at-least-one" in descriptions
    # fixed candidates come first, each once without and once with the wrapper
    first_fitted = next(i for i, c in enumerate(options) if c.fitted)
    assert not any(c.fitted for c in options[:first_fitted])
    assert len(options) == 2 * len(set(d.removesuffix(" + at-least-one") for d in descriptions))
    fitted = [c.description for c in options if c.fitted]
    assert "best global threshold" in fitted
    assert "per-label for each label's F1, around the default threshold" in fitted
    assert "per-label for micro F1, around the best global threshold + at-least-one" in fitted


def test_exclusive_taxonomies_wrap_every_candidate() -> None:
    taxonomy = Taxonomy.model_validate(
        {"name": "x", "labels": [{"id": "A"}, {"id": "O"}], "constraints": {"exclusive": ["O"]}}
    )
    options = candidates(search_for(taxonomy, "micro_f1", [0.5], max_k=1), exclude=["at-least-one"])
    fixed = [c.rule for c in options if c.rule is not None]
    assert fixed and all(rule["name"] == "exclusive" for rule in fixed)
    assert all(c.description.endswith(" + exclusive") for c in options)
    # required: the exclusive wrapper sits inside at-least-one
    wrapped = candidates(search_for(taxonomy, "micro_f1", [0.5], max_k=1), require=["at-least-one"])
    assert {c.rule["name"] for c in wrapped if c.rule} == {"at-least-one"}
    assert all(c.rule["params"]["inner"]["name"] == "exclusive" for c in wrapped if c.rule)


def test_optimize_ranks_candidates_and_scores_fitted_rules_out_of_fold() -> None:
    scores, truth = _data()
    outcome = optimize(scores, truth, search_for(TAXONOMY, "micro_f1", [0.3, 0.5, 0.7, 0.9], 2))
    values = [r.score("micro_f1") for r in outcome.results]
    assert values == sorted(values, reverse=True)
    baseline = outcome.baseline
    assert (
        baseline.candidate.description == "default rule, unfitted: per-label (every label at 0.5)"
    )
    # the unfitted default decides exactly as one global threshold of 0.5
    assert baseline.figures == next(
        r.figures for r in outcome.results if r.candidate.description == "threshold 0.5"
    )
    # label A needs its own threshold: a per-label rule beats every global threshold
    winner = outcome.winner
    assert winner.candidate.family == "per-label" and winner.cv_figures is not None
    assert winner.score("micro_f1") > outcome.baseline.figures["micro_f1"] + 0.02
    assert winner.rule is not None
    thresholds = winner.rule["params"].get("thresholds") or winner.rule["params"]["inner"][
        "params"
    ].get("thresholds")
    assert "A" in thresholds and thresholds["A"] > 0.7
    # identical decisions are counted once: top-2 ≥ 0.9 decides as threshold 0.9 here
    assert sum(1 + r.same for r in outcome.results) > len(outcome.results)
    # fixed rules are scored on the validation rows only
    assert all(r.cv_figures is None for r in outcome.results if not r.candidate.fitted)


def test_optimize_minimises_hamming_loss_and_refuses_unknown_objectives() -> None:
    scores, truth = _data()
    outcome = optimize(scores, truth, search_for(TAXONOMY, "hamming_loss", [0.1, 0.5, 0.9], 1))
    values = [r.score("hamming_loss") for r in outcome.results]
    assert values == sorted(values)
    with pytest.raises(TaggerError, match="unknown objective 'f1'"):
        optimize(scores, truth, search_for(TAXONOMY, "f1"))
    with pytest.raises(TaggerError, match="too few to cross-validate"):
        optimize(Scores(np.zeros((4, 3)), "multi-label"), np.zeros((4, 3)), search_for(TAXONOMY))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    tagger = Tagger.create("attractions").train(records, records)
    tagger.training.rule_choice = {"objective": "micro_f1", "chosen": "default", "reason": "-"}
    return tagger.save(tmp_path / "model")


def _rule(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text(encoding="utf-8"))["rule"]


def test_cli_optimize_writes_the_winner_into_a_copy_or_in_place(
    model: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    before = _rule(model)
    valid = str(EXAMPLES / "validation.json")
    copy = tmp_path / "copy"
    args = ["optimize", str(model), valid, "--thresholds", "0.3,0.5", "--max-k", "2"]
    result = runner.invoke(cli, [*args, "-o", str(copy)])
    assert result.exit_code == 0, result.output
    assert "(baseline) default rule, unfitted: per-label" in result.stdout
    assert "+ exclusive" in result.stdout  # Others is exclusive: every candidate applies it
    assert "OUT OF FOLD" in result.stdout and "Chosen: " in result.stdout
    assert _rule(model) == before  # the original is untouched
    chosen = _rule(copy)
    loaded = Tagger.load(copy)
    assert loaded.rule.params_dict() == chosen["params"]
    metrics = json.loads((copy / MANIFEST).read_text(encoding="utf-8"))["training"]
    assert metrics["validation_metrics"]["rows"] == 55
    # the saved figures name the rows they were measured on, and no training-time choice
    assert metrics["valid_rows"] == 55 and metrics["rule_choice"] is None
    assert [Path(f["path"]).name for f in metrics["valid"]] == ["validation.json"]
    # -o onto an existing directory needs --force
    line = one_line_error(runner.invoke(cli, [*args, "-o", str(copy)]))
    assert line == f"Error: {copy} already exists; use --force to replace it"
    # --dry-run saves nothing; without -o the tagger itself is updated
    result = runner.invoke(cli, [*args, "--dry-run"])
    assert result.exit_code == 0 and "Dry run: nothing saved." in result.stdout
    assert _rule(model) == before
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert _rule(model) == chosen


def test_cli_optimize_rejects_bad_options(model: Path) -> None:
    runner = CliRunner()
    valid = str(EXAMPLES / "validation.json")
    result = runner.invoke(cli, ["optimize", str(model), valid, "--objective", "f2"])
    assert result.exit_code == 2 and "unknown objective 'f2'" in result.output
    result = runner.invoke(cli, ["optimize", str(model), valid, "--thresholds", "0.5,1.5"])
    assert result.exit_code == 2 and "strictly between 0 and 1" in result.output
    line = one_line_error(
        runner.invoke(cli, ["optimize", str(model), valid, "--rule-param", "per-label.nope=1"])
    )
    assert "decision rule 'per-label': parameter 'nope'" in line
    line = one_line_error(runner.invoke(cli, ["optimize", str(model), valid, "--exclude", "tpo-k"]))
    assert "unknown decision rule 'tpo-k'" in line and "did you mean 'top-k'" in line


def test_cli_optimize_single_label_keeps_argmax(tmp_path: Path) -> None:
    taxonomy = Taxonomy.model_validate(
        {"name": "k", "mode": "single-label", "labels": [{"id": "museum"}, {"id": "zoo"}]}
    )
    rows = [("故宫博物院", "museum"), ("科学博物馆", "museum"), ("北京动物园", "zoo"),
            ("野生动物园", "zoo"), ("香港艺术馆", "museum"), ("海洋馆", "zoo")] * 2  # fmt: skip
    records = [Record(text=t, labels=(label,)) for t, label in rows]
    model = Tagger.create(taxonomy).train(records).save(tmp_path / "single")
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"text": t, "label": [label]} for t, label in rows]), "utf-8")
    result = CliRunner().invoke(cli, ["optimize", str(model), str(data), "--folds", "2"])
    assert result.exit_code == 0, result.output
    assert "single-label taxonomy: argmax is the only candidate" in result.stdout
    assert _rule(model)["name"] == "argmax"


def test_per_label_around_the_best_global_threshold_keeps_the_rules_space() -> None:
    """The grid is of probabilities: a per-label rule in logit space starts from the best
    one's logit, and a default the user fixed is never moved."""
    from tagger_core import Scores, registry
    from tagger_core.evaluation.sweep import best_global_threshold
    from tagger_core.schemas import Label, Taxonomy

    per_label = registry.decision_rules().get("per-label")
    taxonomy = Taxonomy(name="t", labels=[Label(id=x) for x in "abc"])
    rng = np.random.default_rng(0)
    truth = (rng.random((60, 3)) < 0.4).astype(int)
    scores = Scores(rng.normal(size=(60, 3)) + 3.0 * (truth - 0.5) - 1.5, "multi-label")
    best = best_global_threshold(scores, truth)
    search = search_for(taxonomy, rule_params={"per-label": {"space": "logit"}})
    around = [c for c in per_label.search_space(search) if "best global" in c.description]
    assert around
    for choice in around:
        assert choice.fit(scores, truth)["default"] == pytest.approx(np.log(best / (1 - best)))
    fixed = search_for(taxonomy, rule_params={"per-label": {"default": 0.4}})
    kinds = [c.description for c in per_label.search_space(fixed)]
    assert kinds and not any("best global" in kind for kind in kinds)


def test_a_fixed_rule_parameter_is_in_every_candidate_of_its_rule() -> None:
    from tagger_core import registry
    from tagger_core.schemas import Label, Taxonomy

    taxonomy = Taxonomy(name="t", labels=[Label(id=x) for x in "abcd"])
    rules = registry.decision_rules()
    logit = search_for(
        taxonomy, "micro_f1", [0.5, 0.73], rule_params={"threshold": {"space": "logit"}}
    )
    grid = [c.params for c in rules.get("threshold").search_space(logit) if c.params]
    assert grid == [
        {"space": "logit", "threshold": pytest.approx(0.0)},
        {"space": "logit", "threshold": pytest.approx(np.log(0.73 / 0.27))},
    ]
    floored = search_for(
        taxonomy, "micro_f1", [0.5], max_k=2, rule_params={"top-k": {"min_probability": 0.3}}
    )
    tops = [c.params for c in rules.get("top-k").search_space(floored)]
    assert tops == [{"k": 1, "min_probability": 0.3}, {"k": 2, "min_probability": 0.3}]
