"""`tagger optimize`: choose and fit the decision rule on validation data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tagger_core.cli.options import (
    LiveHelpOption,
    data_options,
    format_table,
    no_verify_option,
    parse_params,
    read_all,
    seed_option,
)

OBJECTIVE_HELP = (
    "Figure to maximise (hamming_loss: minimise): micro_f1, macro_f1, weighted_f1, samples_f1, "
    "exact_match, samples_jaccard, lenient_a, lenient_b, hamming_loss, or a precision/recall."
)


MAX_GRID = 1000  # thresholds: each is scored on every validation row and fold


def _grid(text: str) -> list[float]:
    """'0.05:0.95:0.05' (start:stop:step) or '0.3,0.4,0.5'."""
    import numpy as np

    try:
        if ":" in text:
            start, stop, step = (float(part) for part in text.split(":"))
            if step <= 0 or (stop - start) / step > MAX_GRID:
                raise ValueError
            values = list(np.arange(start, stop + step / 2, step))
        else:
            values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected START:STOP:STEP (at most {MAX_GRID} steps) or a comma-separated list, "
            f"got '{text}'",
            param_hint="--thresholds",
        ) from None
    grid = sorted({round(v, 6) for v in values})
    if not grid or not all(0.0 < v < 1.0 for v in grid):
        raise click.BadParameter(
            "thresholds are probabilities, strictly between 0 and 1", param_hint="--thresholds"
        )
    return grid


def _row(rank: Any, description: str, result: Any, objective: str) -> list[Any]:
    figures = result.figures
    cv = result.cv_figures
    return [
        rank,
        description,
        f"{figures[objective]:.4f}",
        "-" if cv is None else f"{cv[objective]:.4f}",
        figures["micro_f1"],
        figures["macro_f1"],
        figures["exact_match"],
        int(figures["empty_predictions"]),
    ]


def _print_table(outcome: Any, top: int) -> None:
    objective = outcome.objective
    header = [
        "#",
        "RULE",
        f"{objective.upper()} (VALID)",
        "OUT OF FOLD",
        "MICRO F1",
        "MACRO F1",
        "EXACT",
        "EMPTY",
    ]
    rows = [
        _row(
            i,
            r.candidate.description + (f" (= {r.same} more)" if r.same else ""),
            r,
            objective,
        )
        for i, r in enumerate(outcome.results[:top], start=1)
    ]
    rows.append(
        _row(
            "-", f"(baseline) {outcome.baseline.candidate.description}", outcome.baseline, objective
        )
    )
    if outcome.current is not None:
        rows.append(
            _row("-", f"({outcome.current.candidate.description})", outcome.current, objective)
        )
    click.echo(format_table(header, rows))


def _thresholds_help() -> str:
    from tagger_core.evaluation.sweep import THRESHOLDS

    step = round(THRESHOLDS[1] - THRESHOLDS[0], 6)
    return (
        "Global probability thresholds to try: START:STOP:STEP or a comma-separated list "
        f"(default: {THRESHOLDS[0]:g}:{THRESHOLDS[-1]:g}:{step:g}, the grid of the report's sweep)."
    )


def _candidate_params(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``RULE.KEY=VALUE`` → {rule: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_params(values, "--rule-param").items():
        rule, dot, name = key.rpartition(".")
        if not dot or not rule or not name:
            raise click.BadParameter(
                f"expected RULE.KEY=VALUE, got '{key}={value}'", param_hint="--rule-param"
            )
        out.setdefault(rule, {})[name] = value
    return out


def _print_per_label(details: list[dict[str, Any]]) -> None:
    if not details:
        return
    click.echo()
    click.echo("Per-label thresholds of the chosen rule (fitted on all validation rows):")
    click.echo(
        format_table(
            ["LABEL", "POSITIVES", "THRESHOLD", "BEST ON VALID", "CV GAIN", "WHY"],
            [
                [
                    d["label"],
                    d["positives"],
                    f"{d['threshold']:.3f}",
                    "-" if "raw" not in d else f"{d['raw']:.3f}",
                    "-" if "cv_gain" not in d else f"{d['cv_gain']:+.3f}",
                    d.get("reason", ""),
                ]
                for d in details
            ],
        )
    )


@click.command("optimize")
@click.argument("tagger_dir", metavar="TAGGER", type=click.Path(path_type=Path))
@click.argument("valid", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Save the tagger with the chosen rule here instead of updating TAGGER.",
)
@click.option(
    "--objective", default="micro_f1", show_default=True, help=OBJECTIVE_HELP, metavar="FIGURE"
)
@click.option("--thresholds", "grid", cls=LiveHelpOption, live_help=_thresholds_help)
@click.option(
    "--max-k", default=5, show_default=True, type=click.IntRange(min=0), help="Largest top-k."
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="RULE",
    help="A rule not to try; a wrapper rule excluded is never applied (repeatable).",
)
@click.option(
    "--require",
    multiple=True,
    metavar="RULE",
    help="A wrapper rule applied around every candidate (repeatable).",
)
@click.option(
    "--folds",
    default=5,
    show_default=True,
    type=click.IntRange(min=2),
    help="Folds for scoring fitted rules out of fold.",
)
@click.option(
    "--rule-param",
    "rule_params",
    multiple=True,
    metavar="RULE.KEY=VALUE",
    help="A fixed parameter of one rule's candidates (e.g. per-label.min_positives=10).",
)
@click.option(
    "--top", default=15, show_default=True, type=click.IntRange(min=1), help="Candidates shown."
)
@seed_option("Seed for the folds.")
@click.option("--dry-run", is_flag=True, help="Show the candidates; save nothing.")
@click.option("--force", is_flag=True, help="Replace an existing --output directory.")
@no_verify_option
@data_options
def optimize_command(
    tagger_dir: Path,
    valid: tuple[Path, ...],
    output: Path | None,
    objective: str,
    grid: str | None,
    max_k: int,
    exclude: tuple[str, ...],
    require: tuple[str, ...],
    folds: int,
    rule_params: tuple[str, ...],
    top: int,
    seed: int,
    dry_run: bool,
    force: bool,
    no_verify: bool,
    **kwargs: Any,
) -> None:
    """Choose the decision rule of TAGGER on labelled VALID files and save it.

    Every installed rule offers its candidates (for the built-in ones: a grid of global
    thresholds × top-k as Annif's optimize, the best global threshold, per-label thresholds
    around 0.5 and around the best global threshold), each with and without the wrapper
    rules (at-least-one; exclusive where the taxonomy has exclusive labels). Fixed rules
    are scored on VALID; fitted rules out of fold, so a fitted rule wins only where it beats
    the fixed ones out of sample. The winner is refitted on all of VALID and written into
    TAGGER (or into a copy with -o).

    \b
    tagger optimize my-tagger valid.json --objective micro_f1
    """
    from tagger_core.evaluation.metrics import OBJECTIVES
    from tagger_core.evaluation.sweep import THRESHOLDS
    from tagger_core.progress_bars import progress
    from tagger_core.tagger import Tagger, check_tagger_target
    from tagger_core.workflows.optimize import (
        candidates,
        check_rule_params,
        optimize_rule,
        search_for,
    )

    if objective not in OBJECTIVES:
        raise click.BadParameter(
            f"unknown objective '{objective}' (known: {', '.join(OBJECTIVES)})",
            param_hint="--objective",
        )
    thresholds = _grid(grid) if grid is not None else list(THRESHOLDS)
    if output is not None and not dry_run:
        check_tagger_target(output, force)
    fixed = _candidate_params(rule_params)
    check_rule_params(fixed)
    tagger = Tagger.load(tagger_dir, verify=not no_verify)
    records, valid_files = read_all(valid, kwargs, taxonomy=tagger.taxonomy)
    search = search_for(tagger.taxonomy, objective, thresholds, max_k, fixed)
    total = len(candidates(search, exclude=exclude, require=require))
    with progress(total=total, desc="optimize", unit="rule") as bar:
        selection = optimize_rule(
            tagger,
            records,
            search,
            output=None if dry_run else (output or tagger_dir),
            folds=folds,
            exclude=exclude,
            require=require,
            seed=seed,
            progress=bar.update,
            valid_files=valid_files,
        )
    outcome = selection.outcome
    for note in outcome.notes:
        click.echo(note)
    tried = sum(1 + r.same for r in outcome.results)
    click.echo(
        f"{tried} candidate rules ({len(outcome.results)} distinct on these rows) on "
        f"{selection.rows} validation rows; objective {objective}, fitted rules scored out of "
        f"{folds} folds:"
    )
    _print_table(outcome, top)
    winner = outcome.winner
    chosen = winner.score(objective)
    base = outcome.baseline.figures[objective]
    click.echo()
    click.echo(
        f"Chosen: {winner.candidate.description} — {objective} {chosen:.4f}"
        f"{' out of fold' if winner.cv_figures is not None else ''} "
        f"vs {base:.4f} for the baseline ({outcome.baseline.candidate.description})."
    )
    _print_per_label(selection.rule.fit_report())
    if selection.saved_to is None:
        click.echo("Dry run: nothing saved.")
        return
    click.echo(f"Saved tagger with rule '{selection.rule.name}' to {selection.saved_to}")


COMMANDS = [optimize_command]
