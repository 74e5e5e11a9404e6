"""Evaluate a tagger on labelled records and write what was asked: the figures as JSON,
the per-label table, every wrong row, the threshold sweep and its plot, the reference
notebook's dump and the HTML report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagger_core.components import DecisionRule
from tagger_core.evaluation.metrics import Evaluation, classification_report_text
from tagger_core.evaluation.report import (
    ReportInput,
    error_rows,
    plot_sweep,
    write_dump,
    write_errors_csv,
    write_report,
    write_results_tsv,
)
from tagger_core.evaluation.sweep import threshold_sweep, write_sweep_csv
from tagger_core.files import write_bytes, write_text
from tagger_core.schemas import Record
from tagger_core.scores import ScoreSpace
from tagger_core.tagger import RuleSpec, Tagger
from tagger_core.workflows.optimize import describe_choice


@dataclass
class EvaluationFiles:
    """Where `tagger evaluate` writes; None: not written."""

    metrics: Path | None = None
    results: Path | None = None
    errors: Path | None = None
    sweep: Path | None = None
    sweep_plot: Path | None = None
    dump: Path | None = None
    report: Path | None = None
    sweep_space: ScoreSpace = "probability"
    top_errors: int = 50


@dataclass
class EvaluationRun:
    evaluation: Evaluation
    rule: DecisionRule[Any]
    truth: np.ndarray
    pred: np.ndarray
    written: list[tuple[str, Path]] = field(default_factory=list)  # (what, where)
    rule_choice: str = ""  # how training chose the rule (unless overridden here)
    # Each member of a combining encoder (an ensemble) alone, with its own rule.
    members: dict[str, Evaluation] = field(default_factory=dict)


def evaluate_to_files(
    tagger: Tagger,
    records: Sequence[Record],
    files: EvaluationFiles | None = None,
    *,
    rule: RuleSpec = None,
    tagger_path: str = "",
    data_paths: Sequence[str] = (),
) -> EvaluationRun:
    """Score ``records`` once, measure the rule's decisions and write every asked output."""
    files = files or EvaluationFiles()
    active = tagger.rule_for(rule)
    scores, truth, parts = tagger.score_records_and_members(records)
    evaluation = tagger.evaluate_scores(scores, truth, active)
    pred = tagger.decide(scores, active)
    run = EvaluationRun(evaluation, active, truth, pred)
    choice = tagger.training.rule_choice
    if rule is None and choice:
        run.rule_choice = describe_choice(choice)
    run.members = tagger.evaluate_member_scores(parts, truth)
    taxonomy = tagger.taxonomy
    if files.metrics is not None:
        figures = evaluation.model_dump(mode="json")
        if taxonomy.mode == "single-label":
            figures["classification_report"] = classification_report_text(truth, pred, taxonomy)
        figures["context"] = {
            "tagger": tagger_path,
            "data": list(data_paths),
            "rule": {"name": active.name, "params": active.params_dict()},
            "rule_choice": None if rule is not None else tagger.training.rule_choice,
        }
        if run.members:
            figures["members"] = {
                name: member.model_dump(mode="json", exclude={"confusion"})
                for name, member in run.members.items()
            }
        text = json.dumps(figures, indent=2, ensure_ascii=False)
        write_text(files.metrics, text)
        run.written.append(("all figures", files.metrics))
    if files.results is not None:
        write_results_tsv(files.results, evaluation)
        run.written.append(("the per-label table", files.results))
    if files.dump is not None:
        write_dump(files.dump, scores.logits, truth)
        run.written.append((f"logits and labels of {len(records)} rows", files.dump))
    errors = []
    if files.errors is not None or files.report is not None:
        errors = error_rows(records, truth, pred, scores.probabilities, taxonomy)
        if files.errors is not None:
            write_errors_csv(files.errors, errors)
            run.written.append((f"{len(errors)} wrong rows", files.errors))
    if files.sweep is None and files.sweep_plot is None and files.report is None:
        return run
    sweep = threshold_sweep(scores, truth, space=files.sweep_space, taxonomy=tagger.taxonomy)
    if files.sweep is not None:
        write_sweep_csv(files.sweep, sweep)
        run.written.append((f"the threshold sweep ({len(sweep)} thresholds)", files.sweep))
    if files.sweep_plot is not None:
        write_bytes(files.sweep_plot, plot_sweep(sweep, files.sweep_space, evaluation))
        run.written.append(("the sweep plot", files.sweep_plot))
    if files.report is not None:
        report = ReportInput(
            evaluation=evaluation,
            taxonomy=taxonomy,
            truth=truth,
            pred=pred,
            probabilities=scores.probabilities,
            errors=errors,
            sweep=sweep,
            sweep_space=files.sweep_space,
            tagger_path=tagger_path,
            data_paths=list(data_paths),
            encoder=tagger.encoder.name,
            rule=active.describe(),
            rule_overridden=rule is not None,
            rule_choice=run.rule_choice,
            validation_metrics=tagger.training.validation_metrics,
            train_rows=tagger.training.train_rows or None,
            top_errors=files.top_errors,
        )
        write_report(files.report, report)
        run.written.append(("the report", files.report))
    return run
