"""`tagger optimize`: choose and fit the decision rule on validation data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tagger_core.cli import cli
from tagger_core.cli.options import data_options, format_table, parse_params, read_all

OBJECTIVE_HELP = (
    "Figure to maximise (hamming_loss: minimise): micro_f1, macro_f1, weighted_f1, samples_f1, "
    "exact_match, samples_jaccard, lenient_a, lenient_b, hamming_loss, or a precision/recall."
)


def _grid(text: str) -> list[float]:
    """'0.05:0.95:0.05' (start:stop:step) or '0.3,0.4,0.5'."""
    import numpy as np

    try:
        if ":" in text:
            start, stop, step = (float(part) for part in text.split(":"))
            if step <= 0:
                raise ValueError
            values = list(np.arange(start, stop + step / 2, step))
        else:
            values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected START:STOP:STEP or a comma-separated list, got '{text}'",
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


@cli.command("optimize")
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
@click.option(
    "--thresholds",
    "grid",
    default="0.05:0.95:0.05",
    show_default=True,
    help="Global thresholds to try: START:STOP:STEP or a comma-separated list.",
)
@click.option(
    "--max-k", default=5, show_default=True, type=click.IntRange(min=0), help="Largest top-k."
)
@click.option(
    "--at-least-one",
    "at_least_one",
    type=click.Choice(["both", "never", "always"]),
    default="both",
    show_default=True,
    help="Try candidates with and/or without the at-least-one wrapper.",
)
@click.option(
    "--folds",
    default=5,
    show_default=True,
    type=click.IntRange(min=2),
    help="Folds for scoring fitted rules out of fold.",
)
@click.option(
    "--per-label-param",
    "per_label_params",
    multiple=True,
    help="Parameter of the per-label rule, KEY=VALUE (e.g. min_positives=10).",
)
@click.option(
    "--top", default=15, show_default=True, type=click.IntRange(min=1), help="Candidates shown."
)
@click.option("--seed", default=0, show_default=True, help="Seed for the folds.")
@click.option("--dry-run", is_flag=True, help="Show the candidates; save nothing.")
@click.option("--force", is_flag=True, help="Replace an existing --output directory.")
@data_options
def optimize_command(
    tagger_dir: Path,
    valid: tuple[Path, ...],
    output: Path | None,
    objective: str,
    grid: str,
    max_k: int,
    at_least_one: str,
    folds: int,
    per_label_params: tuple[str, ...],
    top: int,
    seed: int,
    dry_run: bool,
    force: bool,
    **kwargs: Any,
) -> None:
    """Choose the decision rule of TAGGER on labelled VALID files and save it.

    Tries a grid of global thresholds × top-k (as Annif's optimize), the best global
    threshold, and per-label thresholds around 0.5 and around the best global threshold,
    each with and without at-least-one. Fixed rules are scored on VALID; fitted rules out
    of fold (fitted on the other folds), so a fitted rule wins only where it beats the
    fixed ones out of sample. The winner is refitted on all of VALID and written into
    TAGGER (or into a copy with -o).

    \b
    tagger optimize my-tagger valid.json --objective micro_f1
    """
    from tagger_core.errors import TaggerError
    from tagger_core.evaluation.metrics import OBJECTIVES, evaluate_matrices
    from tagger_core.evaluation.optimize import count_candidates, optimize
    from tagger_core.progress import progress
    from tagger_core.tagger import Tagger, make_rule

    if objective not in OBJECTIVES:
        raise click.BadParameter(
            f"unknown objective '{objective}' (known: {', '.join(OBJECTIVES)})",
            param_hint="--objective",
        )
    thresholds = _grid(grid)
    destination = output or tagger_dir
    if output is not None and output.exists() and not force and not dry_run:
        raise TaggerError(f"{output} already exists; use --force to replace it")
    tagger = Tagger.load(tagger_dir)
    records, _ = read_all(valid, kwargs)
    scores, truth = tagger.score_records(records)
    alo = {"both": (False, True), "never": (False,), "always": (True,)}[at_least_one]
    extra = parse_params(per_label_params, "--per-label-param")
    if extra:  # fail on a bad parameter now, not in the middle of the search
        make_rule("per-label", extra)
    total = count_candidates(tagger.taxonomy, objective, thresholds, max_k, alo)
    with progress(total=total, desc="optimize", unit="rule") as bar:
        outcome = optimize(
            scores,
            truth,
            tagger.taxonomy,
            objective,
            grid=thresholds,
            max_k=max_k,
            folds=folds,
            at_least_one=alo,
            per_label_params=extra,
            current=tagger.rule,
            seed=seed,
            progress=bar.update,
        )
    for note in outcome.notes:
        click.echo(note)
    tried = sum(1 + r.same for r in outcome.results)
    click.echo(
        f"{tried} candidate rules ({len(outcome.results)} distinct on these rows) on "
        f"{len(records)} validation rows; objective {objective}, fitted rules scored out of "
        f"{folds} folds:"
    )
    _print_table(outcome, top)
    winner = outcome.winner
    assert winner.rule is not None
    rule = make_rule(winner.rule["name"], winner.rule["params"])
    chosen = winner.score(objective)
    base = outcome.baseline.figures[objective]
    click.echo()
    click.echo(
        f"Chosen: {winner.candidate.description} — {objective} {chosen:.4f}"
        f"{' out of fold' if winner.cv_figures is not None else ''} "
        f"vs {base:.4f} for the baseline ({outcome.baseline.candidate.description})."
    )
    if winner.candidate.fitted:
        # Refit on every validation row to show why each label got its threshold.
        rule.fit(scores, truth, tagger.taxonomy)
        _print_per_label(getattr(rule, "fit_details", []))
    if dry_run:
        click.echo("Dry run: nothing saved.")
        return
    tagger.rule = rule
    evaluation = evaluate_matrices(
        truth,
        tagger.decide(scores),
        tagger.taxonomy,
        scores=scores.probabilities,
        thresholds=tagger.label_thresholds(),
    )
    tagger.training.validation_metrics = evaluation.model_dump(mode="json", exclude={"confusion"})
    tagger.save(destination, force=True)
    click.echo(f"Saved tagger with rule '{rule.name}' to {destination}")
