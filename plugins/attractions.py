"""The attraction entity: registers the 9-label attraction taxonomy shipped as data, and
the same kinds nested under three groups (``attractions-grouped``)."""

from __future__ import annotations

from importlib.resources import files

from tagger_core import hookimpl


@hookimpl
def register_taxonomies(register):  # type: ignore[no-untyped-def]
    register(str(files("tagger_taxonomies") / "attractions.yaml"))
    register(str(files("tagger_taxonomies") / "attractions-grouped.yaml"))
