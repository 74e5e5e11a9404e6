"""The review loop's output: every accepted or corrected label set, appended to a labelled
JSON Lines file that `tagger train` and `tagger validate` read as they are.

Each line is written with one ``write`` under an exclusive ``flock`` and synced before the
request is answered, so concurrent requests and server processes never interleave lines,
and an answered correction survives a crash. A client may send a ``review_id`` with each
correction; a retry with the same id (after a dropped connection, say) is recognised
and not written twice, across processes too (each catches up on the others' lines under
the lock)."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tagger_core.errors import DataError
from tagger_core.files import sync_folder
from tagger_core.schemas import Taxonomy

REVIEW_SOURCE = "review"


def label_set_problem(labels: list[str], taxonomy: Taxonomy) -> str | None:
    """Why ``labels`` (ids, in canonical form) break the taxonomy's constraints, or None."""
    rules = taxonomy.constraints
    if len(set(labels)) != len(labels):
        return "a label is given twice"
    if taxonomy.mode == "single-label" and len(labels) != 1:
        return f"taxonomy '{taxonomy.name}' is single-label: give exactly one label"
    if len(labels) < rules.min_labels:
        return f"taxonomy '{taxonomy.name}' needs at least {rules.min_labels} label(s)"
    if rules.max_labels is not None and len(labels) > rules.max_labels:
        return f"taxonomy '{taxonomy.name}' allows at most {rules.max_labels} label(s)"
    for label in rules.exclusive:
        if label in labels and len(labels) > 1:
            return f"'{label}' never stands beside another label"
    for group in rules.exclusive_groups:
        inside = [label for label in labels if label in group]
        if len(inside) > 1:
            return f"at most one of {', '.join(group)}; got {', '.join(inside)}"
    return None


def canonical_labels(labels: list[str], taxonomy: Taxonomy) -> list[str]:
    """Ids for ``labels`` given as ids or aliases; raises ValueError naming an unknown one."""
    known = {label.id: label.id for label in taxonomy.labels}
    for label in taxonomy.labels:
        for alias in label.aliases:
            known.setdefault(alias, label.id)
    out = []
    for given in labels:
        if given not in known:
            raise ValueError(f"unknown label '{given}' for taxonomy '{taxonomy.name}'")
        out.append(known[given])
    return out


class CorrectionLog:
    """Appends review lines to one JSON Lines file, each at most once per ``review_id``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rows = 0
        self.seen: set[str] = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with open(path, "rb") as handle:
                self._catch_up(handle.fileno())

    def _catch_up(self, fd: int) -> None:
        """Read the lines written since ``offset`` (by anyone) and note their review ids.
        A last line without its newline is refused: appending after it would glue two
        corrections into one unreadable line."""
        size = os.fstat(fd).st_size
        if size <= self.offset:
            return
        data = os.pread(fd, size - self.offset, self.offset)
        if not data.endswith(b"\n"):
            raise DataError(
                "ends in an incomplete line (a write was cut short); finish or remove that "
                "line before serving corrections into this file",
                file=self.path,
                row=self.rows + data.count(b"\n") + 1,
            )
        for line in data.splitlines():
            self.rows += 1
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise DataError(
                    "is not a JSON object; the corrections file must be JSON Lines",
                    file=self.path,
                    row=self.rows,
                ) from None
            if isinstance(entry, dict) and isinstance(entry.get("review_id"), str):
                self.seen.add(entry["review_id"])
        self.offset = size

    def append(self, entry: dict[str, Any]) -> tuple[bool, int]:
        """Write ``entry`` (given a time) unless its review id is already in the file.
        Returns (written, the line's row number or the row already written)."""
        review_id = entry.get("review_id")
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._catch_up(fd)
            if review_id is not None and review_id in self.seen:
                return False, self._row_of(fd, review_id)
            line = dict(entry)
            line.setdefault("time", datetime.now(timezone.utc).isoformat(timespec="seconds"))
            data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            if created:  # the file's name, too, must survive a crash
                sync_folder(self.path.parent)
            self.offset += len(data)
            self.rows += 1
            if review_id is not None:
                self.seen.add(review_id)
            return True, self.rows
        finally:
            os.close(fd)  # closing releases the lock

    def _row_of(self, fd: int, review_id: str) -> int:
        data = os.pread(fd, self.offset, 0)
        for row, line in enumerate(data.splitlines(), start=1):
            if review_id in line.decode("utf-8", "replace"):
                try:
                    if json.loads(line).get("review_id") == review_id:
                        return row
                except ValueError:
                    continue
        return 0
