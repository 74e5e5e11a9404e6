"""A BERT classifier's forward pass over the real tokens only, for scoring.

A batch of names padded to its longest spends most of its products on padding: 64 POI
names drawn at random are 55 % padding, and cutting the length-sorted batch into calls
that pad less pays each call's fixed cost again. Here every linear layer, layer norm and
activation runs on the batch's real tokens packed into one matrix; only attention sees
the padded layout (its keys masked, as in transformers). The weights and the modules are
the model's own, so the numbers are those of ``model(...)`` (tests/test_bert_packed.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def packs(model: Any) -> bool:
    """Whether ``model`` is a plain transformers ``BertForSequenceClassification``: an
    encoder with absolute positions, no cross-attention and no chunked feed-forward.
    Anything else is scored padded, by its own forward."""
    config = getattr(model, "config", None)
    return (
        type(model).__name__ == "BertForSequenceClassification"
        and type(getattr(model, "bert", None)).__name__ == "BertModel"
        and getattr(model.bert, "pooler", None) is not None
        and not getattr(config, "is_decoder", True)
        and not getattr(config, "add_cross_attention", True)
        and getattr(config, "chunk_size_feed_forward", 1) == 0
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
    )


def packed_classifier(model: Any) -> Forward | None:
    """``forward(input_ids, attention_mask) → logits`` over the real tokens of
    right-padded rows, or None where ``model`` is not one that :func:`packs`."""
    if not packs(model):
        return None

    def forward(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model.classifier(model.dropout(_pooled(model.bert, input_ids, mask)))

    return forward


def _pooled(bert: Any, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    rows, width = input_ids.shape
    embedded = bert.embeddings(input_ids=input_ids)  # positions 0…width-1, as transformers
    real = mask.reshape(-1).nonzero().squeeze(1)  # flat positions of the real tokens
    hidden = embedded.reshape(rows * width, -1).index_select(0, real)
    keys = mask.bool()[:, None, None, :]  # attention to real tokens only, in every row
    lengths = mask.sum(dim=1)
    first = torch.cumsum(lengths, 0) - lengths  # each row's [CLS] in the packed matrix

    def padded(x: torch.Tensor, heads: int) -> torch.Tensor:
        out = x.new_zeros(rows * width, x.shape[-1])
        out.index_copy_(0, real, x)
        return out.view(rows, width, heads, -1).transpose(1, 2)

    for layer in bert.encoder.layer:
        attention = layer.attention.self
        heads = attention.num_attention_heads
        context = F.scaled_dot_product_attention(
            padded(attention.query(hidden), heads),
            padded(attention.key(hidden), heads),
            padded(attention.value(hidden), heads),
            attn_mask=keys,
            scale=attention.scaling,
        )
        context = context.transpose(1, 2).reshape(rows * width, -1).index_select(0, real)
        attended = layer.attention.output(context, hidden)
        hidden = layer.output(layer.intermediate(attended), attended)
    return bert.pooler(hidden.index_select(0, first).unsqueeze(1))
