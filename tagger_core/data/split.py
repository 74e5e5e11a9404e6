"""Fair splits of multi-label data: every label in every part, one name in one part only.

Three rules, each fixing a problem of the reference notebook:

- Stratification is iterative (Sechidis et al. 2011, from the `iterative-stratification`
  package), so that each part gets its share of every label, rare ones included.
- After stratifying, a repair pass sends the names of labels with fewer names than parts
  to the earliest parts (training first: a label only seen at evaluation cannot be
  learned), brings part sizes to their ratios (stratification only approximates them) and
  moves names so that every label with at least as many examples as there are parts
  appears in every part (stratification alone may leave a 3-example label out of a 4:1:1
  split's smallest part).
- The unit of splitting is a *name*: all records whose names match after normalisation
  (`tagger_core.data.normalize.match_key`) stay in one part, so that a name labelled by two
  sources, or written in Traditional and in Simplified characters, never lands both in
  training and in evaluation.

``split_by_source`` adds the notebook's strategy for several sources: one validation part
per source, drawn from that source's names first and topped up from the others.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from tagger_core.components import FileOptions
from tagger_core.data.normalize import match_key
from tagger_core.data.sources import for_writing, source_names
from tagger_core.errors import TaggerError
from tagger_core.files import write_text
from tagger_core.schemas import Record, Taxonomy
from tagger_core.taxonomy import infer_taxonomy, label_matrix

log = logging.getLogger("tagger")

DEFAULT_PART_NAMES = {2: ["train", "valid"], 3: ["train", "valid", "test"]}
SPLIT_REPORT = "split.json"
SET_ASIDE = "set-aside"


def parse_ratios(text: str) -> list[float]:
    """``4:1:1`` → [4, 1, 1]; at least two positive numbers."""
    parts = [part.strip() for part in text.replace(",", ":").split(":")]
    try:
        ratios = [float(part) for part in parts]
    except ValueError:
        raise TaggerError(f"bad ratios '{text}': expected numbers like 4:1:1") from None
    if len(ratios) < 2 or any(not (r > 0 and math.isfinite(r)) for r in ratios):
        raise TaggerError(f"bad ratios '{text}': expected two or more positive finite numbers")
    return ratios


def group_by_name(records: Sequence[Record]) -> list[list[int]]:
    """Indices of ``records`` grouped by normalised name, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(match_key(record.text), []).append(i)
    return list(groups.values())


def group_labels(matrix: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """G × L booleans: the union of the labels of each group's records."""
    if not groups:
        return np.zeros((0, matrix.shape[1]), dtype=bool)
    return np.stack([matrix[list(group)].any(axis=0) for group in groups]).astype(bool)


def only_names(labels: np.ndarray) -> np.ndarray:
    """Which groups (rows of a G × L label matrix) are the only name of some label: they
    must stay in training, or the label is never learned."""
    return np.asarray(labels[:, labels.sum(axis=0) == 1].any(axis=1), dtype=bool)


def stratify(labels: np.ndarray, ratios: Sequence[float], seed: int) -> np.ndarray:
    """The part index of each row of ``labels`` (n × L, 0/1), by iterative stratification.

    Rows are shuffled first, as the package's own splitters do, so that the seed decides
    ties and a sorted input file does not bias the parts.
    """
    from iterstrat.ml_stratifiers import IterativeStratification

    n = labels.shape[0]
    r = np.asarray(ratios, dtype=float)
    r = r / r.sum()
    if n == 0:
        return np.zeros(0, dtype=int)
    rng = np.random.RandomState(seed)
    order = rng.permutation(n)
    # The algorithm indexes label columns with each row: it needs booleans, not 0/1 ints.
    folds = IterativeStratification(
        labels=np.asarray(labels, dtype=bool)[order], r=r, random_state=rng
    )
    parts = np.empty(n, dtype=int)
    parts[order] = folds
    return parts


def stratified_take(pool: Sequence[int], k: int, labels: np.ndarray, seed: int) -> list[int]:
    """About ``k`` members of ``pool`` chosen by stratification on their ``labels`` rows."""
    pool = list(pool)
    if k <= 0 or not pool:
        return []
    if k >= len(pool):
        return pool
    parts = stratify(labels[pool], [len(pool) - k, k], seed)
    return [g for g, part in zip(pool, parts, strict=True) if part == 1]


class _Placement:
    """Groups assigned to parts, with per-part label counts kept up to date as groups move.

    ``views[p, g]`` is group ``g``'s label vector if it sits in part ``p`` (by-source
    validation parts see only their own source's labels); ``prefer[p, g]`` marks groups
    that may go to ``p`` by preference.
    """

    def __init__(self, assign: np.ndarray, views: np.ndarray, prefer: np.ndarray) -> None:
        self.assign, self.views, self.prefer = assign, views, prefer
        self.n_parts = views.shape[0]
        self.totals = views.any(axis=0).sum(axis=0)
        # required[p, j]: label j should appear in part p. With at least as many names as
        # parts: every part; rarer labels: the first parts (training first: a label only
        # seen at evaluation cannot be learned).
        self.required = (
            np.arange(self.n_parts)[:, None] < np.minimum(self.totals, self.n_parts)[None, :]
        )
        self.eligible = self.totals >= self.n_parts
        self.protected = self.required.copy()
        self.fixed = np.zeros(len(assign), dtype=bool)  # pinned groups: never moved
        self.counts = np.stack(
            [views[p][assign == p].sum(axis=0) for p in range(self.n_parts)]
        ).astype(float)

    def pin_rare(self) -> None:
        """Send the names of labels with fewer names than parts to the earliest parts —
        training, then validation, then test — whatever stratification preferred for their
        other labels, and keep them there. Rarest labels first, so a name that carries
        several rare labels goes where the rarest needs it: training wins for all of them."""
        union = np.asarray(self.views.any(axis=0), dtype=bool)
        rare = (self.totals > 0) & (self.totals < self.n_parts)
        rare_count = union[:, rare].sum(axis=1)
        pinned = np.full(len(self.assign), -1)
        for label in sorted(np.flatnonzero(rare), key=lambda j: (self.totals[j], j)):
            groups = np.flatnonzero(union[:, label])
            covered = {int(pinned[g]) for g in groups if pinned[g] >= 0}
            needed = [p for p in range(int(self.totals[label])) if p not in covered]
            free = sorted(
                (int(g) for g in groups if pinned[g] < 0),
                key=lambda g: (-int(rare_count[g]), int(self.assign[g]), g),
            )
            for i, group in enumerate(free):
                pinned[group] = needed[i] if i < len(needed) else 0  # training wins
        for moved in np.flatnonzero(pinned >= 0):
            self.move(int(moved), int(pinned[moved]))
        self.fixed = pinned >= 0

    def spare(self, part: int, group: int) -> bool:
        """Whether ``part`` keeps every protected label it holds without ``group``."""
        if self.fixed[group]:
            return False
        held = self.views[part, group] & self.protected[part] & (self.counts[part] > 0)
        return bool(np.all(self.counts[part][held] >= 2))

    def move(self, group: int, to: int) -> None:
        here = int(self.assign[group])
        self.counts[here] -= self.views[here, group]
        self.assign[group] = to
        self.counts[to] += self.views[to, group]

    def balance(self, shares: np.ndarray, weights: np.ndarray) -> None:
        """Bring part sizes in records (``weights``: records per group) to within one
        record of their shares where the names allow (iterative stratification only
        approximates them): while a group can move from the largest surplus to the largest
        shortfall and bring both nearer their targets, move the one that least disturbs
        label proportions."""
        n_groups = len(self.assign)
        targets = shares * weights.sum()
        wanted = shares[:, None] * self.totals[None, :]
        for _ in range(n_groups):
            sizes = np.bincount(self.assign, weights=weights, minlength=self.n_parts)
            excess = sizes - targets
            p, q = int(np.argmax(excess)), int(np.argmin(excess))
            gap = excess[p] - excess[q]
            candidates = [
                int(g)
                for g in np.flatnonzero(self.assign == p)
                if weights[g] < gap - 1e-9 and self.prefer[q, g] and self.spare(p, int(g))
            ]
            if not candidates:
                return
            c_p, c_q = self.counts[p], self.counts[q]
            loss = np.abs(c_p - 1 - wanted[p]) - np.abs(c_p - wanted[p])
            gain = np.abs(c_q + 1 - wanted[q]) - np.abs(c_q - wanted[q])
            cost = self.views[p][candidates] @ loss + self.views[q][candidates] @ gain
            # Groups that only topped a part up leave it first; then the least disturbing.
            best = min(
                range(len(candidates)),
                key=lambda i: (bool(self.prefer[p, candidates[i]]), cost[i], candidates[i]),
            )
            self.move(candidates[best], q)

    def cover(self) -> None:
        """Move groups until every required label is in its parts where possible: each
        move takes a group from the part richest in the label without losing any other
        protected label there, and sends back a group the receiving part can spare, so
        that sizes stay put."""
        views, assign, counts = self.views, self.assign, self.counts
        # Labels that can be in every part come first: that is the promise. The placement
        # of rarer labels must not break it: only their turn widens what is protected.
        self.protected = self.required & self.eligible
        order = sorted(
            np.flatnonzero(self.totals), key=lambda j: (not self.eligible[j], self.totals[j], j)
        )
        for label in order:
            if not self.eligible[label]:
                self.protected = self.required
            for part in (int(p) for p in np.flatnonzero(self.required[:, label])):
                if counts[part, label] > 0:
                    continue
                donors = [
                    int(g)
                    for g in np.flatnonzero((assign != part) & views[part][:, label])
                    if self.spare(int(assign[g]), int(g))
                ]
                if not donors:
                    continue  # Split.missing() reports what stays uncovered
                donor = min(
                    donors,
                    key=lambda g: (
                        not self.prefer[part, g],
                        -counts[assign[g], label],
                        int(views[assign[g], g].sum()),
                        g,
                    ),
                )
                origin = int(assign[donor])
                self.move(donor, part)
                returns = [
                    int(g)
                    for g in np.flatnonzero(assign == part)
                    if g != donor and not views[part, g, label] and self.spare(part, int(g))
                ]
                if returns:
                    back = min(
                        returns,
                        key=lambda g: (not self.prefer[origin, g], int(views[part, g].sum()), g),
                    )
                    self.move(back, origin)


def arrange(
    assign: np.ndarray,
    views: np.ndarray,
    shares: Sequence[float],
    prefer: np.ndarray | None = None,
    weights: Sequence[int] | None = None,
) -> None:
    """Fix a stratified assignment (group → part, changed in place): labels with fewer
    names than parts into the earliest parts, part sizes to their ``shares``, then every
    label with at least as many names as parts into every part. ``weights`` are the
    records of each group (default 1): sizes are balanced in records."""
    if prefer is None:
        prefer = np.ones(views.shape[:2], dtype=bool)
    placement = _Placement(assign, views, prefer)
    placement.pin_rare()
    share_array = np.asarray(shares, dtype=float)
    sizes = np.ones(len(assign)) if weights is None else np.asarray(weights, dtype=float)
    placement.balance(share_array / share_array.sum(), sizes)
    placement.cover()


def hold_out(
    records: Sequence[Record], ratio: float, taxonomy: Taxonomy, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """(rest, held out): about ``ratio`` of the names, stratified, for a validation part
    inside a training set (to fit decision rules or stop early). The only name of a label
    stays in the rest: a label must be trained on before it can be validated."""
    groups = group_by_name(records)
    labels = group_labels(label_matrix(records, taxonomy), groups)
    pool = [int(g) for g in np.flatnonzero(~only_names(labels))]
    chosen = set(stratified_take(pool, round(ratio * len(groups)), labels, seed))
    rest = [records[i] for g, group in enumerate(groups) if g not in chosen for i in group]
    held = [records[i] for g, group in enumerate(groups) if g in chosen for i in group]
    return rest, held


@dataclass
class Split:
    """Parts of a data set, with what could not be placed or covered."""

    names: list[str]
    parts: list[list[Record]]
    taxonomy: Taxonomy
    ratios: list[float]
    seed: int
    groups: list[int]  # names (groups) per part
    set_aside: list[Record] = field(default_factory=list)
    set_aside_reason: str = ""

    @cached_property
    def _label_counts(self) -> list[list[int]]:
        columns = [
            label_matrix(part, self.taxonomy).sum(axis=0).astype(int)
            if part
            else np.zeros(len(self.taxonomy.labels), dtype=int)
            for part in self.parts
        ]
        return [[int(column[j]) for column in columns] for j in range(len(self.taxonomy.labels))]

    def label_counts(self) -> list[list[int]]:
        """Records per label (rows, in taxonomy order) and part (columns)."""
        return self._label_counts

    @cached_property
    def _name_totals(self) -> list[int]:
        records = [r for part in self.parts for r in part] + self.set_aside
        groups = group_by_name(records)
        return [int(n) for n in group_labels(label_matrix(records, self.taxonomy), groups).sum(0)]

    def name_totals(self) -> list[int]:
        """Distinct names per label over all parts, the measure of 'enough examples'."""
        return self._name_totals

    def too_rare(self) -> list[str]:
        """Labels with fewer names than parts: they cannot be in every part."""
        return [
            label.id
            for label, total in zip(self.taxonomy.labels, self.name_totals(), strict=True)
            if 0 < total < len(self.parts)
        ]

    def rare_placement(self) -> dict[str, list[str]]:
        """Where each label with fewer names than parts went: label → the parts holding it
        (the earliest parts, training first)."""
        counts = dict(zip(self.taxonomy.label_ids, self.label_counts(), strict=True))
        return {
            label: [name for name, n in zip(self.names, counts[label], strict=True) if n]
            for label in self.too_rare()
        }

    def held_by_rare(self, label: str) -> int:
        """Names of ``label`` that also carry a label with fewer names than parts: those go
        to the earliest parts first, so they cannot cover ``label`` elsewhere."""
        records = [r for part in self.parts for r in part]
        rare = set(self.too_rare())
        keys = {match_key(r.text) for r in records if label in r.labels and rare & set(r.labels)}
        return len(keys - {""})

    def missing(self) -> list[tuple[str, str]]:
        """(label, part) pairs where a label with enough names is still absent."""
        totals = self.name_totals()
        out: list[tuple[str, str]] = []
        for label, total, counts in zip(
            self.taxonomy.labels, totals, self.label_counts(), strict=True
        ):
            if total >= len(self.parts):
                out.extend(
                    (label.id, name) for name, c in zip(self.names, counts, strict=True) if c == 0
                )
        return out

    def sources(self) -> list[dict[str, int]]:
        """Records per source in each part."""
        out = []
        for part in self.parts:
            counts: dict[str, int] = {}
            for record in part:
                key = record.source or "-"
                counts[key] = counts.get(key, 0) + 1
            out.append(counts)
        return out

    def report(self) -> dict[str, Any]:
        counts = self.label_counts()
        return {
            "ratios": self.ratios,
            "seed": self.seed,
            "taxonomy": self.taxonomy.name,
            "parts": [
                {"name": name, "rows": len(part), "names": groups, "sources": sources}
                for name, part, groups, sources in zip(
                    self.names, self.parts, self.groups, self.sources(), strict=True
                )
            ],
            "set_aside": {"rows": len(self.set_aside), "reason": self.set_aside_reason},
            "labels": [
                {"label": label.id, **dict(zip(self.names, row, strict=True))}
                for label, row in zip(self.taxonomy.labels, counts, strict=True)
            ],
            "too_rare": self.too_rare(),
            "rare_placement": self.rare_placement(),
            "missing": [{"label": label, "part": part} for label, part in self.missing()],
        }


def _taxonomy_for(records: Sequence[Record], taxonomy: Taxonomy | None) -> Taxonomy:
    return taxonomy if taxonomy is not None else infer_taxonomy(records, "data")


def _part_names(ratios: Sequence[float], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(ratios) or len(set(names)) != len(names):
            raise TaggerError(
                f"{len(ratios)} ratios need {len(ratios)} distinct part names, got {list(names)}"
            )
        for name in names:  # a name becomes a file name in the output folder, nothing more
            if not name or name in (".", "..") or "/" in name or "\\" in name:
                raise TaggerError(f"part name '{name}' is not a plain file name")
        return list(names)
    return DEFAULT_PART_NAMES.get(len(ratios), [f"part{i + 1}" for i in range(len(ratios))])


def split_records(
    records: Sequence[Record],
    ratios: Sequence[float],
    *,
    taxonomy: Taxonomy | None = None,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> Split:
    """Parts in proportion to ``ratios`` (of names), stratified on every label."""
    taxonomy = _taxonomy_for(records, taxonomy)
    part_names = _part_names(ratios, names)
    matrix = label_matrix(records, taxonomy)  # unknown labels stop here, naming the row
    groups = group_by_name(records)
    labels = group_labels(matrix, groups)
    assign = stratify(labels, ratios, seed)
    views = np.broadcast_to(labels, (len(ratios), *labels.shape))
    arrange(assign, views, ratios, weights=[len(group) for group in groups])
    return _build(records, groups, assign, part_names, taxonomy, ratios, seed)


def _build(
    records: Sequence[Record],
    groups: Sequence[Sequence[int]],
    assign: np.ndarray,
    names: list[str],
    taxonomy: Taxonomy,
    ratios: Sequence[float],
    seed: int,
    keep: Callable[[int, int], bool] | None = None,
) -> Split:
    """Parts from a group assignment; ``keep(record, part)`` False sets a record aside."""
    parts: list[list[Record]] = [[] for _ in names]
    set_aside: list[Record] = []
    for g, group in enumerate(groups):
        for i in group:
            if keep is None or keep(i, int(assign[g])):
                parts[assign[g]].append(records[i])
            else:
                set_aside.append(records[i])
    # Keep the input order within each part: diffs of re-runs stay readable.
    order = {id(r): i for i, r in enumerate(records)}
    for part in parts:
        part.sort(key=lambda r: order[id(r)])
    sizes = [int((assign == p).sum()) for p in range(len(names))]
    return Split(names, parts, taxonomy, list(ratios), seed, sizes, set_aside)


def split_by_source(
    records: Sequence[Record],
    ratios: Sequence[float],
    *,
    taxonomy: Taxonomy | None = None,
    seed: int = 0,
) -> Split:
    """The notebook's strategy: a training part and one validation part per source, each
    validation part drawn from its own source's names first and topped up from the others.

    ``ratios`` are train, then one per source (in order of appearance), then optionally a
    final test part drawn from all sources. A validation part holds its own source's
    records of its names (another source's labels for the few names it was topped up
    with); other sources' records of those names are set aside, out of training.
    """
    taxonomy = _taxonomy_for(records, taxonomy)
    sources = source_names(records)
    if len(sources) < 2:
        raise TaggerError(
            "--by-source needs records from at least two sources (give them as --data NAME=FILE)"
        )
    if any(r.source is None for r in records):
        raise TaggerError("--by-source needs a source for every file (use --data NAME=FILE)")
    n_valid = len(sources)
    if len(ratios) not in (n_valid + 1, n_valid + 2):
        raise TaggerError(
            f"--by-source with {n_valid} sources needs {n_valid + 1} ratios (train, then "
            f"one validation part per source: {', '.join(sources)}) or {n_valid + 2} "
            f"(and a test part); got {len(ratios)}"
        )
    names = ["train", *(f"valid-{s}" for s in sources)]
    if len(ratios) == n_valid + 2:
        names.append("test")
    matrix = label_matrix(records, taxonomy).astype(bool)
    groups = group_by_name(records)
    union = group_labels(matrix, groups)
    labelled_by = [{records[i].source for i in group} for group in groups]
    n_groups = len(groups)

    # views[p, g]: the labels group g contributes if it sits in part p.
    views = np.broadcast_to(union, (len(names), *union.shape)).copy()
    prefer = np.ones((len(names), n_groups), dtype=bool)
    for v, source in enumerate(sources, start=1):
        for g, group in enumerate(groups):
            if source in labelled_by[g]:
                own = [i for i in group if records[i].source == source]
                views[v, g] = matrix[own].any(axis=0)
            else:
                prefer[v, g] = False

    shares = np.asarray(ratios, dtype=float) / sum(ratios)
    targets = np.floor(shares * n_groups + 0.5).astype(int)
    assign = np.zeros(n_groups, dtype=int)
    free = np.ones(n_groups, dtype=bool)
    for v, source in enumerate(sources, start=1):
        own = [int(g) for g in np.flatnonzero(free) if source in labelled_by[g]]
        chosen = stratified_take(own, int(targets[v]), views[v], (seed + v) % 2**32)
        short = int(targets[v]) - len(own)
        if short > 0:  # too few own names: top up from names only other sources labelled
            free[chosen] = False
            others = [int(g) for g in np.flatnonzero(free)]
            chosen += stratified_take(others, short, views[v], (seed + v) % 2**32)
        assign[chosen] = v
        free[chosen] = False
    if "test" in names:
        test = len(names) - 1
        rest = [int(g) for g in np.flatnonzero(free)]
        chosen = stratified_take(rest, int(targets[test]), union, seed)
        assign[chosen] = test
        free[chosen] = False
    arrange(assign, views, ratios, prefer)  # sizes in names: records are set aside by source

    group_of = {i: g for g, group in enumerate(groups) for i in group}

    def keep(i: int, part: int) -> bool:
        if not 1 <= part <= n_valid:
            return True
        source = sources[part - 1]
        return source not in labelled_by[group_of[i]] or records[i].source == source

    split = _build(records, groups, assign, names, taxonomy, ratios, seed, keep)
    split.set_aside_reason = (
        "other sources' labels of names in a validation part, kept out of training so "
        "that no validation name is trained on"
    )
    return split


def _previous_parts(report_path: Path) -> set[Path]:
    """The part files an earlier split listed in ``report_path`` (its ``split.json``)
    beside it; none when there is no readable one."""
    try:
        files = json.loads(report_path.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(files, dict):
        return set()
    folder = report_path.parent.resolve()  # parts are written beside it: their names count
    parts = {folder / Path(str(name)).name for name in files.values()}
    return {path for path in parts if path.is_file() and path.name != report_path.name}


def write_split(
    split: Split,
    directory: Path,
    *,
    suffix: str = ".json",
    format: str | None = None,
    options: FileOptions | None = None,
    force: bool = False,
) -> list[Path]:
    """One file per part (plus ``set-aside`` if any, and ``split.json``), sources kept in
    a ``source`` field. Refuses to replace existing files unless ``force``."""
    from tagger_core.data.io import write_records

    outputs = [
        (directory / f"{name}{suffix}", part)
        for name, part in zip(split.names, split.parts, strict=True)
    ]
    if split.set_aside:
        outputs.append((directory / f"{SET_ASIDE}{suffix}", split.set_aside))
    report_path = directory / SPLIT_REPORT
    existing = [str(p) for p, _ in outputs if p.exists()] + (
        [str(report_path)] if report_path.exists() else []
    )
    if existing and not force:
        verb = "exists" if len(existing) == 1 else "exist"
        raise TaggerError(f"{', '.join(existing)} already {verb}; use --force to replace")
    stale = _previous_parts(report_path) - {path.resolve() for path, _ in outputs}
    directory.mkdir(parents=True, exist_ok=True)
    for path, part in outputs:
        write_records(path, [for_writing(r) for r in part], format, options)
    for path in sorted(stale):  # a part of the split replaced that this one does not have:
        path.unlink(missing_ok=True)  # its rows are now in other parts
        log.warning("removed %s, a part of the split this one replaces", path)
    report = split.report()
    report["files"] = {path.stem: str(path) for path, _ in outputs}
    write_text(report_path, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    return [path for path, _ in outputs] + [report_path]
