"""docs/python-api.md's main example runs as written: copied out of the page into a script,
run by a fresh interpreter in a temporary folder that holds the example data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "python-api.md"
MARKER = "<!-- tested: tests/test_python_api_example.py"


def example_block() -> str:
    """The python block right after the ``<!-- tested: ... -->`` marker."""
    text = PAGE.read_text(encoding="utf-8")
    assert MARKER in text, f"{PAGE.name} lost its marked example ({MARKER} ... -->)"
    after = text[text.index(MARKER) :]
    match = re.match(r"<!--.*?-->\n```python\n(.*?)^```", after, re.MULTILINE | re.DOTALL)
    assert match, "the marker must sit right before a ```python block"
    return match.group(1)


def test_example_is_short_and_uses_only_the_public_api() -> None:
    code = example_block()
    imports = re.findall(r"^(?:from|import) (\S+)", code, re.MULTILINE)
    assert imports == ["tagger_core"], imports  # no tagger_core.submodule, no CLI
    assert len(code.strip().splitlines()) <= 15


def test_example_runs_as_written(tmp_path: Path) -> None:
    for name in ("train.json", "validation.json"):
        shutil.copy(REPO / "examples" / "attractions" / name, tmp_path / name)
    script = tmp_path / "example.py"
    script.write_text(example_block(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGGER_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("香港海洋公园 ["), lines
    assert lines[1].startswith("故宫博物院 ["), lines
    assert re.fullmatch(r"micro F1 on validation: 0\.\d{3}", lines[2]), lines
    assert (tmp_path / "my-tagger" / "manifest.json").is_file()

    # Run again: `force=True` replaces the saved tagger.
    again = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr


def test_every_public_name_is_documented() -> None:
    """A name exported by tagger_core is part of the promise, so the page must list it."""
    import tagger_core

    text = PAGE.read_text(encoding="utf-8")
    missing = [name for name in tagger_core.__all__ if f"`{name}" not in text]
    assert not missing, f"docs/python-api.md does not document: {', '.join(missing)}"
