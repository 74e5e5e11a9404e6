"""Label hierarchies: `parent` nests labels; a child implies its ancestors in training
targets, truth and predictions; `evaluate` scores each level; `taxonomy show` and the
report draw the tree; the bundled `attractions-grouped` taxonomy trains on the attraction
examples unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagger_core import Tagger, resolve_taxonomy
from tagger_core.cli import cli
from tagger_core.errors import TaxonomyError
from tagger_core.evaluation.metrics import evaluate_matrices
from tagger_core.schemas import Label, Record, Taxonomy
from tagger_core.taxonomy import label_depths, label_matrix, load_taxonomy_file, tree_lines

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "attractions"


def tree(implies: bool = True) -> Taxonomy:
    """place ⊃ park ⊃ theme-park; place ⊃ museum; food (a root of its own)."""
    return Taxonomy(
        name="tree",
        implies_ancestors=implies,
        labels=[
            Label(id="theme-park", parent="park"),
            Label(id="park", parent="place"),
            Label(id="place"),
            Label(id="museum", parent="place"),
            Label(id="food"),
        ],
    )


def test_a_labelled_child_trains_as_labelled_ancestors() -> None:
    records = [Record(text="a", labels=("theme-park",)), Record(text="b", labels=("food",))]
    matrix = label_matrix(records, tree())
    assert matrix.tolist() == [[1, 1, 1, 0, 0], [0, 0, 0, 0, 1]]
    flat = label_matrix(records, tree(implies=False))
    assert flat.tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]


def test_ancestors_depths_and_the_drawn_tree() -> None:
    taxonomy = tree()
    assert taxonomy.ancestors("theme-park") == ["park", "place"]
    assert label_depths(taxonomy) == [2, 1, 0, 1, 0]
    drawn = [branch for branch, _ in tree_lines(taxonomy)]
    assert drawn == ["place", "├─ park", "│  └─ theme-park", "└─ museum", "food"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": [Label(id="a", parent="b"), Label(id="b", parent="a")]}, "own ancestor"),
        ({"mode": "single-label"}, "single-label"),
        ({"constraints": {"exclusive": ["park"]}}, "exclusive label 'park'"),
    ],
)
def test_inconsistent_hierarchies_are_refused(tmp_path: Path, change: dict, message: str) -> None:
    data = tree().model_dump(mode="json") | {
        k: [v.model_dump() for v in change[k]] if k == "labels" else change[k] for k in change
    }
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(TaxonomyError, match=message):
        load_taxonomy_file(path)


def test_predictions_include_every_ancestor_of_a_predicted_label() -> None:
    taxonomy = resolve_taxonomy("attractions-grouped")
    from tagger_core import read_records

    train = read_records(EXAMPLES / "train.json", taxonomy=taxonomy)
    tagger = Tagger.create(taxonomy, encoder="tfidf").train(train)
    names = [r.text for r in read_records(EXAMPLES / "validation.json", taxonomy=taxonomy)]
    predictions = tagger.predict(names)
    parents = {label.id: label.parent for label in taxonomy.labels}
    children = 0
    for prediction in predictions:
        for label in prediction.labels:
            if parents[label]:
                children += 1
                assert parents[label] in prediction.labels, prediction
    assert children >= len(names) // 2  # the check above ran on real decisions
    # With implication off, the same rule leaves groups to their own scores.
    flat = taxonomy.model_copy(update={"implies_ancestors": False})
    alone = Tagger(flat, tagger.encoder, tagger.rule)
    raw = alone.rule.decide(alone.scores(names), flat)
    closed = tagger.decide(tagger.scores(names))
    assert (closed >= raw).all() and (closed != raw).any()


def test_evaluate_scores_each_level_on_its_own_columns() -> None:
    taxonomy = tree()
    # columns: theme-park, park, place, museum, food (depths 2, 1, 0, 1, 0)
    truth = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1]])
    pred = np.array([[0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 1, 0, 1]])
    levels = {level.level: level for level in evaluate_matrices(truth, pred, taxonomy).levels}
    assert [levels[d].labels for d in (0, 1, 2)] == [2, 2, 1]
    # roots (place, food): row 3 adds place → 2 of 3 rows exact; TP 3, FP 1, FN 0
    assert levels[0].exact_match == pytest.approx(2 / 3)
    assert levels[0].micro_f1 == pytest.approx(2 * 3 / (2 * 3 + 1))
    # depth 1 (park, museum): every row right
    assert levels[1].exact_match == 1.0 and levels[1].micro_f1 == 1.0
    # depth 2 (theme-park): missed once, never predicted
    assert levels[2].micro_f1 == 0.0 and levels[2].exact_match == pytest.approx(2 / 3)
    flat = Taxonomy(name="flat", labels=[Label(id=x) for x in ("a", "b", "c", "d", "e")])
    assert evaluate_matrices(truth, pred, flat).levels == []


def test_cli_shows_the_tree_and_evaluates_levels(tmp_path: Path, runner) -> None:
    shown = runner.invoke(cli, ["taxonomy", "show", "attractions-grouped"])
    assert shown.exit_code == 0, shown.output
    assert (
        "├─ Natural Landscape" in shown.output
        and "ancestors of a label are implied" in shown.output
    )
    out = tmp_path / "grouped"
    trained = runner.invoke(
        cli,
        ["train", "--taxonomy", "attractions-grouped", "--train", str(EXAMPLES / "train.json"),
         "-o", str(out)],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    report = tmp_path / "report.html"
    evaluated = runner.invoke(
        cli, ["evaluate", str(out), str(EXAMPLES / "validation.json"), "--report", str(report)]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "level 0 (4 labels)" in evaluated.output and "level 1 (8 labels)" in evaluated.output
    page = report.read_text(encoding="utf-8")
    assert '<section id="hierarchy">' in page and page.count('<ul class="tree">') == 4


def test_the_threshold_sweep_measures_the_decisions_a_rule_makes() -> None:
    """The sweep (report, --sweep-file) and the best global threshold (optimize) add the
    implied ancestors, as the threshold rule's decisions have them."""
    from tagger_core import Scores, make_rule
    from tagger_core.evaluation.sweep import best_global_threshold, threshold_sweep

    taxonomy = tree()
    truth = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1], [0, 1, 1, 0, 0]])
    logits = np.array(
        [[2.0, -1, -3, -2, -2], [-2, -2, -3, 1, -2], [-2, -2, -2, -2, 2], [-2, 1, -3, -2, -2]]
    )
    scores = Scores(logits, "multi-label")
    rule = make_rule("threshold", {"threshold": 0.5})
    evaluated = Tagger(taxonomy, None, rule).evaluate_scores(scores, truth)  # type: ignore[arg-type]
    (at_half,) = threshold_sweep(scores, truth, [0.5], taxonomy=taxonomy)
    assert at_half.micro_f1 == pytest.approx(evaluated.micro_f1) and at_half.micro_f1 == 1.0
    assert best_global_threshold(scores, truth, grid=[0.5, 0.9], taxonomy=taxonomy) == 0.5
