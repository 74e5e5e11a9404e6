"""The reference notebook's training and inference loops, for comparison in one run.

What the attraction notebook does (shared/reference/attraction-multilabel-notebook.md):
every text padded to ``max_length=128``, a plain ``DataLoader`` loop with batch 16,
``AdamW(model.parameters(), lr=2e-5)`` with no schedule and no clipping, the loss from the
model's own head; inference batch by batch under ``torch.no_grad()``. The model is the same
``AutoModelForSequenceClassification`` (problem_type from the taxonomy) as the encoder's.

Tokenization is done before the clock starts (the notebook re-tokenizes per item, which
would make it slower still), so the speed ratios against it are conservative.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

MAX_LENGTH = 128
BATCH_SIZE = 16
LR = 2e-5


def padded(tokenizer: Any, texts: list[str], max_length: int = MAX_LENGTH) -> dict[str, Any]:
    return tokenizer(
        texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )


def labels_tensor(targets: np.ndarray, mode: str) -> torch.Tensor:
    if mode == "multi-label":
        return torch.from_numpy(np.asarray(targets, dtype=np.float32))
    return torch.from_numpy(np.asarray(targets).argmax(axis=1).astype(np.int64))


def train(
    model: Any,
    encoded: dict[str, Any],
    labels: torch.Tensor,
    *,
    epochs: float = 1.0,
    max_steps: int | None = None,
    seed: int = 0,
    lr: float = LR,
    batch_size: int = BATCH_SIZE,
) -> dict[str, float]:
    """The notebook's loop; returns examples, seconds (loop only) and the mean loss."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    dataset = TensorDataset(encoded["input_ids"], encoded["attention_mask"], labels)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    steps = examples = 0
    losses = []
    started = time.perf_counter()
    total_epochs = int(np.ceil(epochs))
    for _ in range(total_epochs):
        for input_ids, attention_mask, y in loader:
            optimizer.zero_grad()
            outputs = model(input_ids=input_ids, attention_mask=attention_mask, labels=y)
            outputs.loss.backward()
            optimizer.step()
            losses.append(outputs.loss.item())
            steps += 1
            examples += len(y)
            if max_steps is not None and steps >= max_steps:
                break
        if max_steps is not None and steps >= max_steps:
            break
    seconds = time.perf_counter() - started
    return {"examples": examples, "seconds": seconds, "loss": float(np.mean(losses))}


def train_unpadded(
    model: Any,
    ids: list[list[int]],
    labels: torch.Tensor,
    pad_id: int,
    *,
    epochs: int = 1,
    seed: int = 0,
    lr: float = LR,
    batch_size: int = BATCH_SIZE,
) -> dict[str, float]:
    """The same recipe (shuffled batches of 16, AdamW lr 2e-5 constant, no clipping) with
    each batch padded to its longest text instead of 128. With the attention mask,
    padding changes no real token's output, so this trains the same model up to float
    rounding (the benchmark checks the logits of both paddings agree): it gives the
    reference recipe's accuracy at a fraction of its cost."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    examples = 0
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(ids)).numpy()
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, i in enumerate(rows):
                input_ids[j, : len(ids[i])] = torch.tensor(ids[i])
                mask[j, : len(ids[i])] = 1
            optimizer.zero_grad()
            outputs = model(input_ids=input_ids, attention_mask=mask, labels=labels[rows])
            outputs.loss.backward()
            optimizer.step()
            losses.append(outputs.loss.item())
            examples += len(rows)
    seconds = time.perf_counter() - started
    return {"examples": examples, "seconds": seconds, "loss": float(np.mean(losses))}


def logits(
    model: Any, encoded: dict[str, Any], batch_size: int = BATCH_SIZE
) -> tuple[np.ndarray, float]:
    """The notebook's validation loop (no_grad, fixed padding); logits and seconds."""
    model.eval()
    out = []
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(encoded["input_ids"]), batch_size):
            batch = slice(start, start + batch_size)
            result = model(
                input_ids=encoded["input_ids"][batch],
                attention_mask=encoded["attention_mask"][batch],
            )
            out.append(result.logits.float().numpy())
    return np.concatenate(out), time.perf_counter() - started
