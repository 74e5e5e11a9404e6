"""Check labelled data before training: collect every problem instead of stopping at the
first, so that one run of `tagger validate` gives the whole list to fix.

Errors are what makes data wrong (an unknown label, an empty name, one name with two
label sets in the same source); warnings are what deserves a look but may be intended
(duplicates, sources that disagree, labels too rare to split, a name in two files of a
split). Names are compared exactly and after normalisation (`tagger_core.data.normalize`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Literal

from pydantic import BaseModel, Field

from tagger_core.data.normalize import differences, match_key
from tagger_core.errors import closest, location
from tagger_core.schemas import Record, Taxonomy

Severity = Literal["error", "warning"]

# Every problem code, its severity and what it means (shown by docs and `--format json`).
CODES: dict[str, tuple[Severity, str]] = {
    "empty-text": ("error", "the name is empty or only whitespace"),
    "unknown-label": ("error", "a label is not in the taxonomy (with the nearest known label)"),
    "label-count": ("error", "a single-label taxonomy needs exactly one label per record"),
    "conflict": ("error", "the same name has different labels within one source or file"),
    "no-label": ("warning", "a record of a multi-label taxonomy has no label"),
    "constraint": ("warning", "labels break a taxonomy constraint (exclusive, min/max labels)"),
    "duplicate": ("warning", "the same name with the same labels again in one source or file"),
    "near-duplicate": (
        "warning",
        "names that differ only in width, script, case or spaces, with the same labels",
    ),
    "source-conflict": ("warning", "two sources label the same name differently"),
    "cross-file": ("warning", "the same name in two files (a split that leaks)"),
    "unused-label": ("warning", "a taxonomy label has no example"),
    "rare-label": ("warning", "a label has fewer names than split parts"),
}


class Problem(BaseModel):
    severity: Severity
    code: str
    message: str
    file: str | None = None
    row: int | None = None
    field: str | None = None
    source: str | None = None

    def location(self) -> str:
        return location(self.file, self.row, self.field)

    def __str__(self) -> str:
        where = self.location()
        return f"{where}: {self.message}" if where else self.message


class LabelCount(BaseModel):
    label: str
    known: bool = True
    counts: dict[str, int] = Field(default_factory=dict, description="records per group")
    total: int = 0
    names: int = Field(default=0, description="distinct names (after normalisation) with the label")


class SourceOverlap(BaseModel):
    """How two sources label the names they share."""

    a: str
    b: str
    shared_names: int
    identical: int


class ValidationReport(BaseModel):
    taxonomy: str
    parts: int = Field(description="split parts that every label should reach")
    groups: list[str] = Field(description="sources (or files, when unnamed), in order")
    named_sources: bool = Field(description="whether groups are named sources, not files")
    rows: dict[str, int]
    records: int
    names: int
    label_counts: list[LabelCount]
    unlabelled: int
    agreement: list[SourceOverlap] = Field(default_factory=list)
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def group_of(record: Record) -> str:
    """The unit of consistency: a named source, or else the file a record came from."""
    return record.source if record.source is not None else str(record.file)


def _labels(names: Sequence[str]) -> str:
    return "[" + ", ".join(names) + "]" if names else "[]"


class _Checker:
    """Collects problems of single records; :func:`validate_records` drives it."""

    def __init__(self, taxonomy: Taxonomy, label_field: str) -> None:
        self.taxonomy = taxonomy
        self.label_field = label_field
        self.problems: list[Problem] = []
        self.known = [*taxonomy.label_ids, *(a for lbl in taxonomy.labels for a in lbl.aliases)]

    def add(
        self, code: str, message: str, record: Record | None = None, field: str | None = None
    ) -> None:
        severity = CODES[code][0]
        self.problems.append(
            Problem(
                severity=severity,
                code=code,
                message=message,
                file=record.file if record else None,
                row=record.row if record else None,
                field=field,
                source=record.source if record else None,
            )
        )

    def resolve(self, record: Record) -> tuple[str, ...] | None:
        """The record's label ids, or None when a label is unknown (reported)."""
        ids: list[str] = []
        unknown = False
        for name in record.labels:
            label_id = self.taxonomy.resolve(name)
            if label_id is None:
                unknown = True
                hint = closest(name, self.known)
                suggestion = f"; did you mean '{hint}'?" if hint else ""
                self.add(
                    "unknown-label",
                    f"unknown label '{name}' (not in taxonomy '{self.taxonomy.name}'{suggestion})",
                    record,
                    self.label_field,
                )
                continue
            ids.append(label_id)
        return None if unknown else tuple(ids)

    def check_label_set(self, record: Record, ids: tuple[str, ...]) -> None:
        constraints = self.taxonomy.constraints
        if self.taxonomy.mode == "single-label":
            if len(ids) != 1:
                self.add(
                    "label-count",
                    f"taxonomy '{self.taxonomy.name}' is single-label but the record has "
                    f"{len(ids)} labels",
                    record,
                    self.label_field,
                )
            return
        if not ids:
            self.add("no-label", "no label", record, self.label_field)
            return
        for label in constraints.exclusive:
            if label in ids and len(ids) > 1:
                others = [i for i in ids if i != label]
                self.add(
                    "constraint",
                    f"'{label}' stands alone in this taxonomy but comes with {_labels(others)}",
                    record,
                    self.label_field,
                )
        for group in constraints.exclusive_groups:
            chosen = [i for i in ids if i in group]
            if len(chosen) > 1:
                self.add(
                    "constraint",
                    f"at most one of {_labels(group)} may be chosen, got {_labels(chosen)}",
                    record,
                    self.label_field,
                )
        if len(ids) < constraints.min_labels:
            self.add(
                "constraint",
                f"{len(ids)} labels, fewer than the taxonomy's minimum {constraints.min_labels}",
                record,
                self.label_field,
            )
        if constraints.max_labels is not None and len(ids) > constraints.max_labels:
            self.add(
                "constraint",
                f"{len(ids)} labels, more than the taxonomy's maximum {constraints.max_labels}",
                record,
                self.label_field,
            )


def _where(record: Record, other: Record) -> str:
    """``other``'s position as seen from ``record``: 'row 3' or 'a.json row 3'."""
    if other.file == record.file:
        return f"row {other.row}"
    return f"{other.file} row {other.row}"


def _as_written(record: Record, other: Record) -> str:
    return "" if other.text == record.text else f" as '{other.text}'"


def validate_records(
    records: Sequence[Record],
    taxonomy: Taxonomy,
    *,
    parts: int = 3,
    text_field: str = "text",
    label_field: str = "label",
) -> ValidationReport:
    """Every problem of ``records`` against ``taxonomy``, with a label-frequency table.

    ``parts`` is the number of split parts (3 for 4:1:1) that a label needs enough
    distinct names to reach.
    """
    check = _Checker(taxonomy, label_field)
    groups = list(dict.fromkeys(group_of(r) for r in records))
    named_sources = all(r.source is not None for r in records)
    rows = {g: 0 for g in groups}
    resolved: list[tuple[Record, tuple[str, ...]]] = []
    unknown_counts: dict[str, dict[str, int]] = {}
    for record in records:
        rows[group_of(record)] += 1
        if not record.text.strip():
            check.add("empty-text", "empty name", record, text_field)
            continue
        ids = check.resolve(record)
        if ids is None:
            for name in record.labels:
                if taxonomy.resolve(name) is None:
                    per_group = unknown_counts.setdefault(name, {})
                    per_group[group_of(record)] = per_group.get(group_of(record), 0) + 1
            continue
        check.check_label_set(record, ids)
        resolved.append((record, ids))

    # Names: exact and normalised duplicates, within and between groups.
    by_key: dict[str, list[tuple[Record, tuple[str, ...]]]] = {}
    for record, ids in resolved:
        by_key.setdefault(match_key(record.text), []).append((record, ids))
    agreement: dict[tuple[str, str], list[int]] = {pair: [0, 0] for pair in combinations(groups, 2)}
    for entries in by_key.values():
        firsts: dict[str, tuple[Record, tuple[str, ...]]] = {}
        for record, ids in entries:
            group = group_of(record)
            if group not in firsts:
                firsts[group] = (record, ids)
                continue
            first, first_ids = firsts[group]
            if set(ids) != set(first_ids):
                other = _where(record, first)
                if first.text != record.text:
                    how = ", ".join(differences(record.text, first.text))
                    other += f" as '{first.text}' (differs in {how})"
                check.add(
                    "conflict",
                    f"'{record.text}' has labels {_labels(ids)} but {_labels(first_ids)} "
                    f"in {other}",
                    record,
                    label_field,
                )
            elif record.text == first.text:
                check.add(
                    "duplicate",
                    f"'{record.text}' repeats {_where(record, first)} (same labels)",
                    record,
                    text_field,
                )
            else:
                check.add(
                    "near-duplicate",
                    f"'{record.text}' is written differently from '{first.text}' in "
                    f"{_where(record, first)} ({', '.join(differences(record.text, first.text))}"
                    "; same labels)",
                    record,
                    text_field,
                )
        ordered = [g for g in groups if g in firsts]
        for a, b in combinations(ordered, 2):
            (ra, ia), (rb, ib) = firsts[a], firsts[b]
            same = set(ia) == set(ib)
            agreement[(a, b)][0] += 1
            agreement[(a, b)][1] += int(same)
            if named_sources:
                if not same:
                    check.add(
                        "source-conflict",
                        f"'{rb.text}' is labelled {_labels(ib)} by {b} but {_labels(ia)} by "
                        f"{a}{_as_written(rb, ra)} ({_where(rb, ra)})",
                        rb,
                        label_field,
                    )
            else:
                labels_note = "same labels" if same else f"labels {_labels(ia)} there"
                check.add(
                    "cross-file",
                    f"'{rb.text}' is also in {ra.file} row {ra.row} ({labels_note}): a name "
                    "in two files of a split makes evaluation optimistic",
                    rb,
                    text_field,
                )

    # Label frequencies, in taxonomy order, then unknown labels.
    counts = {label.id: LabelCount(label=label.id) for label in taxonomy.labels}
    name_sets: dict[str, set[str]] = {label.id: set() for label in taxonomy.labels}
    unlabelled = 0
    for record, ids in resolved:
        if not ids:
            unlabelled += 1
        for label_id in ids:
            entry = counts[label_id]
            entry.counts[group_of(record)] = entry.counts.get(group_of(record), 0) + 1
            entry.total += 1
            name_sets[label_id].add(match_key(record.text))
    for label_id, entry in counts.items():
        entry.names = len(name_sets[label_id])
        if entry.total == 0:
            check.add("unused-label", f"label '{label_id}' has no example: it cannot be learned")
        elif entry.names < parts:
            check.add(
                "rare-label",
                f"label '{label_id}' has {entry.names} distinct name(s): too few to appear in "
                f"each of {parts} split parts",
            )
    label_counts = list(counts.values())
    for name, per_group in unknown_counts.items():
        label_counts.append(
            LabelCount(label=name, known=False, counts=per_group, total=sum(per_group.values()))
        )

    codes = list(CODES)
    check.problems.sort(
        key=lambda p: (p.severity != "error", codes.index(p.code), p.file or "", p.row or 0)
    )
    return ValidationReport(
        taxonomy=taxonomy.name,
        parts=parts,
        groups=groups,
        named_sources=named_sources,
        rows=rows,
        records=len(records),
        names=len({match_key(r.text) for r in records if r.text.strip()}),
        label_counts=label_counts,
        unlabelled=unlabelled,
        agreement=[
            SourceOverlap(a=a, b=b, shared_names=n, identical=same)
            for (a, b), (n, same) in agreement.items()
            if named_sources
        ],
        problems=check.problems,
    )
