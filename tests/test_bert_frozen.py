"""The frozen-feature encoder (`bert-frozen`): cached sentence vectors + a linear head."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import bert_fixtures as bf
import numpy as np
import pytest

from tagger_core import Tagger, make_encoder
from tagger_core.errors import ModelError

pytest.importorskip("torch")
pytest.importorskip("transformers")

TEXTS = ["东湖宾馆", "汉口老面馆", "光谷大公园", "江汉纪念馆", "武昌酒店餐厅", ""]


@pytest.fixture()
def tiny_bert(tmp_path: Path) -> Path:
    # Per test: one test deletes the folder to prove a saved tagger is self-contained.
    return bf.build_tiny_bert(tmp_path / "tiny-bert", hidden=32)


def frozen_tagger(
    model: Path, cache_dir: Path, mode: str = "single-label", **params: object
) -> Tagger:
    return Tagger.create(
        bf.taxonomy(mode),
        encoder="bert-frozen",
        encoder_params={"model": str(model), "cache_dir": str(cache_dir), "threads": 1, **params},
    )


def train(tagger: Tagger, mode: str = "single-label") -> Tagger:
    return tagger.train(bf.records(300, mode, seed=0), bf.records(80, mode, seed=1), seed=0)


def test_learns_and_caches(tiny_bert: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    tagger = train(frozen_tagger(tiny_bert, cache))
    metrics = tagger.training.validation_metrics
    # Random tiny BERT features still separate the toy kinds (their characters differ).
    assert metrics is not None and metrics["exact_match"] >= 0.6
    assert len(list(cache.glob("*.npy"))) == 2  # training and validation vectors


def test_cache_is_reused(tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tagger_plugins.bert import frozen

    cache = tmp_path / "cache"
    first = train(frozen_tagger(tiny_bert, cache)).scores(TEXTS).logits

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("features were recomputed instead of read from the cache")

    # Training again needs no forward pass; scoring a few new names still does.
    monkeypatch.setattr(frozen.FeatureExtractor, "compute", no_model)
    tagger = frozen_tagger(tiny_bert, cache)
    train(tagger)
    monkeypatch.undo()
    np.testing.assert_allclose(tagger.scores(TEXTS).logits, first, atol=1e-5)


def test_cache_key_depends_on_model_pooling_and_texts(tiny_bert: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    train(frozen_tagger(tiny_bert, cache))
    train(frozen_tagger(tiny_bert, cache, pooling="cls"))
    other = bf.build_tiny_bert(tmp_path / "other", hidden=32, seed=1)
    train(frozen_tagger(other, cache))
    assert len(list(cache.glob("*.npy"))) == 6


def test_cache_dir_from_environment(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGGER_FEATURE_CACHE", str(tmp_path / "env-cache"))
    tagger = Tagger.create(
        bf.taxonomy(), encoder="bert-frozen", encoder_params={"model": str(tiny_bert)}
    )
    train(tagger)
    assert len(list((tmp_path / "env-cache").glob("*.npy"))) == 2


def test_no_cache(tiny_bert: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    train(frozen_tagger(tiny_bert, cache, cache=False))
    assert not cache.exists()


def test_corrupt_cache_file_is_recomputed(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    first = train(frozen_tagger(tiny_bert, cache)).scores(TEXTS).logits
    for path in cache.glob("*.npy"):
        path.write_bytes(b"not a numpy file")
    with caplog.at_level(logging.WARNING, logger="tagger"):
        again = train(frozen_tagger(tiny_bert, cache)).scores(TEXTS).logits
    assert any("feature cache" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(again, first, atol=1e-5)


def test_saved_tagger_is_self_contained(tiny_bert: Path, tmp_path: Path) -> None:
    tagger = train(frozen_tagger(tiny_bert, tmp_path / "cache"))
    before = tagger.scores(TEXTS).logits
    folder = tagger.save(tmp_path / "tagger")
    shutil.rmtree(tiny_bert)  # the pretrained folder is gone: the tagger must not need it
    shutil.rmtree(tmp_path / "cache")
    loaded = Tagger.load(folder)
    np.testing.assert_array_equal(loaded.scores(TEXTS).logits, before)
    state = json.loads((folder / "encoder" / "tagger_bert.json").read_text(encoding="utf-8"))
    assert state["encoder"] == "bert-frozen" and state["pooling"] == "mean"


def test_multi_label_and_constant_labels(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tagger = frozen_tagger(tiny_bert, tmp_path / "cache", mode="multi-label")
    records = [r for r in bf.records(300, "multi-label", seed=0) if "museum" not in r.labels]
    with caplog.at_level(logging.WARNING, logger="tagger"):
        tagger.train(records, seed=0)
    assert any("constant score" in r.getMessage() for r in caplog.records)
    logits = tagger.scores(TEXTS).logits
    assert logits.shape == (len(TEXTS), 4)
    museum = tagger.taxonomy.label_ids.index("museum")
    assert np.all(logits[:, museum] == logits[0, museum])


def test_pooling_matters(tiny_bert: Path, tmp_path: Path) -> None:
    from tagger_plugins.bert.frozen import extractor_for
    from tagger_plugins.bert.runtime import ModelSource, load_pretrained, load_tokenizer
    from transformers import AutoModel

    source = ModelSource(str(tiny_bert), True)
    backbone = load_pretrained(AutoModel, source, "weights")
    tokenizer = load_tokenizer(source)
    vectors = {}
    for pooling in ("mean", "cls"):
        params = make_encoder("bert-frozen", {"pooling": pooling}).params
        vectors[pooling] = extractor_for(params, backbone, tokenizer, 64, strict=True).compute(
            TEXTS
        )
    assert vectors["mean"].shape == vectors["cls"].shape == (len(TEXTS), 32)
    assert not np.allclose(vectors["mean"], vectors["cls"])


def test_bf16_features_cast_the_backbone_once_and_match_autocast(tiny_bert: Path) -> None:
    """In bf16 the extractor runs a copy of the backbone with its linear weights cast once:
    the vectors are autocast's, bit for bit, and the backbone (fingerprint, ONNX export)
    keeps its fp32 weights."""
    import torch
    from tagger_plugins.bert.frozen import extractor_for
    from tagger_plugins.bert.runtime import (
        ModelSource,
        load_pretrained,
        load_tokenizer,
        run_sorted,
        tokenize,
    )
    from transformers import AutoModel

    source = ModelSource(str(tiny_bert), True)
    params = make_encoder("bert-frozen", {"precision": "bf16"}).params
    extractor = extractor_for(
        params, load_pretrained(AutoModel, source, "weights"), load_tokenizer(source), 64,
        strict=True,
    )  # fmt: skip
    vectors = extractor.compute(TEXTS)
    backbone = extractor.backbone
    encoded = tokenize(extractor.tokenizer, TEXTS, 64)
    expected = run_sorted(
        encoded, 256, extractor.tokenizer.pad_token_id, torch.device("cpu"), torch.bfloat16,
        lambda ids, mask: extractor.pool(backbone, ids, mask),
    )  # fmt: skip
    np.testing.assert_array_equal(vectors, expected)
    assert {p.dtype for p in backbone.parameters()} == {torch.float32}
    cast = [m.weight.dtype for m in extractor._scorer.modules() if isinstance(m, torch.nn.Linear)]
    assert cast and set(cast) == {torch.bfloat16}


def test_untrained_and_corrupt(tmp_path: Path) -> None:
    encoder = make_encoder("bert-frozen")
    with pytest.raises(ModelError, match="not trained"):
        encoder.logits(["x"])
    with pytest.raises(ModelError, match=r"tagger_bert\.json"):
        encoder.load(tmp_path, bf.taxonomy())
