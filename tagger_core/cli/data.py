"""Data-workflow commands: `tagger validate`, `split`, `compare` and `cv`.

Data files are positional arguments or ``--data NAME=FILE`` (a named source); both forms
take ``NAME=FILE``. Exit status of `validate`: 0 without errors (warnings allowed), 1
when the data has errors (or warnings, with --strict), 2 when the input is unusable
(unreadable file, unknown taxonomy), like every other command.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tagger_core.cli import cli
from tagger_core.cli.options import (
    collect_data_specs,
    data_options,
    data_sources_option,
    ensure_new_file,
    format_table,
    parse_params,
    read_options,
)

if TYPE_CHECKING:
    from tagger_core.data.sources import DataSpec
    from tagger_core.data.split import Split
    from tagger_core.data.validate import ValidationReport
    from tagger_core.schemas import Record, Taxonomy

EXIT_DATA_ERRORS = 1


def _taxonomy_option(required: bool = True) -> Callable[..., Any]:
    return click.option(
        "--taxonomy",
        "taxonomy_name",
        required=required,
        help="Registered taxonomy name or a YAML/JSON file.",
    )


def _tagger_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """What `tagger train` takes to build a tagger: encoder, rule, normalizers."""
    options = [
        click.option(
            "--encoder",
            default="tfidf",
            show_default=True,
            help="Encoder plugin (see `tagger plugins`).",
        ),
        click.option(
            "-p", "--param", "encoder_params", multiple=True, help="Encoder parameter KEY=VALUE."
        ),
        click.option("--rule", help="Decision rule (default: by taxonomy mode)."),
        click.option(
            "--rule-param", "rule_params", multiple=True, help="Rule parameter KEY=VALUE."
        ),
        click.option(
            "--normalize",
            "normalizers",
            multiple=True,
            help="Text normalizer, as in `tagger train` (repeatable, in order).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _tagger_factory(taxonomy: Taxonomy, kwargs: dict[str, Any]) -> Callable[[], Any]:
    from tagger_core.tagger import Tagger

    def make() -> Tagger:
        return Tagger.create(
            taxonomy,
            encoder=kwargs["encoder"],
            encoder_params=parse_params(kwargs["encoder_params"], "--param"),
            rule=kwargs["rule"],
            rule_params=parse_params(kwargs["rule_params"], "--rule-param"),
            normalizers=kwargs["normalizers"],
        )

    make()  # a bad encoder, rule or parameter stops here, before any work
    return make


def _read(specs: Sequence[DataSpec], kwargs: dict[str, Any], raw: bool = False) -> list[Record]:
    from tagger_core.data.sources import read_raw, read_spec

    options = read_options(kwargs)
    reader = read_raw if raw else read_spec
    return [r for spec in specs for r in reader(spec, kwargs["data_format"], options)]


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


_valid_ratio_option = click.option(
    "--valid-ratio",
    type=float,
    help="Share of each training set held out to fit the decision rule and stop early "
    "(default: 0.2 when the rule is fitted on validation scores, e.g. per-label, else 0).",
)


# -- validate ---------------------------------------------------------------------------


def _short_names(groups: Sequence[str]) -> dict[str, str]:
    """Column titles: file names without folders where that stays unambiguous."""
    short = {g: Path(g).name for g in groups}
    if len(set(short.values())) < len(short):
        return {g: g for g in groups}
    return short


def print_validation(report: ValidationReport, max_shown: int, inferred: bool = False) -> None:
    n_labels = sum(1 for c in report.label_counts if c.known)
    against = (
        f"the {n_labels} labels found in the data (no --taxonomy)"
        if inferred
        else f"taxonomy '{report.taxonomy}' ({n_labels} labels)"
    )
    what = "source" if report.named_sources else "file"
    plural = "s" if len(report.groups) > 1 else ""
    click.echo(
        f"Checked {report.records} records ({report.names} distinct names) from "
        f"{len(report.groups)} {what}{plural} against {against}."
    )
    click.echo()
    titles = _short_names(report.groups)
    # One column per source or file, when there are several.
    groups = report.groups if len(report.groups) > 1 else []
    header = ["LABEL", *(titles[g] for g in groups), "RECORDS", "NAMES"]
    rows: list[list[Any]] = []
    for count in report.label_counts:
        label = count.label if count.known else f"{count.label} (unknown)"
        rows.append(
            [
                label,
                *(count.counts.get(g, 0) for g in groups),
                count.total,
                count.names if count.known else "",
            ]
        )
    if report.unlabelled:
        rows.append(["(no label)", *([""] * len(groups)), report.unlabelled, ""])
    rows.append(["(all)", *(report.rows[g] for g in groups), report.records, report.names])
    click.echo(format_table(header, rows))
    for pair in report.agreement:
        click.echo()
        click.echo(
            f"Sources {pair.a} and {pair.b} share {pair.shared_names} names; they give the same "
            f"labels to {pair.identical} ({_pct(pair.identical, pair.shared_names)})."
        )
    click.echo()
    errors, warnings = len(report.errors), len(report.warnings)
    if not report.problems:
        click.echo("No problems found.")
        return
    click.echo(f"{errors} error(s), {warnings} warning(s).")
    codes: dict[tuple[str, str], list[Any]] = {}
    for problem in report.problems:
        codes.setdefault((problem.severity, problem.code), []).append(problem)
    for (severity, code), problems in codes.items():
        shown = problems if max_shown <= 0 else problems[:max_shown]
        more = len(problems) - len(shown)
        note = f", {len(shown)} shown (--max-shown 0 shows all)" if more else ""
        click.echo()
        click.echo(f"{severity} {code} ({len(problems)}{note}):")
        for problem in shown:
            click.echo(f"  {problem}")


@cli.command("validate", short_help="Check labelled data for errors before training.")
@click.argument("data", nargs=-1, metavar="[[NAME=]FILE]...")
@data_sources_option
@_taxonomy_option(required=False)
@click.option(
    "--ratios",
    default="4:1:1",
    show_default=True,
    help="The split you plan: labels with fewer names than parts are reported.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option(
    "--max-shown",
    default=10,
    show_default=True,
    help="Problems shown per kind (0: all).",
)
@click.option("--strict", is_flag=True, help="Exit with status 1 on warnings too.")
@data_options
@click.pass_context
def validate_command(
    ctx: click.Context,
    data: tuple[str, ...],
    data_values: tuple[str, ...],
    taxonomy_name: str | None,
    ratios: str,
    as_json: bool,
    max_shown: int,
    strict: bool,
    **kwargs: Any,
) -> None:
    """Check labelled data: unknown labels, empty names, duplicates, conflicting labels
    within a file and between sources, label frequencies, labels too rare to split.

    Without --taxonomy the labels found in the data stand for it (a first look, before
    `tagger taxonomy infer`): unknown labels cannot be detected then.

    \b
    Exit status: 0 no errors (warnings allowed), 1 errors found (or warnings, with
    --strict), 2 unusable input (unreadable file, unknown taxonomy).
    """
    from tagger_core.data.split import parse_ratios
    from tagger_core.data.validate import validate_records
    from tagger_core.taxonomy import infer_taxonomy, resolve_taxonomy

    taxonomy = resolve_taxonomy(taxonomy_name) if taxonomy_name else None
    specs = collect_data_specs(data, data_values)
    records = _read(specs, kwargs, raw=True)
    if taxonomy is None:
        taxonomy = infer_taxonomy(records, "labels-in-data")
    report = validate_records(
        records,
        taxonomy,
        parts=len(parse_ratios(ratios)),
        text_field=kwargs["text_field"],
        label_field=kwargs["label_field"],
    )
    if as_json:
        payload = report.model_dump(mode="json")
        payload["errors"], payload["warnings"] = len(report.errors), len(report.warnings)
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        print_validation(report, max_shown, inferred=taxonomy_name is None)
    if report.errors or (strict and report.warnings):
        ctx.exit(EXIT_DATA_ERRORS)


# -- split ------------------------------------------------------------------------------


def print_split(split: Split, files: Sequence[Path]) -> None:
    counts = split.label_counts()
    header = ["LABEL", *(name.upper() for name in split.names), "NAMES"]
    totals = split.name_totals()
    missing = {label for label, _ in split.missing()}
    rows: list[list[Any]] = []
    for label, row, total in zip(split.taxonomy.labels, counts, totals, strict=True):
        mark = " !" if label.id in missing else (" *" if 0 < total < len(split.names) else "")
        rows.append([label.id + mark, *row, total])
    rows.append(["(records)", *(len(part) for part in split.parts), ""])
    rows.append(["(names)", *split.groups, sum(split.groups)])
    click.echo(format_table(header, rows))
    sources = split.sources()
    if any(set(s) - {"-"} for s in sources):
        click.echo()
        for name, per_source in zip(split.names, sources, strict=True):
            listing = ", ".join(f"{source} {n}" for source, n in per_source.items())
            click.echo(f"{name}: {listing}")
    rare = split.too_rare()
    if rare:
        click.echo()
        click.echo(
            f"* {len(rare)} label(s) have fewer names than parts and cannot be in every part "
            "(placed in the first parts, training first)."
        )
    untrainable = [
        label.id
        for label, row in zip(split.taxonomy.labels, counts, strict=True)
        if sum(row) and row[0] == 0
    ]
    if untrainable:
        click.echo(f"  Not in {split.names[0]} (cannot be learned): {', '.join(untrainable)}")
    if missing:
        click.echo()
        click.echo(
            "! Missing from a part although it has enough names (no move kept every other "
            "label in place): " + "; ".join(f"{label} in {part}" for label, part in split.missing())
        )
    if split.set_aside:
        click.echo()
        click.echo(f"Set aside {len(split.set_aside)} records: {split.set_aside_reason}.")
    click.echo()
    click.echo("Wrote " + ", ".join(str(path) for path in files))


@cli.command("split")
@click.argument("data", nargs=-1, metavar="[[NAME=]FILE]...")
@data_sources_option
@_taxonomy_option(required=False)
@click.option(
    "--ratios",
    default="4:1:1",
    show_default=True,
    help="Relative part sizes (train:valid:test; with --by-source: train, then one per source).",
)
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option(
    "-o",
    "--output",
    "output_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory for the part files.",
)
@click.option(
    "--by-source",
    is_flag=True,
    help="One validation part per source, drawn from its own names first (needs --data).",
)
@click.option("--names", help="Comma-separated part names (default: train,valid,test).")
@click.option(
    "--output-format",
    help="Format of the part files (default: that of the first input file).",
)
@click.option("--force", is_flag=True, help="Replace existing part files.")
@data_options
def split_command(
    data: tuple[str, ...],
    data_values: tuple[str, ...],
    taxonomy_name: str | None,
    ratios: str,
    seed: int,
    output_dir: Path,
    by_source: bool,
    names: str | None,
    output_format: str | None,
    force: bool,
    **kwargs: Any,
) -> None:
    """Split labelled data into parts stratified on every label.

    Every label with at least as many distinct names as parts appears in every part;
    all records of one name (after normalisation) stay in one part. Without --taxonomy
    the labels found in the data are used.
    """
    from tagger_core import plugins
    from tagger_core.data.split import parse_ratios, split_by_source, split_records, write_split
    from tagger_core.taxonomy import resolve_taxonomy

    ratio_list = parse_ratios(ratios)
    taxonomy = resolve_taxonomy(taxonomy_name) if taxonomy_name else None
    specs = collect_data_specs(data, data_values)
    records = _read(specs, kwargs)
    if by_source:
        if names:
            raise click.UsageError(
                "--names does not go with --by-source (parts are named by source)"
            )
        split = split_by_source(records, ratio_list, taxonomy=taxonomy, seed=seed)
    else:
        part_names = [n.strip() for n in names.split(",")] if names else None
        split = split_records(records, ratio_list, taxonomy=taxonomy, seed=seed, names=part_names)
    if output_format:
        suffix = plugins.data_sources().get(output_format).suffixes[0]
    else:
        suffix = specs[0].path.suffix.lower() or ".json"
    files = write_split(
        split,
        output_dir,
        suffix=suffix,
        format=output_format,
        options=read_options(kwargs),
        force=force,
    )
    print_split(split, files)


# -- compare ----------------------------------------------------------------------------


def _kappa(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


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
            f"labels for {pair.identical} ({_pct(pair.identical, pair.shared_names)}), mean "
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


@cli.command("compare", short_help="Compare labelling sources: train on each, test on each.")
@click.argument("data", nargs=-1, metavar="[NAME=FILE]...")
@data_sources_option
@_taxonomy_option()
@click.option(
    "--ratios",
    help="train, then one validation part per source (default 4:1:…:1).",
)
@click.option("--seed", default=0, show_default=True, help="Random seed (split and training).")
@click.option("--combined", is_flag=True, help="Also train on all sources together.")
@_tagger_options
@_valid_ratio_option
@click.option(
    "--metrics-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the comparison as JSON here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--force", is_flag=True, help="Replace an existing --metrics-file.")
@data_options
def compare_command(
    data: tuple[str, ...],
    data_values: tuple[str, ...],
    taxonomy_name: str,
    ratios: str | None,
    seed: int,
    combined: bool,
    valid_ratio: float | None,
    metrics_file: Path | None,
    as_json: bool,
    force: bool,
    **kwargs: Any,
) -> None:
    """Train on each source's labels and evaluate on each source's held-out names.

    \b
    tagger compare --data klook=klook.json --data gpt=gpt.json --taxonomy attractions

    Prints the train-source × evaluation-source matrix (exact match, micro F1) and how
    far the sources agree on the names they share (per-label Cohen's kappa).
    """
    from tagger_core.data.split import parse_ratios
    from tagger_core.evaluation.compare import compare_sources
    from tagger_core.taxonomy import resolve_taxonomy

    if metrics_file is not None:
        ensure_new_file(metrics_file, force)
    taxonomy = resolve_taxonomy(taxonomy_name)
    make_tagger = _tagger_factory(taxonomy, kwargs)
    records = _read(collect_data_specs(data, data_values), kwargs)
    comparison = compare_sources(
        records,
        taxonomy,
        make_tagger,
        ratios=parse_ratios(ratios) if ratios else None,
        seed=seed,
        combined=combined,
        valid_ratio=valid_ratio,
    )
    text = comparison.model_dump_json(indent=2)
    if metrics_file is not None:
        metrics_file.write_text(text + "\n", encoding="utf-8")
    if as_json:
        click.echo(text)
    else:
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
    from tagger_core.evaluation.crossval import SUMMARY_METRICS

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
    if result.warnings_suppressed:
        click.echo(f"({result.warnings_suppressed} training warnings held back; -v shows them.)")


@cli.command("cv", short_help="k-fold cross-validation, stratified for multi-label data.")
@click.argument("data", nargs=-1, metavar="[[NAME=]FILE]...")
@data_sources_option
@_taxonomy_option()
@click.option("-k", "--folds", "k", default=5, show_default=True, help="Number of folds.")
@click.option("--seed", default=0, show_default=True, help="Random seed (folds and training).")
@_tagger_options
@_valid_ratio_option
@click.option(
    "--metrics-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write per-fold metrics and the summary as JSON here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--force", is_flag=True, help="Replace an existing --metrics-file.")
@data_options
def cv_command(
    data: tuple[str, ...],
    data_values: tuple[str, ...],
    taxonomy_name: str,
    k: int,
    seed: int,
    valid_ratio: float | None,
    metrics_file: Path | None,
    as_json: bool,
    force: bool,
    **kwargs: Any,
) -> None:
    """k-fold cross-validation, stratified for multi-label data: mean ± std per metric.

    All records of one name (after normalisation) stay in one fold.
    """
    from tagger_core.evaluation.crossval import cross_validate
    from tagger_core.taxonomy import resolve_taxonomy

    if metrics_file is not None:
        ensure_new_file(metrics_file, force)
    taxonomy = resolve_taxonomy(taxonomy_name)
    make_tagger = _tagger_factory(taxonomy, kwargs)
    records = _read(collect_data_specs(data, data_values), kwargs)
    result = cross_validate(records, taxonomy, make_tagger, k=k, seed=seed, valid_ratio=valid_ratio)
    text = result.model_dump_json(indent=2)
    if metrics_file is not None:
        metrics_file.write_text(text + "\n", encoding="utf-8")
    if as_json:
        click.echo(text)
    else:
        print_cross_validation(result)
        if metrics_file is not None:
            click.echo(f"Per-fold metrics: {metrics_file}")
