"""`tagger evaluate`: every figure, the per-label table, sweeps, errors, dumps and a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tagger_core.cli.options import (
    data_options,
    format_table,
    no_verify_option,
    read_all,
    rule_override,
    rule_override_options,
    runtime_option,
)


def _opt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_members(evaluation: Any, members: dict[str, Any], tagger: Any) -> None:
    """The ensemble against each of its members alone, on the same rows."""
    click.echo()
    combination = tagger.encoder.combination()
    if combination:
        click.echo(f"{tagger.encoder.name}: {combination}")
    click.echo("members, each alone with its own rule fitted on the same validation rows:")
    header = ["ENCODER", "EXACT", "MICRO F1", "MACRO F1", "EMPTY"]
    rows = [
        [f"{tagger.encoder.name} (combined)", evaluation.exact_match, evaluation.micro_f1,
         evaluation.macro_f1, evaluation.empty_predictions],
    ]  # fmt: skip
    for name, e in members.items():
        rows.append([name, e.exact_match, e.micro_f1, e.macro_f1, e.empty_predictions])
    click.echo(format_table(header, rows))


def print_evaluation(evaluation: Any, rule: str | None = None, choice: str = "") -> None:
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
    for level in e.levels:
        click.echo(
            f"level {level.level} ({level.labels} labels): exact match {level.exact_match:.3f}   "
            f"micro F1 {level.micro_f1:.3f}   macro F1 {level.macro_f1:.3f}"
        )
    if e.lrap is not None:
        click.echo(
            f"LRAP {_opt(e.lrap)}   ROC-AUC micro/macro {_opt(e.micro_roc_auc)}/"
            f"{_opt(e.macro_roc_auc)}   PR-AUC micro/macro {_opt(e.micro_pr_auc)}/"
            f"{_opt(e.macro_pr_auc)}"
        )
    if rule:
        click.echo(f"rule: {rule}")
    if choice:
        click.echo(f"  {choice}")
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


@click.command("evaluate")
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
@rule_override_options
@click.option("--force", is_flag=True, help="Replace output files that exist.")
@no_verify_option
@runtime_option
@data_options
def evaluate_command(
    tagger_dir: Path,
    data: tuple[Path, ...],
    metrics_file: Path | None,
    results_file: Path | None,
    errors_file: Path | None,
    sweep_file: Path | None,
    sweep_plot: Path | None,
    sweep_space: Any,
    dump: Path | None,
    report: Path | None,
    top_errors: int,
    as_json: bool,
    rule: str | None,
    rule_params: tuple[str, ...],
    force: bool,
    no_verify: bool,
    runtime: str | None,
    **kwargs: Any,
) -> None:
    """Evaluate a saved TAGGER on labelled DATA files.

    Prints exact match, micro/macro/weighted/samples P/R/F1, Hamming loss, the lenient
    criteria, ranking figures and the per-label table; the options write the rest.

    \b
    tagger evaluate my-tagger test.json --report report.html \\
        --metrics-file metrics.json --results-file labels.tsv --errors-file errors.csv
    """
    from tagger_core.files import check_targets
    from tagger_core.tagger import Tagger
    from tagger_core.workflows.evaluate import EvaluationFiles, evaluate_to_files

    outputs = (metrics_file, results_file, errors_file, sweep_file, sweep_plot, dump, report)
    # before any work: nothing is overwritten silently, the inputs least of all
    check_targets(outputs, force, inputs=[tagger_dir, *data])
    tagger = Tagger.load(tagger_dir, verify=not no_verify, runtime=runtime)
    override = rule_override(rule, rule_params)
    records, _ = read_all(data, kwargs, taxonomy=tagger.taxonomy)
    files = EvaluationFiles(
        metrics=metrics_file,
        results=results_file,
        errors=errors_file,
        sweep=sweep_file,
        sweep_plot=sweep_plot,
        dump=dump,
        report=report,
        sweep_space=sweep_space,
        top_errors=top_errors,
    )
    run = evaluate_to_files(
        tagger,
        records,
        files,
        rule=override,
        tagger_path=str(tagger_dir),
        data_paths=[str(p) for p in data],
    )
    for what, path in run.written:
        click.echo(f"Wrote {what} to {path}", err=True)
    if as_json:
        click.echo(run.evaluation.model_dump_json(indent=2))
        return
    print_evaluation(run.evaluation, run.rule.describe(), run.rule_choice)
    if run.members:
        _print_members(run.evaluation, run.members, tagger)
    if tagger.taxonomy.mode == "single-label":
        _print_single_label(run.truth, run.pred, run.evaluation, tagger.taxonomy)


COMMANDS = [evaluate_command]
