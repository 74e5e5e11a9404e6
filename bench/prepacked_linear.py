"""Would prepacked oneDNN weights speed up BERT scoring on a CPU? A tried-and-not-adopted
check: the scoring model's linear layers swapped for torch's private
``mkldnn._linear_pointwise`` on weights reordered once (``mkldnn._reorder_linear_weight``,
what inductor's freezing does), against the shipped path, on the serving benchmark's POI
tagger: ms per name for one big call, calls of 32 (a server's batches) and single names,
and the largest logit change.

    .venv/bin/python bench/serve_load.py prepare      # the tagger, once
    .venv/bin/python bench/prepacked_linear.py --threads 1|2
    TAGGER_CPU_BF16=0 .venv/bin/python bench/prepacked_linear.py --threads 1   # fp32
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tagger_plugins.bert.runtime import autocast_dtype

from tagger_core import Tagger

REPO = Path(__file__).resolve().parents[1]
TAGGER = REPO / "bench-out" / "serve" / "poi-bert"
TEST = REPO.parent / "shared" / "data" / "poi_building_types" / "test.json"


class Prepacked(torch.nn.Module):
    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), 64)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(self.weight.dtype)
        y = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias, "none", [], "")
        return y.reshape(*x.shape[:-1], y.shape[-1])


def prepack(module: torch.nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, Prepacked(child))
        else:
            prepack(child)


def timings(tagger: Tagger, names: list[str]) -> dict[str, float]:
    """ms per name: one call of every name, calls of 32, single names (medians)."""
    tagger.scores(names[:256])
    start = time.perf_counter()
    tagger.scores(names)
    big = (time.perf_counter() - start) / len(names)
    start = time.perf_counter()
    for i in range(0, 1024, 32):
        tagger.scores(names[i : i + 32])
    small = (time.perf_counter() - start) / 1024
    ones = []
    for name in names[:200]:
        start = time.perf_counter()
        tagger.scores([name])
        ones.append(time.perf_counter() - start)
    return {
        "one call": 1000 * big,
        "calls of 32": 1000 * small,
        "one name": 1000 * float(np.median(ones)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tagger = Tagger.load(TAGGER)
    encoder = tagger.encoder
    names = [row["text"] for row in json.loads(TEST.read_text(encoding="utf-8"))][:2048]
    shipped_logits = encoder.logits(names)
    shipped = timings(tagger, names)
    dtype = autocast_dtype(encoder.p.precision, encoder.device)
    prepack(encoder._scorer(dtype) if dtype is not None else encoder.model)
    change = float(np.abs(encoder.logits(names) - shipped_logits).max())
    packed = timings(tagger, names)
    print(
        f"threads {args.threads}, scoring in {dtype or torch.float32}; largest logit change {change:.2g}"
    )
    print("| ms per name | shipped | prepacked | × |")
    print("|---|---:|---:|---:|")
    for key, before in shipped.items():
        print(f"| {key} | {before:.3f} | {packed[key]:.3f} | {before / packed[key]:.2f} |")


if __name__ == "__main__":
    main()
