"""Two ways of scoring timed against each other on calls of several sizes: the same random
samples for both, interleaved rounds, medians (for the scoring benchmarks that compare a
change on the m3e-small POI tagger)."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TAGGER = REPO / "bench-out" / "serve" / "poi-bert"  # `bench/serve_load.py prepare` trains it
NAMES = REPO.parent / "shared" / "data" / "poi_building_types" / "test.json"

CALLS = {1: 100, 8: 40, 64: 12, 256: 4, 2048: 1}  # calls per round, by names per call


def arguments() -> argparse.ArgumentParser:
    """The options every such benchmark takes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--sizes", default="1,8,64,256,2048", type=lambda s: [int(x) for x in s.split(",")]
    )
    return parser


def poi_encoder(threads: int, precision: str) -> tuple[Any, list[str]]:
    """The m3e-small POI tagger's encoder, set to ``precision``, and the POI test names."""
    import torch

    from tagger_core import Tagger

    torch.set_num_threads(threads)
    encoder = Tagger.load(TAGGER).encoder
    encoder.params = encoder.params.model_copy(update={"precision": precision, "threads": None})
    return encoder, [row["text"] for row in json.loads(NAMES.read_text(encoding="utf-8"))]


def score_each(
    score: Callable[[list[str]], Any], use: Callable[[str], None], ways: Sequence[str],
    texts: list[str],
) -> dict[str, Any]:  # fmt: skip
    """Each way's scores of the same ``texts``, to check that they agree."""
    out = {}
    for way in ways:
        use(way)
        out[way] = score(texts)
    return out


def compare(
    score: Callable[[list[str]], object],
    use: Callable[[str], None],
    ways: Sequence[str],
    names: Sequence[str],
    sizes: Sequence[int],
    rounds: int,
    rng: random.Random,
) -> None:
    """Print a table row per call size: names/s and ms per call for both ``ways`` (each
    put in place by ``use``) and the first's time over the second's."""
    first, second = ways
    print(f"| names per call | {first}: names/s | ms per call | {second}: names/s "
          "| ms per call | × |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        calls = CALLS.get(size, max(1, 1024 // size))
        samples = [rng.sample(list(names), size) for _ in range(calls)]
        seconds: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(rounds):
            for way in ways:
                use(way)
                began = time.perf_counter()
                for sample in samples:
                    score(sample)
                seconds[way].append(time.perf_counter() - began)
        medians = {way: statistics.median(values) for way, values in seconds.items()}
        cells = " | ".join(
            f"{calls * size / medians[way]:.0f} | {1000 * medians[way] / calls:.1f}" for way in ways
        )
        print(f"| {size} | {cells} | {medians[first] / medians[second]:.2f} |", flush=True)
