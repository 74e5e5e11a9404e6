"""The ``tagger`` command line. Errors the user can fix print one line and exit with 2."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tagger_core import __version__

if TYPE_CHECKING:
    from tagger_core.components import ReadOptions
    from tagger_core.schemas import Prediction, Record, Taxonomy
    from tagger_core.tagger import Tagger

EXIT_USER_ERROR = 2
PREDICT_BATCH = 2048


class TaggerGroup(click.Group):
    """Adds plugin commands on first use and turns user errors into one line, exit 2."""

    _plugin_commands_added = False

    def _add_plugin_commands(self) -> None:
        if not TaggerGroup._plugin_commands_added:
            TaggerGroup._plugin_commands_added = True
            from tagger_core import plugins

            plugins.add_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._guard(ctx, self._add_plugin_commands)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._guard(ctx, self._add_plugin_commands)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        return self._guard(ctx, lambda: super(TaggerGroup, self).invoke(ctx))

    @staticmethod
    def _guard(ctx: click.Context, action: Callable[[], Any]) -> Any:
        from tagger_core.errors import TaggerError

        try:
            return action()
        except TaggerError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_USER_ERROR)
        except BrokenPipeError:  # e.g. `tagger predict ... | head`: stop quietly
            sys.stderr.close()
            ctx.exit(1)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"Error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(EXIT_USER_ERROR)


class _WarningFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "Warning: " if record.levelno >= logging.WARNING else ""
        return prefix + record.getMessage()


def _configure_logging(verbose: bool) -> None:
    log = logging.getLogger("tagger")
    log.handlers.clear()
    handler = logging.StreamHandler()  # stderr, looked up at emit time
    handler.setFormatter(_WarningFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False


@click.group(cls=TaggerGroup)
@click.version_option(__version__, prog_name="tagger")
@click.option("-v", "--verbose", is_flag=True, help="Print more about what is happening.")
def cli(verbose: bool) -> None:
    """Train taggers that label travel entities with a taxonomy, and apply them.

    \b
    tagger train --taxonomy attractions --train train.json --valid valid.json -o my-tagger
    tagger predict my-tagger 香港海洋公园 太平山顶
    tagger evaluate my-tagger test.json
    """
    _configure_logging(verbose)


# -- shared options -----------------------------------------------------------------------


def data_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--format, --text-field, --label-field, --label-sep and --sheet for reading files."""
    options = [
        click.option("--format", "data_format", help="File format (default: from the suffix)."),
        click.option("--text-field", default="text", show_default=True, help="Field or column holding the name."),
        click.option("--label-field", default="label", show_default=True, help="Field or column holding the labels."),
        click.option("--label-sep", default="|", show_default=True, help="Label separator inside one CSV/TSV/Excel cell."),
        click.option("--sheet", help="Excel sheet to read (default: the first)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def read_options(kwargs: dict[str, Any], require_labels: bool = True) -> ReadOptions:
    from tagger_core.components import ReadOptions

    return ReadOptions(
        text_field=kwargs["text_field"],
        label_field=kwargs["label_field"],
        label_sep=kwargs["label_sep"],
        sheet=kwargs["sheet"],
        require_labels=require_labels,
    )


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


def ensure_new_file(path: Path, force: bool) -> None:
    from tagger_core.errors import TaggerError

    if path.exists() and not force:
        raise TaggerError(f"{path} already exists; use --force to replace it")


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


# -- plugins and taxonomies -----------------------------------------------------------------


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> None:
    """List installed plugins and what each provides."""
    from tagger_core import plugins

    manager = plugins.load_plugins()
    provided: dict[str, dict[str, list[str]]] = {}
    for kind, collection in (
        ("formats", plugins.data_sources()),
        ("taxonomies", plugins.taxonomies()),
        ("encoders", plugins.encoders()),
        ("decision_rules", plugins.decision_rules()),
    ):
        for registered in collection.items.values():
            provided.setdefault(registered.plugin, {}).setdefault(kind, []).append(registered.name)
    listing = []
    for name, plugin in sorted(manager.list_name_plugin(), key=lambda item: item[0]):
        distribution, version = plugins.plugin_distribution(name)
        hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [])
        listing.append(
            {
                "name": name,
                "distribution": distribution,
                "version": version,
                "hooks": hooks,
                "provides": provided.get(name, {}),
            }
        )
    if as_json:
        click.echo(json.dumps(listing, ensure_ascii=False, indent=2))
        return
    if not listing:
        click.echo("No plugins loaded.")
    for entry in listing:
        origin = f" ({entry['distribution']} {entry['version']})" if entry["distribution"] else ""
        click.echo(f"{entry['name']}{origin}")
        for kind, names in sorted(entry["provides"].items()):
            click.echo(f"  {kind.replace('_', ' ')}: {', '.join(names)}")
        other_hooks = [h for h in entry["hooks"] if h == "register_commands"]
        if other_hooks:
            click.echo("  commands: yes (register_commands)")


@cli.command("taxonomies")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def taxonomies_command(as_json: bool) -> None:
    """List the taxonomies that installed plugins provide."""
    from tagger_core import plugins

    collection = plugins.taxonomies()
    rows = []
    for name in collection.names():
        registered = collection.items[name]
        taxonomy = registered.item
        rows.append([name, taxonomy.entity_type, taxonomy.mode, len(taxonomy.labels), taxonomy.version, registered.plugin])
    if as_json:
        keys = ["name", "entity_type", "mode", "labels", "version", "plugin"]
        click.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], ensure_ascii=False, indent=2))
    elif rows:
        click.echo(format_table(["NAME", "ENTITY", "MODE", "LABELS", "VERSION", "PLUGIN"], rows))
    else:
        click.echo("No taxonomies registered.")


@cli.group("taxonomy")
def taxonomy_group() -> None:
    """Show a taxonomy, or infer a starting one from labelled data."""


@taxonomy_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the taxonomy as JSON.")
def taxonomy_show(name: str, as_json: bool) -> None:
    """Show taxonomy NAME (a registered name or a YAML/JSON file)."""
    from tagger_core.taxonomy import resolve_taxonomy

    taxonomy = resolve_taxonomy(name)
    if as_json:
        click.echo(taxonomy.model_dump_json(indent=2))
        return
    click.echo(f"{taxonomy.name} (version {taxonomy.version}): {taxonomy.entity_type}, {taxonomy.mode}, {len(taxonomy.labels)} labels")
    if taxonomy.description:
        click.echo(taxonomy.description)
    click.echo()
    click.echo(
        format_table(
            ["LABEL", "NAME", "DESCRIPTION"],
            [[label.id, label.name or "", label.description] for label in taxonomy.labels],
        )
    )
    constraints = taxonomy.constraints
    notes = []
    if constraints.exclusive:
        notes.append(f"exclusive (stand alone): {', '.join(constraints.exclusive)}")
    for group in constraints.exclusive_groups:
        notes.append(f"at most one of: {', '.join(group)}")
    if constraints.min_labels:
        notes.append(f"at least {constraints.min_labels} label(s) per item")
    if constraints.max_labels:
        notes.append(f"at most {constraints.max_labels} label(s) per item")
    if notes:
        click.echo()
        click.echo("Constraints: " + "; ".join(notes))


@taxonomy_group.command("infer")
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="YAML or JSON file to write.")
@click.option("--name", help="Taxonomy name (default: the output file's stem).")
@click.option("--mode", type=click.Choice(["multi-label", "single-label"]), help="Default: single-label if every record has one label.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@data_options
def taxonomy_infer(data: tuple[Path, ...], output: Path, name: str | None, mode: Any, force: bool, **kwargs: Any) -> None:
    """Write a starting taxonomy from the labels found in DATA files."""
    from tagger_core.data import read_records
    from tagger_core.taxonomy import infer_taxonomy, write_taxonomy

    ensure_new_file(output, force)
    records = [r for path in data for r in read_records(path, kwargs["data_format"], read_options(kwargs))]
    taxonomy = infer_taxonomy(records, name or output.stem, mode)
    write_taxonomy(taxonomy, output)
    click.echo(f"Wrote {output}: {len(taxonomy.labels)} labels, {taxonomy.mode}, from {len(records)} records.")


# -- train, predict, evaluate ----------------------------------------------------------------


def _read_all(paths: Sequence[Path], kwargs: dict[str, Any], require_labels: bool = True) -> tuple[list[Record], list[Any]]:
    from tagger_core.data import fingerprint, read_records

    records: list[Record] = []
    files = []
    for path in paths:
        batch = read_records(path, kwargs["data_format"], read_options(kwargs, require_labels))
        records.extend(batch)
        files.append(fingerprint(path, len(batch)))
    return records, files


def _print_evaluation(evaluation: Any) -> None:
    click.echo(
        f"rows {evaluation.rows}   exact match {evaluation.exact_match:.3f}   "
        f"micro P/R/F1 {evaluation.micro_precision:.3f}/{evaluation.micro_recall:.3f}/{evaluation.micro_f1:.3f}   "
        f"macro F1 {evaluation.macro_f1:.3f}   empty predictions {evaluation.empty_predictions}"
    )
    click.echo()
    click.echo(
        format_table(
            ["LABEL", "SUPPORT", "TP", "FP", "FN", "PRECISION", "RECALL", "F1"],
            [[m.label, m.support, m.tp, m.fp, m.fn, m.precision, m.recall, m.f1] for m in evaluation.per_label],
        )
    )


@cli.command("train")
@click.option("--taxonomy", "taxonomy_name", required=True, help="Registered taxonomy name or a YAML/JSON file.")
@click.option("--train", "train_paths", required=True, multiple=True, type=click.Path(path_type=Path), help="Labelled training file (repeatable).")
@click.option("--valid", "valid_paths", multiple=True, type=click.Path(path_type=Path), help="Labelled validation file (repeatable).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Directory to save the tagger in.")
@click.option("--encoder", default="tfidf", show_default=True, help="Encoder plugin (see `tagger plugins`).")
@click.option("-p", "--param", "encoder_params", multiple=True, help="Encoder parameter KEY=VALUE (repeatable).")
@click.option("--rule", help="Decision rule (default: threshold, or argmax for single-label).")
@click.option("--rule-param", "rule_params", multiple=True, help="Rule parameter KEY=VALUE (repeatable).")
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
    rule: str | None,
    rule_params: tuple[str, ...],
    seed: int,
    force: bool,
    **kwargs: Any,
) -> None:
    """Train a tagger on labelled files and save it to OUTPUT."""
    from tagger_core.errors import TaggerError
    from tagger_core.tagger import Tagger

    if output.exists() and not force:  # fail before training, not after
        raise TaggerError(f"{output} already exists; use --force to replace it")
    tagger = Tagger.create(
        taxonomy_name,
        encoder=encoder,
        encoder_params=parse_params(encoder_params, "--param"),
        rule=rule,
        rule_params=parse_params(rule_params, "--rule-param"),
    )
    train_records, train_files = _read_all(train_paths, kwargs)
    valid_records, valid_files = _read_all(valid_paths, kwargs)
    if not valid_records:
        logging.getLogger("tagger").warning("no --valid file: the tagger is saved without validation metrics")
    click.echo(
        f"Training '{encoder}' on {len(train_records)} records "
        f"({len(valid_records)} validation) with taxonomy '{tagger.taxonomy.name}' ({len(tagger.taxonomy.labels)} labels)…",
        err=True,
    )
    tagger.train(train_records, valid_records, seed=seed, train_files=train_files, valid_files=valid_files)
    tagger.save(output, force=force)
    metrics = tagger.training.validation_metrics
    if metrics:
        click.echo(
            f"Validation: exact match {metrics['exact_match']:.3f}, micro F1 {metrics['micro_f1']:.3f}, "
            f"macro F1 {metrics['macro_f1']:.3f} on {metrics['rows']} records."
        )
    click.echo(f"Saved tagger to {output}")


def _rule_override(rule: str | None, rule_params: tuple[str, ...]) -> Any:
    from tagger_core.tagger import make_rule

    if rule is None:
        if rule_params:
            raise click.UsageError("--rule-param needs --rule")
        return None
    return make_rule(rule, parse_params(rule_params, "--rule-param"))


def _format_prediction(prediction: Prediction, taxonomy: Taxonomy) -> str:
    if prediction.labels:
        labels = ", ".join(f"{label} ({prediction.scores[label]:.2f})" for label in prediction.labels)
    else:
        best = max(prediction.scores, key=prediction.scores.__getitem__)
        labels = f"(no label; best: {best} {prediction.scores[best]:.2f})"
    return f"{prediction.text}\t{labels}"


def _echo_predictions(predictions: Iterable[Prediction], taxonomy: Taxonomy, as_json: bool) -> None:
    for prediction in predictions:
        if as_json:
            click.echo(json.dumps(prediction.model_dump(), ensure_ascii=False))
        else:
            click.echo(_format_prediction(prediction, taxonomy))


def _predict_in_batches(tagger: Tagger, texts: list[str], rule: Any) -> list[Prediction]:
    from tagger_core.progress import progress

    predictions: list[Prediction] = []
    with progress(total=len(texts), desc="predicting", unit="name") as bar:
        for start in range(0, len(texts), PREDICT_BATCH):
            batch = texts[start : start + PREDICT_BATCH]
            predictions.extend(tagger.predict(batch, rule=rule))
            bar.update(len(batch))
    return predictions


def interactive(tagger: Tagger, rule: Any, ask: Callable[[], str], as_json: bool) -> None:
    """Read names at a prompt until 'q', 'quit', 'exit' or end of input."""
    while True:
        try:
            line = ask().strip()
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        if line.lower() in {"q", "quit", "exit"}:
            return
        if line:
            _echo_predictions(tagger.predict([line], rule=rule), tagger.taxonomy, as_json)


@cli.command("predict")
@click.argument("tagger_dir", metavar="TAGGER", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option("-i", "--input", "input_path", type=click.Path(path_type=Path), help="File of names to tag (any registered format).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write predictions to this file (format from suffix).")
@click.option("--output-format", help="Format of --output (default: from its suffix).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of text.")
@click.option("--rule", help="Override the saved decision rule for this call.")
@click.option("--rule-param", "rule_params", multiple=True, help="Parameter of --rule, KEY=VALUE.")
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@data_options
def predict_command(
    tagger_dir: Path,
    texts: tuple[str, ...],
    input_path: Path | None,
    output: Path | None,
    output_format: str | None,
    as_json: bool,
    rule: str | None,
    rule_params: tuple[str, ...],
    force: bool,
    **kwargs: Any,
) -> None:
    """Tag names with a saved TAGGER.

    Names come from the arguments, from --input FILE, from lines on standard input, or —
    on a terminal with none of these — from an interactive prompt (q to quit).
    """
    from tagger_core.data import read_records, write_records
    from tagger_core.errors import DataError
    from tagger_core.schemas import Record
    from tagger_core.tagger import Tagger

    if texts and input_path:
        raise click.UsageError("give names as arguments or with --input, not both")
    if output is not None:
        ensure_new_file(output, force)
    tagger = Tagger.load(tagger_dir)
    override = _rule_override(rule, rule_params)
    if input_path is not None:
        records = read_records(input_path, kwargs["data_format"], read_options(kwargs, require_labels=False))
    elif texts:
        records = [Record(text=t, file="arguments", row=i) for i, t in enumerate(texts, start=1)]
    elif not sys.stdin.isatty():
        records = [
            Record(text=line.strip(), file="<stdin>", row=i)
            for i, line in enumerate(sys.stdin, start=1)
            if line.strip()
        ]
    else:
        if output is not None:
            raise click.UsageError("--output needs names from arguments, --input or standard input")
        click.echo(f"Tagger '{tagger_dir}' ({tagger.taxonomy.name}). Type a name, q to quit.", err=True)
        interactive(tagger, override, lambda: input("name> "), as_json)
        return
    for record in records:
        if not record.text.strip():
            raise DataError("empty text", file=record.file, row=record.row, field=kwargs["text_field"])
    predictions = _predict_in_batches(tagger, [r.text for r in records], override)
    if output is None:
        _echo_predictions(predictions, tagger.taxonomy, as_json)
        return
    out_records = [
        Record(
            text=record.text,
            labels=tuple(prediction.labels),
            id=record.id,
            metadata={**record.metadata, "scores": prediction.scores},
        )
        for record, prediction in zip(records, predictions, strict=True)
    ]
    out_options = read_options(kwargs)
    if input_path is not None and kwargs["label_field"] in {k for r in records for k in r.metadata}:
        raise DataError("input already has a label column; predictions would overwrite it", file=input_path, field=kwargs["label_field"])
    write_records(output, out_records, output_format, out_options)
    click.echo(f"Wrote {len(out_records)} predictions to {output}", err=True)


@cli.command("evaluate")
@click.argument("tagger_dir", metavar="TAGGER", type=click.Path(path_type=Path))
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--metrics-file", type=click.Path(path_type=Path), help="Write all figures as JSON here.")
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
    records, _ = _read_all(data, kwargs)
    evaluation = tagger.evaluate(records, rule=_rule_override(rule, rule_params))
    if metrics_file is not None:
        metrics_file.write_text(evaluation.model_dump_json(indent=2), encoding="utf-8")
    if as_json:
        click.echo(evaluation.model_dump_json(indent=2))
    else:
        _print_evaluation(evaluation)


def main() -> None:
    cli(prog_name="tagger")
