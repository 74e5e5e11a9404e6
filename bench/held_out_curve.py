"""Learning-curve cells too large for five fine-tunes on a 2-core machine: one training per
configuration, tested on the data set's own test split, compared row by row.

    .venv/bin/python bench/held_out_curve.py run --sets poi,duee --sizes 3000,19999 \\
        --configs tfidf,tfidf-exact,fasttext-tutorial,ensemble --model $M3E [--threads 1]
    .venv/bin/python bench/held_out_curve.py table --sets poi,duee --sizes 3000,19999 \\
        --configs tfidf,tfidf-exact,fasttext-tutorial,ensemble --versus tfidf

The rows are the same subsets `learning_curve.py` cross-validates (a size at or above the
training pool takes all of it). Each tagger trains as `tagger train` does with a
validation file: the subset is split 4:1 by `tagger split` (stratified on every label),
the fifth fitting the decision rule and stopping training early, as in each `tagger cv`
fold; fastText trains on the whole subset, as in `learning_curve.py`. Every configuration
is tested on the same names, the set's `test.json`, never seen in training or
validation; differences come with a paired bootstrap 95 % interval over those names (both
taggers see the same resample). An ensemble also reports each member alone, with the
member's own rule. Each (set, size, config) writes `<work>/<set>-<size>-<config>.test.npz`
(the test names' truth and decisions) and `.test.json` (figures and training seconds),
reused unless --force, as is a tagger already trained in `<set>-<size>-<config>.test-tagger`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_curve import (
    ENGLISH,
    FASTTEXT,
    SETS,
    WORK,
    config_options,
    decision_figures,
    fasttext_decisions,
    subset,
    tagger,
)

TESTS = {
    "poi": SETS["poi"][0][0].parent / "test.json",
    "duee": SETS["duee"][0][0].parent / "test.json",
    "semeval": SETS["semeval"][0][0].parent / "test.json",
}


def cell_file(work: Path, name: str, size: int, config: str, suffix: str) -> Path:
    """``<work>/<set>-<size>-<config>.test<suffix>``: this cell's figures, decisions or tagger."""
    return work / f"{name}-{size}-{config}.test{suffix}"


def train_and_test(
    name: str, size: int, data: Path, taxonomy_name: str, config: str, args: argparse.Namespace
) -> None:
    from tagger_core import Tagger, read_records
    from tagger_core.registry import resolve_taxonomy
    from tagger_core.taxonomy import label_matrix

    taxonomy = resolve_taxonomy(taxonomy_name)
    test = read_records(TESTS[name], taxonomy=taxonomy)
    truth = label_matrix(test, taxonomy) > 0
    decisions: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    if config in FASTTEXT:
        train = read_records(data, taxonomy=taxonomy)
        decisions[config] = fasttext_decisions(
            train, test, taxonomy, name in ENGLISH, FASTTEXT[config], seed=0
        )
        seconds = time.perf_counter() - started
    else:
        parts = data.parent / f"{data.stem}-held-out"
        if not (parts / "valid.json").exists():
            tagger("split", str(data), "--taxonomy", taxonomy_name, "--ratios", "4:1",
                   "--names", "train,valid", "-o", str(parts), "--force")  # fmt: skip
        options = config_options(config, args)
        folder = cell_file(args.work, name, size, config, "-tagger")
        trained = folder / "seconds.json"  # a tagger trained before, by this script
        if args.force or not trained.exists():
            tagger("train", "--taxonomy", taxonomy_name, "--train", str(parts / "train.json"),
                   "--valid", str(parts / "valid.json"), "-o", str(folder), "--force",
                   *options)  # fmt: skip
            trained.write_text(json.dumps(time.perf_counter() - started), encoding="utf-8")
        seconds = json.loads(trained.read_text(encoding="utf-8"))  # training only
        loaded = Tagger.load(folder)
        scores, _, members = loaded.score_records_and_members(test)
        decisions[config] = loaded.decide(scores)
        for member, member_scores in members.items():
            decisions[f"{config}: {member} alone"] = loaded.decide(
                member_scores, loaded.member_rule(member)
            )
    np.savez_compressed(cell_file(args.work, name, size, config, ".npz"), truth=truth, **decisions)
    cell_file(args.work, name, size, config, ".json").write_text(
        json.dumps(
            {
                "train_seconds": seconds,
                "test_rows": len(test),
                "figures": {k: decision_figures(truth, v) for k, v in decisions.items()},
            }
        ),
        encoding="utf-8",
    )


def run(args: argparse.Namespace) -> None:
    for name in args.sets:
        if name not in TESTS:
            raise SystemExit(f"{name} has no test split here; known: {', '.join(TESTS)}")
        for size in args.sizes:
            data, taxonomy = subset(name, size, args.work)
            for config in args.configs:
                if cell_file(args.work, name, size, config, ".json").exists() and not args.force:
                    continue
                print(f"{name} {size} {config} (held-out test) …", file=sys.stderr, flush=True)
                train_and_test(name, size, data, taxonomy, config, args)


def paired_delta(
    truth: np.ndarray, a: np.ndarray, b: np.ndarray, metric: str, samples: list[np.ndarray]
) -> str:
    """a − b on the test names, and its paired bootstrap 95 % interval."""
    delta = decision_figures(truth, a)[metric] - decision_figures(truth, b)[metric]
    resampled = [
        decision_figures(truth[s], a[s])[metric] - decision_figures(truth[s], b[s])[metric]
        for s in samples
    ]
    low, high = np.percentile(resampled, [2.5, 97.5])
    return f"{delta:+.3f} ({low:+.3f}…{high:+.3f})"


def table(args: argparse.Namespace) -> None:
    print(f"| data | rows | test names | configuration | exact match | micro F1 | macro F1 | empty "
          f"| training s | Δ micro F1 vs {args.versus} (95 % CI) | Δ exact match (95 % CI) |")  # fmt: skip
    print("|---|---:|---:|---|---|---|---|---:|---:|---|---|")
    for name in args.sets:
        shown: set[Path] = set()
        for size in args.sizes:
            data = args.work / f"{name}-{size}" / "subset.json"
            data = data if data.exists() else args.work / f"{name}-pool.json"
            measured = any(
                cell_file(args.work, name, size, config, ".json").exists()
                for config in args.configs
            )
            if not data.exists() or data in shown or not measured:
                continue  # a size at or above the pool is shown once, under the size it ran
            shown.add(data)
            rows = len(json.loads(data.read_text(encoding="utf-8")))
            base_path = cell_file(args.work, name, size, args.versus, ".npz")
            base = np.load(base_path)[args.versus] if base_path.exists() else None
            samples: list[np.ndarray] = []  # the same resamples whatever else is shown
            rng = np.random.default_rng(0)
            for config in args.configs:
                figures_file = cell_file(args.work, name, size, config, ".json")
                if not figures_file.exists():
                    continue
                result = json.loads(figures_file.read_text(encoding="utf-8"))
                saved = np.load(cell_file(args.work, name, size, config, ".npz"))
                truth = saved["truth"]
                if not samples:
                    samples = [
                        rng.integers(0, len(truth), len(truth)) for _ in range(args.bootstrap)
                    ]
                for key, figs in result["figures"].items():
                    seconds = f"{result['train_seconds']:.0f}" if key == config else ""
                    versus = exact = ""
                    if base is not None and key != args.versus:
                        versus = paired_delta(truth, saved[key], base, "micro_f1", samples)
                        exact = paired_delta(truth, saved[key], base, "exact_match", samples)
                    print(f"| {name} | {rows} | {result['test_rows']} | {key} "
                          f"| {figs['exact_match']:.3f} | {figs['micro_f1']:.3f} "
                          f"| {figs['macro_f1']:.3f} | {100 * figs['empty_rate']:.1f} % "
                          f"| {seconds} | {versus} | {exact} |")  # fmt: skip
                members = [k for k in result["figures"] if k.startswith(f"{config}: ")]
                if members:  # the ensemble against its better member, in micro F1
                    best = max(members, key=lambda k: result["figures"][k]["micro_f1"])
                    delta = paired_delta(truth, saved[config], saved[best], "micro_f1", samples)
                    print(f"| {name} | {rows} | | {config} against {best} | | | | | "
                          f"| {delta} | |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("run", "table"))
    parser.add_argument("--sets", default="poi,duee", type=lambda s: s.split(","))
    parser.add_argument(
        "--sizes", default="3000,100000", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument(
        "--configs",
        default="tfidf,tfidf-exact,fasttext-tutorial,ensemble",
        type=lambda s: s.split(","),
    )
    parser.add_argument("--model", help="model folder for the BERT configurations")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--versus", default="tfidf", help="table: Δ against this configuration")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    run(args) if args.mode == "run" else table(args)


if __name__ == "__main__":
    main()
