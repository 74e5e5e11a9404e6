"""Scoring a BERT classifier over the real tokens only (plugins/bert/packed.py): the same
logits as transformers' padded forward, and fewer, larger batches for it."""

from __future__ import annotations

from pathlib import Path

import bert_fixtures as bf
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tagger_plugins.bert.packed import packed_classifier, packs  # noqa: E402
from tagger_plugins.bert.runtime import (  # noqa: E402
    call_cost_tokens,
    pad_batch,
    quiet_transformers,
    scoring_copy,
    sorted_batches,
    tokenize,
)

# Names of very different lengths, so that most of a padded batch is padding.
NAMES = ["沙湖", "东湖宾馆", "汉口老面馆", "武昌火车站东广场地下停车场入口", "光谷", "江汉关博物馆"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    folder = bf.build_tiny_bert(tmp_path_factory.mktemp("packed"), layers=2, hidden=32)
    with quiet_transformers():
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            folder, num_labels=5
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(1)
    with torch.no_grad():  # a trained head, not zeros: every label's logit differs
        for parameter in model.classifier.parameters():
            parameter.normal_()
    return model.eval(), tokenizer


def padded_and_packed(model: object, tokenizer: object, dtype: object = None) -> tuple:
    encoded = tokenize(tokenizer, NAMES, 64)
    ids, mask = pad_batch(encoded, np.arange(len(NAMES)), tokenizer.pad_token_id)
    assert (mask == 0).float().mean() > 0.3  # the batch is mostly padding
    forward = packed_classifier(model)
    assert forward is not None
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=dtype is not None):
        return model(input_ids=ids, attention_mask=mask).logits.float(), forward(ids, mask).float()


def test_packed_logits_are_the_padded_forwards(classifier: tuple) -> None:
    model, tokenizer = classifier
    padded, packed = padded_and_packed(model, tokenizer)
    assert padded.shape == (len(NAMES), 5)
    assert len({tuple(row.tolist()) for row in padded}) == len(NAMES)  # the names differ
    np.testing.assert_allclose(packed.numpy(), padded.numpy(), rtol=1e-5, atol=1e-6)


def test_packed_logits_match_in_bf16_with_the_weights_cast_once(classifier: tuple) -> None:
    model, tokenizer = classifier
    padded, packed = padded_and_packed(scoring_copy(model, torch.bfloat16), tokenizer, "bf16")
    # bit for bit here; within about one bf16 step (1/128 near 1) on any CPU's kernels
    np.testing.assert_allclose(packed.numpy(), padded.numpy(), rtol=0, atol=1e-2)
    assert (packed.argmax(1) == padded.argmax(1)).all()


def test_only_plain_bert_classifiers_are_packed(tmp_path: Path, classifier: tuple) -> None:
    """Anything whose forward differs from a plain BERT encoder's runs its own forward."""
    model, _ = classifier
    assert packs(model)
    config = transformers.BertConfig(
        vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16,
    )  # fmt: skip
    assert not packs(transformers.BertModel(config))  # no classifier head
    chunked = transformers.BertConfig(**{**config.to_dict(), "chunk_size_feed_forward": 4})
    assert not packs(transformers.BertForSequenceClassification(chunked))
    decoder = transformers.BertConfig(**{**config.to_dict(), "is_decoder": True})
    assert not packs(transformers.BertForSequenceClassification(decoder))
    roberta = transformers.RobertaConfig(**{**config.to_dict(), "pad_token_id": 1})
    assert packed_classifier(transformers.RobertaForSequenceClassification(roberta)) is None


def test_packed_scoring_cuts_fewer_batches() -> None:
    """Padding costs nothing to a packed forward: names of every length share calls."""
    lengths = np.random.default_rng(3).integers(4, 30, size=64)
    cost = call_cost_tokens(torch.float32)  # the cheaper call: padded batches are cut most
    assert len(sorted_batches(lengths, 256, cost, padded=False)) == 1
    assert len(sorted_batches(lengths, 256, cost)) > 1
    assert len(sorted_batches(lengths, 16, cost, padded=False)) == 4  # batch size still caps


def test_the_bert_encoder_scores_packed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`bert` scoring goes through the packed forward, and gets the padded forward's
    scores."""
    from tagger_plugins.bert import packed

    from tagger_core import Tagger

    model = bf.build_tiny_bert(tmp_path / "model", hidden=32)
    tagger = Tagger.create(
        bf.taxonomy("multi-label"),
        encoder="bert",
        encoder_params={
            "model": str(model),
            "lr": 1e-2,
            "epochs": 2,
            "threads": 1,
            "precision": "fp32",
        },
    )
    tagger.train(bf.records(60, "multi-label"), bf.records(20, "multi-label", seed=1))
    encoder = tagger.encoder
    scores = encoder.logits(NAMES)
    calls: list[int] = []
    real = packed._pooled

    def counted(*args: object) -> object:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(packed, "_pooled", counted)
    np.testing.assert_array_equal(encoder.logits(NAMES), scores)
    assert calls == [1]  # one call for names of every length
    with torch.inference_mode():
        padded = encoder.model(
            **encoder.tokenizer(NAMES, padding=True, return_tensors="pt")
        ).logits.numpy()
    np.testing.assert_allclose(scores, padded, rtol=1e-5, atol=1e-6)
