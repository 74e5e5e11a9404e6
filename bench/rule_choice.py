"""What training's rule choice does per objective: the default TF-IDF tagger trained with
each `--objective`, and with the default rule fixed (`--rule per-label`), measured on every
objective.

    .venv/bin/python bench/rule_choice.py [--work bench-out/rule-choice]

The bundled attraction names (275, 1.7 labels each): 5-fold `tagger cv`, mean ± std over
the folds. SemEval-2018 E-c (tweets, 11 emotions, 2.4 labels each) and DuEE (event
sentences, 65 event types, 1.1 labels each): trained on the training split with the
validation split for the choice, measured on the test split, with the difference to the
fixed default and its paired bootstrap 95 % interval.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
TAGGER = str(Path(sys.executable).parent / "tagger")
OBJECTIVES = ("micro_f1", "macro_f1", "exact_match", "samples_f1")
RUNS = {"default rule fixed": ["--rule", "per-label"]} | {
    f"--objective {o}": ["--objective", o] for o in OBJECTIVES
}


def tagger(*args: str) -> str:
    result = subprocess.run([TAGGER, *args], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"tagger {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def split_data(name: str, folder: str, work: Path) -> None:
    """Train on the set's training split (its validation split for the choice), measure
    on its test split."""
    from tagger_core import Tagger, read_records
    from tagger_core.evaluation.metrics import quick_figures
    from tagger_core.workflows.optimize import paired_bootstrap

    data = SHARED / folder
    taxonomy = work / f"{name}.yaml"
    if not taxonomy.exists():
        tagger("taxonomy", "infer", str(data / "train.json"), "-o", str(taxonomy))
    test = read_records(data / "test.json")
    decisions = {}
    for run, options in RUNS.items():
        out = work / (f"{name}-" + run.replace(" ", "_").replace("-", ""))
        if not out.exists():
            tagger("train", "--taxonomy", str(taxonomy), "--train", str(data / "train.json"),
                   "--valid", str(data / "validation.json"), *options, "-o", str(out))  # fmt: skip
        model = Tagger.load(out)
        scores, truth = model.score_records(test)
        decisions[run] = (model.decide(scores) > 0, model.rule.describe())
    truth = truth > 0
    base = decisions["default rule fixed"][0]
    print()
    print(f"| {name} test ({len(test):,} rows) | rule kept | " + " | ".join(OBJECTIVES) + " |")
    print("|---|---|" + "---|" * len(OBJECTIVES))
    for run, (pred, rule) in decisions.items():
        figures = quick_figures(truth, pred)
        cells = []
        for o in OBJECTIVES:
            cell = f"{figures[o]:.3f}"
            if run != "default rule fixed":
                delta, _ = paired_bootstrap(truth, pred, base, o)
                low, high = _interval(truth, pred, base, o)
                cell += f" ({delta:+.3f}; {low:+.3f}…{high:+.3f})"
            cells.append(cell)
        print(f"| {run} | {rule} | " + " | ".join(cells) + " |", flush=True)


def _interval(truth: np.ndarray, a: np.ndarray, b: np.ndarray, objective: str) -> tuple:
    from tagger_core.evaluation.metrics import quick_figures

    rng = np.random.default_rng(0)
    deltas = []
    for _ in range(1000):
        rows = rng.integers(0, len(truth), len(truth))
        deltas.append(
            quick_figures(truth[rows], a[rows])[objective]
            - quick_figures(truth[rows], b[rows])[objective]
        )
    return tuple(np.percentile(deltas, [2.5, 97.5]))


def attractions(work: Path) -> None:
    files = [str(REPO / "examples/attractions/train.json"),
             str(REPO / "examples/attractions/validation.json")]  # fmt: skip
    print()
    print("| attractions, 5-fold cv (275 names) | rules kept over the folds | "
          + " | ".join(OBJECTIVES) + " |")  # fmt: skip
    print("|---|---|" + "---|" * len(OBJECTIVES))
    for name, options in RUNS.items():
        out = work / ("attractions-" + name.replace(" ", "_").replace("-", "") + ".json")
        if not out.exists():
            tagger("cv", *files, "--taxonomy", "attractions", "-k", "5", *options,
                   "--metrics-file", str(out))  # fmt: skip
        folds = json.loads(out.read_text(encoding="utf-8"))["folds"]
        cells = []
        for o in OBJECTIVES:
            values = [f["metrics"][o] for f in folds]
            cells.append(f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}")
        kept = sum(1 for f in folds if (f.get("rule_choice") or {}).get("chosen") == "default")
        rules = "fixed" if name == "default rule fixed" else f"default in {kept} of {len(folds)}"
        print(f"| {name} | {rules} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=REPO / "bench-out" / "rule-choice")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    attractions(args.work)
    split_data("semeval", "semeval2018_ec", args.work)
    split_data("duee", "duee_event_multilabel", args.work)


if __name__ == "__main__":
    main()
