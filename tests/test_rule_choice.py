"""Training chooses its decision rule for an objective, guarded against small validation sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from conftest import EXAMPLES, one_line_error

from tagger_core import Scores, Taxonomy
from tagger_core.cli import cli
from tagger_core.registry import make_rule
from tagger_core.tagger import MANIFEST
from tagger_core.workflows.optimize import choose_rule, paired_bootstrap

TAXONOMY = Taxonomy.model_validate(
    {"name": "t", "labels": [{"id": "A"}, {"id": "B"}, {"id": "C"}, {"id": "D"}]}
)


def _one_label_rows(n: int, seed: int = 0) -> tuple[Scores, np.ndarray]:
    """One true label a row, always the best-scoring one, but the rows' levels differ so
    much that no threshold separates the labels: only a ranking rule (top-1) is exact."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, 4))
    truth[np.arange(n), rng.integers(0, 4, n)] = 1
    logits = rng.uniform(-3, 3, (n, 1)) + rng.uniform(0, 0.2, (n, 4)) + truth * 0.5
    return Scores(logits, "multi-label"), truth


def test_a_clearly_better_rule_replaces_the_default() -> None:
    scores, truth = _one_label_rows(400)
    default = make_rule("per-label")
    rule, info = choose_rule(scores, truth, TAXONOMY, "exact_match", default)
    assert info["chosen"] == "best candidate" and info["gain"] > 0.5
    assert info["better_in"] >= 0.9 and info["candidates"] > 10
    decided = np.asarray(rule.decide(scores, TAXONOMY))
    assert (decided == (truth > 0)).all()  # the new rule tags exactly the true label


def test_a_win_within_the_noise_keeps_the_default() -> None:
    # Calibrated scores (logit ±1 plus noise) on 40 rows: 0.5 is the right threshold for
    # every label, and whatever beats it on these rows does so by luck; chosen out of
    # fold, the luck is gone.
    for seed in range(4):
        rng = np.random.default_rng(seed)
        truth = (rng.random((40, 4)) < 0.5).astype(float)
        scores = Scores(truth * 2 - 1 + rng.normal(0, 1.0, (40, 4)), "multi-label")
        rule, info = choose_rule(scores, truth, TAXONOMY, "micro_f1", make_rule("per-label"))
        assert info["chosen"] == "default" and rule.name == "per-label"
        assert info["better_in"] < 0.9 and "needs 90%" in info["reason"]


def test_too_few_rows_or_one_candidate_keep_the_default() -> None:
    scores, truth = _one_label_rows(12)
    _, info = choose_rule(scores, truth, TAXONOMY, "micro_f1", make_rule("per-label"))
    assert info["chosen"] == "default" and "too few" in info["reason"]
    single = TAXONOMY.model_copy(update={"mode": "single-label"})
    _, info = choose_rule(
        Scores(scores.logits, "single-label"), truth, single, "micro_f1", make_rule("argmax")
    )
    assert info["chosen"] == "default" and "one candidate" in info["reason"]


def test_paired_bootstrap_counts_wins_and_ties() -> None:
    truth = np.eye(4, dtype=bool)[np.arange(40) % 4]
    assert paired_bootstrap(truth, truth, truth, "micro_f1") == (0.0, 0.5)
    worse = truth.copy()
    worse[:10] = ~worse[:10]
    gain, share = paired_bootstrap(truth, truth, worse, "micro_f1")
    assert gain > 0 and share == 1.0
    # Lower is better for a loss: the perfect decisions still win.
    gain, share = paired_bootstrap(truth, truth, worse, "hamming_loss")
    assert gain > 0 and share == 1.0


def test_train_records_the_choice_and_evaluate_shows_it(tmp_path: Path) -> None:
    out = tmp_path / "t"
    train, valid = str(EXAMPLES / "train.json"), str(EXAMPLES / "validation.json")
    args = ["train", "--taxonomy", "attractions", "--train", train, "--valid", valid]
    result = CliRunner().invoke(cli, [*args, "--objective", "exact_match", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Rule chosen at training for exact_match among" in result.output
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    choice = manifest["training"]["rule_choice"]
    assert choice["objective"] == "exact_match" and choice["validation_rows"] == 55
    assert choice["rule"] == make_rule(**manifest["rule"]).describe()
    shown = CliRunner().invoke(cli, ["evaluate", str(out), valid])
    assert "chosen at training for exact_match" in shown.output
    # An override at evaluation is not the chosen rule: the line goes.
    shown = CliRunner().invoke(cli, ["evaluate", str(out), valid, "--rule", "top-k"])
    assert "chosen at training" not in shown.output
    # A fixed rule is not chosen, and naming both is refused in one line.
    fixed = CliRunner().invoke(cli, [*args, "--rule", "top-k", "-o", str(tmp_path / "f")])
    assert fixed.exit_code == 0 and "chosen" not in fixed.output
    manifest = json.loads((tmp_path / "f" / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["training"]["rule_choice"] is None
    both = CliRunner().invoke(cli, [*args, "--rule", "top-k", "--objective", "macro_f1", "-o", "x"])
    assert "--objective chooses the decision rule" in one_line_error(both)
    bad = CliRunner().invoke(cli, [*args, "--objective", "nope", "-o", str(tmp_path / "b")])
    assert "unknown objective 'nope'" in one_line_error(bad)


def test_cv_chooses_each_folds_rule(tmp_path: Path) -> None:
    data = [str(EXAMPLES / "train.json"), str(EXAMPLES / "validation.json")]
    metrics = tmp_path / "cv.json"
    result = CliRunner().invoke(
        cli,
        ["cv", *data, "--taxonomy", "attractions", "-k", "3", "--metrics-file", str(metrics)],
    )
    assert result.exit_code == 0, result.output
    folds = json.loads(metrics.read_text(encoding="utf-8"))["folds"]
    kept = sum(f["rule_choice"]["chosen"] == "default" for f in folds)
    assert f"Rule chosen at training for micro_f1: the default kept in {kept} of 3" in result.output
    assert all(f["rule_choice"]["objective"] == "micro_f1" for f in folds)
    assert all(f["rule"] == f["rule_choice"]["rule"] for f in folds)
    assert all(f["valid_rows"] > 0 for f in folds)
