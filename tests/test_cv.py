"""`tagger cv` and tagger_core.workflows.crossval: stratified folds, mean ± std, per-fold JSON."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, one_line_error, write_json

from tagger_core import Record, Tagger, TaggerError, resolve_taxonomy
from tagger_core.cli import cli
from tagger_core.data.normalize import match_key
from tagger_core.workflows.crossval import Fold, cross_validate, fold_of_records, summarise

ATTRACTIONS = resolve_taxonomy("attractions")
LABELS = ATTRACTIONS.label_ids


def records(per_label: int) -> list[Record]:
    return [
        Record(text=f"{label[:3]}-{i}", labels=(label,))
        for label in LABELS
        for i in range(per_label)
    ]


def test_folds_are_stratified_equal_and_keep_names_together() -> None:
    data = records(5)
    data += [
        Record(text="香港海洋公園", labels=("Playgrounds",)),
        Record(text="香港海洋公园", labels=("Playgrounds",)),
    ]
    folds = fold_of_records(data, ATTRACTIONS, 5, seed=1)
    homes = {(match_key(r.text), int(f)) for r, f in zip(data, folds, strict=True)}
    sizes = Counter(fold for _, fold in homes)
    assert max(sizes.values()) - min(sizes.values()) <= 1  # in names: 46 over 5 folds
    for fold in range(5):
        in_fold = {
            label for r, f in zip(data, folds, strict=True) if f == fold for label in r.labels
        }
        assert in_fold == set(LABELS)  # every label has >= 5 names: in every fold
    homes = {
        int(f)
        for r, f in zip(data, folds, strict=True)
        if match_key(r.text) == match_key("香港海洋公园")
    }
    assert len(homes) == 1


def test_labels_with_fewer_names_than_folds_stay_in_every_training_part() -> None:
    data = records(6)
    data += [
        Record(text="孤一", labels=("Villages", "Others")),  # the only name of... see below
        Record(text="双一", labels=("Water Parks",)),
        Record(text="双二", labels=("Water Parks",)),
    ]
    data = [r for r in data if "Water Parks" not in r.labels or r.text.startswith("双")]
    data = [r for r in data if "Villages" not in r.labels or r.text == "孤一"]
    for seed in range(4):
        folds = fold_of_records(data, ATTRACTIONS, 5, seed)
        fold_of = {r.text: int(f) for r, f in zip(data, folds, strict=True)}
        assert fold_of["孤一"] == -1  # Villages' only name: trained on in every fold
        assert fold_of["双一"] != fold_of["双二"]  # each fold trains on one Water Parks name
        for fold in range(5):
            trained = {label for r, f in zip(data, folds, strict=True) if f != fold
                       for label in r.labels}  # fmt: skip
            assert trained == set(LABELS)


def test_the_fold_table_names_the_untested_labels(runner: CliRunner, tmp_path: Path) -> None:
    data = [r for r in records(6) if "Villages" not in r.labels]
    data.append(Record(text="孤一", labels=("Villages",)))
    path = write_json(
        tmp_path / "d.json", [{"text": r.text, "label": list(r.labels)} for r in data]
    )
    result = runner.invoke(cli, ["cv", str(path), "--taxonomy", "attractions", "-k", "3"])
    assert result.exit_code == 0, result.output
    assert (
        "Not tested: 1 label(s) with one name each, kept in every fold's training part "
        "(1 records): Villages"
    ) in result.stdout
    as_json = json.loads(
        runner.invoke(
            cli, ["cv", str(path), "--taxonomy", "attractions", "-k", "3", "--json"]
        ).stdout
    )
    assert as_json["untested_labels"] == ["Villages"] and as_json["always_trained"] == 1
    assert sum(fold["test_rows"] for fold in as_json["folds"]) == len(data) - 1


def test_too_few_names_or_folds() -> None:
    with pytest.raises(TaggerError, match="too few for 5 folds"):
        fold_of_records(records(1)[:3], ATTRACTIONS, 5, seed=0)
    with pytest.raises(TaggerError, match="at least 2"):
        fold_of_records(records(2), ATTRACTIONS, 1, seed=0)


def test_summary_is_mean_and_sample_std() -> None:
    folds = [
        Fold(fold=i + 1, train_rows=1, valid_rows=0, test_rows=1,
             metrics={m: v for m in ("exact_match", "micro_precision", "micro_recall", "micro_f1", "macro_f1", "empty_rate")})
        for i, v in enumerate([0.2, 0.4, 0.6])
    ]  # fmt: skip
    summary = summarise(folds)
    assert summary["exact_match"].mean == pytest.approx(0.4)
    assert summary["exact_match"].std == pytest.approx(0.2)  # ddof=1


def test_cross_validate_trains_k_taggers_with_a_validation_part_for_fitted_rules() -> None:
    data = records(6)
    result = cross_validate(data, ATTRACTIONS, lambda: Tagger.create(ATTRACTIONS), k=3, seed=0)
    assert [f.fold for f in result.folds] == [1, 2, 3]
    assert sum(f.test_rows for f in result.folds) == len(data)
    for fold in result.folds:
        assert fold.train_rows + fold.valid_rows + fold.test_rows == len(data)
        assert fold.valid_rows > 0  # the default per-label rule is fitted on validation
        assert "per_label" in fold.metrics and "confusion" not in fold.metrics
    result = cross_validate(
        data, ATTRACTIONS, lambda: Tagger.create(ATTRACTIONS, rule="threshold"), k=2, seed=0
    )
    assert all(fold.valid_rows == 0 for fold in result.folds)
    assert result.tagger["rule"]["name"] == "threshold"


def test_cli_prints_mean_std_and_writes_per_fold_json(runner: CliRunner, tmp_path: Path) -> None:
    data = write_json(
        tmp_path / "d.json", [{"text": r.text, "label": list(r.labels)} for r in records(4)]
    )
    metrics = tmp_path / "cv.json"
    args = ["cv", str(data), "--taxonomy", "attractions", "-k", "3", "--metrics-file", str(metrics)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("3-fold cross-validation of 'tfidf' on 36 records (36 names)")
    mean = next(line for line in lines if line.startswith("mean ± std"))
    assert mean.count("±") == 7  # the label and six metrics
    saved = json.loads(metrics.read_text(encoding="utf-8"))
    assert saved["k"] == 3 and len(saved["folds"]) == 3
    assert set(saved["summary"]["micro_f1"]) == {"mean", "std"}
    assert "already exists" in one_line_error(runner.invoke(cli, args))
    result = runner.invoke(cli, [*args, "--force", "--json", "--valid-ratio", "0"])
    assert result.exit_code == 0
    assert all(fold["valid_rows"] == 0 for fold in json.loads(result.stdout)["folds"])


def test_cli_bad_valid_ratio(runner: CliRunner, toy_file: Path) -> None:
    line = one_line_error(
        runner.invoke(
            cli, ["cv", str(toy_file), "--taxonomy", "attractions", "--valid-ratio", "1.5"]
        )
    )
    assert "--valid-ratio must be in [0, 1)" in line


@pytest.mark.slow
def test_bundled_examples(runner: CliRunner) -> None:
    result = runner.invoke(
        cli,
        ["cv", str(EXAMPLES / "train.json"), str(EXAMPLES / "validation.json"),
         "--taxonomy", "attractions", "-k", "3", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result_json = json.loads(result.stdout)
    assert [f["test_rows"] for f in result_json["folds"]] in (
        [92, 92, 91],
        [91, 92, 92],
        [92, 91, 92],
    )


def test_encoders_that_learn_from_validation_get_rows_held_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A single-label taxonomy's argmax needs no validation rows, but early stopping and an
    ensemble's weights do: cv holds 20 % out for them, and none for TF-IDF."""
    from tagger_core import Tagger, Taxonomy
    from tagger_core.registry import encoders
    from tagger_core.workflows.train import DEFAULT_VALID_RATIO, valid_ratio_for

    taxonomy = Taxonomy(name="t", mode="single-label", labels=[{"id": "a"}, {"id": "b"}])
    tagger = Tagger.create(taxonomy, encoder="tfidf")
    assert not tagger.rule.fittable
    assert valid_ratio_for(tagger, None) == 0.0
    monkeypatch.setattr(type(tagger.encoder), "learns_from_validation", True)
    assert valid_ratio_for(tagger, None) == DEFAULT_VALID_RATIO
    assert valid_ratio_for(tagger, 0.0) == 0.0  # asked for: as asked
    assert encoders().get("bert").learns_from_validation
    assert encoders().get("ensemble").learns_from_validation


def test_the_largest_seed_runs_every_fold(runner: CliRunner, tmp_path: Path) -> None:
    """Each fold trains with seed + fold, which must stay within what generators take."""
    path = write_json(
        tmp_path / "d.json", [{"text": r.text, "label": list(r.labels)} for r in records(6)]
    )
    args = ["cv", str(path), "--taxonomy", "attractions", "-k", "3", "--json"]
    result = runner.invoke(cli, [*args, "--seed", str(2**32 - 1)])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["folds"]) == 3


def test_a_label_whose_names_share_rarer_labels_is_trained_in_every_fold() -> None:
    """R4's two names also carry R2 and R3, whose two names each go to folds 0 and 1 (the
    rarest first): both of R4's could land in one fold, untrained when it is tested."""
    from tagger_core.schemas import Taxonomy
    from tagger_core.workflows.crossval import fold_of_records

    taxonomy = Taxonomy.model_validate(
        {
            "name": "mini",
            "mode": "multi-label",
            "labels": [{"id": x} for x in ["A", "B", "R2", "R3", "R4"]],
        }
    )
    rows = [("alpha", "A R2 R4"), ("beta", "B R2"), ("gamma", "B R3"), ("delta", "A R3 R4")]
    rows += [(f"a{i}", "A") for i in range(8)] + [(f"b{i}", "B") for i in range(8)]
    data = [Record(text=text, labels=tuple(labels.split())) for text, labels in rows]
    for seed in range(6):
        folds = fold_of_records(data, taxonomy, 5, seed)
        for fold in set(folds.tolist()) - {-1}:
            trained = {
                label for r, f in zip(data, folds, strict=True) if f != fold for label in r.labels
            }
            assert trained == {"A", "B", "R2", "R3", "R4"}, (seed, fold, folds)
