"""Where the `bert` encoder's fine-tuning step spends its time, fp32 against bf16
autocast: forward, backward, gradient clipping, AdamW and the schedule, zeroing, each
timed alone over the encoder's own step (its `_Trainer`: model, loss, optimizer groups,
clipping, length-grouped batches of 32 POI training names), one thread unless --threads.

    .venv/bin/python bench/train_step_parts.py [--model $M3E] [--batches 20] [--threads 1]
        [-p freeze_embeddings=true] [--profile]

The parts that do not shrink in bf16 (clipping and AdamW run over every fp32 parameter,
the word embedding's dense gradient included) bound what bf16 can gain per step; the
sequence below is `_Trainer.train_epoch`'s, with a clock read between the parts.
"""

from __future__ import annotations

import argparse
import itertools
import random
import time
from pathlib import Path

import numpy as np
import torch
from tagger_plugins.bert import BertEncoder
from tagger_plugins.bert.finetune import _Distributed, _Trainer, load_classifier
from tagger_plugins.bert.runtime import autocast, length_grouped_batches, pad_batch

from tagger_core import Record, Taxonomy, read_records, resolve_taxonomy
from tagger_core.taxonomy import label_matrix

REPO = Path(__file__).resolve().parents[1]
M3E = REPO / ".venv/lib/python3.11/site-packages/embedding/m3e-small"
TRAIN = REPO.parent / "shared/data/poi_building_types/train.json"
TAXONOMY = REPO / "bench-out/curve/poi.yaml"  # written by learning_curve.py
PARTS = ("forward", "backward", "clip", "adamw", "zero_grad")


def trainer(
    precision: str, args: argparse.Namespace, records: list[Record], taxonomy: Taxonomy
) -> _Trainer:
    options = dict(option.split("=", 1) for option in args.param)
    params = BertEncoder.Params(model=args.model, precision=precision, epochs=100, **options)
    loaded = load_classifier(params, taxonomy, seed=0)
    cpu = torch.device("cpu")
    made = _Trainer(
        params, loaded.model, loaded.tokenizer, loaded.max_length, taxonomy, cpu,
        _Distributed(cpu), seed=0,
    )  # fmt: skip
    made.set_data([r.text for r in records], label_matrix(records, taxonomy), None)
    made.model.train()
    return made


def timed_step(t: _Trainer, rows: np.ndarray) -> list[float]:
    """One step of `_Trainer.train_epoch`, the milliseconds of each part."""
    marks = [time.perf_counter()]
    input_ids, mask = pad_batch(t.train, rows, t.pad_id)
    with autocast(t.device, t.dtype):
        out = t.wrapped(input_ids=input_ids, attention_mask=mask).logits
    loss = t.loss_fn(out.float(), t.y[rows])
    marks.append(time.perf_counter())
    loss.backward()
    marks.append(time.perf_counter())
    torch.nn.utils.clip_grad_norm_(t.model.parameters(), t.p.max_grad_norm)
    marks.append(time.perf_counter())
    t.optimizer.step()
    t.scheduler.step()
    marks.append(time.perf_counter())
    t.optimizer.zero_grad(set_to_none=True)
    marks.append(time.perf_counter())
    return [1000 * (b - a) for a, b in itertools.pairwise(marks)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(M3E))
    parser.add_argument("--taxonomy", default=str(TAXONOMY))
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--profile", action="store_true", help="also torch.profiler's top ops of bf16 steps"
    )
    parser.add_argument(
        "-p", "--param", action="append", default=[], help="an encoder option, KEY=VALUE"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    taxonomy = resolve_taxonomy(args.taxonomy)
    pool = read_records(TRAIN, taxonomy=taxonomy)
    records = random.Random(0).sample(pool, min(len(pool), 32 * args.batches))
    trainers = {p: trainer(p, args, records, taxonomy) for p in ("fp32", "bf16")}
    first = trainers["fp32"]
    batches = length_grouped_batches(first.train.lengths, 32, np.random.default_rng(0))
    embedding = first.model.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in first.model.parameters())
    trained = sum(p.numel() for p in first.model.parameters() if p.requires_grad)
    print(
        f"{total / 1e6:.1f} M parameters, {embedding / 1e6:.1f} M of them the word embedding; "
        f"{trained / 1e6:.1f} M trained"
    )
    print("| precision | " + " | ".join(PARTS) + " | step, ms | examples/s |")
    print("|---|" + "---:|" * (len(PARTS) + 2))
    # fp32 and bf16 interleaved, two rounds each; the first of each is a warm-up (oneDNN
    # builds a kernel per new batch shape) and is not printed
    for round_ in range(2):
        for precision, t in trainers.items():
            times = np.array([timed_step(t, rows) for rows in batches])
            if round_ == 0:
                continue
            medians = np.median(times, axis=0)
            step = float(medians.sum())
            cells = " | ".join(f"{m:.1f}" for m in medians)
            print(f"| {precision} | {cells} | {step:.1f} | {32_000 / step:.0f} |")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as profiled:
            for rows in batches[:10]:
                timed_step(trainers["bf16"], rows)
        print("bf16, 10 steps:")
        print(profiled.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
