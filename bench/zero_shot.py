"""Zero- and few-shot tagging (`--encoder embedding`) against the majority class and against
TF-IDF trained on a few labelled names.

    M3E=$(.venv/bin/python -c 'import importlib.util as u; print(u.find_spec("embedding").submodule_search_locations[0] + "/m3e-small")')
    .venv/bin/python bench/zero_shot.py --model $M3E [--sets attractions,hotels,poi] [--seeds 0,1,2] \\
        [-p label_match=mean --out zero-shot-mean]
    .venv/bin/python bench/zero_shot.py --model $M3E --sets hotels --per-label [--taxonomy FILE]

For each seed the labelled names are drawn from the set's pool: 10, 30 and 100 at random
for TF-IDF, and k = 5 and 10 per label for few-shot (the embedding encoder and TF-IDF on
the same names). Attractions and hotels have no test split of their own, so each seed
tests every method on the pool less the names that seed drew for any method (the same rows
for all); POI tests on its 5,000-name test split. The majority baseline gives every name
the test rows' most frequent label (it knows the test distribution; nothing else does).
Zero-shot uses the label texts of the taxonomy: the bundled ones for attractions and hotels,
and for POI bench/taxonomies/poi-described.yaml (names and descriptions written once, not
tuned). The zero-shot defaults (margin, scale, label texts) were chosen on the attraction
examples' training file, which is part of the attractions pool: read that row with it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from tagger_core import Record, Tagger, load_taxonomy_file, read_records, resolve_taxonomy
from tagger_core.evaluation.metrics import evaluate_matrices
from tagger_core.taxonomy import label_matrix

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
HOTELS = REPO / "examples/tagger-hotels"
SETS: dict[str, dict[str, Any]] = {
    "attractions": {
        "pool": [
            REPO / "examples/attractions/train.json",
            REPO / "examples/attractions/validation.json",
        ],
        "taxonomy": "attractions",
    },
    "hotels": {
        "pool": [HOTELS / "data/train.json", HOTELS / "data/validation.json"],
        "taxonomy": HOTELS / "tagger_hotels/hotels.yaml",
    },
    "poi": {
        "pool": [SHARED / "poi_building_types/train.json"],
        "test": SHARED / "poi_building_types/test.json",
        "taxonomy": REPO / "bench/taxonomies/poi-described.yaml",
    },
}
RANDOM_COUNTS = (10, 30, 100)
PER_LABEL = (5, 10)
FIGURES = ("micro_f1", "exact_match", "macro_f1")


def per_label_sample(pool: list[Record], taxonomy: Any, k: int, rng: random.Random) -> list[int]:
    """Up to k names for each label (a multi-label name counts for each of its labels)."""
    order = list(range(len(pool)))
    rng.shuffle(order)
    chosen: list[int] = []
    counts = dict.fromkeys(taxonomy.label_ids, 0)
    for i in order:
        wanted = [label for label in pool[i].labels if counts.get(label, k) < k]
        if wanted:
            chosen.append(i)
            for label in pool[i].labels:
                counts[label] = counts.get(label, 0) + 1
    return chosen


def figures(tagger: Tagger, test: list[Record]) -> dict[str, float]:
    evaluation = tagger.evaluate(test)
    return {name: float(getattr(evaluation, name)) for name in FIGURES}


def majority(test: list[Record], taxonomy: Any) -> dict[str, float]:
    truth = label_matrix(test, taxonomy)
    pred = np.zeros_like(truth)
    pred[:, int(truth.sum(axis=0).argmax())] = 1
    evaluation = evaluate_matrices(truth, pred, taxonomy)
    return {name: float(getattr(evaluation, name)) for name in FIGURES}


def taxonomy_and_pool(name: str, taxonomy_file: str | None = None) -> tuple[Any, list[Record]]:
    """The set's taxonomy (or the file given instead) and its pool of labelled names."""
    spec = SETS[name]
    source = spec["taxonomy"]
    if taxonomy_file is not None:
        taxonomy = load_taxonomy_file(Path(taxonomy_file))
    elif isinstance(source, str):
        taxonomy = resolve_taxonomy(source)
    else:
        taxonomy = load_taxonomy_file(source)
    pool = [r for path in spec["pool"] for r in read_records(path, taxonomy=taxonomy)]
    return taxonomy, pool


def run_set(
    name: str, model: str, seeds: list[int], threads: int, extra: dict[str, Any]
) -> dict[str, list[dict]]:
    spec = SETS[name]
    taxonomy, pool = taxonomy_and_pool(name)
    fixed_test = read_records(spec["test"], taxonomy=taxonomy) if "test" in spec else None
    embedding = {"model": model, "threads": threads, **extra}
    results: dict[str, list[dict]] = {}

    def add(
        method: str, seed: int, labelled: int, values: dict[str, float], seconds: float
    ) -> None:
        row = {"seed": seed, "labelled": labelled, "seconds": seconds, **values}
        results.setdefault(method, []).append(row)
        print(f"  {name} seed {seed} {method}: {values['micro_f1']:.3f}", flush=True)

    for seed in seeds:
        rng = random.Random(seed)
        draws = {f"tfidf, {n} random": rng.sample(range(len(pool)), n) for n in RANDOM_COUNTS}
        for k in PER_LABEL:
            draws[f"{k} per label"] = per_label_sample(pool, taxonomy, k, rng)
        used = {i for draw in draws.values() for i in draw}
        test = fixed_test or [r for i, r in enumerate(pool) if i not in used]
        add("majority class", seed, 0, majority(test, taxonomy), 0.0)
        start = time.perf_counter()
        zero = Tagger.create(taxonomy, encoder="embedding", encoder_params=embedding).train([])
        add("embedding, zero-shot", seed, 0, figures(zero, test), time.perf_counter() - start)
        for label, draw in draws.items():
            rows = [pool[i] for i in draw]
            encoders = ["tfidf"] if label.startswith("tfidf") else ["tfidf", "embedding"]
            for encoder in encoders:
                params = embedding if encoder == "embedding" else {}
                start = time.perf_counter()
                tagger = Tagger.create(taxonomy, encoder=encoder, encoder_params=params).train(rows)
                method = label if label.startswith("tfidf") else f"{encoder}, {label}"
                add(method, seed, len(rows), figures(tagger, test), time.perf_counter() - start)
    return results


def table(all_results: dict[str, dict[str, list[dict]]]) -> None:
    print("| data | method | labelled names | micro F1 | exact match | macro F1 |")
    print("|---|---|---:|---|---|---|")
    for name, results in all_results.items():
        for method, rows in results.items():
            cells = []
            for figure in FIGURES:
                values = [r[figure] for r in rows]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
            labelled = statistics.mean(r["labelled"] for r in rows)
            print(f"| {name} | {method} | {labelled:.0f} | {' | '.join(cells)} |")


def per_label(
    name: str, model: str, threads: int, extra: dict[str, Any], taxonomy_file: str | None
) -> None:
    """Zero-shot on the whole pool, F1 per label: which labels a taxonomy change moved."""
    taxonomy, test = taxonomy_and_pool(name, taxonomy_file)
    params = {"model": model, "threads": threads, **extra}
    zero = Tagger.create(taxonomy, encoder="embedding", encoder_params=params).train([])
    evaluation = zero.evaluate(test)
    print(f"{name}, {len(test)} names, micro F1 {evaluation.micro_f1:.3f}")
    print("| label | names | F1 |\n|---|---:|---|")
    for row in evaluation.per_label:
        print(f"| {row.label} | {row.support} | {row.f1:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="sentence-embedding model folder")
    parser.add_argument("--sets", default="attractions,hotels,poi")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "-p", dest="params", action="append", default=[], help="embedding KEY=VALUE (repeatable)"
    )
    parser.add_argument("--out", default="zero-shot", help="bench-out/OUT.json")
    parser.add_argument(
        "--per-label",
        action="store_true",
        help="instead: zero-shot on each set's whole pool, F1 per label",
    )
    parser.add_argument("--taxonomy", help="with --per-label: this taxonomy file instead")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.params)
    if args.per_label:
        for name in args.sets.split(","):
            per_label(name, args.model, args.threads, extra, args.taxonomy)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    all_results = {}
    for name in args.sets.split(","):
        all_results[name] = run_set(name, args.model, seeds, args.threads, extra)
    out = REPO / "bench-out" / f"{args.out}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(all_results, indent=1), encoding="utf-8")
    table(all_results)


if __name__ == "__main__":
    import logging

    logging.getLogger("tagger").setLevel(logging.ERROR)  # labels without examples, per run
    main()
