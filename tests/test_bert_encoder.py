"""The fine-tuning BERT encoder (`bert`), offline, with a tiny BERT built at test time."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import bert_fixtures as bf
import numpy as np
import pytest

from tagger_core import Tagger, make_encoder
from tagger_core.errors import ModelError, PluginError
from tagger_core.scores import Scores
from tagger_core.taxonomy import label_matrix

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# Settings under which the tiny model learns the toy data in a second or two.
FAST = {"lr": 1e-2, "epochs": 6, "batch_size": 16, "patience": 0, "threads": 1}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bf.build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny_bert32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bf.build_tiny_bert(tmp_path_factory.mktemp("tiny-bert32"), hidden=32)


def train_tagger(
    model: Path, mode: str = "single-label", seed: int = 0, n: int = 300, **params: object
) -> Tagger:
    tagger = Tagger.create(
        bf.taxonomy(mode), encoder="bert", encoder_params={"model": str(model), **FAST, **params}
    )
    return tagger.train(bf.records(n, mode, seed=0), bf.records(80, mode, seed=1), seed=seed)


@pytest.fixture(scope="module")
def single(tiny_bert: Path) -> Tagger:
    return train_tagger(tiny_bert)


@pytest.fixture(scope="module")
def multi(tiny_bert32: Path) -> Tagger:
    return train_tagger(tiny_bert32, "multi-label", epochs=10)


TEXTS = ["东湖宾馆", "汉口老面馆", "光谷大公园", "江汉纪念馆", "武昌酒店餐厅", "沙湖"]


# -- parameters and registration ------------------------------------------------------------


def test_registered_with_documented_defaults() -> None:
    from tagger_core import registry

    encoders = registry.encoders()
    assert {"bert", "bert-frozen"} <= set(encoders.names())
    bert = make_encoder("bert")
    assert bert.params_dict()["model"] == "bert-base-chinese"
    assert bert.params_dict()["lr"] is None  # resolved from the model's depth at fit time
    assert encoders.get("bert").description


@pytest.mark.parametrize(
    "params",
    [{"epochs": 0}, {"lr": -1}, {"device": "gpu"}, {"metric": "accuracy"}, {"nope": 1}],
)
def test_bad_params_are_one_line_errors(params: dict[str, object]) -> None:
    with pytest.raises(PluginError, match="encoder 'bert': parameter"):
        make_encoder("bert", params)


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tagger_core.cli import cli\n"
        "r = CliRunner().invoke(cli, ['plugins'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'bert-frozen' in r.output, r.output\n"
        "import tagger_plugins.bert\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- training, saving, loading --------------------------------------------------------------


def test_learns_single_label(single: Tagger) -> None:
    metrics = single.training.validation_metrics
    assert metrics is not None and metrics["exact_match"] >= 0.9
    predictions = single.predict(["东湖宾馆", "光谷大公园"])
    assert [p.labels for p in predictions] == [["hotel"], ["park"]]


def test_learns_multi_label(multi: Tagger) -> None:
    metrics = multi.training.validation_metrics
    assert metrics is not None and metrics["micro_f1"] >= 0.5


def test_history_and_summary(single: Tagger) -> None:
    encoder = single.encoder
    assert len(encoder.history) == FAST["epochs"]
    first = encoder.history[0]
    assert {"train_loss", "valid_loss", "valid_exact_match", "valid_micro_f1"} <= set(first)
    summary = encoder.summary
    assert summary["lr"] == FAST["lr"] and summary["world_size"] == 1
    assert summary["device"] == "cpu" and summary["precision"] == "fp32"
    assert summary["padding_share"] < 0.1  # length-grouped batches: almost no padding


@pytest.mark.parametrize("which", ["single", "multi"])
def test_save_load_gives_identical_scores(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    tagger: Tagger = request.getfixturevalue(which)
    before = tagger.scores(TEXTS).logits
    loaded = Tagger.load(tagger.save(tmp_path / "tagger"))
    after = loaded.scores(TEXTS).logits
    assert np.array_equal(before, after)
    assert loaded.encoder.summary == tagger.encoder.summary


@pytest.mark.parametrize(
    ("which", "problem_type"),
    [("single", "single_label_classification"), ("multi", "multi_label_classification")],
)
def test_saved_folder_is_a_transformers_model(
    which: str, problem_type: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`pipeline("text-classification", top_k=None)` on <tagger>/encoder gives softmax for
    single-label and sigmoid for multi-label: the same probabilities as the tagger."""
    tagger: Tagger = request.getfixturevalue(which)
    folder = tagger.save(tmp_path / "tagger") / "encoder"
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["problem_type"] == problem_type
    ids = tagger.taxonomy.label_ids
    assert config["id2label"] == {str(i): label for i, label in enumerate(ids)}
    assert config["label2id"] == {label: i for i, label in enumerate(ids)}

    from transformers import pipeline

    classify = pipeline("text-classification", model=str(folder), top_k=None, device="cpu")
    outputs = classify(TEXTS)
    probabilities = tagger.scores(TEXTS).probabilities
    for output, expected in zip(outputs, probabilities, strict=True):
        got = {item["label"]: item["score"] for item in output}
        assert list(got) != [] and set(got) == set(ids)
        np.testing.assert_allclose([got[label] for label in ids], expected, atol=1e-5)
    sums = probabilities.sum(axis=1)
    if problem_type == "single_label_classification":
        np.testing.assert_allclose(sums, 1.0, atol=1e-6)


def test_same_seed_same_model_other_seed_other_model(tiny_bert: Path) -> None:
    params = {"epochs": 2, "n": 64}
    a = train_tagger(tiny_bert, seed=3, **params).scores(TEXTS).logits
    b = train_tagger(tiny_bert, seed=3, **params).scores(TEXTS).logits
    c = train_tagger(tiny_bert, seed=4, **params).scores(TEXTS).logits
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("freeze", [False, True])
def test_freeze_embeddings_keeps_the_pretrained_word_embedding(
    tiny_bert: Path, freeze: bool
) -> None:
    from transformers import AutoModel

    pretrained = AutoModel.from_pretrained(tiny_bert)
    tagger = train_tagger(tiny_bert, epochs=2, n=64, freeze_embeddings=freeze)
    model = tagger.encoder.model  # type: ignore[attr-defined]
    words = model.get_input_embeddings().weight.detach()
    positions = model.base_model.embeddings.position_embeddings.weight.detach()
    assert torch.equal(words, pretrained.get_input_embeddings().weight.detach()) is freeze
    # everything else still learns
    assert not torch.equal(positions, pretrained.embeddings.position_embeddings.weight.detach())


def test_scoring_is_deterministic_after_the_model_was_put_in_training_mode(
    single: Tagger,
) -> None:
    before = single.scores(TEXTS).logits
    model = single.encoder.model  # type: ignore[attr-defined]
    model.train()  # dropout on, as a training step leaves it
    try:
        assert np.array_equal(single.scores(TEXTS).logits, before)
        assert not model.training
    finally:
        model.eval()


def test_scores_keep_input_order_and_do_not_depend_on_batching(single: Tagger) -> None:
    texts = [*TEXTS, "汉口大面馆面馆面馆", "光", ""]
    logits = single.encoder.logits(texts)
    order = np.random.default_rng(0).permutation(len(texts))
    shuffled = single.encoder.logits([texts[i] for i in order])
    np.testing.assert_array_equal(shuffled, logits[order])
    single.encoder.params.eval_batch_size = 1
    try:
        one_by_one = single.encoder.logits(texts)
    finally:
        single.encoder.params.eval_batch_size = 256
    np.testing.assert_allclose(one_by_one, logits, atol=1e-5)
    assert single.encoder.logits([]).shape == (0, 4)


# -- early stopping, best epoch, logit dumps ------------------------------------------------


def test_early_stopping_stops_after_patience(tiny_bert: Path) -> None:
    # A learning rate this small changes nothing: no epoch beats the first.
    tagger = train_tagger(tiny_bert, lr=1e-9, epochs=10, patience=2, n=32)
    summary = tagger.encoder.summary
    assert summary["stopped_early"] is True
    assert summary["best_epoch"] == 1 and summary["epochs_run"] == 3


def test_early_stopping_watches_the_training_objective_unless_a_metric_is_named(
    tiny_bert: Path,
) -> None:
    def trained(objective: str | None, **params: object) -> Tagger:
        tagger = Tagger.create(
            bf.taxonomy("multi-label"),
            encoder="bert",
            encoder_params={"model": str(tiny_bert), **FAST, "epochs": 4, **params},
        )
        train, valid = bf.records(64, "multi-label"), bf.records(40, "multi-label", seed=1)
        return tagger.train(train, valid, objective=objective)

    assert trained(None).encoder.summary["metric"] == "micro_f1"
    assert trained("macro_f1").encoder.summary["metric"] == "macro_f1"
    assert trained("macro_f1", metric="loss").encoder.summary["metric"] == "loss"
    # a figure where lower is better: the restored epoch has the fewest wrong label calls
    losses = trained("hamming_loss", lr=3e-2)
    summary, history = losses.encoder.summary, losses.encoder.history
    assert summary["metric"] == "hamming_loss"
    figures = [entry["valid_hamming_loss"] for entry in history]
    assert len(set(figures)) > 1  # the epochs differ, so the choice means something
    assert figures[summary["best_epoch"] - 1] == min(figures)


def test_a_later_training_without_an_objective_stops_on_micro_f1(tiny_bert: Path) -> None:
    tagger = Tagger.create(
        bf.taxonomy("multi-label"),
        encoder="bert",
        encoder_params={"model": str(tiny_bert), **FAST, "epochs": 1},
    )
    train, valid = bf.records(64, "multi-label", seed=0), bf.records(32, "multi-label", seed=1)
    tagger.train(train, valid, objective="macro_f1")
    assert tagger.encoder.summary["metric"] == "macro_f1"
    tagger.train(train, valid)  # the same tagger again, no objective named
    assert tagger.encoder.objective is None
    assert tagger.encoder.summary["metric"] == "micro_f1"


def test_a_seed_outside_what_the_generators_take_is_one_line(tiny_bert: Path, runner) -> None:
    from tagger_core.cli import cli
    from tagger_core.errors import TaggerError

    tagger = Tagger.create(bf.taxonomy(), encoder="bert", encoder_params={"model": str(tiny_bert)})
    with pytest.raises(TaggerError, match="seed -1: give a whole number from 0"):
        tagger.train(bf.records(8), seed=-1)
    refused = runner.invoke(cli, ["train", "--taxonomy", "x", "--train", "y", "--seed", "-1"])
    assert refused.exit_code == 2 and "0<=x<=4294967295" in refused.output


def test_the_automatic_schedule_is_set_in_updates() -> None:
    from tagger_plugins.bert import BertEncoder
    from tagger_plugins.bert.finetune import plan_schedule

    auto = BertEncoder.Params()
    # 300 names, batch 32: 10 updates an epoch; 600 updates need 60 epochs, validated
    # about 10 times, so patience counts passes, not epochs.
    small = plan_schedule(auto, 10)
    assert (small.epochs, small.validate_every, small.steps) == (60, 6, 600)
    assert [e for e in range(1, 61) if small.validates_after(e)] == list(range(6, 61, 6))
    # 20,000 names: the epoch cap of large sets, a pass after each epoch.
    large = plan_schedule(auto, 625)
    assert (large.epochs, large.validate_every) == (8, 1)
    # An odd count still ends on a validation pass.
    odd = plan_schedule(BertEncoder.Params(min_steps=130), 2)
    assert odd.epochs == 65 and odd.validate_every == 6 and odd.validates_after(65)
    # Epochs given: exactly those, a pass after each (the old meaning).
    fixed = plan_schedule(BertEncoder.Params(epochs=3), 10)
    assert (fixed.epochs, fixed.validate_every) == (3, 1)


def test_automatic_schedule_validates_every_few_epochs_and_stops_in_passes(
    tiny_bert: Path,
) -> None:
    # 32 names in batches of 16: 2 updates an epoch, 40 updates → 20 epochs, a validation
    # pass every 2 epochs; nothing beats the first pass at this rate, so 2 more end it.
    tagger = train_tagger(
        tiny_bert, lr=1e-9, epochs=None, min_steps=40, validations=10, patience=2, n=32
    )
    summary = tagger.encoder.summary
    assert summary["epochs_planned"] == 20 and summary["steps_planned"] == 40
    assert [e["epoch"] for e in tagger.encoder.history] == [2, 4, 6]
    assert summary["stopped_early"] is True
    assert summary["best_epoch"] == 2 and summary["epochs_run"] == 6


def test_best_epoch_is_restored_and_dumps_match(tiny_bert: Path, tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    tagger = train_tagger(
        tiny_bert, lr=3e-2, epochs=6, patience=2, metric="loss", dump_logits=str(dumps)
    )
    summary = tagger.encoder.summary
    best = summary["best_epoch"]
    losses = [e["valid_loss"] for e in tagger.encoder.history]
    assert best == 1 + int(np.argmin(losses))
    files = sorted(p.name for p in dumps.iterdir())
    runs = summary["epochs_run"]
    assert files == sorted(
        [f"epoch{e:02d}_train.json" for e in range(1, runs + 1)]
        + [f"epoch{e:02d}_valid.json" for e in range(1, runs + 1)]
    )
    valid = bf.records(80, "single-label", seed=1)
    dumped = json.loads((dumps / f"epoch{best:02d}_valid.json").read_text(encoding="utf-8"))
    final = tagger.encoder.logits([r.text for r in valid])
    np.testing.assert_allclose([row["logits"] for row in dumped], final, atol=1e-6)


def test_dump_format_is_the_notebooks(tiny_bert: Path, tmp_path: Path) -> None:
    tagger = train_tagger(tiny_bert, epochs=1, dump_logits=str(tmp_path))
    train = bf.records(300, "single-label", seed=0)
    rows = json.loads((tmp_path / "epoch01_train.json").read_text(encoding="utf-8"))
    assert len(rows) == len(train)
    ids = tagger.taxonomy.label_ids
    for row, record in zip(rows, train, strict=True):
        assert set(row) == {"logits", "labels"}
        assert len(row["logits"]) == len(ids)
        assert row["labels"] == [1.0 if label in record.labels else 0.0 for label in ids]


# -- the pieces -----------------------------------------------------------------------------


def test_length_grouped_batches_cover_every_row_once() -> None:
    from tagger_plugins.bert.runtime import (
        length_grouped_batches,
        padding_share,
        shard_batches,
    )

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 40, size=1003)
    batches = length_grouped_batches(lengths, 32, np.random.default_rng(1))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1003))
    assert len(batches) == -(-1003 // 32)
    random_batches = [rows_ for rows_ in np.array_split(rng.permutation(1003), len(batches))]
    assert padding_share(lengths, batches) < padding_share(lengths, random_batches) / 3
    shards = [shard_batches(batches, rank, 3) for rank in range(3)]
    assert len({len(s) for s in shards}) == 1  # every process takes as many steps
    covered = np.concatenate([b for s in shards for b in s])
    assert set(covered.tolist()) == set(range(1003))


@pytest.mark.parametrize("mode", ["single-label", "multi-label"])
def test_new_head_starts_at_the_label_priors(tiny_bert: Path, mode: str) -> None:
    tagger = train_tagger(tiny_bert, mode, lr=1e-9, epochs=1, n=200)
    targets = np.array(
        [[label in r.labels for label in bf.KINDS] for r in bf.records(200, mode, seed=0)]
    )
    frequency = targets.mean(axis=0)
    bias = tagger.encoder.model.classifier.bias.detach().numpy()
    if mode == "multi-label":
        np.testing.assert_allclose(1 / (1 + np.exp(-bias)), frequency, atol=0.01)
    else:
        np.testing.assert_allclose(np.exp(bias) / np.exp(bias).sum(), frequency, atol=0.01)


def test_inference_batches_are_sorted_and_barely_padded() -> None:
    from tagger_plugins.bert.runtime import padding_share, sorted_batches

    lengths = np.random.default_rng(0).integers(5, 60, size=777)
    batches = sorted_batches(lengths, 64)
    assert sorted(np.concatenate(batches).tolist()) == list(range(777))
    for batch in batches:
        assert len(batch) <= 64
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= 64 * 32
    assert padding_share(lengths, batches) < 0.05
    flat = np.concatenate(batches)
    assert np.all(np.diff(lengths[flat]) <= 0)  # longest first


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_inference_batches_weigh_padding_against_calls_exactly(dtype: torch.dtype | None) -> None:
    """The split is the cheapest of all splits of the sorted order (brute force on small
    inputs), counting each call's fixed cost for the precision: a server's 35 names of
    every length are a few calls, not one per length."""
    import itertools

    from tagger_plugins.bert.runtime import call_cost_tokens, sorted_batches

    call_cost = call_cost_tokens(dtype)

    def cost(lengths: np.ndarray, batches: list[np.ndarray]) -> int:
        return sum(call_cost + len(b) * int(lengths[b].max()) for b in batches)

    rng = np.random.default_rng(1)
    for _ in range(30):
        lengths = rng.integers(2, 200, size=int(rng.integers(1, 9)))
        ordered = np.argsort(-lengths, kind="stable")
        cheapest = min(
            cost(lengths, [ordered[a:b] for a, b in itertools.pairwise((0, *cuts, len(ordered)))])
            for k in range(len(ordered))
            for cuts in itertools.combinations(range(1, len(ordered)), k)
        )
        assert cost(lengths, sorted_batches(lengths, 256, call_cost)) == cheapest
    names = rng.integers(3, 25, size=35)  # POI names' token counts
    assert len(sorted_batches(names, 256, call_cost)) <= 4


def test_bf16_scoring_cuts_fewer_larger_batches() -> None:
    """bf16 products need large tiles: a call's fixed cost weighs more, so a server's 64
    names of every length become fewer calls than in fp32 (bench/inference_batches.py)."""
    from tagger_plugins.bert.runtime import call_cost_tokens, sorted_batches

    names = np.random.default_rng(2).integers(4, 30, size=64)
    fp32 = sorted_batches(names, 256, call_cost_tokens(torch.float32))
    bf16 = sorted_batches(names, 256, call_cost_tokens(torch.bfloat16))
    assert call_cost_tokens(None) == call_cost_tokens(torch.float32)
    assert len(bf16) < len(fp32)


def test_label_weights() -> None:
    from tagger_plugins.bert.finetune import label_weights

    targets = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 0, 0]], dtype=np.float32)
    assert label_weights(targets, "multi-label", "none") is None
    balanced = label_weights(targets, "multi-label", "balanced")
    np.testing.assert_allclose(balanced, [0.01, 3.0, 1.0])  # 0/4 → capped; absent → 1
    np.testing.assert_allclose(label_weights(targets, "multi-label", "sqrt"), [0.01, 3**0.5, 1])
    single = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    np.testing.assert_allclose(label_weights(single, "single-label", "balanced"), [4 / 6, 2.0])


def test_label_weights_train(tiny_bert: Path) -> None:
    tagger = train_tagger(tiny_bert, epochs=1, n=64, label_weights="balanced")
    assert tagger.scores(TEXTS).logits.shape == (len(TEXTS), 4)


def test_truncation_is_reported(tiny_bert: Path, caplog: pytest.LogCaptureFixture) -> None:
    tagger = Tagger.create(
        bf.taxonomy(),
        encoder="bert",
        encoder_params={"model": str(tiny_bert), **FAST, "epochs": 1, "max_length": 6},
    )
    with caplog.at_level(logging.WARNING, logger="tagger"):
        tagger.train(bf.records(50), seed=0)
    assert any("truncated" in r.getMessage() for r in caplog.records)


# -- errors a user can fix ------------------------------------------------------------------


def test_missing_model_folder(tmp_path: Path) -> None:
    tagger = Tagger.create(
        bf.taxonomy(), encoder="bert", encoder_params={"model": str(tmp_path / "nope")}
    )
    with pytest.raises(PluginError, match="does not exist"):
        tagger.train(bf.records(10), seed=0)


def test_folder_without_config(tmp_path: Path) -> None:
    tagger = Tagger.create(bf.taxonomy(), encoder="bert", encoder_params={"model": str(tmp_path)})
    with pytest.raises(PluginError, match=r"no config\.json"):
        tagger.train(bf.records(10), seed=0)


def test_hub_id_offline_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # nothing cached there
    tagger = Tagger.create(bf.taxonomy(), encoder="bert")  # default bert-base-chinese
    with pytest.raises(PluginError, match=r"bert-base-chinese.*offline"):
        tagger.train(bf.records(10), seed=0)


def test_hub_unreachable_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tagger_plugins.bert import runtime

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(runtime, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(PluginError, match="cannot be reached"):
        runtime.resolve_model("someone/some-model")


def test_max_length_beyond_positions(tiny_bert: Path) -> None:
    tagger = Tagger.create(
        bf.taxonomy(), encoder="bert", encoder_params={"model": str(tiny_bert), "max_length": 100}
    )
    with pytest.raises(PluginError, match="64 positions"):
        tagger.train(bf.records(10), seed=0)
    # Left at its default (128), max_length drops to what the tiny model supports.
    tagger = train_tagger(tiny_bert, epochs=1, n=16)
    assert tagger.encoder.summary["max_length"] == 64


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device(tiny_bert: Path, single: Tagger, tmp_path: Path) -> None:
    tagger = Tagger.create(
        bf.taxonomy(), encoder="bert", encoder_params={"model": str(tiny_bert), "device": "cuda"}
    )
    with pytest.raises(PluginError, match="device 'cuda' is not available"):
        tagger.train(bf.records(10), seed=0)
    # A tagger trained elsewhere on a GPU still loads here, on the CPU, with a warning.
    folder = single.save(tmp_path / "tagger")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["encoder"]["params"]["device"] = "cuda"
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    loaded = Tagger.load(folder)
    assert str(loaded.encoder.device) == "cpu"


def test_loading_with_another_taxonomy_fails(single: Tagger, tmp_path: Path) -> None:
    from tagger_core.schemas import Label, Taxonomy

    folder = single.save(tmp_path / "tagger") / "encoder"
    encoder = make_encoder("bert")
    other = Taxonomy(name="other", mode="single-label", labels=[Label(id="a"), Label(id="b")])
    with pytest.raises(ModelError, match="do not match"):
        encoder.load(folder, other)
    multi_taxonomy = bf.taxonomy("multi-label")
    with pytest.raises(ModelError, match="multi-label"):
        encoder.load(folder, multi_taxonomy)


def test_untrained_encoder() -> None:
    with pytest.raises(ModelError, match="not trained"):
        make_encoder("bert").logits(["x"])


# -- through the command line ---------------------------------------------------------------


def write_json(path: Path, records: list) -> Path:
    rows = [{"text": r.text, "label": list(r.labels)} for r in records]
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def cli_train_args(
    tiny_bert: Path, folder: Path, n_train: int, n_valid: int, params: dict[str, object]
) -> list[str]:
    """`tagger train` arguments: toy taxonomy and data written to folder, output folder/tagger."""
    taxonomy = folder / "toy.json"
    taxonomy.write_text(bf.taxonomy().model_dump_json(), encoding="utf-8")
    train = write_json(folder / "train.json", bf.records(n_train, seed=0))
    valid = write_json(folder / "valid.json", bf.records(n_valid, seed=1))
    args = ["train", "--taxonomy", str(taxonomy), "--train", str(train), "--valid", str(valid)]
    args += ["--encoder", "bert", "--model", str(tiny_bert), "-o", str(folder / "tagger")]
    for key, value in params.items():
        args += ["-p", f"{key}={value}"]
    return args


def test_cli_train_predict_evaluate(tiny_bert: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tagger_core.cli import cli

    out, valid = tmp_path / "tagger", tmp_path / "valid.json"
    runner = CliRunner()
    train_args = [*cli_train_args(tiny_bert, tmp_path, 300, 80, FAST), "--objective", "macro_f1"]
    result = runner.invoke(cli, train_args)
    assert result.exit_code == 0, result.output
    assert (out / "encoder" / "model.safetensors").is_file()
    state = json.loads((out / "encoder" / "tagger_bert.json").read_text(encoding="utf-8"))
    assert state["training"]["metric"] == "macro_f1"  # early stopping watched the objective
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["encoder"]["params"]["model"] == str(tiny_bert)
    result = runner.invoke(cli, ["predict", str(out), "东湖宾馆", "光谷大公园"])
    assert result.exit_code == 0, result.output
    assert "hotel" in result.output and "park" in result.output
    result = runner.invoke(cli, ["evaluate", str(out), str(valid)])
    assert result.exit_code == 0, result.output


def test_cli_model_option_conflicting_with_param(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tagger_core.cli import cli

    train = write_json(tmp_path / "train.json", bf.records(20))
    args = ["train", "--taxonomy", "attractions", "--train", str(train), "--encoder", "bert"]
    args += ["--model", "a", "-p", "model=b", "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: --model and -p model=… name different models; give one"
    )
    assert not (tmp_path / "out").exists()


def test_cli_bad_model_is_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tagger_core.cli import cli

    taxonomy = tmp_path / "toy.json"
    taxonomy.write_text(bf.taxonomy().model_dump_json(), encoding="utf-8")
    train = write_json(tmp_path / "train.json", bf.records(20))
    args = ["train", "--taxonomy", str(taxonomy), "--train", str(train), "--encoder", "bert"]
    args += ["-p", f"model={tmp_path / 'missing'}", "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error:") and "does not exist" in last
    assert "Traceback" not in result.output


def test_scores_activation_matches_mode(single: Tagger, multi: Tagger) -> None:
    assert isinstance(single.scores(TEXTS), Scores)
    np.testing.assert_allclose(single.scores(TEXTS).probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert multi.scores(TEXTS).mode == "multi-label"


def test_bf16_autocast_runs_and_keeps_fp32_weights(tiny_bert: Path, tmp_path: Path) -> None:
    """precision=bf16 trains and scores under autocast (forced here, whatever the CPU);
    scores come back as float32, and the master weights, the optimizer's state and the
    saved transformers folder stay fp32, so the tagger loads anywhere."""
    from safetensors import safe_open

    tagger = train_tagger(tiny_bert, epochs=1, n=64, precision="bf16")
    assert tagger.encoder.summary["precision"] == "bf16"
    logits = tagger.encoder.logits(TEXTS)
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
    assert {p.dtype for p in tagger.encoder.model.parameters()} == {torch.float32}
    tagger.save(tmp_path / "saved")
    with safe_open(str(tmp_path / "saved/encoder/model.safetensors"), framework="pt") as f:
        dtypes = {f.get_slice(name).get_dtype() for name in f.keys()}  # noqa: SIM118
    assert dtypes == {"F32"}
    reloaded = Tagger.load(tmp_path / "saved")
    np.testing.assert_allclose(reloaded.encoder.logits(TEXTS), logits, atol=1e-5)


def test_a_checkpoint_stored_in_bf16_trains_and_saves_in_fp32(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """transformers 5 loads weights in their stored dtype: a bf16 checkpoint would train
    in bf16 (updates lost to rounding) and be saved so, whatever `precision` says."""
    import shutil

    from safetensors import safe_open
    from transformers import BertModel

    stored = tmp_path / "bf16-checkpoint"
    shutil.copytree(tiny_bert, stored)
    BertModel.from_pretrained(tiny_bert).to(torch.bfloat16).save_pretrained(stored)
    with safe_open(str(stored / "model.safetensors"), framework="pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}  # noqa: SIM118
    tagger = train_tagger(stored, epochs=1, n=64, precision="fp32")
    assert {p.dtype for p in tagger.encoder.model.parameters()} == {torch.float32}
    tagger.save(tmp_path / "saved")
    with safe_open(str(tmp_path / "saved/encoder/model.safetensors"), framework="pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}  # noqa: SIM118
    for encoder in ("bert-frozen", "embedding"):
        other = make_encoder(encoder, {"model": str(stored), "threads": 1})
        if encoder == "bert-frozen":
            other.fit(
                ["东湖宾馆", "汉口老面馆"], np.array([[1, 0], [0, 1]]), bf.taxonomy("multi-label")
            )
        else:
            other.fit([], np.zeros((0, 2)), bf.taxonomy("multi-label"))
        backbone = getattr(other, "backbone", None) or other.extractor.backbone
        assert {p.dtype for p in backbone.parameters()} == {torch.float32}, encoder


def autocast_logits(encoder: Any, texts: list[str]) -> np.ndarray:
    """Scores the way they were computed before the scoring copy: the fp32 model under
    bf16 autocast, which casts every weight on the call."""
    from tagger_plugins.bert.runtime import run_sorted, tokenize

    model, pad = encoder.model, encoder.tokenizer.pad_token_id
    encoded = tokenize(encoder.tokenizer, texts, encoder.max_length)
    return run_sorted(
        encoded, 256, pad, torch.device("cpu"), torch.bfloat16,
        lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits,
    )  # fmt: skip


def test_bf16_scoring_casts_the_weights_once_and_scores_as_autocast_did(tiny_bert: Path) -> None:
    """Scoring in bf16 runs a copy whose linear weights are cast once, sharing every other
    tensor with the fp32 model: the same numbers, bit for bit, as autocast casting them on
    each call; a model that fit replaces gets a new copy."""
    tagger = train_tagger(tiny_bert, precision="bf16")
    encoder = tagger.encoder
    assert len({tuple(row) for row in encoder.logits(TEXTS)}) >= 4  # the names differ
    np.testing.assert_array_equal(encoder.logits(TEXTS), autocast_logits(encoder, TEXTS))
    scorer = encoder._scorer(torch.bfloat16)
    assert encoder._scorer(torch.bfloat16) is scorer  # built once, kept between calls
    linear = [m for m in scorer.modules() if isinstance(m, torch.nn.Linear)]
    assert linear and {p.dtype for m in linear for p in m.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in encoder.model.parameters()} == {torch.float32}
    model_tensors = {p.data_ptr() for p in encoder.model.parameters()}
    others = [p for n, p in scorer.named_parameters() if "embeddings" in n or "LayerNorm" in n]
    assert others and all(p.data_ptr() in model_tensors for p in others)  # shared, not copied

    before = encoder.logits(TEXTS)
    encoder.fit(
        [r.text for r in bf.records(100, seed=3)],
        label_matrix(bf.records(100, seed=3), tagger.taxonomy),
        tagger.taxonomy,
        seed=5,
    )
    after = encoder.logits(TEXTS)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, autocast_logits(encoder, TEXTS))
    assert encoder._scorer(torch.bfloat16) is not scorer


def test_threads_option_is_scoped(single: Tagger) -> None:
    before = torch.get_num_threads()
    single.encoder.logits(TEXTS)  # threads=1 while scoring
    assert torch.get_num_threads() == before


def test_default_learning_rate_follows_depth() -> None:
    from tagger_plugins.bert.finetune import default_lr
    from transformers import BertConfig

    assert default_lr(BertConfig(num_hidden_layers=4)) == 2e-4  # m3e-small
    assert default_lr(BertConfig(num_hidden_layers=12)) == 5e-5  # bert-base-chinese


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_follows_the_cpus_bf16_support(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    """`auto` is bf16 exactly on CPUs with AVX-512 BF16 or AMX (torch's feature check,
    mocked both ways); fp32 and bf16 are obeyed everywhere."""
    from tagger_plugins.bert.runtime import autocast_dtype, cpu_has_native_bf16

    monkeypatch.delenv("TAGGER_CPU_BF16")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native)
    cpu = torch.device("cpu")
    assert cpu_has_native_bf16() is native
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if native else None)
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert autocast_dtype("auto", cpu) == torch.bfloat16
    # The operator's override wins over the detection, both ways.
    monkeypatch.setenv("TAGGER_CPU_BF16", "1" if not native else "0")
    assert cpu_has_native_bf16() is not native
    # Anything else is a mistake said in one line, not silently ignored.
    monkeypatch.setenv("TAGGER_CPU_BF16", "true")
    with pytest.raises(PluginError, match=r"TAGGER_CPU_BF16 is 0 .* not 'true'"):
        cpu_has_native_bf16()
    # A torch without these checks (older or newer) is taken as having no native bf16.
    monkeypatch.delenv("TAGGER_CPU_BF16")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert cpu_has_native_bf16() is False and autocast_dtype("auto", cpu) is None


@pytest.mark.parametrize("native", [True, False])
def test_a_default_fine_tune_trains_in_the_precision_the_cpu_supports(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    monkeypatch.setenv("TAGGER_CPU_BF16", "1" if native else "0")
    tagger = train_tagger(tiny_bert, epochs=1, n=32)
    assert tagger.encoder.summary["precision"] == ("bf16" if native else "fp32")


@pytest.mark.parametrize("bar", [True, False])
def test_cli_train_shows_progress_with_loss_and_epoch_metrics(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bar: bool
) -> None:
    from click.testing import CliRunner

    from tagger_core.cli import cli

    # The bar shows on a terminal only, unless forced; the epoch lines show either way.
    monkeypatch.setenv("TAGGER_PROGRESS", "1" if bar else "0")
    params = {**FAST, "epochs": 2, "patience": 0}
    result = CliRunner().invoke(cli, cli_train_args(tiny_bert, tmp_path, 120, 40, params))
    assert result.exit_code == 0, result.output
    assert ("fine-tuning" in result.stderr and "loss=" in result.stderr) == bar
    lines = [x for x in result.stderr.splitlines() if x.startswith("epoch ")]
    assert [x.split(":")[0] for x in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("train loss" in x and "valid loss" in x and "exact match" in x for x in lines)
    assert "fine-tuning" not in result.stdout and "epoch 1/2" not in result.stdout


def test_scoring_many_names_shows_a_bar(
    single: Tagger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tagger evaluate` on thousands of names is not silent: scoring has its own bar once
    the names fill more than one batch."""
    monkeypatch.setenv("TAGGER_PROGRESS", "1")
    records = bf.records(300, seed=3)  # more than eval_batch_size (256)
    single.evaluate(records)
    err = capsys.readouterr().err
    assert "bert: scoring" in err and "300/300" in err
    single.predict(TEXTS)  # one batch: no bar
    assert "bert: scoring" not in capsys.readouterr().err


# -- a tokenizer that keeps case in front of a lowercase vocabulary -------------------------

ENGLISH_KINDS = {
    "hotel": ["Hotel", "Inn"],
    "food": ["Restaurant", "Diner"],
    "park": ["Park", "Garden"],
    "museum": ["Museum", "Gallery"],
}
ENGLISH_PLACES = ["East", "Lake", "North", "River", "Old", "Grand"]
ENGLISH_WORDS = sorted(
    {w.lower() for ws in ENGLISH_KINDS.values() for w in ws} | {p.lower() for p in ENGLISH_PLACES}
)


def english_records(n: int, seed: int) -> list:
    """Capitalised English names ("North Lake Garden" → park), as TripAdvisor's are."""
    import random

    from tagger_core import Record

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.choice(list(ENGLISH_KINDS))
        name = f"{rng.choice(ENGLISH_PLACES)} {rng.choice(ENGLISH_PLACES)} "
        out.append(Record(text=name + rng.choice(ENGLISH_KINDS[kind]), labels=(kind,)))
    return out


@pytest.fixture(scope="module")
def cased_over_uncased(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """m3e-small's case: a lowercase vocabulary whose tokenizer says do_lower_case=false."""
    folder = tmp_path_factory.mktemp("cased-over-uncased")
    return bf.build_tiny_bert(folder, hidden=32, words=ENGLISH_WORDS, do_lower_case=False)


def test_a_cased_tokenizer_over_a_lowercase_vocabulary_is_made_to_lowercase(
    cased_over_uncased: Path, tmp_path: Path
) -> None:
    from tagger_plugins.bert.runtime import ModelSource, load_tokenizer

    source = ModelSource(str(cased_over_uncased), True)
    assert load_tokenizer(source).tokenize("East Lake Park") == ["[UNK]"] * 3
    fixed = load_tokenizer(source, match_vocabulary_case=True)
    assert fixed.tokenize("East Lake Park") == ["east", "lake", "park"]
    # A vocabulary with capitals is cased on purpose: its tokenizer is left alone.
    cased = bf.build_tiny_bert(
        tmp_path / "cased", words=[*ENGLISH_WORDS, "Park"], do_lower_case=False
    )
    kept = load_tokenizer(ModelSource(str(cased), True), match_vocabulary_case=True)
    assert kept.tokenize("Park park") == ["Park", "park"]


def test_training_learns_capitalised_names_and_saved_taggers_keep_their_tokenizer(
    cased_over_uncased: Path, tmp_path: Path
) -> None:
    """Before the fix every capitalised word was [UNK] and nothing could be learnt; the
    trained tagger saves the lowercasing tokenizer, and a tagger saved with a case-keeping
    one (trained before) is loaded as it was trained."""
    from transformers import AutoTokenizer

    tagger = Tagger.create(
        bf.taxonomy(),
        encoder="bert",
        encoder_params={"model": str(cased_over_uncased), **FAST, "epochs": 8},
    ).train(english_records(300, 0), english_records(60, 1))
    test = english_records(100, 2)
    assert tagger.evaluate(test).exact_match >= 0.9
    saved = tagger.save(tmp_path / "tagger")
    loaded = Tagger.load(saved)
    assert loaded.encoder.tokenizer.tokenize("East Park") == ["east", "park"]
    texts = [r.text for r in test[:8]]
    assert np.array_equal(loaded.scores(texts).logits, tagger.scores(texts).logits)

    # What a tagger trained before the fix holds (its digests aside).
    AutoTokenizer.from_pretrained(cased_over_uncased).save_pretrained(saved / "encoder")
    old = Tagger.load(saved, verify=False)
    assert old.encoder.tokenizer.tokenize("East Park") == ["[UNK]", "[UNK]"]


@pytest.mark.parametrize("encoder", ["bert-frozen", "embedding"])
def test_the_frozen_and_zero_shot_encoders_lowercase_too(
    cased_over_uncased: Path, tmp_path: Path, encoder: str
) -> None:
    params: dict[str, object] = {"model": str(cased_over_uncased), "threads": 1}
    if encoder == "bert-frozen":
        params["cache_dir"] = str(tmp_path / "cache")
    tagger = Tagger.create(bf.taxonomy(), encoder=encoder, encoder_params=params)
    tagger.train(english_records(40, 0))
    loaded = Tagger.load(tagger.save(tmp_path / "tagger"))
    assert loaded.encoder.extractor.tokenizer.tokenize("North Inn") == ["north", "inn"]
