"""`tagger evaluate`: every figure, the per-label table, sweeps, errors, dumps and a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tagger_core.cli import cli
from tagger_core.cli.options import data_options, format_table, read_all
from tagger_core.cli.predict import rule_override


def _opt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_evaluation(evaluation: Any, rule: str | None = None) -> None:
    e = evaluation
    click.echo(
        f"rows {e.rows}   exact match {e.exact_match:.3f}   "
        f"micro P/R/F1 {e.micro_precision:.3f}/{e.micro_recall:.3f}/{e.micro_f1:.3f}   "
        f"macro F1 {e.macro_f1:.3f}   empty predictions {e.empty_predictions}"
    )
    click.echo(
        f"weighted F1 {e.weighted_f1:.3f}   samples F1 {e.samples_f1:.3f}   "
        f"Hamming loss {e.hamming_loss:.3f}   lenient A {e.lenient_a:.3f}   "
        f"lenient B {e.lenient_b:.3f}"
    )
    if e.lrap is not None:
        click.echo(
            f"LRAP {_opt(e.lrap)}   ROC-AUC micro/macro {_opt(e.micro_roc_auc)}/"
            f"{_opt(e.macro_roc_auc)}   PR-AUC micro/macro {_opt(e.micro_pr_auc)}/"
            f"{_opt(e.macro_pr_auc)}"
        )
    if rule:
        click.echo(f"rule: {rule}")
    click.echo()
    has_threshold = any(m.threshold is not None for m in e.per_label)
    header = ["LABEL", "SUPPORT", "TP", "FP", "FN", "PRECISION", "RECALL", "F1", "ROC-AUC"]
    header += ["PR-AUC"] + (["THRESHOLD"] if has_threshold else [])
    rows = []
    for m in e.per_label:
        row = [m.label, m.support, m.tp, m.fp, m.fn, m.precision, m.recall, m.f1]
        row += [_opt(m.roc_auc), _opt(m.pr_auc)]
        if has_threshold:
            row.append(_opt(m.threshold))
        rows.append(row)
    click.echo(format_table(header, rows))
    if e.confused_pairs:
        pairs = ", ".join(f"{p.true} → {p.predicted} ({p.count})" for p in e.confused_pairs[:5])
        click.echo()
        click.echo(f"most confused (true label missed → label predicted instead): {pairs}")


def _print_single_label(truth: Any, pred: Any, evaluation: Any, taxonomy: Any) -> None:
    from tagger_core.evaluation.metrics import classification_report_text

    click.echo()
    click.echo(classification_report_text(truth, pred, taxonomy).rstrip())
    n_labels = len(taxonomy.labels)
    if n_labels <= 20:
        ids = taxonomy.label_ids
        click.echo()
        click.echo("confusion matrix (rows true, columns predicted):")
        click.echo(
            format_table(
                ["TRUE \\ PREDICTED", *[str(i + 1) for i in range(n_labels)]],
                [
                    [f"{i + 1} {label}", *evaluation.confusion[i][:n_labels]]
                    for i, label in enumerate(ids)
                ],
            )
        )


def _wrote(what: str, path: Path) -> None:
    click.echo(f"Wrote {what} to {path}", err=True)


@cli.command("evaluate")
@click.argument("tagger_dir", metavar="TAGGER", type=click.Path(path_type=Path))
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--metrics-file", type=click.Path(path_type=Path), help="Write all figures as JSON here."
)
@click.option(
    "--results-file",
    type=click.Path(path_type=Path),
    help="Write the per-label table (support, TP, FP, FN, P, R, F1, AUCs) as TSV here.",
)
@click.option(
    "--errors-file",
    type=click.Path(path_type=Path),
    help="Write every wrong row (text, true and predicted labels with scores) as CSV here.",
)
@click.option(
    "--sweep-file",
    type=click.Path(path_type=Path),
    help="Write the metrics against a global threshold as CSV here.",
)
@click.option(
    "--sweep-plot", type=click.Path(path_type=Path), help="Plot the threshold sweep to this PNG."
)
@click.option(
    "--sweep-space",
    type=click.Choice(["probability", "logit"]),
    default="probability",
    show_default=True,
    help="Sweep thresholds on probabilities or on logits (as the reference notebook).",
)
@click.option(
    "--dump",
    type=click.Path(path_type=Path),
    help='Write [{"logits": [...], "labels": [0/1...]}] (the reference notebook format).',
)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    help="Write a self-contained HTML report (figures, tables, plots, worst errors).",
)
@click.option(
    "--top-errors",
    default=50,
    show_default=True,
    type=click.IntRange(min=0),
    help="Errors shown in the report.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--rule", help="Override the saved decision rule for this evaluation.")
@click.option("--rule-param", "rule_params", multiple=True, help="Parameter of --rule, KEY=VALUE.")
@data_options
def evaluate_command(
    tagger_dir: Path,
    data: tuple[Path, ...],
    metrics_file: Path | None,
    results_file: Path | None,
    errors_file: Path | None,
    sweep_file: Path | None,
    sweep_plot: Path | None,
    sweep_space: str,
    dump: Path | None,
    report: Path | None,
    top_errors: int,
    as_json: bool,
    rule: str | None,
    rule_params: tuple[str, ...],
    **kwargs: Any,
) -> None:
    """Evaluate a saved TAGGER on labelled DATA files.

    Prints exact match, micro/macro/weighted/samples P/R/F1, Hamming loss, the lenient
    criteria, ranking figures and the per-label table; the options write the rest.

    \b
    tagger evaluate my-tagger test.json --report report.html \\
        --metrics-file metrics.json --results-file labels.tsv --errors-file errors.csv
    """
    from tagger_core.evaluation.metrics import evaluate_matrices
    from tagger_core.evaluation.report import describe_rule
    from tagger_core.tagger import Tagger

    tagger = Tagger.load(tagger_dir)
    override = rule_override(rule, rule_params)
    records, _ = read_all(data, kwargs)
    scores, truth = tagger.score_records(records)
    pred = tagger.decide(scores, override)
    probabilities = scores.probabilities
    evaluation = evaluate_matrices(
        truth,
        pred,
        tagger.taxonomy,
        scores=probabilities,
        thresholds=tagger.label_thresholds(override),
    )
    active = override or tagger.rule
    rule_spec = {"name": active.name, "params": active.params_dict()}
    if metrics_file is not None:
        figures = evaluation.model_dump(mode="json")
        if tagger.taxonomy.mode == "single-label":
            from tagger_core.evaluation.metrics import classification_report_text

            figures["classification_report"] = classification_report_text(
                truth, pred, tagger.taxonomy
            )
        figures["context"] = {
            "tagger": str(tagger_dir),
            "data": [str(p) for p in data],
            "rule": rule_spec,
        }
        metrics_file.write_text(json.dumps(figures, indent=2, ensure_ascii=False), "utf-8")
        _wrote("all figures", metrics_file)
    if results_file is not None:
        from tagger_core.evaluation.report import write_results_tsv

        write_results_tsv(results_file, evaluation)
        _wrote("the per-label table", results_file)
    if dump is not None:
        from tagger_core.evaluation.report import write_dump

        write_dump(dump, scores.logits, truth)
        _wrote(f"logits and labels of {len(records)} rows", dump)
    errors = None
    if errors_file is not None or report is not None:
        from tagger_core.evaluation.report import error_rows, write_errors_csv

        errors = error_rows(records, truth, pred, probabilities, tagger.taxonomy)
        if errors_file is not None:
            write_errors_csv(errors_file, errors)
            _wrote(f"{len(errors)} wrong rows", errors_file)
    sweep = None
    if sweep_file is not None or sweep_plot is not None or report is not None:
        from tagger_core.evaluation.sweep import threshold_sweep, write_sweep_csv

        sweep = threshold_sweep(scores, truth, space=sweep_space)  # type: ignore[arg-type]
        if sweep_file is not None:
            write_sweep_csv(sweep_file, sweep)
            _wrote(f"the threshold sweep ({len(sweep)} thresholds)", sweep_file)
        if sweep_plot is not None:
            from tagger_core.evaluation.report import plot_sweep

            sweep_plot.write_bytes(plot_sweep(sweep, sweep_space, evaluation))
            _wrote("the sweep plot", sweep_plot)
    if report is not None:
        from tagger_core.evaluation.report import ReportInput, write_report

        assert errors is not None and sweep is not None
        write_report(
            report,
            ReportInput(
                evaluation=evaluation,
                taxonomy=tagger.taxonomy,
                truth=truth,
                pred=pred,
                probabilities=probabilities,
                errors=errors,
                sweep=sweep,
                sweep_space=sweep_space,
                tagger_path=str(tagger_dir),
                data_paths=[str(p) for p in data],
                encoder=tagger.encoder.name,
                rule=rule_spec,
                rule_overridden=override is not None,
                validation_metrics=tagger.training.validation_metrics,
                train_rows=tagger.training.train_rows or None,
                top_errors=top_errors,
            ),
        )
        _wrote("the report", report)
    if as_json:
        click.echo(evaluation.model_dump_json(indent=2))
        return
    print_evaluation(evaluation, describe_rule(rule_spec))
    if tagger.taxonomy.mode == "single-label":
        _print_single_label(truth, pred, evaluation, tagger.taxonomy)
