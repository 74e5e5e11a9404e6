"""Taxonomies with no code: every YAML/JSON file in the folders of ``TAGGER_TAXONOMY_PATH``.

``TAGGER_TAXONOMY_PATH`` is a list of folders separated like ``PATH`` (``:`` on POSIX).
"""

from __future__ import annotations

import os
from pathlib import Path

from tagger_core import TAXONOMY_SUFFIXES, hookimpl

TAXONOMY_PATH_ENV = "TAGGER_TAXONOMY_PATH"


@hookimpl
def register_taxonomies(register):  # type: ignore[no-untyped-def]
    for folder in os.environ.get(TAXONOMY_PATH_ENV, "").split(os.pathsep):
        if not folder:
            continue
        for path in sorted(Path(folder).glob("*")):
            if path.suffix.lower() in TAXONOMY_SUFFIXES and path.is_file():
                register(str(path))
