"""Active-learning curves: `tagger suggest` against random sampling, labelling from 50 to
1,000 names of a shared data set's training split and testing on its test split.

    .venv/bin/python bench/active_learning.py --set poi --seeds 0,1,2
    .venv/bin/python bench/active_learning.py --set tripadvisor --seeds 0,1,2

TripAdvisor ships as one file (1,581 names): its train and test parts are made once with
`tagger split --ratios 3:1` (stratified on every label, seed 0) under bench-out/, from the
pool that bench/learning_curve.py writes (the file less its one name without text).

Each seed starts both strategies from the same 50 random names; at each step the TF-IDF
tagger (defaults) is retrained on what is labelled so far, and the next names are either
drawn at random from the rest or chosen by `suggest_names` (--diversity, default 0.5 here) on the rest,
their gold labels then revealed. Micro F1 on the test split at each labelled count."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

from tagger_core import Record, Tagger, load_taxonomy_file, read_records, suggest_names

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SPLITS = REPO / "bench-out" / "active-split"
SETS = {
    "poi": ("poi_building_types/train.json", "poi_building_types/test.json", "poi.yaml"),
    "tripadvisor": (
        str(SPLITS / "tripadvisor/train.json"),
        str(SPLITS / "tripadvisor/test.json"),
        "tripadvisor.yaml",
    ),
}


def split_tripadvisor() -> None:
    """The train and test parts of the one TripAdvisor file, made once."""
    folder = SPLITS / "tripadvisor"
    if (folder / "test.json").exists():
        return
    tagger = str(Path(sys.executable).parent / "tagger")
    source = REPO / "bench-out/curve/tripadvisor-pool.json"
    if not source.exists():
        raise SystemExit(f"{source} is missing: run bench/learning_curve.py for tripadvisor")
    command = [tagger, "split", str(source), "--ratios", "3:1", "--names", "train,test"]
    subprocess.run([*command, "-o", str(folder)], check=True)


STEPS = (50, 100, 200, 300, 500, 700, 1000)


def trained(labelled: list[Record], taxonomy, test: list[Record]):  # type: ignore[no-untyped-def]
    tagger = Tagger.create(taxonomy, encoder="tfidf").train(labelled)
    return tagger, tagger.evaluate(test).micro_f1


def curve(  # type: ignore[no-untyped-def]
    strategy: str, pool: list[Record], taxonomy, test: list[Record], seed: int, diversity: float
) -> list[float]:
    rng = random.Random(seed)
    order = list(range(len(pool)))
    rng.shuffle(order)
    labelled = [pool[i] for i in order[: STEPS[0]]]
    rest = [pool[i] for i in order[STEPS[0] :]]
    figures = []
    for step, target in enumerate(STEPS):
        tagger, score = trained(labelled, taxonomy, test)
        figures.append(score)
        if step + 1 == len(STEPS):
            break
        wanted = STEPS[step + 1] - len(labelled)
        if strategy == "random":
            picked = set(rng.sample(range(len(rest)), wanted))
        else:
            unlabelled = [Record(text=r.text, id=i) for i, r in enumerate(rest)]
            chosen = suggest_names(
                tagger, unlabelled, wanted, diversity=diversity, exclude=labelled
            )
            picked = {s.record.id for s in chosen}  # type: ignore[misc]
        labelled += [rest[i] for i in sorted(picked)]
        rest = [r for i, r in enumerate(rest) if i not in picked]
        print(f"  {strategy} seed {seed}: {target} labels → micro F1 {score:.3f}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", default="poi", choices=sorted(SETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--diversity", type=float, default=0.5)
    parser.add_argument(
        "--evaluate-on", default="test", choices=["test", "validation"], help="split scored"
    )
    args = parser.parse_args()
    if args.set == "tripadvisor":
        split_tripadvisor()
        if args.evaluate_on == "validation":
            parser.error("the TripAdvisor split has no validation part")
    train_file, test_file, taxonomy_file = SETS[args.set]
    taxonomy = load_taxonomy_file(REPO / "bench-out" / "curve" / taxonomy_file)
    pool = read_records(SHARED / train_file, taxonomy=taxonomy)
    if args.evaluate_on == "validation":  # for choosing settings without the test split
        test_file = test_file.replace("test.json", "validation.json")
    test = read_records(SHARED / test_file, taxonomy=taxonomy)
    results: dict[str, dict[int, list[float]]] = {"random": {}, "suggest": {}}
    for seed in (int(s) for s in args.seeds.split(",")):
        for strategy in results:
            results[strategy][seed] = curve(strategy, pool, taxonomy, test, seed, args.diversity)
    out = REPO / "bench-out" / f"active-{args.set}-{args.diversity:g}-{args.evaluate_on}.json"
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"| labelled | random (seeds {args.seeds}) | suggest | suggest − random |")
    print("|---:|---|---|---|")
    for index, count in enumerate(STEPS):
        rows = {s: [results[s][seed][index] for seed in results[s]] for s in results}
        gain = [b - a for a, b in zip(rows["random"], rows["suggest"], strict=True)]
        shown = {s: " / ".join(f"{v:.3f}" for v in rows[s]) for s in rows}
        print(
            f"| {count} | {shown['random']} | {shown['suggest']} | {statistics.mean(gain):+.3f} |"
        )


if __name__ == "__main__":
    main()
