"""`tagger evaluate` and everything it writes: figures JSON, per-label TSV, error listing,
threshold sweep (CSV and PNG), the reference notebook's dump, single-label reports."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from tagger_core import Scores, Tagger, Taxonomy, read_records
from tagger_core.cli import cli
from tagger_core.evaluation.metrics import evaluate_matrices
from tagger_core.evaluation.sweep import decisions_at, threshold_sweep

VALID = EXAMPLES / "validation.json"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained on the 20 toy rows, evaluated on the 55 bundled validation rows: errors galore."""
    from conftest import TOY

    from tagger_core import Record

    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    path = tmp_path_factory.mktemp("evaluate") / "model"
    return Tagger.create("attractions").train(records, records).save(path)


def test_evaluate_writes_every_output(model: Path, tmp_path: Path) -> None:
    out = {
        name: tmp_path / name
        for name in ("m.json", "labels.tsv", "errors.csv", "sweep.csv", "sweep.png", "dump.json")
    }
    result = CliRunner().invoke(
        cli,
        [
            "evaluate", str(model), str(VALID),
            "--metrics-file", str(out["m.json"]), "--results-file", str(out["labels.tsv"]),
            "--errors-file", str(out["errors.csv"]), "--sweep-file", str(out["sweep.csv"]),
            "--sweep-plot", str(out["sweep.png"]), "--dump", str(out["dump.json"]),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(out["m.json"].read_text(encoding="utf-8"))
    assert figures["rows"] == 55
    for key in ("weighted_f1", "samples_f1", "hamming_loss", "lenient_a", "lenient_b", "lrap"):
        assert isinstance(figures[key], float), key
    assert len(figures["confusion"]) == 10 and len(figures["per_label"]) == 9
    assert figures["context"]["rule"]["name"] == "per-label"
    # the text output carries the headline figures and the per-label table
    assert f"exact match {figures['exact_match']:.3f}" in result.stdout
    assert f"lenient A {figures['lenient_a']:.3f}" in result.stdout
    assert "Museums & Galleries" in result.stdout and "ROC-AUC" in result.stdout

    with open(out["labels.tsv"], encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["label"] for r in rows] == Tagger.load(model).taxonomy.label_ids
    for row, m in zip(rows, figures["per_label"], strict=True):
        assert (int(row["support"]), int(row["tp"]), int(row["fp"]), int(row["fn"])) == (
            m["support"], m["tp"], m["fp"], m["fn"],
        )  # fmt: skip
        assert float(row["f1"]) == pytest.approx(m["f1"], abs=1e-4)

    with open(out["errors.csv"], encoding="utf-8") as handle:
        errors = list(csv.DictReader(handle))
    assert len(errors) == round(55 * (1 - figures["exact_match"]))
    severities = [float(e["severity"]) for e in errors]
    assert severities == sorted(severities, reverse=True)
    first = errors[0]
    assert first["text"] and set(first["true"].split("|")) >= set(
        filter(None, first["missing"].split("|"))
    )
    for cell in filter(None, first["predicted_scores"].split("|")):
        label, value = cell.rsplit("=", 1)
        assert label in first["predicted"] and 0.0 <= float(value) <= 1.0

    with open(out["sweep.csv"], encoding="utf-8") as handle:
        sweep = list(csv.DictReader(handle))
    assert len(sweep) == 19 and float(sweep[0]["threshold"]) == pytest.approx(0.05)
    assert out["sweep.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    dump = json.loads(out["dump.json"].read_text(encoding="utf-8"))
    assert len(dump) == 55 and set(dump[0]) == {"logits", "labels"}
    tagger = Tagger.load(model)
    records = read_records(VALID)
    assert np.allclose([d["logits"] for d in dump], tagger.scores([r.text for r in records]).logits)
    ids = tagger.taxonomy.label_ids
    assert dump[0]["labels"] == [1.0 if i in records[0].labels else 0.0 for i in ids]


def test_evaluate_rule_override_and_json_output(model: Path) -> None:
    runner = CliRunner()
    args = ["evaluate", str(model), str(VALID), "--json", "--rule"]
    bare = json.loads(runner.invoke(cli, [*args, "threshold"]).stdout)  # no constraints
    result = runner.invoke(cli, [*args, "at-least-one"])
    assert result.exit_code == 0, result.output
    wrapped = json.loads(result.stdout)
    assert wrapped["empty_predictions"] == 0 < bare["empty_predictions"]
    assert {m["threshold"] for m in wrapped["per_label"]} == {0.5}
    # the saved rule honours the taxonomy's min_labels: 1 by itself
    saved = json.loads(runner.invoke(cli, args[:-1]).stdout)
    assert saved["empty_predictions"] == 0


def test_single_label_evaluation_prints_report_and_confusion_matrix(tmp_path: Path) -> None:
    from tagger_core import Record

    taxonomy = Taxonomy.model_validate(
        {"name": "k", "mode": "single-label", "labels": [{"id": "museum"}, {"id": "zoo"}]}
    )
    rows = [("故宫博物院", "museum"), ("科学博物馆", "museum"), ("北京动物园", "zoo"),
            ("野生动物园", "zoo"), ("香港艺术馆", "museum"), ("海洋馆", "zoo")]  # fmt: skip
    records = [Record(text=t, labels=(label,)) for t, label in rows]
    path = Tagger.create(taxonomy).train(records).save(tmp_path / "single")
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"text": t, "label": [label]} for t, label in rows]), "utf-8")
    result = CliRunner().invoke(cli, ["evaluate", str(path), str(data)])
    assert result.exit_code == 0, result.output
    assert "precision    recall  f1-score   support" in result.stdout
    assert "confusion matrix (rows true, columns predicted):" in result.stdout
    assert "1 museum" in result.stdout and "2 zoo" in result.stdout


def test_cli_start_up_imports_no_plotting_or_learning_library() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tagger_core.cli import cli\n"
        "assert CliRunner().invoke(cli, ['evaluate', '--help']).exit_code == 0\n"
        "assert CliRunner().invoke(cli, ['optimize', '--help']).exit_code == 0\n"
        "heavy = [m for m in ('matplotlib', 'sklearn', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- threshold sweep ---------------------------------------------------------------------------

TAXONOMY = Taxonomy.model_validate({"name": "t", "labels": [{"id": "A"}, {"id": "B"}, {"id": "C"}]})


def test_sweep_points_match_evaluate_matrices_at_each_threshold() -> None:
    rng = np.random.default_rng(5)
    truth = (rng.random((30, 3)) < 0.4).astype(int)
    scores = Scores(rng.normal(0, 2, (30, 3)), "multi-label")
    for point in threshold_sweep(scores, truth, [0.2, 0.5, 0.8]):
        e = evaluate_matrices(truth, scores.probabilities >= point.threshold, TAXONOMY)
        for name in ("exact_match", "micro_f1", "macro_f1", "samples_f1", "lenient_a",
                     "lenient_b", "hamming_loss", "micro_precision", "micro_recall"):  # fmt: skip
            assert getattr(point, name) == pytest.approx(e.figure(name)), name
        assert point.empty_predictions == e.empty_predictions


def test_sweep_in_logit_space_as_the_reference_notebook() -> None:
    logits = np.array([[2.0, -1.0, 0.0], [-3.0, -0.4, -2.0]])
    truth = np.array([[1, 0, 1], [0, 1, 0]])
    sweep = threshold_sweep(Scores(logits, "multi-label"), truth, [-0.5, 0.0], space="logit")
    # at -0.5: row 1 {A, C} right, row 2 {B} right; at 0: row 2 loses B
    assert [p.exact_match for p in sweep] == [1.0, 0.5]


def test_single_label_sweep_answers_only_above_the_threshold() -> None:
    logits = np.array([[3.0, 0.0], [0.1, 0.0]])  # softmax ≈ 0.95 and ≈ 0.52 for the first label
    chosen = decisions_at(Scores(logits, "single-label"), 0.6, "probability")
    assert chosen.astype(int).tolist() == [[1, 0], [0, 0]]
