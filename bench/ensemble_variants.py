"""Other ways a saved ensemble could have combined its members, on the same members: each
refitted on the tagger's validation rows, its rule chosen there as training chooses it
(micro F1), then tested.

    .venv/bin/python bench/ensemble_variants.py bench-out/curve/duee-1000-ensemble.test-tagger \\
        ../shared/data/duee_event_multilabel/test.json

The members are not retrained: what changes is only how their validation probabilities are
combined, so each line is the tagger training would have saved with that combination.
Variants: the saved weights; the weights the ensemble fits now (average precision, then
the decision check); equal weights; each member first put on one probability scale by
Platt scaling (one slope and intercept per member, pooled over labels; a temperature for
single-label taxonomies) with fitted and with equal weights; stacking (a logistic
regression on the members' logits, pooled over labels). Then each line against the best
member alone (paired bootstrap over the test names), and test micro F1 at a few
thresholds, to see whether any blend ranks better than its best member at all."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from tagger_plugins.ensemble import (
    combined_logits,
    decision_check,
    fit_weights,
    probabilities,
)

from tagger_core import (
    Scores,
    Tagger,
    Taxonomy,
    default_rule_name,
    make_rule,
    quick_figures,
    read_records,
)
from tagger_core.workflows.optimize import choose_rule, paired_bootstrap


def platt(logits: np.ndarray, truth: np.ndarray, mode: str) -> Callable[[np.ndarray], np.ndarray]:
    """A member's logits mapped to a common scale, fitted on the validation rows."""
    if mode == "multi-label":
        fitted = LogisticRegression(C=1e4).fit(logits.reshape(-1, 1), truth.ravel())
        slope, intercept = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
        return lambda z: slope * z + intercept
    return stack([logits], truth, mode)


def stack(
    logits: list[np.ndarray] | np.ndarray, truth: np.ndarray, mode: str
) -> Callable[..., np.ndarray]:
    """A logistic regression on the members' logits (softmax with one coefficient per
    member for single-label), pooled over labels."""
    parts = list(logits) if isinstance(logits, list) else [logits]
    if mode == "multi-label":
        fitted = LogisticRegression(C=1e4).fit(
            np.stack([z.ravel() for z in parts], axis=1), truth.ravel()
        )
        coef, intercept = fitted.coef_[0], float(fitted.intercept_[0])
        return lambda *zs: sum(c * z for c, z in zip(coef, zs, strict=True)) + intercept

    def loss(coef: np.ndarray) -> float:
        z = sum(c * p for c, p in zip(coef, parts, strict=True))
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[truth] - np.log(np.exp(z).sum(axis=1))).mean())

    coef = minimize(loss, np.ones(len(parts)), method="L-BFGS-B").x
    return lambda *zs: sum(c * z for c, z in zip(coef, zs, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tagger", type=Path)
    parser.add_argument("test", type=Path, nargs="?", help="not needed with --check-only")
    parser.add_argument("--valid", type=Path, help="default: the tagger's validation file")
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="print only what the decision check says on the validation rows",
    )
    args = parser.parse_args()
    if args.test is None and not args.check_only:
        parser.error("a test file is needed (or --check-only)")
    tagger = Tagger.load(args.tagger)
    taxonomy: Taxonomy = tagger.taxonomy
    mode = taxonomy.mode
    manifest = json.loads((args.tagger / "manifest.json").read_text(encoding="utf-8"))
    valid_file = args.valid or Path(manifest["training"]["valid"][0]["path"])
    parts: dict[str, dict[str, Any]] = {}
    wanted = (
        (("valid", valid_file),)
        if args.check_only
        else (("valid", valid_file), ("test", args.test))
    )
    for part, path in wanted:
        scores, truth, members = tagger.score_records_and_members(
            read_records(path, taxonomy=taxonomy)
        )
        parts[part] = {
            "truth": truth > 0,
            "saved": scores.logits,
            **{n: np.asarray(s.logits, dtype=np.float64) for n, s in members.items()},
        }
    names = [n for n in parts["valid"] if n not in ("truth", "saved")]
    vt = parts["valid"]["truth"]
    raw = {p: [probabilities(parts[p][n], mode) for n in names] for p in parts}
    if args.check_only:
        _, report, held = fit_weights(raw["valid"], vt.astype(float), mode, 0.1)
        print(report)
        print(decision_check(held, raw["valid"], vt, taxonomy, "micro_f1", names)[1])
        return
    scaled_fns = [platt(parts["valid"][n], vt, mode) for n in names]
    scaled = {
        p: [probabilities(f(parts[p][n]), mode) for f, n in zip(scaled_fns, names, strict=True)]
        for p in parts
    }
    tt = parts["test"]["truth"]
    stacked = stack([parts["valid"][n] for n in names], vt, mode)

    def blend(probs: dict[str, list[np.ndarray]], weights: np.ndarray) -> dict[str, np.ndarray]:
        return {p: combined_logits(probs[p], weights, mode) for p in parts}

    fitted_raw, _, held_raw = fit_weights(raw["valid"], vt.astype(float), mode, 0.1)
    fitted_scaled, _, _ = fit_weights(scaled["valid"], vt.astype(float), mode, 0.1)
    winner, _ = decision_check(held_raw, raw["valid"], vt, taxonomy, "micro_f1", names)
    now = np.eye(len(names))[winner] if winner is not None else fitted_raw
    equal = np.full(len(names), 1 / len(names))
    variants: dict[str, dict[str, np.ndarray]] = {
        **{f"{n} alone": {p: parts[p][n] for p in parts} for n in names},
        "saved weights": {p: parts[p]["saved"] for p in parts},
        f"fitted now {np.round(now, 2).tolist()}": blend(raw, now),
        "equal weights": blend(raw, equal),
        f"Platt scaled, fitted {fitted_scaled.tolist()}": blend(scaled, fitted_scaled),
        "Platt scaled, equal": blend(scaled, equal),
        "stacked": {p: stacked(*(parts[p][n] for n in names)) for p in parts},
    }
    decisions = {}
    print("| combination | test micro F1 | exact match | no label | rule chosen on validation |")
    print("|---|---|---|---:|---|")
    for label, logits in variants.items():
        valid = Scores(np.asarray(logits["valid"], dtype=np.float32), mode)
        start = make_rule(default_rule_name(mode))  # where training starts
        rule, _ = choose_rule(valid, vt, taxonomy, "micro_f1", start)
        pred = rule.decisions(Scores(np.asarray(logits["test"], dtype=np.float32), mode), taxonomy)
        decisions[label] = pred
        figures = quick_figures(tt, pred)
        print(
            f"| {label} | {figures['micro_f1']:.4f} | {figures['exact_match']:.4f} | "
            f"{100 * (~pred.any(axis=1)).mean():.1f} % | {rule.describe()} |"
        )
    best = max(names, key=lambda n: quick_figures(tt, decisions[f"{n} alone"])["micro_f1"])
    for label, pred in decisions.items():
        if label != f"{best} alone":
            gain, share = paired_bootstrap(tt, pred, decisions[f"{best} alone"], "micro_f1")
            print(
                f"{label} − {best} alone: {gain:+.4f} micro F1, better in {share:.0%} of resamples"
            )
    if mode == "multi-label":
        print("test micro F1 at a fixed threshold:")
        for label in (f"{best} alone", "saved weights", "stacked"):
            probs = 1 / (1 + np.exp(-np.asarray(variants[label]["test"], dtype=np.float64)))
            row = [
                f"{t}: {quick_figures(tt, probs >= t)['micro_f1']:.3f}"
                for t in (0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
            ]
            print(f"  {label}: " + ", ".join(row))


if __name__ == "__main__":
    main()
