"""`tagger train`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from tagger_core.cli import cli
from tagger_core.cli.options import data_options, parse_params, read_all


@cli.command("train")
@click.option(
    "--taxonomy",
    "taxonomy_name",
    required=True,
    help="Registered taxonomy name or a YAML/JSON file.",
)
@click.option(
    "--train",
    "train_paths",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="Labelled training file (repeatable).",
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
@click.option(
    "--encoder", default="tfidf", show_default=True, help="Encoder plugin (see `tagger plugins`)."
)
@click.option(
    "-p",
    "--param",
    "encoder_params",
    multiple=True,
    help="Encoder parameter KEY=VALUE (repeatable).",
)
@click.option(
    "--model",
    help="Pretrained model (local folder or hub id) for encoders that take one, such as "
    "bert; the same as -p model=….",
)
@click.option("--rule", help="Decision rule (default: threshold, or argmax for single-label).")
@click.option(
    "--rule-param", "rule_params", multiple=True, help="Rule parameter KEY=VALUE (repeatable)."
)
@click.option(
    "--normalize",
    "normalizers",
    multiple=True,
    help="Text normalizer applied before encoding, at training and prediction (repeatable, in order).",
)
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--force", is_flag=True, help="Replace an existing tagger directory.")
@data_options
def train_command(
    taxonomy_name: str,
    train_paths: tuple[Path, ...],
    valid_paths: tuple[Path, ...],
    output: Path,
    encoder: str,
    encoder_params: tuple[str, ...],
    model: str | None,
    rule: str | None,
    rule_params: tuple[str, ...],
    normalizers: tuple[str, ...],
    seed: int,
    force: bool,
    **kwargs: Any,
) -> None:
    """Train a tagger on labelled files and save it to OUTPUT."""
    from tagger_core.errors import TaggerError
    from tagger_core.tagger import Tagger
    from tagger_core.taxonomy import label_matrix

    if output.exists() and not force:  # fail before training, not after
        raise TaggerError(f"{output} already exists; use --force to replace it")
    params = parse_params(encoder_params, "--param")
    if model is not None:
        if "model" in params and params["model"] != model:
            raise TaggerError("--model and -p model=… name different models; give one")
        params["model"] = model
    tagger = Tagger.create(
        taxonomy_name,
        encoder=encoder,
        encoder_params=params,
        rule=rule,
        rule_params=parse_params(rule_params, "--rule-param"),
        normalizers=normalizers,
    )
    train_records, train_files = read_all(train_paths, kwargs)
    valid_records, valid_files = read_all(valid_paths, kwargs)
    # Unknown labels stop here, before any training output.
    label_matrix(train_records, tagger.taxonomy)
    label_matrix(valid_records, tagger.taxonomy)
    if not valid_records:
        logging.getLogger("tagger").warning(
            "no --valid file: the tagger is saved without validation metrics"
        )
    click.echo(
        f"Training '{encoder}' on {len(train_records)} records "
        f"({len(valid_records)} validation) with taxonomy '{tagger.taxonomy.name}' ({len(tagger.taxonomy.labels)} labels)…",
        err=True,
    )
    tagger.train(
        train_records, valid_records, seed=seed, train_files=train_files, valid_files=valid_files
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun every process trains; only rank 0 saves and reports
    tagger.save(output, force=force)
    metrics = tagger.training.validation_metrics
    if metrics:
        click.echo(
            f"Validation: exact match {metrics['exact_match']:.3f}, micro F1 {metrics['micro_f1']:.3f}, "
            f"macro F1 {metrics['macro_f1']:.3f} on {metrics['rows']} records."
        )
    click.echo(f"Saved tagger to {output}")
