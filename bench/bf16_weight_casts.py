"""bf16 scoring with the weights cast on every call (autocast alone, as before) against
cast once (``runtime.scoring_copy``), on the m3e-small POI tagger, in calls of 1, 8, 64,
256 and 2,048 random POI test names.

    .venv/bin/python bench/serve_load.py prepare     # the m3e-small POI tagger it loads
    .venv/bin/python bench/bf16_weight_casts.py --threads 1
    .venv/bin/python bench/bf16_weight_casts.py --threads 2

Medians of 5 interleaved rounds, names/s and milliseconds per call; both ways score the
same samples, and their scores are checked to be equal bit for bit."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np
import tagger_plugins.bert.runtime as runtime
import torch

from tagger_core import Tagger

REPO = Path(__file__).resolve().parents[1]
TAGGER = REPO / "bench-out" / "serve" / "poi-bert"
NAMES = REPO.parent / "shared" / "data" / "poi_building_types" / "test.json"
CAST_ONCE = runtime.scoring_copy
CALLS = {1: 100, 8: 40, 64: 12, 256: 4, 2048: 1}  # calls per round, by names per call


def per_call(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    return model  # autocast casts the fp32 weights inside every call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--sizes", default="1,8,64,256,2048", type=lambda s: [int(x) for x in s.split(",")]
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tagger = Tagger.load(TAGGER)
    encoder = tagger.encoder
    encoder.params = encoder.params.model_copy(update={"precision": "bf16", "threads": None})
    names = [row["text"] for row in json.loads(NAMES.read_text(encoding="utf-8"))]
    rng = random.Random(0)
    ways = {"cast per call": per_call, "cast once": CAST_ONCE}

    def use(way: str) -> None:
        runtime.scoring_copy = ways[way]
        encoder._scoring = (None, None, None)
        encoder.logits(names[:1])  # builds the copy (cast once), outside the timing

    check = rng.sample(names, 2048)
    results = {}
    for way in ways:
        use(way)
        results[way] = encoder.logits(check)
    assert np.array_equal(*results.values()), "the two ways score differently"
    linear = sum(
        m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        for m in encoder.model.modules()
        if isinstance(m, torch.nn.Linear)
    )
    print(f"{args.threads} thread(s); scores equal bit for bit on 2,048 names; the copy "
          f"holds {linear * 2 / 2**20:.0f} MiB of bf16 linear weights")  # fmt: skip
    print("| names per call | cast per call: names/s | ms per call | cast once: names/s "
          "| ms per call | × |")  # fmt: skip
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
        print(f"| {size} | {cells} | {medians['cast per call'] / medians['cast once']:.2f} |",
              flush=True)  # fmt: skip
    runtime.scoring_copy = CAST_ONCE


if __name__ == "__main__":
    main()
