"""Why a saved ensemble tagger decides differently from its best member: each one's test
figures at a few probability thresholds, with and without at least one label per name,
and how high each one's best probability runs.

    .venv/bin/python bench/ensemble_calibration.py bench-out/curve/duee-1000-ensemble.test-tagger \\
        ../shared/data/duee_event_multilabel/test.json

(the tagger `bench/held_out_curve.py` trains for DuEE at 1,000 rows). Micro F1, exact
match and the share of names given no label."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tagger_core import Tagger, read_records
from tagger_core.evaluation.metrics import quick_figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tagger", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("--thresholds", default="0.5,0.4,0.3,0.25")
    args = parser.parse_args()
    tagger = Tagger.load(args.tagger)
    scores, truth, members = tagger.score_records_and_members(read_records(args.test))
    truth = truth > 0

    def cell(pred: np.ndarray) -> str:
        figures = quick_figures(truth, pred)
        empty = 100 * float((~pred.any(axis=1)).mean())
        return f"{figures['micro_f1']:.4f} / {figures['exact_match']:.4f} / {empty:.1f} %"

    print(f"saved rule: {cell(tagger.decide(scores))}")
    for name, member in members.items():
        print(
            f"{name} alone, its own rule: {cell(tagger.decide(member, tagger.member_rule(name)))}"
        )
    everyone = {"ensemble": scores, **members}
    print("| scores | threshold | micro F1 / exact / empty | with at least one label |")
    print("|---|---:|---|---|")
    for threshold in (float(t) for t in args.thresholds.split(",")):
        for name, member in everyone.items():
            probabilities = member.probabilities
            pred = probabilities >= threshold
            forced = pred.copy()
            forced[np.arange(len(pred)), probabilities.argmax(axis=1)] = True
            print(f"| {name} | {threshold} | {cell(pred)} | {cell(forced)} |")
    for name, member in everyone.items():
        print(
            f"{name}: a name's best probability averages {member.probabilities.max(1).mean():.2f}"
        )


if __name__ == "__main__":
    main()
