"""The `ensemble` encoder: members trained together, weights fitted on held-out scores with
a guard against small validation sets, one tagger folder, each member measured alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, one_line_error
from tagger_plugins.ensemble import (
    decision_check,
    fit_weights,
    probabilities,
    weight_grid,
)

from tagger_core import Encoder, Record, Tagger, Taxonomy, hookimpl
from tagger_core.cli import cli
from tagger_core.errors import PluginError
from tagger_core.tagger import MANIFEST

TRAIN, VALID = EXAMPLES / "train.json", EXAMPLES / "validation.json"


def test_the_weight_grid_covers_the_simplex() -> None:
    two = weight_grid(2, 0.1)
    assert len(two) == 11 and np.allclose(two.sum(axis=1), 1)
    assert [0.0, 1.0] in two.tolist() and [1.0, 0.0] in two.tolist()
    three = weight_grid(3, 0.25)
    assert len(three) == 15 and (three >= 0).all() and np.allclose(three.sum(axis=1), 1)


def _member_probs(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Member 0 knows the labels, member 1 is noise."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, 3)) < 0.3).astype(float)
    good = probabilities(np.where(truth > 0, 2.0, -2.0) + rng.normal(0, 0.5, (n, 3)), "multi-label")
    noise = probabilities(rng.normal(0, 2, (n, 3)), "multi-label")
    return [good, noise], truth


def test_weights_follow_the_better_member_when_the_rows_show_it() -> None:
    probs, truth = _member_probs(400)
    weights, report, _ = fit_weights(probs, truth, "multi-label", 0.1)
    assert report["chosen"] == "fitted" and weights[0] > weights[1]
    assert report["out_of_fold_score"] > report["equal_score"]


def test_a_well_ranking_but_miscalibrated_member_wins_by_average_precision() -> None:
    # Member 0 ranks perfectly but says 0.9 to everything negative and 0.95 to positives;
    # member 1 says about the label prior and knows nothing.
    rng = np.random.default_rng(2)
    truth = (rng.random((300, 3)) < 0.3).astype(float)
    ranking = np.where(truth > 0, 0.95, 0.9) + rng.uniform(0, 0.01, truth.shape)
    prior = 0.3 + rng.uniform(-0.1, 0.1, truth.shape)
    weights, report, _ = fit_weights([ranking, prior], truth, "multi-label", 0.1)
    assert weights[0] >= 0.8 and report["chosen"] == "fitted"
    by_loss, _, _ = fit_weights([ranking, prior], truth, "multi-label", 0.1, criterion="log_loss")
    assert by_loss[0] < 0.5  # what log loss prefers: the calibrated know-nothing


def test_equal_weights_stay_unless_fitting_wins_out_of_fold() -> None:
    # Two members that are equally good, with independent errors: equal weights are best,
    # and whatever the fit prefers on the rows is noise.
    rng = np.random.default_rng(1)
    truth = (rng.random((60, 3)) < 0.3).astype(float)
    probs = [
        probabilities(np.where(truth > 0, 1.0, -1.0) + rng.normal(0, 1.5, (60, 3)), "multi-label")
        for _ in range(2)
    ]
    weights, report, _ = fit_weights(probs, truth, "multi-label", 0.1)
    if report["chosen"] == "fitted":  # kept only where it beat equal weights out of fold
        assert report["out_of_fold_score"] > report["equal_score"]
    else:
        assert np.allclose(weights, 0.5)
    few, report, _ = fit_weights([p[:6] for p in probs], truth[:6], "multi-label", 0.1)
    assert np.allclose(few, 0.5) and "too few" in report["reason"]


def _four_labels() -> Taxonomy:
    return Taxonomy(name="t", labels=[{"id": c} for c in "abcd"], mode="multi-label")


def test_a_blend_that_ranks_better_but_decides_worse_gives_way_to_its_best_member() -> None:
    # Both members rank well, with independent noise, so the blend ranks best; but one
    # member's probabilities run low, and at the default threshold the blend misses
    # labels that the well-scaled member alone finds.
    rng = np.random.default_rng(0)
    truth = (rng.random((300, 4)) < 0.3).astype(float)
    noise = [rng.normal(0, 1.2, truth.shape) for _ in range(2)]
    sure = probabilities(np.where(truth > 0, 1.5, -2.0) + noise[0], "multi-label")
    low = probabilities(np.where(truth > 0, -0.5, -4.0) + noise[1], "multi-label")
    weights, report, held_out = fit_weights([sure, low], truth, "multi-label", 0.1)
    assert report["chosen"] == "fitted" and 0 < weights[0] < 1
    assert report["out_of_fold_score"] > max(report["member_scores"])  # it ranks better
    winner, check = decision_check(
        held_out, [sure, low], truth, _four_labels(), "micro_f1", ["sure", "low"]
    )
    assert winner == 0 and check["chosen"] == "sure"
    assert check["members"]["sure"] > check["blend"] > check["members"]["low"]
    assert check["rule"] == "per-label (every label at 0.5)"


def test_the_check_finds_the_best_member_where_lower_is_better() -> None:
    rng = np.random.default_rng(0)
    truth = (rng.random((300, 4)) < 0.3).astype(float)
    noise = [rng.normal(0, 1.2, truth.shape) for _ in range(2)]
    low = probabilities(np.where(truth > 0, -0.5, -4.0) + noise[1], "multi-label")
    sure = probabilities(np.where(truth > 0, 1.5, -2.0) + noise[0], "multi-label")
    _, _, held_out = fit_weights([low, sure], truth, "multi-label", 0.1)
    winner, check = decision_check(
        held_out, [low, sure], truth, _four_labels(), "hamming_loss", ["low", "sure"]
    )
    assert check["members"]["sure"] < check["blend"] < check["members"]["low"]
    assert winner == 1 and check["chosen"] == "sure"


def test_the_check_and_the_members_aim_at_the_training_objective(
    register_plugin: Any,
) -> None:
    from tagger_core import read_records

    register_plugin(YesPlugin(), "yes-plugin")
    train, valid = read_records(TRAIN), read_records(VALID)

    def trained(objective: str | None, **params: Any) -> Tagger:
        tagger = Tagger.create(
            "attractions", encoder="ensemble", encoder_params={"members": "tfidf,yes", **params}
        )
        return tagger.train(train, valid, objective=objective)

    assert trained(None).encoder.fit_report["check"]["figure"] == "micro_f1"
    aimed = trained("exact_match")
    assert aimed.encoder.fit_report["check"]["figure"] == "exact_match"
    assert [member.objective for member in aimed.encoder.encoders] == ["exact_match"] * 2
    named = trained("exact_match", check="samples_f1")
    assert named.encoder.fit_report["check"]["figure"] == "samples_f1"


def test_a_blend_that_decides_better_is_kept() -> None:
    rng = np.random.default_rng(3)
    truth = (rng.random((300, 4)) < 0.3).astype(float)
    probs = [
        probabilities(
            np.where(truth > 0, 1.0, -1.0) + rng.normal(0, 1.0, truth.shape), "multi-label"
        )
        for _ in range(2)
    ]
    _, _, held_out = fit_weights(probs, truth, "multi-label", 0.1)
    winner, check = decision_check(
        held_out, probs, truth, _four_labels(), "exact_match", ["a", "b"]
    )
    assert winner is None and check["chosen"] == "blend" and check["figure"] == "exact_match"
    assert check["blend"] >= max(check["members"].values())


def _train(tmp_path: Path, *params: str) -> tuple[Any, Path]:
    out = tmp_path / "ens"
    args = ["train", "--taxonomy", "attractions", "--train", str(TRAIN), "--valid", str(VALID)]
    result = CliRunner().invoke(cli, [*args, "--encoder", "ensemble", *params, "-o", str(out)])
    return result, out


def test_one_command_trains_saves_and_loads_an_ensemble(tmp_path: Path) -> None:
    result, out = _train(
        tmp_path, "-p", "members=tfidf,tfidf", "-p", "weights=fit", "--rule", "per-label"
    )
    assert result.exit_code == 0, result.output
    state = json.loads((out / "encoder" / "ensemble.json").read_text(encoding="utf-8"))
    assert [m["folder"] for m in state["members"]] == ["members/0-tfidf", "members/1-tfidf-2"]
    assert np.isclose(sum(state["weights"]), 1.0)
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert set(manifest["training"]["members"]) == {"tfidf", "tfidf-2"}
    # Identical members: the ensemble scores as each of them does.
    tagger = Tagger.load(out)
    member = tagger.encoder.members()["tfidf"]
    texts = ["海洋公园", "故宫博物院"]
    np.testing.assert_allclose(
        tagger.scores(texts).probabilities,
        probabilities(member.logits(texts), "multi-label"),
        atol=1e-5,
    )
    shown = CliRunner().invoke(cli, ["evaluate", str(out), str(VALID)])
    assert "ensemble (combined)" in shown.output and "tfidf-2" in shown.output
    assert f"ensemble: {Tagger.load(out).encoder.combination()}" in shown.output
    metrics = tmp_path / "m.json"
    CliRunner().invoke(cli, ["evaluate", str(out), str(VALID), "--metrics-file", str(metrics)])
    figures = json.loads(metrics.read_text(encoding="utf-8"))
    assert figures["members"]["tfidf"]["micro_f1"] == pytest.approx(figures["micro_f1"])
    predicted = CliRunner().invoke(cli, ["predict", str(out), "海洋公园", "--json"])
    assert predicted.exit_code == 0 and "predicted" in predicted.output


def test_members_differ_and_the_ensemble_reports_each(tmp_path: Path) -> None:
    members = tmp_path / "members.yaml"
    members.write_text(
        "members:\n  - name: tfidf\n  - name: tfidf\n    params: {analyzer: word, C: 0.1}\n",
        encoding="utf-8",
    )
    result, out = _train(tmp_path, "-p", f"members={members}")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    alone = {
        k: v["validation_metrics"]["micro_f1"] for k, v in manifest["training"]["members"].items()
    }
    assert alone["tfidf"] != alone["tfidf-2"]  # the word-level member is another model
    records = [Record(text=t, labels=()) for t in ["海洋公园"]]
    assert Tagger.load(out).evaluate_members(records).keys() == {"tfidf", "tfidf-2"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["-p", "members=tfidf"], "at least two members"),
        (["-p", "members=tfidf,nope"], "unknown encoder 'nope'"),
        (["-p", "members=tfidf,ensemble"], "cannot be its own member"),
        (["-p", "weights=[1]"], "one per member"),
        (["-p", "check=recall"], "check"),
    ],
)
def test_bad_ensembles_fail_in_one_line(tmp_path: Path, params: list[str], message: str) -> None:
    result, _ = _train(tmp_path, *params)
    assert message in one_line_error(result)


class KeywordEncoder(Encoder):  # type: ignore[type-arg]
    """An external plugin's encoder: a label scores high where its first character occurs.
    Counts the texts it scores."""

    name = "keyword"
    scored = 0

    def fit(self, texts, targets, taxonomy, *, valid=None, seed=0):  # type: ignore[no-untyped-def]
        self.ids = taxonomy.label_ids

    def logits(self, texts):  # type: ignore[no-untyped-def]
        KeywordEncoder.scored += len(texts)
        return np.array([[2.0 if i[0] in t else -2.0 for i in self.ids] for t in texts])

    def save(self, directory: Path) -> None:
        (directory / "ids.json").write_text(json.dumps(self.ids), encoding="utf-8")

    def load(self, directory: Path, taxonomy: Taxonomy) -> None:
        self.ids = json.loads((directory / "ids.json").read_text(encoding="utf-8"))


class KeywordPlugin:
    @hookimpl
    def register_encoders(self, register):  # type: ignore[no-untyped-def]
        register(KeywordEncoder)


def test_an_external_encoder_is_a_member(register_plugin: Any, tmp_path: Path) -> None:
    register_plugin(KeywordPlugin(), "keyword-plugin")
    records = [Record(text="海洋公园", labels=("Playgrounds",))] * 4
    tagger = Tagger.create(
        "attractions", encoder="ensemble", encoder_params={"members": "tfidf,keyword"}
    )
    tagger.train(records)
    saved = Tagger.load(tagger.save(tmp_path / "t"))
    assert list(saved.encoder.members()) == ["tfidf", "keyword"]
    assert saved.scores(["海洋公园"]).probabilities.shape == (1, len(saved.taxonomy.labels))
    with pytest.raises(PluginError, match="unknown encoder"):
        Tagger.create("attractions", encoder="ensemble", encoder_params={"members": "tfidf,x"})


def test_cv_measures_each_member_as_the_tagger_it_would_be_alone() -> None:
    from tagger_core import cross_validate, read_records, resolve_taxonomy
    from tagger_core.workflows.train import build_tagger

    taxonomy = resolve_taxonomy("attractions")
    records = read_records(TRAIN) + read_records(VALID)
    members = [{"name": "tfidf"}, {"name": "tfidf", "params": {"analyzer": "char_wb"}}]

    def run(encoder: str, params: dict[str, Any]) -> Any:
        return cross_validate(
            records,
            taxonomy,
            lambda: build_tagger(taxonomy, encoder=encoder, encoder_params=params),
            k=3,
            objective="micro_f1",
        )

    ensemble = run("ensemble", {"members": members})
    alone = run("tfidf", {})
    for fold, single in zip(ensemble.folds, alone.folds, strict=True):
        member = fold.metrics["members"]["tfidf"]
        for figure in ("exact_match", "micro_f1", "macro_f1", "empty_rate"):
            assert member[figure] == pytest.approx(single.metrics[figure]), figure
        assert set(fold.metrics["members"]) == {"tfidf", "tfidf-2"}
        assert fold.combination and not single.combination
        name = fold.combination.split(" alone:")[0]
        if name in fold.metrics["members"]:  # the decision check gave it all the weight
            alone_figures = fold.metrics["members"][name]
            assert fold.metrics["micro_f1"] == pytest.approx(alone_figures["micro_f1"])


def test_each_member_scores_once_when_measured_alone_and_together(
    register_plugin: Any,
) -> None:
    from tagger_core import cross_validate, evaluate_to_files, read_records, resolve_taxonomy

    register_plugin(KeywordPlugin(), "keyword-plugin")
    taxonomy = resolve_taxonomy("attractions")
    train, valid = read_records(TRAIN), read_records(VALID)
    tagger = Tagger.create(
        "attractions", encoder="ensemble", encoder_params={"members": "tfidf,keyword"}
    )
    KeywordEncoder.scored = 0
    tagger.train(train, valid)
    # the weights' fit and the members' own rules: the validation rows, twice in all
    assert KeywordEncoder.scored == 2 * len(valid)
    KeywordEncoder.scored = 0
    run = evaluate_to_files(tagger, valid)
    assert KeywordEncoder.scored == len(valid)  # the ensemble and the member alone
    assert set(run.members) == {"tfidf", "keyword"}
    assert run.members["keyword"].rows == len(valid)
    KeywordEncoder.scored = 0
    result = cross_validate(
        train + valid,
        taxonomy,
        lambda: Tagger.create(
            taxonomy, encoder="ensemble", encoder_params={"members": "tfidf,keyword"}
        ),
        k=3,
    )
    rows = sum(f.valid_rows * 2 + f.test_rows for f in result.folds)
    assert KeywordEncoder.scored == rows
    assert all(set(f.metrics["members"]) == {"tfidf", "keyword"} for f in result.folds)


class YesEncoder(Encoder):  # type: ignore[type-arg]
    """A member that says yes to every label: no ranking at all, so average precision
    cannot tell a blend with it from the other member alone. Counts the texts it scores."""

    name = "yes"
    scored = 0

    def fit(self, texts, targets, taxonomy, *, valid=None, seed=0):  # type: ignore[no-untyped-def]
        self.labels = len(taxonomy.labels)

    def logits(self, texts):  # type: ignore[no-untyped-def]
        YesEncoder.scored += len(texts)
        return np.full((len(texts), self.labels), 4.0)

    def save(self, directory: Path) -> None:
        (directory / "labels.json").write_text(json.dumps(self.labels), encoding="utf-8")

    def load(self, directory: Path, taxonomy: Taxonomy) -> None:
        self.labels = json.loads((directory / "labels.json").read_text(encoding="utf-8"))


class YesPlugin:
    @hookimpl
    def register_encoders(self, register):  # type: ignore[no-untyped-def]
        register(YesEncoder)


def test_a_member_that_decides_better_alone_takes_all_the_weight_and_the_other_idles(
    register_plugin: Any, tmp_path: Path
) -> None:
    from tagger_core import read_records

    register_plugin(YesPlugin(), "yes-plugin")
    train, valid = read_records(TRAIN), read_records(VALID)

    def trained(**params: Any) -> Tagger:
        tagger = Tagger.create(
            "attractions", encoder="ensemble", encoder_params={"members": "tfidf,yes", **params}
        )
        return tagger.train(train, valid)

    tagger = trained()
    # Mixing in a constant changes no ranking: the weights stay equal, and the blend says
    # yes to most labels; TF-IDF alone decides the validation rows far better.
    assert tagger.encoder.fit_report["chosen"] == "equal"
    check = tagger.encoder.fit_report["check"]
    assert check["chosen"] == "tfidf" and check["members"]["tfidf"] > check["blend"]
    assert check["best_member_better_in"] >= 0.9
    assert tagger.encoder.combination().startswith("tfidf alone: it decided the validation")
    assert tagger.encoder.weights.tolist() == [1.0, 0.0]
    saved = Tagger.load(tagger.save(tmp_path / "t"))
    assert saved.encoder.weights.tolist() == [1.0, 0.0]
    YesEncoder.scored = 0
    alone = saved.encoder.members()["tfidf"]
    texts = ["海洋公园", "故宫博物院"]
    np.testing.assert_allclose(
        saved.scores(texts).probabilities,
        probabilities(alone.logits(texts), "multi-label"),
        atol=1e-5,
    )
    assert YesEncoder.scored == 0  # weighted 0: never run to predict
    unchecked = trained(check="none")
    assert unchecked.encoder.weights.tolist() == [0.5, 0.5]
    assert "check" not in unchecked.encoder.fit_report
    assert unchecked.encoder.combination() == "tfidf 0.50 + yes 0.50 (equal weights)"


def test_a_member_barely_better_on_a_few_rows_leaves_the_blend(register_plugin: Any) -> None:
    from tagger_core import read_records

    # On the 55 validation rows TF-IDF alone scores a little above its blend with the
    # keyword member, inside the noise: the blend the user asked for stays.
    register_plugin(KeywordPlugin(), "keyword-plugin")
    tagger = Tagger.create(
        "attractions", encoder="ensemble", encoder_params={"members": "tfidf,keyword"}
    )
    tagger.train(read_records(TRAIN), read_records(VALID))
    check = tagger.encoder.fit_report["check"]
    assert check["members"]["tfidf"] > check["blend"] and check["chosen"] == "blend"
    assert check["best_member_better_in"] < 0.9
    assert tagger.encoder.weights.tolist() == [0.5, 0.5]
