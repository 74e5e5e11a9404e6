"""`tagger evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tagger_core.cli import cli
from tagger_core.cli.options import data_options, format_table, read_all
from tagger_core.cli.predict import rule_override


def print_evaluation(evaluation: Any) -> None:
    click.echo(
        f"rows {evaluation.rows}   exact match {evaluation.exact_match:.3f}   "
        f"micro P/R/F1 {evaluation.micro_precision:.3f}/{evaluation.micro_recall:.3f}/{evaluation.micro_f1:.3f}   "
        f"macro F1 {evaluation.macro_f1:.3f}   empty predictions {evaluation.empty_predictions}"
    )
    click.echo()
    click.echo(
        format_table(
            ["LABEL", "SUPPORT", "TP", "FP", "FN", "PRECISION", "RECALL", "F1"],
            [
                [m.label, m.support, m.tp, m.fp, m.fn, m.precision, m.recall, m.f1]
                for m in evaluation.per_label
            ],
        )
    )


@cli.command("evaluate")
@click.argument("tagger_dir", metavar="TAGGER", type=click.Path(path_type=Path))
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--metrics-file", type=click.Path(path_type=Path), help="Write all figures as JSON here."
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--rule", help="Override the saved decision rule for this evaluation.")
@click.option("--rule-param", "rule_params", multiple=True, help="Parameter of --rule, KEY=VALUE.")
@data_options
def evaluate_command(
    tagger_dir: Path,
    data: tuple[Path, ...],
    metrics_file: Path | None,
    as_json: bool,
    rule: str | None,
    rule_params: tuple[str, ...],
    **kwargs: Any,
) -> None:
    """Evaluate a saved TAGGER on labelled DATA files."""
    from tagger_core.tagger import Tagger

    tagger = Tagger.load(tagger_dir)
    records, _ = read_all(data, kwargs)
    evaluation = tagger.evaluate(records, rule=rule_override(rule, rule_params))
    if metrics_file is not None:
        metrics_file.write_text(evaluation.model_dump_json(indent=2), encoding="utf-8")
    if as_json:
        click.echo(evaluation.model_dump_json(indent=2))
    else:
        print_evaluation(evaluation)
