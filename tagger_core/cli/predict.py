"""`tagger predict`: names from arguments, a file, standard input or a prompt."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from tagger_core.cli.options import (
    LiveHelpOption,
    data_options,
    file_options,
    no_verify_option,
    rule_override,
    rule_override_options,
    runtime_option,
)
from tagger_core.components import json_default
from tagger_core.errors import DataError
from tagger_core.files import check_target, check_targets

if TYPE_CHECKING:  # the modules themselves load when a command runs: `tagger --help` stays fast
    from tagger_core.components import FileOptions
    from tagger_core.schemas import Record, Taxonomy
    from tagger_core.tagger import Tagger


# Starting a worker costs seconds (it loads the tagger); below this size it does not pay.
AUTO_JOBS_BYTES = 16 << 20


def _display(taxonomy: Taxonomy, label: str) -> str:
    return taxonomy.label(label).display_name


def format_prediction(
    text: str, labels: list[str], scores: dict[str, float], taxonomy: Taxonomy, display: bool
) -> str:
    """One line: the name, a tab, the labels with their scores."""

    def shown(label: str) -> str:
        name = _display(taxonomy, label)
        return f"{label} · {name}" if display and name != label else label

    if labels:
        shown_labels = ", ".join(f"{shown(label)} ({scores[label]:.2f})" for label in labels)
    else:
        best = max(scores, key=scores.__getitem__)
        shown_labels = f"(no label; best: {shown(best)} {scores[best]:.2f})"
    return f"{printable(text)}\t{shown_labels}"


def printable(text: str) -> str:
    """``text`` with control characters (and line separators) escaped, so that one name is
    one line on a terminal and no escape sequence reaches it."""
    import unicodedata

    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp")
        else ch
        for ch in text
    )


def _echo(
    tagger: Tagger,
    records: Iterable[Record],
    options: FileOptions,
    rule: Any,
    as_json: bool,
    display: bool,
    progress: Any = None,
    jobs: int = 0,
) -> None:
    """Predictions on standard output: JSON lines with the fields files get, or text."""
    from tagger_core.workflows.predict import PREDICTED, SCORES, tagged_chunks

    chunks = tagged_chunks(
        tagger,
        records,
        options=options,
        rule=rule,
        display=display,
        progress=progress,
        jobs=jobs,
    )
    for rows, write_options in chunks:
        for row in rows:
            if as_json:
                click.echo(json.dumps(row, ensure_ascii=False, default=json_default))
            else:
                text = str(row[write_options.text_field])
                labels = cast("list[str]", row[PREDICTED])
                scores = cast("dict[str, float]", row[SCORES])
                click.echo(format_prediction(text, labels, scores, tagger.taxonomy, display))


def interactive(
    tagger: Tagger, rule: Any, ask: Callable[[], str], as_json: bool, display: bool = False
) -> None:
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
            from tagger_core.components import FileOptions
            from tagger_core.schemas import Record

            _echo(tagger, [Record(text=line)], FileOptions(), rule, as_json, display)


@click.command("predict")
@click.argument("tagger_dir", metavar="TAGGER", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option(
    "-i",
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    help="File of names to tag (any data source, or .txt with one name per line); or a "
    "folder or a quoted glob of shards, each tagged into its own file under --output.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write predictions to this file (format from suffix); for shards, a folder.",
)
@click.option(
    "--output-format",
    help="Data source (file format) of --output; for shards, default: each shard's own.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    cls=LiveHelpOption,
    live_help=lambda: _fields_help(as_json=True),
)
@click.option(
    "--display", is_flag=True, cls=LiveHelpOption, live_help=lambda: _fields_help(as_json=False)
)
@rule_override_options
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@click.option(
    "--resume",
    is_flag=True,
    help="For shards: keep the outputs that exist (each is complete) and tag the rest.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=0),
    help="Worker processes that score while this one reads and writes (0: score here). "
    f"Default: 1 for an --input file of {AUTO_JOBS_BYTES >> 20} MB or more on a machine with "
    "two or more CPUs, unless the encoder's scoring uses every CPU already (BERT); else 0.",
)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads the encoder scores with.")
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this process (and --jobs); ray: Ray Data's actor pool, on this machine or "
    "a cluster (extra tagger[ray]).",
)
@click.option(
    "--ray-address", help="A running Ray cluster (default: RAY_ADDRESS, else Ray on this machine)."
)
@click.option(
    "--actors",
    type=click.IntRange(min=1),
    help="Ray actors, each holding the tagger once (default: CPUs ÷ --cpus-per-actor).",
)
@click.option(
    "--cpus-per-actor",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="CPUs Ray gives each actor (and, rounded down, its encoder threads).",
)
@click.option(
    "--gpus-per-actor",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="GPUs Ray gives each actor (0: CPU only).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="Rows per chunk, scored in one call on a Ray actor (as tagger predict: 2,048).",
)
@no_verify_option
@runtime_option
@data_options
def predict_command(
    tagger_dir: Path,
    texts: tuple[str, ...],
    input_path: Path | None,
    output: Path | None,
    output_format: str | None,
    as_json: bool,
    display: bool,
    rule: str | None,
    rule_params: tuple[str, ...],
    force: bool,
    resume: bool,
    jobs: int | None,
    no_verify: bool,
    runtime: str | None,
    threads: int | None,
    engine: str,
    ray_address: str | None,
    actors: int | None,
    cpus_per_actor: float,
    gpus_per_actor: float,
    batch_size: int,
    **kwargs: Any,
) -> None:
    """Tag names with a saved TAGGER.

    Names come from the arguments, from --input FILE, from lines on standard input, or —
    on a terminal with none of these — from an interactive prompt (q to quit).

    A catalogue in shards (--input FOLDER or a quoted glob) is tagged shard by shard into
    the folder --output, in this process or, with --engine ray, on Ray.
    """
    from tagger_core.data.io import iter_records, writer_for
    from tagger_core.data.shards import is_sharded
    from tagger_core.progress_bars import progress
    from tagger_core.schemas import Record
    from tagger_core.tagger import Tagger
    from tagger_core.workflows.predict import predict_to_file, settle_heap

    if texts and input_path:
        raise click.UsageError("give names as arguments or with --input, not both")
    if engine == "ray" or (input_path is not None and is_sharded(input_path)):
        _predict_catalogue(
            tagger_dir,
            input_path,
            output,
            output_format,
            rule_override(rule, rule_params),
            display=display,
            force=force,
            resume=resume,
            jobs=jobs,
            verify=not no_verify,
            runtime=runtime,
            threads=threads,
            engine=engine,
            ray={
                "address": ray_address,
                "actors": actors,
                "cpus_per_actor": cpus_per_actor,
                "gpus_per_actor": gpus_per_actor,
                "batch_size": batch_size,
            },
            data=kwargs,
        )
        return
    if output is not None:
        inputs = [tagger_dir, *([input_path] if input_path is not None else [])]
        check_targets([output], force, inputs=inputs)
        writer_for(output, output_format)  # a format that cannot be written: refused now
    tagger = Tagger.load(tagger_dir, verify=not no_verify, runtime=runtime)
    tagger.set_threads(threads)
    settle_heap()
    override = rule_override(rule, rule_params)
    options = file_options(kwargs, require_labels=False)
    records: Iterable[Record]
    total = None
    if input_path is not None:
        records = iter_records(input_path, kwargs["data_format"], options)
        total = rough_rows(input_path)
    elif texts:
        records = [Record(text=t, file="arguments", row=i) for i, t in enumerate(texts, start=1)]
    elif not sys.stdin.isatty():
        records = stdin_records()
    else:
        if output is not None:
            raise click.UsageError("--output needs names from arguments, --input or standard input")
        click.echo(
            f"Tagger '{tagger_dir}' ({tagger.taxonomy.name}). Type a name, q to quit.", err=True
        )
        interactive(tagger, override, lambda: input("name> "), as_json, display)
        return
    if jobs is None:
        jobs = 0 if tagger.encoder.uses_all_cpus else auto_jobs(input_path)
    with progress(total=total, desc="predicting", unit="name") as bar:
        if output is not None:
            rows = predict_to_file(
                tagger,
                records,
                output,
                format=output_format,
                options=options,
                rule=override,
                display=display,
                progress=bar.update,
                jobs=jobs,
            )
            bar.close()
            if rows == 0:  # nothing to take the columns from: the output is not written
                kept = "; the existing file is unchanged" if output.exists() else ""
                raise DataError(f"no names to tag; {output} was not written{kept}")
            click.echo(f"Wrote {rows} predictions to {output}", err=True)
            return
        _echo(tagger, records, options, override, as_json, display, bar.update, jobs)


def stdin_records() -> Iterator[Record]:
    """Names from standard input, one a line, as UTF-8 (a leading byte-order mark
    dropped); a line that is not UTF-8 is one line naming it, not a traceback."""
    from tagger_core.schemas import Record

    for row, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            line = raw.decode("utf-8-sig" if row == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise DataError(
                f"not UTF-8 text (byte {error.start + 1} of the line)", file="<stdin>", row=row
            ) from None
        if line.strip():
            yield Record(text=line.strip(), file="<stdin>", row=row)


def _predict_catalogue(
    tagger_dir: Path,
    input_path: Path | None,
    output: Path | None,
    output_format: str | None,
    rule: Any,
    *,
    display: bool,
    force: bool,
    resume: bool,
    jobs: int | None,
    verify: bool,
    runtime: str | None,
    threads: int | None,
    engine: str,
    ray: dict[str, Any],
    data: dict[str, Any],
) -> None:
    """Shards (or, on Ray, one file) tagged file by file: each output complete or absent."""
    from tagger_core.data.io import writer_for
    from tagger_core.data.shards import Shard, find_shards, is_sharded, plan_outputs
    from tagger_core.tagger import Tagger
    from tagger_core.workflows.predict import predict_shards, settle_heap

    if input_path is None or output is None:
        where = "--engine ray" if engine == "ray" else "a folder or glob of shards"
        raise click.UsageError(f"{where} needs --input and --output")
    if engine == "ray":  # a missing extra is said before any work
        import tagger_core.catalogue.ray_job  # noqa: F401
    read_format = data["data_format"]
    options = file_options(data, require_labels=False)
    if resume and force:
        raise click.UsageError(
            "--resume keeps existing outputs and --force replaces them: choose one"
        )
    if is_sharded(input_path):
        found, root = find_shards(input_path, read_format)
        shards = plan_outputs(found, root, output, output_format, force, resume)
        if len(shards) < len(found):
            click.echo(f"{len(found) - len(shards)} of {len(found)} shards done already", err=True)
        if not shards:
            return
    else:
        check_target(output, force)
        writer_for(output, output_format)  # a format that cannot be written: refused now
        shards = [Shard(input_path, output)]
    tagger = Tagger.load(tagger_dir, verify=verify, runtime=runtime)
    if engine == "ray":
        from tagger_core.catalogue.ray_job import RaySettings, predict_with_ray

        settings = RaySettings(**ray, threads=threads)
        rows = predict_with_ray(
            tagger,
            shards,
            format=read_format,
            output_format=output_format,
            options=options,
            rule=rule,
            display=display,
            settings=settings,
        )
    else:
        from tagger_core.progress_bars import progress

        tagger.set_threads(threads)
        settle_heap()
        with progress(total=None, desc="predicting", unit="name") as bar:
            rows = predict_shards(
                tagger,
                shards,
                format=read_format,
                output_format=output_format,
                options=options,
                rule=rule,
                display=display,
                progress=bar.update,
                jobs=jobs or 0,
            )
    where = str(output) if len(shards) == 1 else f"{len(shards)} files under {output}"
    click.echo(f"Wrote {rows} predictions to {where}", err=True)


def _fields_help(as_json: bool) -> str:
    from tagger_core.workflows.predict import PREDICTED, PREDICTED_NAME, SCORES

    if as_json:
        return f"Print JSON lines: the input's fields, then '{PREDICTED}' and '{SCORES}' (as files get)."
    return f"Show the labels' display names (e.g. Chinese names) too; files get '{PREDICTED_NAME}'."


def auto_jobs(input_path: Path | None) -> int:
    """One scoring worker for a large input file when a second CPU is free, else none."""
    from tagger_core.machine import available_cpus

    if input_path is None or available_cpus() < 2 or not input_path.is_file():
        return 0
    return 1 if input_path.stat().st_size >= AUTO_JOBS_BYTES else 0


def rough_rows(path: Path) -> int | None:
    """The lines of a line-per-row file (for the bar's ETA); None for other formats."""
    if path.suffix.lower() not in (".jsonl", ".ndjson", ".txt", ".csv", ".tsv", ".tab"):
        return None
    count = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


COMMANDS = [predict_command]
