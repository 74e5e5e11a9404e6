"""`tagger export`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tagger_core.cli.options import data_options, no_verify_option, read_all


@click.command("export")
@click.argument("tagger_dir", metavar="TAGGER", type=click.Path(path_type=Path))
@click.option("--onnx", is_flag=True, help="Export the encoder to ONNX (ONNX Runtime scores it).")
@click.option(
    "--quantize",
    type=click.Choice(["int8", "none"]),
    default="int8",
    show_default=True,
    help="int8: ONNX Runtime's dynamic int8 weights; none: fp32.",
)
@click.option(
    "--check",
    "check_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Labelled file to check the export on (repeatable; default: the tagger's "
    "validation files).",
)
@click.option(
    "--force", is_flag=True, help="Keep the export even when the check finds it changes too much."
)
@no_verify_option
@data_options
def export_command(
    tagger_dir: Path,
    onnx: bool,
    quantize: str,
    check_paths: tuple[Path, ...],
    force: bool,
    no_verify: bool,
    **kwargs: Any,
) -> None:
    """Write a fast-path copy of TAGGER's encoder into it: ONNX, int8 by default.

    The copy is checked on labelled names against the encoder: it is not kept when it
    changes the labels of more than 1 % of them or micro F1 by more than half a point.
    predict, evaluate, serve and Tagger.load then use it (--runtime torch does not).

    \b
    tagger export my-tagger --onnx
    tagger export my-tagger --onnx --quantize none --check test.json
    """
    from tagger_core.errors import TaggerError
    from tagger_core.tagger import read_manifest
    from tagger_core.workflows.export import check_exportable, export_onnx

    if not onnx:
        raise TaggerError("choose what to export: --onnx")
    manifest = read_manifest(tagger_dir)  # the export loads the tagger itself, once
    check_exportable(manifest.encoder.name)
    paths = list(check_paths)
    if not paths:
        paths = [Path(data.path) for data in manifest.training.valid]
        gone = [p for p in paths if not p.is_file()]
        if not paths or gone:
            what = f"its validation file {gone[0]} is gone" if gone else "it has no validation file"
            raise TaggerError(f"give labelled names to check the export on with --check: {what}")
    records, _ = read_all(paths, kwargs, taxonomy=manifest.taxonomy)
    click.echo(f"Exporting '{manifest.encoder.name}' to ONNX ({quantize})…", err=True)
    check, record = export_onnx(
        tagger_dir, records, quantize=quantize, force=force, verify=not no_verify
    )
    megabytes = record["bytes"] / 1e6
    click.echo(
        f"Exported {record['file']} ({quantize}, {megabytes:.1f} MB) into {tagger_dir}: on "
        f"{check.rows} names, {check.changed} ({check.changed_share:.2%}) changed labels; "
        f"micro F1 {check.micro_f1_before:.4f} → {check.micro_f1_after:.4f}, exact match "
        f"{check.exact_match_before:.4f} → {check.exact_match_after:.4f}; largest score "
        f"change {check.max_score_change:.2g}."
    )


COMMANDS = [export_command]
