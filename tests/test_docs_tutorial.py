"""docs/plugins/tutorial-hotels.md shows the files of examples/tagger-hotels in full; they
must stay identical, so that the tested example is what the tutorial teaches.

(tests/test_install_hotels.py installs that example and also runs the tutorial's test file.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TUTORIAL = REPO / "docs" / "plugins" / "tutorial-hotels.md"
EXAMPLE = REPO / "examples" / "tagger-hotels"

# `<!-- file: PATH -->` right before a fenced block: the block is the whole file PATH.
SHOWN = re.compile(r"^<!-- file: (\S+) -->\n```\w*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def shown_files() -> dict[str, str]:
    return {m.group(1): m.group(2) for m in SHOWN.finditer(TUTORIAL.read_text(encoding="utf-8"))}


def tutorial_test_file() -> str:
    """The test file the tutorial asks the reader to create."""
    text = TUTORIAL.read_text(encoding="utf-8")
    match = re.search(
        r"Create `tests/test_tagger_hotels.py`:\n\n```python\n(.*?)^```", text, re.M | re.S
    )
    assert match, "the tutorial no longer shows tests/test_tagger_hotels.py"
    return match.group(1)


def test_the_tutorial_shows_every_file_of_the_plugin() -> None:
    package_files = {
        str(path.relative_to(EXAMPLE))
        for path in (EXAMPLE / "tagger_hotels").iterdir()
        if path.is_file() and path.suffix in {".py", ".yaml"}
    }
    assert package_files | {"pyproject.toml"} == set(shown_files())


@pytest.mark.parametrize("path", sorted(shown_files()))
def test_shown_file_matches_the_example(path: str) -> None:
    actual = (EXAMPLE / path).read_text(encoding="utf-8")
    assert shown_files()[path] == actual, (
        f"docs/plugins/tutorial-hotels.md shows a {path} that differs from "
        f"examples/tagger-hotels/{path}: update one from the other"
    )


def test_tutorial_test_file_compiles() -> None:
    compile(tutorial_test_file(), "tutorial: tests/test_tagger_hotels.py", "exec")
