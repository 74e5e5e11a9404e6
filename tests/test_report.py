"""The HTML report: one self-contained page with its sections and embedded plots."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, TOY

from tagger_core import Record, Scores, Tagger, Taxonomy, make_rule
from tagger_core.cli import cli
from tagger_core.evaluation.metrics import evaluate_matrices
from tagger_core.evaluation.report import ReportInput, error_rows, render_report
from tagger_core.evaluation.sweep import threshold_sweep

SECTIONS = ("summary", "labels", "sweep", "confusion", "errors")


def _images(page: str) -> list[bytes]:
    return [
        base64.b64decode(data)
        for data in re.findall(
            r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page
        )
    ]


def _report(taxonomy: Taxonomy, logits: np.ndarray, truth: np.ndarray, texts: list[str]) -> str:
    scores = Scores(logits, taxonomy.mode)
    if taxonomy.mode == "single-label":
        pred = np.eye(len(taxonomy.labels), dtype=bool)[logits.argmax(axis=1)]
    else:
        pred = scores.probabilities >= 0.5
    evaluation = evaluate_matrices(truth, pred, taxonomy, scores=scores.probabilities)
    records = [Record(text=t, labels=()) for t in texts]
    return render_report(
        ReportInput(
            evaluation=evaluation,
            taxonomy=taxonomy,
            truth=truth,
            pred=pred,
            probabilities=scores.probabilities,
            errors=error_rows(records, truth, pred, scores.probabilities, taxonomy),
            sweep=threshold_sweep(scores, truth),
            tagger_path="my-tagger",
            data_paths=["test.json"],
            encoder="tfidf",
            rule=make_rule("threshold").describe(),
        )
    )


def test_multi_label_report_has_every_section_and_embedded_images() -> None:
    taxonomy = Taxonomy.model_validate(
        {"name": "t", "labels": [{"id": "A", "name": "甲"}, {"id": "B"}, {"id": "C"}]}
    )
    rng = np.random.default_rng(0)
    truth = (rng.random((40, 3)) < 0.4).astype(int)
    logits = truth * 2.0 - 1.0 + rng.normal(0, 1.0, (40, 3))
    texts = [f"name {i}" for i in range(40)]
    texts[0] = "<script>alert(1)</script>"
    truth[0], logits[0] = 1, -5.0  # a confident miss: the row is listed among the errors
    page = _report(taxonomy, logits, truth, texts)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    for heading in ("Summary", "Per label", "Threshold sweep", "Confusions", "Worst errors"):
        assert f"<h2>{heading}</h2>" in page
    images = _images(page)
    # per-label F1, precision-recall curves, sweep, confusion view
    assert len(images) == 4
    assert all(image[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r'(src|href)="(https?:)?//', page)
    # texts are escaped, display names shown
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "A · 甲" in page
    assert "lenient A" in page and "Hamming loss" in page and "micro F1" in page


def test_single_label_report_shows_the_confusion_matrix() -> None:
    taxonomy = Taxonomy.model_validate(
        {"name": "s", "mode": "single-label", "labels": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}
    )
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 3, 30)
    truth = np.eye(3, dtype=int)[ids]
    logits = truth * 2.0 + rng.normal(0, 1.0, (30, 3))
    page = _report(taxonomy, logits, truth, [f"n{i}" for i in range(30)])
    assert "cells count rows" in page and len(_images(page)) == 4
    assert "lenient A" not in page  # multi-label criteria make no sense for one label per row


def test_cli_report_from_a_saved_tagger(tmp_path: Path) -> None:
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    model = Tagger.create("attractions").train(records, records).save(tmp_path / "model")
    report = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli, ["evaluate", str(model), str(EXAMPLES / "validation.json"), "--report", str(report),
              "--top-errors", "5"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    page = report.read_text(encoding="utf-8")
    assert all(f'<section id="{s}">' in page for s in SECTIONS)
    assert len(_images(page)) == 4
    assert "the 5 worst" in page and "per-label" in page
    assert "validation at training" in page  # the saved validation figures, for comparison


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ({"name": "threshold", "params": {"threshold": 0.4, "space": "probability"}},
         "threshold (threshold 0.4)"),
        ({"name": "per-label", "params": {"default": 0.5, "thresholds": {"A": 0.3},
                                          "objective": "label", "seed": 0}},
         "per-label (1 label(s) with their own threshold)"),
        ({"name": "per-label", "params": {"default": 0.35, "objective": "micro"}},
         "per-label (default 0.35, objective micro, every label at 0.35)"),
        ({"name": "at-least-one", "params": {"inner": {"name": "top-k", "params": {"k": 2}},
                                             "min_probability": 0.0}},
         "at-least-one of top-k (k 2)"),
    ],
)  # fmt: skip
def test_rules_describe_themselves_in_one_line(rule: dict, text: str) -> None:
    assert make_rule(rule["name"], rule["params"]).describe() == text
