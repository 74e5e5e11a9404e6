"""bf16 scoring with the weights cast on every call (autocast alone, as before) against
cast once (``runtime.scoring_copy``), on the m3e-small POI tagger, in calls of 1, 8, 64,
256 and 2,048 random POI test names.

    .venv/bin/python bench/serve_load.py prepare     # the m3e-small POI tagger it loads
    .venv/bin/python bench/bf16_weight_casts.py --threads 1
    .venv/bin/python bench/bf16_weight_casts.py --threads 2

Medians of 5 interleaved rounds, names/s and milliseconds per call; both ways score the
same samples, and their scores are checked to be equal bit for bit."""

from __future__ import annotations

import random

import numpy as np
import tagger_plugins.bert.runtime as runtime
import torch
from call_sizes import arguments, compare, poi_encoder, score_each

CAST_ONCE = runtime.scoring_copy


def per_call(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    return model  # autocast casts the fp32 weights inside every call


def main() -> None:
    parser = arguments()
    args = parser.parse_args()
    encoder, names = poi_encoder(args.threads, "bf16")
    rng = random.Random(0)
    ways = {"cast per call": per_call, "cast once": CAST_ONCE}

    def use(way: str) -> None:
        runtime.scoring_copy = ways[way]
        encoder._scoring = (None, None, None)
        encoder.logits(names[:1])  # builds the copy (cast once), outside the timing

    results = score_each(encoder.logits, use, list(ways), rng.sample(names, 2048))
    assert np.array_equal(*results.values()), "the two ways score differently"
    linear = sum(
        m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        for m in encoder.model.modules()
        if isinstance(m, torch.nn.Linear)
    )
    print(f"{args.threads} thread(s); scores equal bit for bit on 2,048 names; the copy "
          f"holds {linear * 2 / 2**20:.0f} MiB of bf16 linear weights")  # fmt: skip
    compare(encoder.logits, use, list(ways), names, args.sizes, args.rounds, rng)
    runtime.scoring_copy = CAST_ONCE


if __name__ == "__main__":
    main()
