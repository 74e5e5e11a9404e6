"""Option stacks shared by several commands, each declared once, and output helpers.

Help texts that state a default are built from the default the code really uses (the
registry's default encoder and rules, the workflows' constants), when the help is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tagger_core.components import DecisionRule, FileOptions
    from tagger_core.data.sources import DataSpec
    from tagger_core.schemas import DataFile, Record, Taxonomy
    from tagger_core.tagger import Tagger

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class LiveHelpOption(click.Option):
    """An option whose help is computed when shown (it names a default found at run time)."""

    def __init__(self, *args: Any, live_help: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.live_help = live_help

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = self.live_help()
        return super().get_help_record(ctx)


def stack(*options: Decorator) -> Decorator:
    """One decorator applying ``options`` in the order listed (as they show in --help)."""

    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            function = option(function)
        return function

    return apply


# -- reading files -------------------------------------------------------------------------

data_options = stack(
    click.option(
        "--format",
        "data_format",
        help="Data source (file format) to read with (default: by suffix).",
    ),
    click.option(
        "--text-field", default="text", show_default=True, help="Field or column holding the name."
    ),
    click.option(
        "--label-field",
        default="label",
        show_default=True,
        help="Field or column holding the labels.",
    ),
    click.option(
        "--label-sep",
        help="Label separator inside one string of labels (default: '|' in CSV/TSV/Excel "
        "cells; in JSON, labels are lists unless a separator is named).",
    ),
    click.option("--sheet", help="Excel sheet to read (default: the first)."),
)


def file_options(kwargs: dict[str, Any], require_labels: bool = True) -> FileOptions:
    from tagger_core.components import FileOptions

    return FileOptions(
        text_field=kwargs["text_field"],
        label_field=kwargs["label_field"],
        label_sep=kwargs["label_sep"],
        sheet=kwargs["sheet"],
        require_labels=require_labels,
    )


def read_all(
    paths: Sequence[Path],
    kwargs: dict[str, Any],
    require_labels: bool = True,
    taxonomy: Taxonomy | None = None,
) -> tuple[list[Record], list[DataFile]]:
    """Every record of ``paths``; with a taxonomy the labels are checked row by row."""
    from tagger_core.data.io import fingerprint, read_records

    options = file_options(kwargs, require_labels)
    records: list[Record] = []
    files = []
    for path in paths:
        batch = read_records(path, kwargs["data_format"], options, taxonomy)
        records.extend(batch)
        files.append(fingerprint(path, len(batch)))
    return records, files


data_sources_option = click.option(
    "--data",
    "data_values",
    multiple=True,
    metavar="NAME=FILE",
    help="Labelled file from source NAME (repeatable); records keep their source.",
)


def collect_data_specs(paths: Iterable[str], values: Iterable[str]) -> list[DataSpec]:
    """Positional files and ``--data`` values, each ``FILE`` or ``NAME=FILE``."""
    from tagger_core.data.sources import parse_data_spec

    out = [parse_data_spec(str(value)) for value in (*paths, *values)]
    if not out:
        raise click.UsageError("no data: give files as arguments or --data NAME=FILE")
    return out


def read_data(
    specs: Sequence[DataSpec], kwargs: dict[str, Any], taxonomy: Taxonomy | None = None
) -> list[Record]:
    """The records of ``specs`` read with the ``data_options``."""
    from tagger_core.data.sources import read_specs

    return read_specs(specs, kwargs["data_format"], file_options(kwargs), taxonomy)


def taxonomy_option(required: bool = True) -> Decorator:
    return click.option(
        "--taxonomy",
        "taxonomy_name",
        required=required,
        help="Registered taxonomy name or a YAML/JSON file.",
    )


# -- building a tagger ---------------------------------------------------------------------


def _encoder_help() -> str:
    from tagger_core.registry import default_encoder_name

    return f"Encoder plugin (see `tagger plugins --options`; default: {default_encoder_name()})."


def _rule_help() -> str:
    from tagger_core.registry import default_rule_name

    multi, single = default_rule_name("multi-label"), default_rule_name("single-label")
    return (
        f"Decision rule (default: {multi} for multi-label taxonomies, fitted on the "
        f"validation data; {single} for single-label ones)."
    )


def _model_help() -> str:
    from tagger_core.registry import encoders

    takers = [n for n in encoders().names() if encoders().get(n).model_param]
    which = f" ({', '.join(takers)})" if takers else ""
    return f"Pretrained model (local folder or hub id) for encoders that take one{which}."


tagger_options = stack(
    click.option("--encoder", cls=LiveHelpOption, live_help=_encoder_help),
    click.option(
        "-p",
        "--param",
        "encoder_params",
        multiple=True,
        metavar="KEY=VALUE",
        help="Encoder parameter (repeatable); `tagger plugins --options` lists them.",
    ),
    click.option("--model", cls=LiveHelpOption, live_help=_model_help),
    click.option("--rule", cls=LiveHelpOption, live_help=_rule_help),
    click.option(
        "--rule-param",
        "rule_params",
        multiple=True,
        metavar="KEY=VALUE",
        help="Rule parameter (repeatable).",
    ),
    click.option(
        "--normalize",
        "normalizers",
        multiple=True,
        help="Text normalizer applied before encoding, at training and prediction "
        "(repeatable, in order).",
    ),
    click.option(
        "--objective",
        metavar="FIGURE",
        cls=LiveHelpOption,
        live_help=lambda: _objective_help(),
    ),
)


def _objective_help() -> str:
    from tagger_core.workflows.train import DEFAULT_OBJECTIVE

    return (
        "Figure the decision rule is chosen for on the validation data: micro_f1, "
        "macro_f1, exact_match, samples_f1… (`tagger optimize --help`). Every installed "
        "rule is a candidate; the default rule stays unless another beats it out of fold "
        "in 90 % of bootstrap resamples. The encoder's own validation (early stopping, "
        "checks of combined members) measures it too "
        f"(default: {DEFAULT_OBJECTIVE}; not with --rule)."
    )


def training_objective(kwargs: dict[str, Any]) -> str | None:
    """The objective training chooses the rule for; None where the user fixed the rule."""
    from tagger_core.errors import TaggerError
    from tagger_core.workflows.optimize import check_objective
    from tagger_core.workflows.train import DEFAULT_OBJECTIVE

    objective = kwargs.get("objective")
    if kwargs.get("rule") or kwargs.get("rule_params"):
        if objective is not None:
            raise TaggerError(
                "--objective chooses the decision rule and --rule/--rule-param fix it; give one"
            )
        return None
    objective = objective or DEFAULT_OBJECTIVE
    check_objective(objective)
    return objective


def tagger_factory(taxonomy: Taxonomy | str, kwargs: dict[str, Any]) -> Callable[[], Tagger]:
    """Builds untrained taggers from the ``tagger_options``; a bad encoder, rule or
    parameter stops at once, before any work."""
    from tagger_core.workflows.train import build_tagger

    def make() -> Tagger:
        return build_tagger(
            taxonomy,
            encoder=kwargs["encoder"],
            encoder_params=parse_params(kwargs["encoder_params"], "--param"),
            model=kwargs["model"],
            rule=kwargs["rule"],
            rule_params=parse_params(kwargs["rule_params"], "--rule-param"),
            normalizers=kwargs["normalizers"],
        )

    make()
    return make


def _valid_ratio_help() -> str:
    from tagger_core.workflows.train import DEFAULT_VALID_RATIO

    return (
        "Share of each training set held out to fit the decision rule and stop early "
        f"(default: {DEFAULT_VALID_RATIO:g} when the rule is fitted on validation scores, else 0)."
    )


valid_ratio_option = click.option(
    "--valid-ratio", type=float, cls=LiveHelpOption, live_help=_valid_ratio_help
)

# -- applying a tagger ---------------------------------------------------------------------

no_verify_option = click.option(
    "--no-verify",
    is_flag=True,
    help="Load TAGGER without checking its files against the SHA-256 sums of its manifest.",
)

runtime_option = click.option(
    "--runtime",
    type=click.Choice(["auto", "torch", "onnx"]),
    default=None,
    help="Score with the encoder itself (torch) or its `tagger export` (onnx); default: "
    "the export where the tagger has one.",
)

rule_override_options = stack(
    click.option("--rule", help="Override the saved decision rule for this call."),
    click.option(
        "--rule-param", "rule_params", multiple=True, help="Parameter of --rule, KEY=VALUE."
    ),
)


def rule_override(rule: str | None, rule_params: tuple[str, ...]) -> DecisionRule[Any] | None:
    from tagger_core.registry import make_rule

    if rule is None:
        if rule_params:
            raise click.UsageError("--rule-param needs --rule")
        return None
    return make_rule(rule, parse_params(rule_params, "--rule-param"))


def parse_params(values: Iterable[str], option: str) -> dict[str, Any]:
    """``key=value`` pairs; values are read as YAML scalars, so 4, 0.5, true and null work."""
    import yaml

    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got '{item}'", param_hint=option)
        try:
            params[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            params[key.strip()] = raw
    return params


# -- writing -------------------------------------------------------------------------------


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def display_width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    def pad(value: str, width: int, right: bool) -> str:
        fill = " " * (width - display_width(value))
        return fill + value if right else value + fill

    cells = [[cell(value) for value in row] for row in rows]
    widths = [
        max([display_width(h)] + [display_width(r[i]) for r in cells]) for i, h in enumerate(header)
    ]
    lines = ["  ".join(pad(h, w, False) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in cells:
        padded = [
            pad(value, width, right=i > 0 and _numeric(value))
            for i, (value, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def _numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


# numpy's and scikit-learn's generators take 0 … 2**32 - 1: a negative seed would fail
# deep inside training, after the data and the model were loaded
SEED_RANGE = click.IntRange(0, 2**32 - 1)


def seed_option(help: str) -> Decorator:
    return click.option("--seed", default=0, show_default=True, type=SEED_RANGE, help=help)
