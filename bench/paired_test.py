"""Saved taggers on one labelled test file, compared row by row (paired).

    .venv/bin/python bench/paired_test.py TEST_FILE BASELINE_DIR OTHER_DIR [OTHER_DIR ...]

Each tagger predicts with its own saved rule. For every other tagger against the baseline:
exact match and macro F1, their differences with a paired bootstrap 95 % interval (rows
resampled together, so both taggers see the same resample), and McNemar's exact test on
the rows where exactly one of the two is right. Differences smaller than their interval's
width are noise, whatever the table's last digit says.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import f1_score

from tagger_core import Tagger, read_records


def macro_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(f1_score(truth, pred, average="macro", zero_division=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test", type=Path)
    parser.add_argument("baseline", type=Path)
    parser.add_argument("others", type=Path, nargs="+")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    records = read_records(args.test)
    decisions: dict[str, np.ndarray] = {}
    truth = None
    for path in (args.baseline, *args.others):
        tagger = Tagger.load(path)
        scores, truth = tagger.score_records(records)
        decisions[str(path)] = tagger.decide(scores)
    assert truth is not None
    base = decisions[str(args.baseline)]
    right_base = (base == truth).all(axis=1)
    rng = np.random.default_rng(args.seed)
    samples = [rng.integers(0, len(truth), len(truth)) for _ in range(args.bootstrap)]

    print(f"{len(truth)} rows of {args.test}; baseline {args.baseline}")
    print()
    print(
        "| tagger | exact match | Δ (95 % CI) | macro F1 | Δ (95 % CI) | only this right "
        "/ only baseline right | McNemar p |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.baseline} | {right_base.mean():.3f} | | {macro_f1(truth, base):.3f} | | | |")
    for path in args.others:
        pred = decisions[str(path)]
        right = (pred == truth).all(axis=1)
        d_exact = [right[s].mean() - right_base[s].mean() for s in samples]
        d_macro = [macro_f1(truth[s], pred[s]) - macro_f1(truth[s], base[s]) for s in samples]
        only_this, only_base = int((right & ~right_base).sum()), int((~right & right_base).sum())
        p = binomtest(only_this, only_this + only_base).pvalue if only_this + only_base else 1.0
        lo_e, hi_e = np.percentile(d_exact, [2.5, 97.5])
        lo_m, hi_m = np.percentile(d_macro, [2.5, 97.5])
        exact, macro = right.mean(), macro_f1(truth, pred)
        print(
            f"| {path} | {exact:.3f} | {exact - right_base.mean():+.3f} ({lo_e:+.3f}…{hi_e:+.3f}) "
            f"| {macro:.3f} | {macro - macro_f1(truth, base):+.3f} ({lo_m:+.3f}…{hi_m:+.3f}) "
            f"| {only_this} / {only_base} | {p:.2g} |"
        )


if __name__ == "__main__":
    main()
