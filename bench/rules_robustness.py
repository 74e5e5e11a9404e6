"""Per-label thresholds on small data: does the robust fit ever do worse than one global
threshold? Repeated random splits, TF-IDF encoder, figures on held-out test rows.

    .venv/bin/python bench/rules_robustness.py > /tmp/rules_robustness.md

For each seed: draw a small train and validation set, train the TF-IDF encoder on train,
fit each rule on the validation scores, and score it on the test rows. Reported: the mean
test figure of each rule, its mean paired difference to the global 0.5 threshold ± the
standard error over seeds, and the worst seed's difference.

- attractions: the bundled examples (275 rows) split 4:1:1 at random per seed;
- semeval2018_ec (when ../shared is present): 300 train + 150 validation rows drawn from the
  official train split per seed; test = the official test split (3259 rows).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tagger_core import Record, Tagger, make_rule, read_records, resolve_taxonomy
from tagger_core.evaluation.metrics import quick_figures
from tagger_core.taxonomy import infer_taxonomy

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

RULES: dict[str, tuple[str, dict[str, Any]]] = {
    "global 0.5": ("threshold", {}),
    "naive per-label": ("per-label", {"min_positives": 1, "shrinkage": 0, "folds": 0}),
    "per-label (default)": ("per-label", {}),
    "per-label, objective=micro": ("per-label", {"objective": "micro"}),
    # ablations of the default: each guard removed in turn
    "default without shrinkage": ("per-label", {"shrinkage": 0}),
    "default without cross-validation": ("per-label", {"folds": 0}),
    "default without the bootstrap check": ("per-label", {"confidence": 0}),
    "default with min_positives=1": ("per-label", {"min_positives": 1}),
}
FIGURES = ("micro_f1", "macro_f1", "exact_match")


def attractions_splits(seed: int) -> tuple[list[Record], list[Record], list[Record]]:
    folder = REPO / "examples" / "attractions"
    rows = read_records(folder / "train.json") + read_records(folder / "validation.json")
    random.Random(seed).shuffle(rows)
    n = len(rows)
    return rows[: 4 * n // 6], rows[4 * n // 6 : 5 * n // 6], rows[5 * n // 6 :]


_semeval: dict[str, list[Record]] = {}


def semeval_splits(seed: int) -> tuple[list[Record], list[Record], list[Record]]:
    folder = SHARED / "semeval2018_ec"
    if not _semeval:
        _semeval["train"] = read_records(folder / "train.json")
        _semeval["test"] = read_records(folder / "test.json")
    rows = list(_semeval["train"])
    random.Random(seed).shuffle(rows)
    return rows[:300], rows[300:450], _semeval["test"]


def run(name: str, splits: Any, taxonomy: Any, seeds: int) -> None:
    results: dict[str, dict[str, list[float]]] = {r: {f: [] for f in FIGURES} for r in RULES}
    own: dict[str, list[int]] = {r: [] for r in RULES}
    start = time.perf_counter()
    for seed in range(seeds):
        train, valid, test = splits(seed)
        tagger = Tagger.create(taxonomy, rule="threshold").train(train, seed=seed)
        valid_scores, valid_truth = tagger.score_records(valid)
        test_scores, test_truth = tagger.score_records(test)
        for label, (rule_name, params) in RULES.items():
            rule = make_rule(rule_name, params)
            if rule.fittable:
                rule.fit(valid_scores, valid_truth, tagger.taxonomy)
            figures = quick_figures(test_truth, rule.decide(test_scores, tagger.taxonomy))
            for f in FIGURES:
                results[label][f].append(figures[f])
            own[label].append(len(rule.params_dict().get("thresholds", {})))
    seconds = time.perf_counter() - start
    print(f"\n### {name}: {seeds} seeds ({seconds:.0f} s)\n")
    header = " | ".join(f"{f} (Δ vs global ± SE; worst)" for f in FIGURES)
    print(f"| rule | own thresholds | {header} |")
    print("|---|---|" + "---|" * len(FIGURES))
    base = results["global 0.5"]
    for label in RULES:
        cells = []
        for f in FIGURES:
            values = np.array(results[label][f])
            delta = values - np.array(base[f])
            se = delta.std(ddof=1) / np.sqrt(len(delta)) if len(delta) > 1 else 0.0
            cells.append(
                f"{values.mean():.3f} ({delta.mean():+.3f} ± {se:.3f}; {delta.min():+.3f})"
                if label != "global 0.5"
                else f"{values.mean():.3f}"
            )
        print(f"| {label} | {np.mean(own[label]):.1f} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    run("attractions (bundled examples, 4:1:1 random splits)", attractions_splits,
        resolve_taxonomy("attractions"), args.seeds)  # fmt: skip
    if (SHARED / "semeval2018_ec").exists():
        taxonomy = infer_taxonomy(read_records(SHARED / "semeval2018_ec" / "train.json"), "semeval")
        run("semeval2018_ec (300 train / 150 validation, official test)", semeval_splits,
            taxonomy, args.seeds)  # fmt: skip
    else:
        print("skipping semeval2018_ec: ../shared/data absent", file=sys.stderr)


if __name__ == "__main__":
    main()
