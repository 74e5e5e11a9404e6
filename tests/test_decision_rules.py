"""Built-in decision rules on small hand-made score matrices."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tagger_core import PluginError, Scores, Taxonomy, make_rule

TAXONOMY = Taxonomy.model_validate({"name": "t", "labels": [{"id": "A"}, {"id": "B"}, {"id": "C"}]})
# sigmoid(0) = 0.5, sigmoid(2) ≈ 0.88, sigmoid(-1) ≈ 0.27, sigmoid(-3) ≈ 0.05
LOGITS = np.array([[2.0, -1.0, 0.0], [-3.0, -1.0, -2.0], [2.0, 2.0, -3.0]])


def decide(name: str, logits=LOGITS, mode="multi-label", **params) -> list[list[int]]:
    return make_rule(name, params).decide(Scores(logits, mode), TAXONOMY).astype(int).tolist()


def test_threshold_in_probability_space() -> None:
    assert decide("threshold") == [[1, 0, 1], [0, 0, 0], [1, 1, 0]]
    assert decide("threshold", threshold=0.6) == [[1, 0, 0], [0, 0, 0], [1, 1, 0]]
    assert decide("threshold", threshold=0.25) == [[1, 1, 1], [0, 1, 0], [1, 1, 0]]


def test_threshold_in_logit_space_as_in_the_reference() -> None:
    assert decide("threshold", space="logit") == [[1, 0, 1], [0, 0, 0], [1, 1, 0]]
    assert decide("threshold", space="logit", threshold=-1.5) == [[1, 1, 1], [0, 1, 0], [1, 1, 0]]


def test_probability_threshold_must_be_inside_zero_one() -> None:
    with pytest.raises(PluginError, match=r"decision rule 'threshold'.*strictly between 0 and 1"):
        make_rule("threshold", {"threshold": 1.5})
    with pytest.raises(PluginError, match="parameter 'treshold'"):
        make_rule("threshold", {"treshold": 0.3})


def test_top_k_takes_best_labels_and_breaks_ties_by_label_order() -> None:
    assert decide("top-k", k=1) == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert decide("top-k", k=2) == [[1, 0, 1], [0, 1, 1], [1, 1, 0]]
    assert decide("top-k", k=2, min_probability=0.3) == [[1, 0, 1], [0, 0, 0], [1, 1, 0]]
    assert decide("top-k", k=10) == [[1, 1, 1]] * 3


def test_argmax_gives_exactly_one_label_under_softmax() -> None:
    chosen = decide("argmax", mode="single-label")
    assert chosen == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    probabilities = Scores(LOGITS, "single-label").probabilities
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_unknown_rule_suggests_a_known_one() -> None:
    with pytest.raises(PluginError, match=r"unknown decision rule 'top_k'.*did you mean 'top-k'"):
        make_rule("top_k")


# -- per-label thresholds --------------------------------------------------------------------

EXCL = Taxonomy.model_validate(
    {
        "name": "x",
        "labels": [{"id": "A"}, {"id": "B"}, {"id": "O"}, {"id": "G1"}, {"id": "G2"}],
        "constraints": {"exclusive": ["O"], "exclusive_groups": [["G1", "G2"]]},
    }
)


def fit_rule(name: str, logits, targets, taxonomy=TAXONOMY, **params):
    rule = make_rule(name, params)
    rule.fit(Scores(np.asarray(logits, float), "multi-label"), np.asarray(targets), taxonomy)
    return rule


def test_best_threshold_by_hand_lies_between_scores_and_breaks_ties_toward_anchor() -> None:
    from tagger_plugins.decision_rules import best_threshold

    # positives score 3, 2; negatives 1, 0: any cut in (1, 2) gives F1 = 1
    z = np.array([3.0, 2.0, 1.0, 0.0])
    y = np.array([1, 1, 0, 0])
    assert best_threshold(z, y, beta=1.0, anchor=0.0) == pytest.approx(1.5)
    # 4 positives above 1 negative above 3 positives: F1 4/… best cut keeps the top 5?
    z = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0])
    y = np.array([1, 1, 1, 1, 0, 1, 1, 0])
    # top 4: P=1, R=4/6 → F1 0.8; top 7: P=6/7, R=1 → F1 12/13 ≈ 0.923 (best)
    assert best_threshold(z, y, beta=1.0, anchor=0.0) == pytest.approx(2.5)
    # beta = 0.5 weighs precision: top 4 gives F0.5 = (1.25·4)/(1.25·4 + 0.25·2) = 0.909,
    # top 7 gives (1.25·6)/(1.25·6 + 1) = 0.882
    assert best_threshold(z, y, beta=0.5, anchor=0.0) == pytest.approx(5.5)


def test_per_label_fit_by_hand_without_robustness() -> None:
    # label A: positives at logits 1.0, 0.8; negatives at 0.6, -1 → own threshold 0.7 (logit)
    # label B: positives at -0.2, -0.4; negatives at -0.6, -2 → own threshold -0.5
    logits = [[1.0, -0.2, 0], [0.8, -0.4, 0], [0.6, -0.6, 0], [-1.0, -2.0, 0]]
    targets = [[1, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]]
    rule = fit_rule("per-label", logits, targets, space="logit", min_positives=1,
                    shrinkage=0, folds=0)  # fmt: skip
    assert rule.params.thresholds == {"A": pytest.approx(0.7), "B": pytest.approx(-0.5)}
    # C has no positive: it keeps the default
    assert rule.label_thresholds(TAXONOMY)["C"] == 0.0
    chosen = rule.decide(Scores(np.array(logits), "multi-label"), TAXONOMY).astype(int)
    assert chosen.tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 1], [0, 0, 1]]


def test_per_label_min_positives_and_shrinkage_toward_the_default() -> None:
    logits = [[1.0, -0.2, 0], [0.8, -0.4, 0], [0.6, -0.6, 0], [-1.0, -2.0, 0]]
    targets = [[1, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]]
    rule = fit_rule("per-label", logits, targets, space="logit", min_positives=3, folds=0)
    assert rule.params.thresholds == {}
    assert "2 positive(s) < min_positives 3" in rule.fit_report()[0]["reason"]
    # shrinkage 2 with 2 positives: weight 2 / (2 + 2) = ½ of the way from 0 to 0.7
    rule = fit_rule("per-label", logits, targets, space="logit", min_positives=1,
                    shrinkage=2, folds=0)  # fmt: skip
    assert rule.params.thresholds == {"A": pytest.approx(0.35), "B": pytest.approx(-0.25)}
    # in probability space the shrinkage runs in logit terms: sigmoid(0.35)
    rule = fit_rule("per-label", logits, targets, min_positives=1, shrinkage=2, folds=0)
    assert rule.params.thresholds["A"] == pytest.approx(1 / (1 + np.exp(-0.35)), abs=1e-6)


def test_per_label_keeps_a_threshold_only_where_it_beats_the_default_out_of_sample() -> None:
    rng = np.random.default_rng(0)
    n = 400
    targets = (rng.random((n, 3)) < 0.3).astype(float)
    targets[:, 2] = 0
    targets[:3, 2] = 1  # C: 3 positives only
    # A separates around +2: the default 0 is far off. B separates around the default 0
    # itself: an own threshold can only fit noise.
    logits = np.where(targets == 1, 1.0, -1.0) + rng.normal(0, 0.5, (n, 3))
    logits[:, 0] += 2.0
    rule = fit_rule("per-label", logits, targets, space="logit")
    assert set(rule.params.thresholds) == {"A"}
    assert rule.params.thresholds["A"] == pytest.approx(2.0, abs=0.3)
    details = {d["label"]: d for d in rule.fit_report()}
    assert details["A"]["cv_gain"] > 0.1 and details["A"]["confidence"] >= 0.8
    assert details["B"]["reason"].startswith("no sure out-of-sample gain")
    assert details["C"]["reason"] == "3 positive(s) < min_positives 5"
    # deterministic: the same seed fits the same thresholds
    again = fit_rule("per-label", logits, targets, space="logit")
    assert again.params.thresholds == rule.params.thresholds


def test_per_label_micro_objective_maximises_micro_f1() -> None:
    from tagger_core.evaluation.metrics import quick_figures

    rng = np.random.default_rng(1)
    n = 600
    targets = (rng.random((n, 3)) < [0.4, 0.2, 0.05]).astype(float)
    logits = targets * 2.0 + rng.normal(0, 1.2, (n, 3)) + [0.5, -0.5, 1.0]
    scores = Scores(logits, "multi-label")
    micro = {}
    for objective in ("label", "micro"):
        rule = fit_rule("per-label", logits, targets, objective=objective, folds=0,
                        shrinkage=0)  # fmt: skip
        micro[objective] = quick_figures(targets, rule.decide(scores, TAXONOMY))["micro_f1"]
    assert micro["micro"] >= micro["label"]


def test_per_label_params_restore_the_fitted_rule_and_check_labels() -> None:
    logits = [[1.0, -0.2, 0], [0.8, -0.4, 0], [0.6, -0.6, 0], [-1.0, -2.0, 0]]
    targets = [[1, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]]
    rule = fit_rule("per-label", logits, targets, min_positives=1, shrinkage=0, folds=0)
    restored = make_rule("per-label", rule.params_dict())
    scores = Scores(np.array(logits), "multi-label")
    assert (restored.decide(scores, TAXONOMY) == rule.decide(scores, TAXONOMY)).all()
    other = Taxonomy.model_validate({"name": "o", "labels": [{"id": "Z"}]})
    with pytest.raises(PluginError, match=r"threshold for label 'A'.*'o' does not have"):
        restored.decide(Scores(np.zeros((1, 1)), "multi-label"), other)
    with pytest.raises(PluginError, match="strictly between 0 and 1"):
        make_rule("per-label", {"thresholds": {"A": 1.5}})


# -- wrappers ---------------------------------------------------------------------------------


def test_at_least_one_takes_the_best_label_only_where_nothing_passed() -> None:
    # row 2 (all below 0.5) gets its best label B; rows 1 and 3 are unchanged
    assert decide("at-least-one") == [[1, 0, 1], [0, 1, 0], [1, 1, 0]]
    # a floor: B scores 0.27 < 0.3, so row 2 stays empty
    assert decide("at-least-one", min_probability=0.3) == [[1, 0, 1], [0, 0, 0], [1, 1, 0]]
    # around another rule, given by name only or as {name, params}
    assert decide("at-least-one", inner="top-k") == decide("top-k")
    inner = {"name": "threshold", "params": {"threshold": 0.95}}
    assert decide("at-least-one", inner=inner) == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]


def test_wrappers_save_their_inner_rule_and_restore_from_it() -> None:
    rule = make_rule("at-least-one", {"inner": {"name": "exclusive", "params": {"inner": "top-k"}}})
    saved = rule.params_dict()
    assert saved == {
        "inner": {
            "name": "exclusive",
            "params": {"inner": {"name": "top-k", "params": {"k": 1, "min_probability": 0.0}}},
        },
        "min_probability": 0.0,
    }
    assert make_rule("at-least-one", saved).params_dict() == saved
    with pytest.raises(PluginError, match=r"'at-least-one': inner rule: unknown decision rule"):
        make_rule("at-least-one", {"inner": "nope"})
    with pytest.raises(PluginError, match=r"inner rule: decision rule 'threshold': parameter"):
        make_rule("at-least-one", {"inner": {"name": "threshold", "params": {"k": 2}}})


def test_wrapper_fits_its_inner_rule_and_keeps_what_it_learned() -> None:
    logits = [[1.0, -0.2, 0], [0.8, -0.4, 0], [0.6, -0.6, 0], [-1.0, -2.0, 0]]
    targets = [[1, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]]
    inner = {"name": "per-label", "params": {"min_positives": 1, "shrinkage": 0, "folds": 0}}
    rule = fit_rule("at-least-one", logits, targets, inner=inner)
    thresholds = rule.params_dict()["inner"]["params"]["thresholds"]
    assert set(thresholds) == {"A", "B"}
    assert rule.label_thresholds(TAXONOMY)["A"] == thresholds["A"]
    assert [d["label"] for d in rule.fit_report()] == ["A", "B", "C"]


def test_exclusive_label_stands_alone_and_the_higher_scoring_side_wins() -> None:
    # columns A, B, O (exclusive), G1, G2 (a group); all pass the 0.5 threshold
    logits = np.array(
        [
            [1.0, 0.5, 2.0, -9, -9],  # O beats A and B → O alone
            [1.0, 3.0, 2.0, -9, -9],  # B beats O → O dropped, A and B stay
            [-9, -9, 2.0, -9, -9],  # O alone: unchanged
            [1.0, -9, -9, 2.0, 1.5],  # group: G1 beats G2 → G2 dropped
            [-9, -9, -9, -9, -9],  # nothing: stays empty
        ]
    )
    chosen = make_rule("exclusive").decide(Scores(logits, "multi-label"), EXCL).astype(int)
    assert chosen.tolist() == [
        [0, 0, 1, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [1, 0, 0, 1, 0],
        [0, 0, 0, 0, 0],
    ]
    # per-label applies the same constraints by default, and not with constraints=false
    per_label = make_rule("per-label").decide(Scores(logits, "multi-label"), EXCL)
    assert (per_label.astype(int) == chosen).all()
    free = make_rule("per-label", {"constraints": False}).decide(
        Scores(logits, "multi-label"), EXCL
    )
    assert free[0].sum() == 3


def test_every_built_in_rule_is_registered_with_a_description() -> None:
    from tagger_core import registry

    rules = registry.decision_rules()
    expected = {"threshold", "per-label", "top-k", "at-least-one", "exclusive", "argmax"}
    assert expected <= set(rules.names())
    assert all(rules.get(name).description for name in expected)


COUNTED = Taxonomy.model_validate(
    {
        "name": "counted",
        "labels": [{"id": i} for i in ("A", "B", "C", "O", "G1", "G2")],
        "constraints": {
            "exclusive": ["O"],
            "exclusive_groups": [["G1", "G2"]],
            "min_labels": 2,
            "max_labels": 3,
        },
    }
)


def test_label_counts_keep_the_best_and_add_the_best_compatible() -> None:
    # columns A, B, C, O (exclusive), G1, G2 (a group); min 2, max 3
    logits = np.array(
        [
            [2.0, 1.5, 1.0, -9, 3.0, -9],  # 4 chosen → the 3 best: G1, A, B
            [-1.0, -2.0, -3.0, -5, -9, -9],  # none chosen → the best (A), then the next (B)
            [1.0, -9, -9, -9, -0.4, -0.3],  # A alone → add the better group member, G2
            [-9, -9, -9, 2.0, -9, -9],  # O chosen: it stands alone, whatever the minimum
            [-9, -1.0, -9, -0.5, -9, -9],  # none chosen and O is best → O, alone
        ]
    )
    chosen = make_rule("exclusive").decide(Scores(logits, "multi-label"), COUNTED).astype(int)
    assert chosen.tolist() == [
        [1, 1, 0, 0, 1, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 1],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 1, 0, 0],
    ]
    per_label = make_rule("per-label").decide(Scores(logits, "multi-label"), COUNTED)
    assert (per_label.astype(int) == chosen).all()


def test_saved_taggers_with_the_old_switch_name_load() -> None:
    rule = make_rule("per-label", {"exclusive": False})
    assert rule.params_dict()["constraints"] is False and "exclusive" not in rule.params_dict()


@settings(max_examples=200, deadline=None)
@given(
    logits=arrays(np.float64, (8, 6), elements=st.floats(-6, 6)),
    minimum=st.integers(0, 2),
    maximum=st.one_of(st.none(), st.integers(2, 4)),
)
def test_the_default_rule_never_breaks_a_constraint(
    logits: np.ndarray, minimum: int, maximum: int | None
) -> None:
    taxonomy = COUNTED.model_copy(
        update={
            "constraints": COUNTED.constraints.model_copy(
                update={"min_labels": minimum, "max_labels": maximum}
            )
        }
    )
    chosen = make_rule("per-label").decide(Scores(logits, "multi-label"), taxonomy)
    for row in chosen:
        labels = {taxonomy.label_ids[j] for j in np.flatnonzero(row)}
        assert not ("O" in labels and len(labels) > 1)
        assert not {"G1", "G2"} <= labels
        assert maximum is None or len(labels) <= maximum
        assert len(labels) >= minimum or labels == {"O"}


def test_labels_are_ranked_by_logits_which_do_not_saturate() -> None:
    """A sigmoid is exactly 1.0 from a logit of about 37: ranked by probabilities, such
    labels would tie and the first listed would win."""
    top = make_rule("top-k", {"k": 1}).decisions(
        Scores(np.array([[38.0, 45.0, 0.0]]), "multi-label"), TAXONOMY
    )
    assert top.tolist() == [[False, True, False]]
    nothing = {"name": "threshold", "params": {"space": "logit", "threshold": 100.0}}
    one = make_rule("at-least-one", {"inner": nothing})
    assert one.decisions(
        Scores(np.array([[38.0, 45.0, 0.0]]), "multi-label"), TAXONOMY
    ).tolist() == [[False, True, False]]
    constrained = Taxonomy.model_validate(
        {
            "name": "x",
            "labels": [{"id": "A"}, {"id": "B"}, {"id": "O"}],
            "constraints": {"exclusive": ["O"]},
        }
    )
    both = Scores(np.array([[40.0, -5.0, 50.0]]), "multi-label")
    chosen = make_rule("exclusive", {"inner": "threshold"}).decisions(both, constrained)
    assert chosen.tolist() == [[False, False, True]]  # O scores higher: it stands alone


@pytest.mark.parametrize(
    ("constraints", "parents", "message"),
    [
        ({"min_labels": 3, "max_labels": 2}, {}, "min_labels \\(3\\) is above max_labels"),
        ({"min_labels": 4}, {}, "above the number of labels"),
        ({"exclusive_groups": [["A", "B"]]}, {"C": "A"}, "group label 'A' has children"),
        ({"max_labels": 1}, {"C": "A"}, "max_labels with implied ancestors"),
    ],
)
def test_constraints_that_no_decision_could_meet_are_refused(
    constraints: dict, parents: dict, message: str
) -> None:
    labels = [{"id": x, **({"parent": parents[x]} if x in parents else {})} for x in "ABC"]
    with pytest.raises(ValueError, match=message):
        Taxonomy.model_validate(
            {"name": "x", "mode": "multi-label", "labels": labels, "constraints": constraints}
        )


def test_a_fitted_threshold_is_saved_with_every_digit() -> None:
    """Rounded to six decimals, a threshold fitted between 0.999999 and 0.9999999 fell on
    the negative and chose it."""
    p = np.array([0.9999999] * 6 + [0.999999, 0.2, 0.1])
    logits = np.stack([np.log(p) - np.log1p(-p), np.zeros(len(p))], axis=1)
    truth = np.array([[1, 0]] * 6 + [[0, 0]] * 3)
    taxonomy = Taxonomy.model_validate({"name": "t", "labels": [{"id": "a"}, {"id": "b"}]})
    rule = make_rule("per-label", {"min_positives": 1, "shrinkage": 0, "folds": 0})
    scores = Scores(logits, "multi-label")
    rule.fit(scores, truth, taxonomy)
    assert 0.999999 < rule.params_dict()["thresholds"]["a"] < 0.9999999
    saved = make_rule("per-label", rule.params_dict())  # as the manifest restores it
    assert saved.decisions(scores, taxonomy)[:, 0].tolist() == truth[:, 0].astype(bool).tolist()
