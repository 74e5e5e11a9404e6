"""`tagger tune`: search an encoder's parameters, keep the best tagger and a trials table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tagger_core.cli.options import (
    collect_data_specs,
    data_options,
    data_sources_option,
    format_table,
    parse_params,
    read_all,
    read_data,
    seed_option,
    tagger_options,
    taxonomy_option,
    training_objective,
)


def _values(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def _score(trial: Any) -> str:
    if trial.score is None:
        return trial.state
    return f"{trial.score:.4f}" + (f" ± {trial.std:.4f}" if trial.std is not None else "")


def write_trials_csv(path: Path, result: Any) -> None:
    import csv
    import io
    import json

    from tagger_core.files import write_text

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trial", result.objective, "std", "seconds", "state", "params", "error"])
    for t in result.trials:
        writer.writerow(
            [t.number, "" if t.score is None else f"{t.score:.6f}",
             "" if t.std is None else f"{t.std:.6f}", f"{t.seconds:.1f}", t.state,
             json.dumps(t.values, ensure_ascii=False), t.error]
        )  # fmt: skip
    write_text(path, out.getvalue())


@click.command("tune", short_help="Search an encoder's parameters; keep the best tagger.")
@click.argument("data", nargs=-1, metavar="[[NAME=]FILE]...")
@data_sources_option
@taxonomy_option()
@click.option(
    "--valid",
    "valid_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Validation file (repeatable): measure each trial on it. Without: k-fold CV.",
)
@click.option("-k", "--folds", "k", default=5, show_default=True, help="Folds (without --valid).")
@click.option(
    "--space",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML search space (KEY: [choices] or KEY: {low, high, log, int}; MEMBER.KEY for "
    "the members of an encoder that combines others). Default: the encoder's own.",
)
@click.option(
    "--trials", type=int, default=None, help="Most trials (default 20 without --minutes)."
)
@click.option("--minutes", type=float, default=None, help="Stop starting trials after this long.")
@seed_option("Random seed (folds, training, search).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to save the best tagger.",
)
@click.option(
    "--trials-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the trials as CSV here.",
)
@click.option("--force", is_flag=True, help="Replace an existing output or trials file.")
@tagger_options
@data_options
def tune_command(
    data: tuple[str, ...],
    data_values: tuple[str, ...],
    taxonomy_name: str,
    valid_paths: tuple[Path, ...],
    k: int,
    space: Path | None,
    trials: int | None,
    minutes: float | None,
    seed: int,
    output: Path,
    trials_file: Path | None,
    force: bool,
    **kwargs: Any,
) -> None:
    """Search an encoder's parameters for the objective, on --valid or by k-fold CV.

    \b
    tagger tune train.json --valid validation.json --taxonomy attractions \\
        --encoder tfidf --trials 30 -o best-tagger --trials-file trials.csv

    The first trial is the encoder's defaults. Ctrl-C stops the search and keeps the best
    tagger so far. Needs optuna: pip install 'tagger[tune]'.
    """
    from tagger_core.files import check_target
    from tagger_core.progress_bars import note
    from tagger_core.registry import default_encoder_name, resolve_taxonomy
    from tagger_core.tagger import check_tagger_target
    from tagger_core.workflows.train import DEFAULT_OBJECTIVE, build_tagger
    from tagger_core.workflows.tune import import_optuna, parse_space, resolve_space, tune

    check_tagger_target(output, force)
    if trials_file is not None:
        check_target(trials_file, force)
    import_optuna()  # the one-line error before any work
    if trials is None and minutes is None:
        trials = 20
    rule_objective = training_objective(kwargs)
    objective = kwargs.get("objective") or DEFAULT_OBJECTIVE
    taxonomy = resolve_taxonomy(taxonomy_name)
    encoder = kwargs["encoder"] or default_encoder_name()
    base = parse_params(kwargs["encoder_params"], "--param")
    search = None
    if space is not None:
        import yaml

        try:
            raw = yaml.safe_load(space.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise click.ClickException(f"{space}: cannot read the search space: {exc}") from None
        if not isinstance(raw, dict):
            raise click.ClickException(f"{space}: a search space is a mapping of KEY: range")
        search = parse_space(raw)
    search = resolve_space(encoder, base, search)

    def make_tagger(params: dict[str, Any]) -> Any:
        return build_tagger(
            taxonomy,
            encoder=encoder,
            encoder_params=params,
            model=kwargs["model"],
            rule=kwargs["rule"],
            rule_params=parse_params(kwargs["rule_params"], "--rule-param"),
            normalizers=kwargs["normalizers"],
        )

    make_tagger(base)  # a bad encoder, rule or parameter stops here
    records = read_data(collect_data_specs(data, data_values), kwargs, taxonomy)
    valid, _ = read_all(valid_paths, kwargs, taxonomy=taxonomy)
    budget = " and ".join(
        part
        for part in (
            f"{trials} trials" if trials else "",
            f"{minutes:g} minutes" if minutes else "",
        )
        if part
    )
    click.echo(
        f"Tuning '{encoder}' for {objective} on {len(records)} records, measured on "
        f"{f'{len(valid)} validation records' if valid else f'{k}-fold cross-validation'}; "
        f"at most {budget}…",
        err=True,
    )

    def heard(trial: Any, best: Any) -> None:
        what = "defaults" if trial.number == 0 else _values(trial.values)
        line = f"trial {trial.number}: {objective} {_score(trial)} ({trial.seconds:.0f} s; {what})"
        if trial.error:
            line += f": {trial.error}"
        if best is not None:
            line += f" — best {best.score:.4f} (trial {best.number})"
        note(line)

    result = tune(
        records,
        taxonomy,
        make_tagger,
        encoder=encoder,
        base_params=base,
        objective=objective,
        rule_objective=rule_objective,
        valid=valid,
        folds=k,
        trials=trials,
        minutes=minutes,
        space=search,
        seed=seed,
        on_trial=heard,
    )
    if trials_file is not None:
        write_trials_csv(trials_file, result)
    header = ["TRIAL", objective.upper(), "SECONDS", "PARAMETERS"]
    from tagger_core.evaluation.metrics import LOWER_IS_BETTER

    sign = 1.0 if objective in LOWER_IS_BETTER else -1.0
    ranked = sorted(result.trials, key=lambda t: (t.score is None, sign * (t.score or 0.0)))
    rows = [
        [
            t.number,
            _score(t),
            f"{t.seconds:.0f}",
            "defaults" if t.number == 0 else _values(t.values),
        ]
        for t in ranked
    ]
    click.echo(format_table(header, rows))
    if result.tagger is None or result.best is None:
        raise click.ClickException("no trial completed: nothing to save")
    result.tagger.save(output, force=force)
    defaults = result.defaults
    versus = ""
    if defaults is not None and defaults.score is not None and result.best is not defaults:
        versus = f" (defaults: {defaults.score:.4f})"
    click.echo(
        f"Best: trial {result.best.number}, {objective} {result.best.score:.4f}{versus} on "
        f"{result.measured_on}. Saved tagger to {output}"
    )
    if trials_file is not None:
        click.echo(f"Trials: {trials_file}")
    if result.interrupted:
        raise KeyboardInterrupt  # after saving: the CLI reports it and exits 130


COMMANDS = [tune_command]
