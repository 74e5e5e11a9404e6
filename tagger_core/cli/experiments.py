"""Experiment commands, which train many taggers and keep none: `tagger compare` (train
on each labelling source, test on each) and `tagger cv` (k-fold cross-validation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tagger_core.cli.options import (
    Decorator,
    collect_data_specs,
    data_options,
    data_sources_option,
    format_table,
    percent,
    read_data,
    seed_option,
    stack,
    tagger_factory,
    tagger_options,
    taxonomy_option,
    training_objective,
    valid_ratio_option,
)
from tagger_core.files import check_target

if TYPE_CHECKING:
    from pydantic import BaseModel

    from tagger_core.schemas import Record, Taxonomy
    from tagger_core.tagger import Tagger

# -- compare ----------------------------------------------------------------------------


def _kappa(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def experiment_options(what: str) -> Decorator:
    """What both experiments take after their own options: how to build each tagger, the
    validation share, and where the result goes."""
    return stack(
        tagger_options,
        valid_ratio_option,
        click.option(
            "--metrics-file",
            type=click.Path(path_type=Path, dir_okay=False),
            help=f"Write {what} as JSON here.",
        ),
        click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON."),
        click.option("--force", is_flag=True, help="Replace an existing --metrics-file."),
        data_options,
    )


def prepare(
    data: tuple[str, ...], data_values: tuple[str, ...], taxonomy_name: str, kwargs: dict[str, Any]
) -> tuple[Taxonomy, Callable[[], Tagger], list[Record]]:
    """Refuse an existing --metrics-file, then the taxonomy, a tagger factory (a bad encoder
    or rule stops here) and the records, checked against the taxonomy."""
    from tagger_core.registry import resolve_taxonomy

    if kwargs["metrics_file"] is not None:
        check_target(kwargs["metrics_file"], kwargs["force"])
    taxonomy = resolve_taxonomy(taxonomy_name)
    make_tagger = tagger_factory(taxonomy, kwargs)
    records = read_data(collect_data_specs(data, data_values), kwargs, taxonomy)
    return taxonomy, make_tagger, records


def emit(result: BaseModel, kwargs: dict[str, Any]) -> bool:
    """Write the result to --metrics-file, and print it with --json (True then)."""
    from tagger_core.files import write_text

    text = result.model_dump_json(indent=2)
    if kwargs["metrics_file"] is not None:
        write_text(kwargs["metrics_file"], text + "\n")
    if kwargs["as_json"]:
        click.echo(text)
    return bool(kwargs["as_json"])


def print_comparison(comparison: Any) -> None:
    parts = ", ".join(f"{name} {rows}" for name, rows in comparison.parts.items())
    click.echo(f"Split by source (seed {comparison.seed}), records per part: {parts}.")
    if comparison.set_aside:
        click.echo(
            f"{comparison.set_aside} records set aside: other sources' labels of validation names."
        )
    trainers = list(dict.fromkeys(cell.train for cell in comparison.cells))
    for metric, title in (("exact_match", "Exact match"), ("micro_f1", "Micro F1")):
        click.echo()
        click.echo(f"{title} (rows: trained on; columns: evaluated on):")
        rows = [
            [train, *(getattr(comparison.cell(train, s), metric) for s in comparison.sources)]
            for train in trainers
        ]
        click.echo(format_table(["TRAIN \\ EVAL", *comparison.sources], rows))
    click.echo()
    trained = []
    for train in trainers:
        cell = comparison.cell(train, comparison.sources[0])
        held = f" (+{cell.valid_rows} to fit the rule)" if cell.valid_rows else ""
        trained.append(f"{train} {cell.train_rows}{held}")
    evaluated = [
        f"{source} {comparison.cell(trainers[0], source).eval_rows}"
        for source in comparison.sources
    ]
    click.echo(f"Training rows: {', '.join(trained)}; evaluation rows: {', '.join(evaluated)}.")
    for pair in comparison.agreement:
        click.echo()
        click.echo(
            f"Agreement of {pair.a} and {pair.b} on {pair.shared_names} shared names: same "
            f"labels for {pair.identical} ({percent(pair.identical, pair.shared_names)}), mean "
            f"Cohen's kappa {_kappa(pair.mean_kappa)}."
        )
        used = [x for x in pair.labels if x.a or x.b]
        click.echo(
            format_table(
                ["LABEL", pair.a.upper(), pair.b.upper(), "BOTH", "KAPPA"],
                [[x.label, x.a, x.b, x.both, _kappa(x.kappa)] for x in used],
            )
        )
        if len(used) < len(pair.labels):
            click.echo(
                f"({len(pair.labels) - len(used)} labels that neither source gives to a "
                "shared name are not shown.)"
            )


@click.command("compare", short_help="Compare labelling sources: train on each, test on each.")
@click.argument("data", nargs=-1, metavar="[NAME=FILE]...")
@data_sources_option
@taxonomy_option()
@click.option(
    "--ratios",
    help="train, then one validation part per source (default 4:1:…:1).",
)
@seed_option("Random seed (split and training).")
@click.option("--combined", is_flag=True, help="Also train on all sources together.")
@experiment_options("the comparison")
def compare_command(
    data: tuple[str, ...],
    data_values: tuple[str, ...],
    taxonomy_name: str,
    ratios: str | None,
    seed: int,
    combined: bool,
    valid_ratio: float | None,
    **kwargs: Any,
) -> None:
    """Train on each source's labels and evaluate on each source's held-out names.

    \b
    tagger compare --data klook=klook.json --data gpt=gpt.json --taxonomy attractions

    Prints the train-source × evaluation-source matrix (exact match, micro F1) and how
    far the sources agree on the names they share (per-label Cohen's kappa).
    """
    from tagger_core.data.split import parse_ratios
    from tagger_core.workflows.compare import compare_sources

    taxonomy, make_tagger, records = prepare(data, data_values, taxonomy_name, kwargs)
    comparison = compare_sources(
        records,
        taxonomy,
        make_tagger,
        ratios=parse_ratios(ratios) if ratios else None,
        seed=seed,
        combined=combined,
        valid_ratio=valid_ratio,
        objective=training_objective(kwargs),
    )
    if emit(comparison, kwargs):
        return
    print_comparison(comparison)
    if comparison.warnings_suppressed:
        click.echo()
        click.echo(
            f"({comparison.warnings_suppressed} training warnings held back; -v shows them.)"
        )


# -- cv ---------------------------------------------------------------------------------

_METRIC_TITLES = {
    "exact_match": "EXACT",
    "micro_precision": "MICRO P",
    "micro_recall": "MICRO R",
    "micro_f1": "MICRO F1",
    "macro_f1": "MACRO F1",
    "empty_rate": "EMPTY",
}


def print_cross_validation(result: Any) -> None:
    from tagger_core.workflows.crossval import SUMMARY_METRICS

    click.echo(
        f"{result.k}-fold cross-validation of '{result.tagger['encoder']['name']}' on "
        f"{result.rows} records ({result.names} names), taxonomy '{result.taxonomy}', "
        f"seed {result.seed}."
    )
    click.echo()
    header = ["FOLD", "TRAIN", "VALID", "TEST", *(_METRIC_TITLES[m] for m in SUMMARY_METRICS)]
    rows: list[list[Any]] = [
        [
            fold.fold,
            fold.train_rows,
            fold.valid_rows,
            fold.test_rows,
            *(fold.metrics[m] for m in SUMMARY_METRICS),
        ]
        for fold in result.folds
    ]
    rows.append(
        [
            "mean ± std",
            "",
            "",
            "",
            *(
                f"{result.summary[m].mean:.3f} ± {result.summary[m].std:.3f}"
                for m in SUMMARY_METRICS
            ),
        ]
    )
    click.echo(format_table(header, rows))
    click.echo()
    click.echo(
        "VALID: held out of TRAIN to fit the decision rule; EMPTY: share of test names "
        "given no label; std: sample standard deviation."
    )
    choices = [f.rule_choice for f in result.folds if f.rule_choice]
    if choices:
        kept = sum(1 for c in choices if c["chosen"] == "default")
        replaced = [
            f"fold {f.fold}: {f.rule}"
            for f in result.folds
            if f.rule_choice and f.rule_choice["chosen"] != "default"
        ]
        click.echo(
            f"Rule chosen at training for {choices[0]['objective']}: the default kept in "
            f"{kept} of {len(choices)} folds" + (f"; {'; '.join(replaced)}" if replaced else "")
        )
    for fold in result.folds:
        if fold.combination:
            click.echo(f"fold {fold.fold}, {result.tagger['encoder']['name']}: {fold.combination}")
    if result.untested_labels:
        click.echo(
            f"Not tested: {len(result.untested_labels)} label(s) with one name each, kept in "
            f"every fold's training part ({result.always_trained} records): "
            + ", ".join(result.untested_labels)
        )
    if result.warnings_suppressed:
        click.echo(f"({result.warnings_suppressed} training warnings held back; -v shows them.)")


@click.command("cv", short_help="k-fold cross-validation, stratified for multi-label data.")
@click.argument("data", nargs=-1, metavar="[[NAME=]FILE]...")
@data_sources_option
@taxonomy_option()
@click.option("-k", "--folds", "k", default=5, show_default=True, help="Number of folds.")
@seed_option("Random seed (folds and training).")
@experiment_options("per-fold metrics and the summary")
def cv_command(
    data: tuple[str, ...],
    data_values: tuple[str, ...],
    taxonomy_name: str,
    k: int,
    seed: int,
    valid_ratio: float | None,
    **kwargs: Any,
) -> None:
    """k-fold cross-validation, stratified for multi-label data: mean ± std per metric.

    All records of one name (after normalisation) stay in one fold.
    """
    from tagger_core.progress_bars import note
    from tagger_core.workflows.crossval import cross_validate

    taxonomy, make_tagger, records = prepare(data, data_values, taxonomy_name, kwargs)

    def fold_done(fold: Any) -> None:
        m = fold.metrics
        note(
            f"fold {fold.fold}/{k}: exact match {m['exact_match']:.3f}, micro F1 "
            f"{m['micro_f1']:.3f} ({fold.train_rows} train, {fold.valid_rows} valid, "
            f"{fold.test_rows} test)"
        )

    result = cross_validate(
        records,
        taxonomy,
        make_tagger,
        k=k,
        seed=seed,
        valid_ratio=valid_ratio,
        on_fold=fold_done,
        objective=training_objective(kwargs),
    )
    if emit(result, kwargs):
        return
    print_cross_validation(result)
    if kwargs["metrics_file"] is not None:
        click.echo(f"Per-fold metrics: {kwargs['metrics_file']}")


COMMANDS = [compare_command, cv_command]
