"""Where a fine-tuning step's time goes, fp32 against bf16 autocast: forward, backward,
gradient clipping, the fused AdamW step and zeroing, each timed alone (medians over
length-grouped batches of 32 POI training names, one thread unless --threads).

    .venv/bin/python bench/train_step_parts.py [--model $M3E] [--batches 20] [--threads 1]

The parts that do not shrink in bf16 (clipping and AdamW run over every fp32 parameter,
the word embedding's dense gradient included) bound what bf16 can gain per step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

REPO = Path(__file__).resolve().parents[1]
M3E = REPO / ".venv/lib/python3.11/site-packages/embedding/m3e-small"
TRAIN = REPO.parent / "shared/data/poi_building_types/train.json"
PARTS = ("forward", "backward", "clip", "adamw", "zero_grad")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(M3E))
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model)
    model.train()
    rows = json.loads(TRAIN.read_text(encoding="utf-8"))[: 32 * args.batches]
    texts = sorted((row["text"] for row in rows), key=len)  # length-grouped, as training is
    batches = [
        tokenizer(texts[i : i + 32], padding=True, return_tensors="pt")
        for i in range(0, len(texts), 32)
    ]
    head = torch.nn.Linear(model.config.hidden_size, 13)
    params = [*model.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=True)
    targets = torch.zeros(32, 13)
    targets[:, 0] = 1
    loss_function = torch.nn.BCEWithLogitsLoss()
    embedding = model.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in params)
    print(f"{total / 1e6:.1f} M parameters, {embedding / 1e6:.1f} M of them the word embedding")
    print("| precision | " + " | ".join(PARTS) + " | step, ms | examples/s |")
    print("|---|" + "---:|" * (len(PARTS) + 2))
    # two rounds each, interleaved; the first of each is a warm-up and not printed
    for round_, dtype in enumerate((torch.float32, torch.bfloat16) * 2):
        times: dict[str, list[float]] = {part: [] for part in PARTS}
        for batch in batches:
            marks = [time.perf_counter()]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                pooled = model(**batch).last_hidden_state[:, 0]
                loss = loss_function(head(pooled).float(), targets[: len(pooled)])
            marks.append(time.perf_counter())
            loss.backward()
            marks.append(time.perf_counter())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            marks.append(time.perf_counter())
            optimizer.step()
            marks.append(time.perf_counter())
            optimizer.zero_grad(set_to_none=True)
            marks.append(time.perf_counter())
            for part, began, ended in zip(PARTS, marks, marks[1:], strict=False):
                times[part].append(1000 * (ended - began))
        if round_ < 2:
            continue
        medians = [statistics.median(times[part]) for part in PARTS]
        step = sum(medians)
        name = "fp32" if dtype == torch.float32 else "bf16"
        cells = " | ".join(f"{m:.1f}" for m in medians)
        print(f"| {name} | {cells} | {step:.1f} | {32_000 / step:.0f} |")


if __name__ == "__main__":
    main()
