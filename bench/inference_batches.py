"""How a BERT tagger's scoring calls are cut into batches: the first rule (cut wherever the
next text is 10 % shorter), the cost-based split with fp32's call cost (64 token positions)
and with the call cost of the precision the tagger scores in (512 for bf16), on random POI
names in requests of 8, 35, 64, 256 and 2,048 names.

    .venv/bin/python bench/serve_load.py prepare     # the m3e-small POI tagger it loads
    .venv/bin/python bench/inference_batches.py                     # bf16 where the CPU has it
    TAGGER_CPU_BF16=0 .venv/bin/python bench/inference_batches.py   # fp32

Medians of 3 interleaved rounds, names/s; every rule scores the same samples."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tagger_plugins.bert.runtime as runtime

from tagger_core import Tagger

REPO = Path(__file__).resolve().parents[1]
TAGGER = REPO / "bench-out" / "serve" / "poi-bert"
NAMES = REPO.parent / "shared" / "data" / "poi_building_types" / "test.json"


def cut_at_ten_percent(
    lengths: np.ndarray, batch_size: int, call_cost: int = 0
) -> list[np.ndarray]:
    """The rule before: sorted, cut where a batch is full or the next text is >10 % shorter."""
    order = np.argsort(-lengths, kind="stable")
    budget = batch_size * runtime.TOKENS_PER_TEXT
    batches, start = [], 0
    while start < len(order):
        longest = int(lengths[order[start]])
        limit = min(batch_size, max(1, budget // max(longest, 1)))
        end = start + 1
        while end < len(order) and end - start < limit and lengths[order[end]] >= 0.9 * longest:
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def main() -> None:
    tagger = Tagger.load(TAGGER)
    names = [row["text"] for row in json.loads(NAMES.read_text(encoding="utf-8"))]
    rng = random.Random(0)
    cost_based = runtime.sorted_batches

    def fixed_cost(cost: int) -> Callable[..., list[np.ndarray]]:
        return lambda lengths, batch_size, _cost=0: cost_based(lengths, batch_size, cost)

    precision = "bf16" if runtime.autocast_dtype("auto", runtime.torch.device("cpu")) else "fp32"
    rules = {
        "10 % rule": cut_at_ten_percent,
        "cost 64": fixed_cost(runtime.CALL_COST_TOKENS),
        f"cost for {precision}": cost_based,
    }
    print(f"scoring in {precision}")
    print("| names per call | " + " | ".join(rules) + " | last ÷ cost 64 |")
    print("|---:|" + "---:|" * (len(rules) + 1))
    for size, calls in ((8, 60), (35, 30), (64, 20), (256, 6), (2048, 2)):
        samples = [rng.sample(names, size) for _ in range(calls)]
        rates: dict[str, list[float]] = {name: [] for name in rules}
        for _ in range(3):
            for name, rule in rules.items():
                runtime.sorted_batches = rule
                tagger.scores(samples[0])
                began = time.perf_counter()
                for sample in samples:
                    tagger.scores(sample)
                rates[name].append(calls * size / (time.perf_counter() - began))
        medians = [statistics.median(rates[name]) for name in rules]
        cells = " | ".join(f"{rate:.0f}" for rate in medians)
        print(f"| {size} | {cells} | {medians[-1] / medians[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
