"""Taxonomies: schema checks, files, lookup by name or path, label encoding, inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from tagger_core import (
    DataError,
    Record,
    Taxonomy,
    TaxonomyError,
    label_matrix,
    load_taxonomy_file,
    resolve_taxonomy,
)
from tagger_core.taxonomy import infer_taxonomy, labels_of, write_taxonomy


def make(labels: list[dict], **extra) -> Taxonomy:
    return Taxonomy.model_validate({"name": "t", "labels": labels, **extra})


def test_builtin_attraction_taxonomy_matches_the_reference() -> None:
    taxonomy = resolve_taxonomy("attractions")
    assert taxonomy.label_ids == [
        "Water Parks", "Villages", "Playgrounds", "Others", "Natural Landscape",
        "Gardens & Parks", "Observation Decks & Towers", "Zoos & Animal Parks", "Museums & Galleries",
    ]  # fmt: skip
    assert taxonomy.mode == "multi-label"
    assert taxonomy.constraints.exclusive == ["Others"]
    assert all(label.name and label.description for label in taxonomy.labels)
    assert taxonomy.label("Water Parks").name == "水上乐园"


def test_duplicate_ids_and_alias_collisions_are_rejected() -> None:
    with pytest.raises(ValidationError, match="'A' names both"):
        make([{"id": "A"}, {"id": "A"}])
    with pytest.raises(ValidationError, match="'x' names both"):
        make([{"id": "A", "aliases": ["x"]}, {"id": "B", "aliases": ["x"]}])


def test_constraints_must_name_known_labels() -> None:
    with pytest.raises(ValidationError, match="unknown label 'Z'"):
        make([{"id": "A"}], constraints={"exclusive": ["Z"]})
    with pytest.raises(ValidationError, match="unknown label 'Q'"):
        make([{"id": "A", "parent": "Q"}])


def test_aliases_resolve_to_ids() -> None:
    taxonomy = make([{"id": "Zoos", "aliases": ["动物园"]}, {"id": "Parks"}])
    records = [Record(text="x", labels=("动物园", "Parks"))]
    assert label_matrix(records, taxonomy).tolist() == [[1.0, 1.0]]


def test_label_matrix_width_comes_from_the_taxonomy_not_the_data() -> None:
    taxonomy = make([{"id": "A"}, {"id": "B"}, {"id": "C"}])
    matrix = label_matrix([Record(text="x", labels=("B",))], taxonomy)
    assert matrix.shape == (1, 3)
    assert labels_of(matrix[0], taxonomy) == ["B"]


def test_unknown_label_names_file_row_field_and_suggests() -> None:
    taxonomy = resolve_taxonomy("attractions")
    record = Record(text="x", labels=("Museum & Galleries",), file="d.json", row=4)
    with pytest.raises(DataError) as info:
        label_matrix([record], taxonomy)
    assert str(info.value) == (
        "d.json, row 4, field 'label': unknown label 'Museum & Galleries' "
        "(not in taxonomy 'attractions'; did you mean 'Museums & Galleries'?)"
    )


def test_single_label_taxonomy_requires_exactly_one_label() -> None:
    taxonomy = make([{"id": "A"}, {"id": "B"}], mode="single-label")
    with pytest.raises(DataError, match="single-label but the record has 2 labels"):
        label_matrix([Record(text="x", labels=("A", "B"), file="f", row=1)], taxonomy)


def test_yaml_and_json_files_round_trip(tmp_path: Path) -> None:
    taxonomy = make(
        [{"id": "A", "name": "甲", "description": "first"}, {"id": "B"}],
        constraints={"exclusive": ["A"]},
        version=2,
    )
    for suffix in (".yaml", ".json"):
        path = tmp_path / f"t{suffix}"
        write_taxonomy(taxonomy, path)
        assert load_taxonomy_file(path) == taxonomy


def test_file_name_is_the_default_taxonomy_name(tmp_path: Path) -> None:
    path = tmp_path / "tours.yaml"
    path.write_text("labels:\n  - id: Day trip\n", encoding="utf-8")
    assert resolve_taxonomy(str(path)).name == "tours"


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("labels:\n  - id: A\n   - id: B\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match=r"bad.yaml: malformed YAML at line 3"):
        load_taxonomy_file(path)


def test_invalid_taxonomy_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\nmode: many\nlabels:\n  - id: A\n", encoding="utf-8")
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy_file(path)
    assert str(info.value).startswith(f"{path}, field 'mode': ")


def test_unknown_taxonomy_lists_known_and_suggests() -> None:
    with pytest.raises(
        TaxonomyError, match=r"unknown taxonomy 'atractions'.*did you mean 'attractions'"
    ):
        resolve_taxonomy("atractions")
    with pytest.raises(TaxonomyError, match="taxonomy file does not exist"):
        resolve_taxonomy("missing.yaml")


def test_taxonomy_folder_env_registers_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tours.yaml").write_text(
        "name: tours\nlabels:\n  - id: Day trip\n", encoding="utf-8"
    )
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    monkeypatch.setenv("TAGGER_TAXONOMY_PATH", str(tmp_path))
    assert resolve_taxonomy("tours").label_ids == ["Day trip"]


def test_infer_orders_by_frequency_and_detects_mode() -> None:
    records = [
        Record(text="a", labels=("B",)),
        Record(text="b", labels=("A",)),
        Record(text="c", labels=("B",)),
    ]
    taxonomy = infer_taxonomy(records, "inferred")
    assert taxonomy.label_ids == ["B", "A"]
    assert taxonomy.mode == "single-label"
    multi = infer_taxonomy([*records, Record(text="d", labels=("A", "B"))], "m")
    assert multi.mode == "multi-label"
    # every record labelled: at least one label per name; one unlabelled record: no floor
    assert multi.constraints.min_labels == 1 and taxonomy.constraints.min_labels == 0
    some_empty = infer_taxonomy(
        [*records, Record(text="d", labels=("A", "B")), Record(text="e", labels=())], "m"
    )
    assert some_empty.mode == "multi-label" and some_empty.constraints.min_labels == 0
    assert np.array_equal(label_matrix(records, taxonomy), [[1, 0], [0, 1], [1, 0]])
