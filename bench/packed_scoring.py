"""BERT scoring padded (transformers' forward, batches cut by cost) against packed (every
linear layer on the real tokens only, ``plugins/bert/packed.py``), on the m3e-small POI
tagger, in calls of 1, 8, 64, 256 and 2,048 random POI test names.

    .venv/bin/python bench/serve_load.py prepare     # the m3e-small POI tagger it loads
    .venv/bin/python bench/packed_scoring.py --threads 1 [--precision bf16|fp32]
    .venv/bin/python bench/packed_scoring.py --threads 2

Medians of interleaved rounds, names/s and milliseconds per call; both ways score the same
samples, and the largest score difference and the share of changed label sets on 2,048
names are printed first."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np
import tagger_plugins.bert.packed as packed
import torch

from tagger_core import Tagger

REPO = Path(__file__).resolve().parents[1]
TAGGER = REPO / "bench-out" / "serve" / "poi-bert"
NAMES = REPO.parent / "shared" / "data" / "poi_building_types" / "test.json"
PACKED = packed.packed_classifier
CALLS = {1: 100, 8: 40, 64: 12, 256: 4, 2048: 1}  # calls per round, by names per call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument(
        "--sizes", default="1,8,64,256,2048", type=lambda s: [int(x) for x in s.split(",")]
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tagger = Tagger.load(TAGGER)
    encoder = tagger.encoder
    encoder.params = encoder.params.model_copy(
        update={"precision": args.precision, "threads": None}
    )
    names = [row["text"] for row in json.loads(NAMES.read_text(encoding="utf-8"))]
    rng = random.Random(0)
    ways = {"padded": lambda model: None, "packed": PACKED}

    def use(way: str) -> None:
        packed.packed_classifier = ways[way]

    check = rng.sample(names, 2048)
    scores = {}
    for way in ways:
        use(way)
        scores[way] = encoder.logits(check)
    diff = float(np.abs(scores["padded"] - scores["packed"]).max())
    changed = float((scores["padded"].argmax(1) != scores["packed"].argmax(1)).mean())
    print(f"{args.threads} thread(s), {args.precision}; on 2,048 names the largest logit "
          f"difference is {diff:.2g} and {100 * changed:.2f} % of top labels change")  # fmt: skip
    print("| names per call | padded: names/s | ms per call | packed: names/s | ms per call | × |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        calls = CALLS.get(size, max(1, 1024 // size))
        samples = [rng.sample(names, size) for _ in range(calls)]
        seconds: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(args.rounds):
            for way in ways:
                use(way)
                began = time.perf_counter()
                for sample in samples:
                    encoder.logits(sample)
                seconds[way].append(time.perf_counter() - began)
        medians = {way: statistics.median(values) for way, values in seconds.items()}
        cells = " | ".join(
            f"{calls * size / medians[way]:.0f} | {1000 * medians[way] / calls:.1f}" for way in ways
        )
        print(f"| {size} | {cells} | {medians['padded'] / medians['packed']:.2f} |", flush=True)
    packed.packed_classifier = PACKED


if __name__ == "__main__":
    main()
