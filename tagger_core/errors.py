"""Errors that reach the user as one line: where (file, row, field) and what.

The CLI prints ``str(error)`` and exits with status 2; nothing below the CLI prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TaggerError(Exception):
    """A problem the user can fix (bad input, unknown name, missing model)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.row = row
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = location(self.file, self.row, self.field)
        return f"{where}: {self.message}" if where else self.message


def location(file: str | None, row: int | None, field: str | None) -> str:
    """'file, row 3, field 'label'' — the parts that are known, in that order."""
    where = []
    if file is not None:
        where.append(file)
    if row is not None:
        where.append(f"row {row}")
    if field is not None:
        where.append(f"field '{field}'")
    return ", ".join(where)


class DataError(TaggerError):
    """A data file cannot be read or holds an invalid record."""


class TaxonomyError(TaggerError):
    """A taxonomy is unknown, malformed, or a label does not belong to it."""


class PluginError(TaggerError):
    """An encoder, rule, format or plugin is unknown or misbehaves."""


class ModelError(TaggerError):
    """A saved tagger directory is missing, incomplete or corrupt."""


def closest(name: str, candidates: list[str]) -> str | None:
    """The candidate that a typo most likely meant, for 'did you mean' hints."""
    import difflib

    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.7)
    return lowered[match[0]] if match else None


def unknown(kind: str, name: str, known: list[str]) -> str:
    """'unknown encoder 'x' (known: a, b; did you mean 'a'?)'."""
    hint = closest(name, known)
    suffix = f"; did you mean '{hint}'?" if hint else ""
    return f"unknown {kind} '{name}' (known: {', '.join(sorted(known)) or 'none'}{suffix})"


def validation_problem(exc: Any) -> tuple[str | None, str]:
    """(dotted field, message) of a pydantic ValidationError's first problem."""
    problem = exc.errors()[0]
    field = ".".join(str(part) for part in problem["loc"]) or None
    message = str(problem["msg"]).removeprefix("Value error, ")
    return field, message
