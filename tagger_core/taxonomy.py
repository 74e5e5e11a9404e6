"""Taxonomies as data: load them, find them by name or path, and encode labels with them.

Labels come from the taxonomy, never from the data: a label missing from one file can
no longer change the width of the label matrix.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from tagger_core.errors import DataError, TaxonomyError, closest, validation_problem
from tagger_core.files import write_text
from tagger_core.schemas import Constraints, Label, Mode, Record, Taxonomy

TAXONOMY_SUFFIXES = (".yaml", ".yml", ".json")


def _parse_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"cannot read taxonomy: {exc.strerror}", file=path) from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaxonomyError(
                f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=path
            ) from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TaxonomyError(f"malformed YAML{where}: {problem}", file=path) from None


def load_taxonomy_file(path: Path) -> Taxonomy:
    """A taxonomy from a YAML or JSON file, with errors that name the offending field."""
    data = _parse_file(path)
    if not isinstance(data, dict):
        raise TaxonomyError("a taxonomy file must hold a mapping", file=path)
    data.setdefault("name", path.stem)
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        field, message = validation_problem(exc)
        raise TaxonomyError(message, file=path, field=field) from None


class LabelEncoder:
    """Label names (ids or aliases) → column indices of one taxonomy's label matrix."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.index = {label.id: i for i, label in enumerate(taxonomy.labels)}
        self.lookup = {alias: label.id for label in taxonomy.labels for alias in label.aliases}
        self.lookup.update({label_id: label_id for label_id in self.index})

    def columns(self, record: Record, field: str = "label") -> list[int]:
        """The columns of ``record``'s labels; a bad record stops with file, row and field."""
        taxonomy = self.taxonomy
        columns = []
        for name in record.labels:
            label_id = self.lookup.get(name)
            if label_id is None:
                hint = closest(name, taxonomy.label_ids)
                suggestion = f"; did you mean '{hint}'?" if hint else ""
                raise DataError(
                    f"unknown label '{name}' (not in taxonomy '{taxonomy.name}'{suggestion})",
                    file=record.file,
                    row=record.row,
                    field=field,
                )
            columns.append(self.index[label_id])
        if taxonomy.mode == "single-label" and len(set(columns)) != 1:
            raise DataError(
                f"taxonomy '{taxonomy.name}' is single-label but the record has "
                f"{len(set(columns))} labels",
                file=record.file,
                row=record.row,
                field=field,
            )
        return columns


def label_matrix(records: Sequence[Record], taxonomy: Taxonomy, field: str = "label") -> np.ndarray:
    """The n × L 0/1 matrix of ``records``; an unknown label stops with file, row and field."""
    encoder = LabelEncoder(taxonomy)
    matrix = np.zeros((len(records), len(taxonomy.labels)), dtype=np.float32)
    for i, record in enumerate(records):
        matrix[i, encoder.columns(record, field)] = 1.0
    return with_ancestors(matrix, taxonomy)


def with_ancestors(matrix: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """``matrix`` (n × L, 0/1 or boolean) with every ancestor of a set label set too, where
    the taxonomy nests labels and implies ancestors; otherwise ``matrix`` itself."""
    if not (taxonomy.hierarchical and taxonomy.implies_ancestors):
        return matrix
    index = {label_id: j for j, label_id in enumerate(taxonomy.label_ids)}
    out = np.array(matrix, copy=True)
    for j, label_id in enumerate(taxonomy.label_ids):
        columns = [index[a] for a in taxonomy.ancestors(label_id)]
        if columns:
            on = out[:, j] > 0
            out[np.ix_(on, np.asarray(columns))] = 1
    return out


def label_depths(taxonomy: Taxonomy) -> list[int]:
    """Each label's depth in the hierarchy: 0 for a root, 1 for its children, …"""
    return [len(taxonomy.ancestors(label_id)) for label_id in taxonomy.label_ids]


def labels_of(row: np.ndarray, taxonomy: Taxonomy) -> list[str]:
    return [taxonomy.labels[j].id for j in np.flatnonzero(row)]


def infer_taxonomy(records: Sequence[Record], name: str, mode: Mode | None = None) -> Taxonomy:
    """A starting taxonomy from the labels seen in ``records``, most frequent first. A
    multi-label one declares ``min_labels: 1`` where every record has a label: such data
    (events, kinds of attraction) means no item goes without one, and the default rule then
    never leaves a name empty, which threshold rules otherwise do to 6-30 % of names."""
    counts = Counter(label for record in records for label in record.labels)
    if not counts:
        raise DataError(
            "no labels found: cannot infer a taxonomy", file=records[0].file if records else None
        )
    if mode is None:
        mode = "single-label" if all(len(r.labels) == 1 for r in records) else "multi-label"
    labels = [
        Label(id=label) for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    always_labelled = mode == "multi-label" and all(record.labels for record in records)
    return Taxonomy(
        name=name,
        mode=mode,
        description=f"Inferred from {len(records)} records; add display names and descriptions.",
        labels=labels,
        constraints=Constraints(min_labels=1 if always_labelled else 0),
    )


def write_taxonomy(taxonomy: Taxonomy, path: Path) -> None:
    data = taxonomy.model_dump(mode="json", exclude_defaults=True)
    data = {"name": taxonomy.name, "mode": taxonomy.mode, **data}
    if path.suffix.lower() == ".json":
        write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    import yaml

    write_text(path, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def tree_lines(taxonomy: Taxonomy) -> list[tuple[str, str]]:
    """The labels as an indented tree, roots in taxonomy order, each followed by its
    children: (branch drawing + id, display name) per label."""
    lines: list[tuple[str, str]] = []

    def walk(parent: str | None, prefix: str) -> None:
        children = taxonomy.children(parent)
        for i, child in enumerate(children):
            last = i == len(children) - 1
            branch = "" if parent is None else prefix + ("└─ " if last else "├─ ")
            lines.append((branch + child, taxonomy.label(child).name or ""))
            inner = "" if parent is None else prefix + ("   " if last else "│  ")
            walk(child, inner)

    walk(None, "")
    return lines
