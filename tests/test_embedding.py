"""The `embedding` encoder: zero-shot from the taxonomy's own words, few-shot with a handful
of labelled names, saved and loaded like every tagger. A tiny random BERT stands in for a
sentence-embedding model: mean-pooled, a name shares characters with its label's names
(东湖宾馆 with 宾馆), which is all these tests need; the real model is measured in
docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

import bert_fixtures as bf
import numpy as np
import pytest
from conftest import one_line_error, write_json

from tagger_core import Tagger
from tagger_core.cli import cli
from tagger_core.errors import ModelError
from tagger_core.schemas import Label, Taxonomy

pytest.importorskip("torch")
pytest.importorskip("transformers")


def taxonomy(mode: str = "single-label") -> Taxonomy:
    """The toy kinds, each with its Chinese names as display name, aliases and description
    (every character in the tiny model's vocabulary)."""
    labels = []
    for kind, names in bf.KINDS.items():
        labels.append(Label(id=kind, name=names[0], aliases=names[1:], description="".join(names)))
    return Taxonomy(name=f"toy-{mode}", mode=mode, labels=labels)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bf.build_tiny_bert(tmp_path_factory.mktemp("model") / "tiny-bert", hidden=32)


def embedding_tagger(model: Path, mode: str = "single-label", **params: object) -> Tagger:
    return Tagger.create(
        taxonomy(mode),
        encoder="embedding",
        encoder_params={"model": str(model), "threads": 1, **params},
    )


def test_zero_shot_trains_without_rows_and_beats_the_majority(tiny_bert: Path) -> None:
    test = bf.records(200, seed=3)
    tagger = embedding_tagger(tiny_bert).train([])
    assert tagger.encoder.calibration_rows == 0  # type: ignore[attr-defined]
    figures = tagger.evaluate(test)
    majority = max(sum(r.labels == (k,) for r in test) for k in bf.KINDS) / len(test)
    assert figures.exact_match > majority + 0.2, (figures.exact_match, majority)


def test_few_shot_examples_move_the_prototypes(tiny_bert: Path) -> None:
    test = bf.records(200, seed=3)
    zero = embedding_tagger(tiny_bert).train([])
    few = embedding_tagger(tiny_bert).train(bf.records(40, seed=0))
    assert few.encoder.calibration_rows == 40  # type: ignore[attr-defined]
    assert not np.allclose(zero.encoder.prototypes, few.encoder.prototypes)  # type: ignore[attr-defined]
    assert few.evaluate(test).exact_match >= zero.evaluate(test).exact_match


def test_multi_label_never_leaves_a_name_without_a_label(tiny_bert: Path) -> None:
    tagger = embedding_tagger(tiny_bert, "multi-label").train([])
    predictions = tagger.predict([r.text for r in bf.records(60, "multi-label", seed=2)])
    assert all(p.labels for p in predictions)
    # The best label scores scale × margin above zero: its probability is above 0.5.
    assert all(max(p.scores.values()) > 0.5 for p in predictions)


def test_margin_and_scale_are_fitted_on_labelled_names_unless_given(tiny_bert: Path) -> None:
    rows = bf.records(80, "multi-label", seed=0)
    fitted = embedding_tagger(tiny_bert, "multi-label").train(rows)
    fixed = embedding_tagger(tiny_bert, "multi-label", margin=0.5, scale=3.0).train(rows)
    assert (fixed.encoder.margin, fixed.encoder.scale) == (0.5, 3.0)  # type: ignore[attr-defined]
    assert fitted.encoder.calibration_rows == 80  # type: ignore[attr-defined]
    assert (fitted.encoder.margin, fitted.encoder.scale) != (0.5, 3.0)  # type: ignore[attr-defined]


def test_saved_and_loaded_scores_are_equal(tiny_bert: Path, tmp_path: Path) -> None:
    tagger = embedding_tagger(tiny_bert, "multi-label").train(bf.records(30, "multi-label"))
    tagger.save(tmp_path / "saved")
    loaded = Tagger.load(tmp_path / "saved")
    texts = ["东湖宾馆", "汉口老面馆餐厅", "光谷大公园"]
    np.testing.assert_allclose(loaded.scores(texts).logits, tagger.scores(texts).logits, atol=1e-5)
    assert [p.labels for p in loaded.predict(texts)] == [p.labels for p in tagger.predict(texts)]


def test_damaged_prototypes_are_refused_with_one_line(tiny_bert: Path, tmp_path: Path) -> None:
    tagger = embedding_tagger(tiny_bert).train([])
    tagger.save(tmp_path / "saved")
    np.savez(tmp_path / "saved/encoder/prototypes.npz", prototypes=np.zeros((2, 3), np.float32))
    with pytest.raises(ModelError, match=r"prototypes\.npz"):
        Tagger.load(tmp_path / "saved", verify=False)


def test_leave_one_out_cosines_equal_prototypes_rebuilt_without_the_name() -> None:
    from tagger_plugins.bert import zero_shot

    rng = np.random.default_rng(0)
    descriptions = zero_shot.normalized(rng.normal(size=(3, 8)))
    examples = rng.normal(size=(7, 8))
    targets = (rng.random((7, 3)) < 0.5).astype(np.float32)
    fast = zero_shot.leave_one_out_cosines(descriptions, examples, targets, 2.0)
    for i in range(len(examples)):
        others = np.arange(len(examples)) != i
        protos = zero_shot.prototypes(descriptions, examples[others], targets[others], 2.0)
        expected = zero_shot.normalized(examples[i : i + 1]) @ protos.T
        np.testing.assert_allclose(fast[i], expected[0], atol=1e-5)


def test_calibration_finds_the_margin_that_separates_the_labels() -> None:
    from tagger_plugins.bert import zero_shot

    # Second labels sit 0.04 below the best; wrong ones 0.10 below.
    cosines = np.array([[0.90, 0.86, 0.80], [0.70, 0.60, 0.66], [0.50, 0.40, 0.46]])
    truth = np.array([[1, 1, 0], [1, 0, 1], [1, 0, 1]])
    fitted = zero_shot.calibrate(cosines, truth, multi_label=True)
    assert 0.04 <= fitted.margin < 0.10


def test_cli_trains_with_no_train_file_and_tags(tiny_bert: Path, tmp_path: Path, runner) -> None:
    taxonomy_file = write_json(tmp_path / "toy.json", [])  # replaced below
    taxonomy_file.write_text(taxonomy("multi-label").model_dump_json(), encoding="utf-8")
    out = tmp_path / "zero"
    result = runner.invoke(
        cli,
        ["train", "--taxonomy", str(taxonomy_file), "--encoder", "embedding",
         "--model", str(tiny_bert), "-p", "threads=1", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    names = [r.text for r in bf.records(20, "multi-label", seed=5)]
    tagged = runner.invoke(cli, ["predict", str(out), *names])
    assert tagged.exit_code == 0, tagged.output
    shown = [line.split("\t")[1] for line in tagged.output.splitlines()]
    expected = Tagger.load(out).predict(names)
    assert len(shown) == len(names)
    for line, prediction in zip(shown, expected, strict=True):
        assert prediction.labels and all(label in line for label in prediction.labels)


def test_cli_refuses_a_missing_train_file_for_an_encoder_that_needs_one(
    tmp_path: Path, runner
) -> None:
    result = runner.invoke(cli, ["train", "--taxonomy", "attractions", "-o", str(tmp_path / "t")])
    line = one_line_error(result)
    assert "--train is required" in line and "tfidf" in line
    assert not (tmp_path / "t").exists()


def test_embedding_is_an_ensemble_member(tiny_bert: Path) -> None:
    tagger = Tagger.create(
        taxonomy(),
        encoder="ensemble",
        encoder_params={"members": "tfidf,embedding", "model": str(tiny_bert), "threads": 1},
    )
    tagger.train(bf.records(120, seed=0), bf.records(60, seed=1))
    assert set(tagger.encoder.members()) == {"tfidf", "embedding"}
    assert tagger.evaluate(bf.records(100, seed=3)).exact_match > 0.5


def test_label_text_cosines_closest_and_mean() -> None:
    from tagger_plugins.bert import zero_shot

    rng = np.random.default_rng(1)
    texts = zero_shot.normalized(rng.normal(size=(5, 6)))  # label 0: rows 0-1, label 1: 2-4
    starts = np.array([0, 2])
    names = zero_shot.normalized(rng.normal(size=(3, 6)))
    all_cosines = names @ texts.T
    closest = zero_shot.text_cosines(names, texts, starts, "closest")
    np.testing.assert_allclose(closest[:, 0], all_cosines[:, :2].max(axis=1), atol=1e-6)
    np.testing.assert_allclose(closest[:, 1], all_cosines[:, 2:].max(axis=1), atol=1e-6)
    mean = zero_shot.text_cosines(names, texts, starts, "mean")
    centre = zero_shot.normalized(texts[2:].mean(axis=0, keepdims=True))
    np.testing.assert_allclose(mean[:, 1], (names @ centre.T)[:, 0], atol=1e-6)


def keyword_taxonomy(mode: str) -> Taxonomy:
    """The toy kinds, and 东湖 — a place, not a kind — as a keyword of `hotel`: a brand the
    model cannot know, that only the taxonomy says."""
    labels = [label.model_copy() for label in taxonomy(mode).labels]
    labels[0] = labels[0].model_copy(update={"keywords": ["东湖"]})
    assert labels[0].id == "hotel"
    return Taxonomy(name=f"toy-keywords-{mode}", mode=mode, labels=labels)  # type: ignore[arg-type]


def keyword_taggers(model: Path, mode: str) -> tuple[Tagger, Tagger]:
    """The same zero-shot tagger with verbatim matches on and off."""
    return tuple(  # type: ignore[return-value]
        Tagger.create(
            keyword_taxonomy(mode),
            encoder="embedding",
            encoder_params={"model": str(model), "threads": 1, "verbatim": verbatim},
        ).train([])
        for verbatim in (True, False)
    )


def test_a_keyword_held_word_for_word_adds_its_label(tiny_bert: Path, tmp_path: Path) -> None:
    names = ["东湖公园", "东湖老面馆", "东湖博物馆", "东湖大绿地"]
    kinds = ["park", "food", "museum", "park"]
    on, off = keyword_taggers(tiny_bert, "multi-label")
    assert all(
        {"hotel", kind} <= set(p.labels) for p, kind in zip(on.predict(names), kinds, strict=True)
    )
    assert not any("hotel" in p.labels for p in off.predict(names))
    # Names that hold no label text word for word are scored as before.
    others = ["汉口光谷", "武昌江汉"]
    np.testing.assert_allclose(on.scores(others).logits, off.scores(others).logits, atol=1e-6)
    on.save(tmp_path / "saved")
    loaded = Tagger.load(tmp_path / "saved")
    assert [p.labels for p in loaded.predict(names)] == [p.labels for p in on.predict(names)]


def test_single_label_takes_the_keyword_or_the_closer_of_two_held_labels(tiny_bert: Path) -> None:
    on, off = keyword_taggers(tiny_bert, "single-label")
    only_the_keyword = ["东湖光谷", "东湖江汉", "东湖武昌", "东湖汉口"]
    assert all(list(p.labels) == ["hotel"] for p in on.predict(only_the_keyword))
    held, embedded = on.predict(only_the_keyword), off.predict(only_the_keyword)
    assert all(a.scores["hotel"] > b.scores["hotel"] for a, b in zip(held, embedded, strict=True))
    # 东湖公园 holds both 东湖 (hotel) and 公园 (park): the label whose texts are closer wins.
    both = ["东湖公园", "东湖老面馆"]
    cosines = off.encoder._cosines(both)  # type: ignore[attr-defined]
    closer = [("hotel", "park"), ("hotel", "food")]
    expected = [
        max(pair, key=lambda k: cosines[i, list(bf.KINDS).index(k)])
        for i, pair in enumerate(closer)
    ]
    assert [p.labels[0] for p in on.predict(both)] == expected


def test_verbatim_patterns_hold_chinese_anywhere_and_latin_as_whole_words() -> None:
    from tagger_plugins.bert import zero_shot

    per_label = [
        ["Spa", "温泉"],
        ["W Hotel", "a description far longer than any word a name would hold"],
        ["X"],  # one character: too short to mean anything
    ]
    patterns = zero_shot.verbatim_patterns(per_label)
    assert patterns[2] is None
    names = [
        "Grand SPA Hotel",
        "Spanish Inn",
        "汤山温泉度假村",
        "the w hotel, Guangzhou",
        "a description far longer than any word a name would hold",
        "X",
    ]
    matches = zero_shot.verbatim_matches(names, patterns)
    assert matches.tolist() == [
        [True, False, False],
        [False, False, False],
        [True, False, False],
        [False, True, False],
        [False, False, False],
        [False, False, False],
    ]
    cosines = np.array([[0.3, 0.5, 0.9], [0.6, 0.2, 0.1]], dtype=np.float32)
    held = zero_shot.with_verbatim(cosines, np.array([[True, True, False], [False] * 3]))
    # Held labels score 1 (the closer of two a trace higher, within the smallest margin);
    # the others keep their cosines.
    assert held[0, 1] > held[0, 0] >= 1.0
    assert held[0, 1] - held[0, 0] < zero_shot.MARGINS[0]
    assert held[0, 2] == pytest.approx(0.9) and held[1].tolist() == pytest.approx([0.6, 0.2, 0.1])


def test_a_tagger_saved_before_verbatim_matches_loads_without_them(
    tiny_bert: Path, tmp_path: Path
) -> None:
    import json

    names = ["东湖公园", "东湖老面馆"]
    tagger = Tagger.create(
        keyword_taxonomy("single-label"),
        encoder="embedding",
        encoder_params={"model": str(tiny_bert), "threads": 1, "verbatim": False},
    ).train([])
    tagger.save(tmp_path / "old")
    state_file = tmp_path / "old/encoder/tagger_bert.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    del state["verbatim"]  # as written before the option existed
    state_file.write_text(json.dumps(state), encoding="utf-8")
    manifest_file = tmp_path / "old/manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    del manifest["encoder"]["params"]["verbatim"]  # loads with today's default, True
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
    loaded = Tagger.load(tmp_path / "old", verify=False)
    assert loaded.encoder.params.verbatim is False  # type: ignore[attr-defined]
    np.testing.assert_allclose(loaded.scores(names).logits, tagger.scores(names).logits, atol=1e-5)
