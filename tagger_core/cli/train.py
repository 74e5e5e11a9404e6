"""`tagger train`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tagger_core.cli.options import (
    data_options,
    read_all,
    seed_option,
    tagger_factory,
    tagger_options,
    taxonomy_option,
    training_objective,
)


@click.command("train")
@taxonomy_option()
@click.option(
    "--train",
    "train_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Labelled training file (repeatable); none for an encoder that starts from the "
    "taxonomy alone (zero-shot).",
)
@click.option(
    "--valid",
    "valid_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Labelled validation file (repeatable).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory to save the tagger in.",
)
@tagger_options
@seed_option("Random seed.")
@click.option("--force", is_flag=True, help="Replace an existing tagger directory.")
@data_options
def train_command(
    taxonomy_name: str,
    train_paths: tuple[Path, ...],
    valid_paths: tuple[Path, ...],
    output: Path,
    seed: int,
    force: bool,
    **kwargs: Any,
) -> None:
    """Train a tagger on labelled files and save it to OUTPUT."""
    from tagger_core.errors import TaggerError
    from tagger_core.registry import resolve_taxonomy
    from tagger_core.tagger import check_tagger_target
    from tagger_core.workflows.train import train_and_save

    check_tagger_target(output, force)
    objective = training_objective(kwargs)
    tagger = tagger_factory(resolve_taxonomy(taxonomy_name), kwargs)()
    if not train_paths and tagger.encoder.needs_examples:
        from tagger_core.registry import encoders

        collection = encoders()
        zero_shot = [n for n in collection.names() if not collection.get(n).needs_examples]
        others = f" (these start from the taxonomy alone: {', '.join(zero_shot)})"
        raise TaggerError(
            f"--train is required: encoder '{tagger.encoder.name}' learns from labelled names"
            + (others if zero_shot else "")
        )
    taxonomy = tagger.taxonomy
    train, train_files = read_all(train_paths, kwargs, taxonomy=taxonomy)
    valid, valid_files = read_all(valid_paths, kwargs, taxonomy=taxonomy)

    def announce() -> None:
        click.echo(
            f"Training '{tagger.encoder.name}' on {len(train)} records ({len(valid)} validation) "
            f"with taxonomy '{taxonomy.name}' ({len(taxonomy.labels)} labels)…",
            err=True,
        )

    saved = train_and_save(
        tagger,
        train,
        valid,
        output,
        seed=seed,
        force=force,
        train_files=train_files,
        valid_files=valid_files,
        on_start=announce,
        objective=objective,
    )
    if not saved:
        return  # a helper process of a distributed run: the primary one reports
    metrics = tagger.training.validation_metrics
    if metrics:
        click.echo(
            f"Validation: exact match {metrics['exact_match']:.3f}, micro F1 "
            f"{metrics['micro_f1']:.3f}, macro F1 {metrics['macro_f1']:.3f} on "
            f"{metrics['rows']} records ({tagger.rule.describe()})."
        )
    choice = tagger.training.rule_choice
    if choice:
        from tagger_core.workflows.optimize import describe_choice

        click.echo(f"Rule {describe_choice(choice)}.")
    click.echo(f"Saved tagger to {output}")


COMMANDS = [train_command]
