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

import random

import numpy as np
import tagger_plugins.bert.packed as packed
from call_sizes import arguments, compare, poi_encoder, score_each

PACKED = packed.packed_classifier


def main() -> None:
    parser = arguments()
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    args = parser.parse_args()
    encoder, names = poi_encoder(args.threads, args.precision)
    rng = random.Random(0)
    ways = {"padded": lambda model: None, "packed": PACKED}

    def use(way: str) -> None:
        packed.packed_classifier = ways[way]

    scores = score_each(encoder.logits, use, list(ways), rng.sample(names, 2048))
    diff = float(np.abs(scores["padded"] - scores["packed"]).max())
    changed = float((scores["padded"].argmax(1) != scores["packed"].argmax(1)).mean())
    print(f"{args.threads} thread(s), {args.precision}; on 2,048 names the largest logit "
          f"difference is {diff:.2g} and {100 * changed:.2f} % of top labels change")  # fmt: skip
    compare(encoder.logits, use, list(ways), names, args.sizes, args.rounds, rng)
    packed.packed_classifier = PACKED


if __name__ == "__main__":
    main()
