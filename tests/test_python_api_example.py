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


def example_block(marker: str = MARKER) -> str:
    """The python block right after the ``<!-- tested...: ... -->`` marker."""
    text = PAGE.read_text(encoding="utf-8")
    assert marker in text, f"{PAGE.name} lost its marked example ({marker} ... -->)"
    after = text[text.index(marker) :]
    match = re.match(r"<!--.*?-->\n```python\n(.*?)^```", after, re.MULTILINE | re.DOTALL)
    assert match, "the marker must sit right before a ```python block"
    return match.group(1)


def test_example_is_short_and_uses_only_the_public_api() -> None:
    code = example_block()
    imports = re.findall(r"^(?:from|import) (\S+)", code, re.MULTILINE)
    assert imports == ["tagger_core"], imports  # no tagger_core.submodule, no CLI
    assert len(code.strip().splitlines()) <= 15


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = cwd / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGGER_")}
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_error_example_names_only_what_is_known(tmp_path: Path) -> None:
    """A missing file has no row: the example must not print 'row None'."""
    result = _run(example_block("<!-- tested-errors:"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["fix the data: train.json: file does not exist"]
    (tmp_path / "train.json").write_text('[{"text": "x"}]', encoding="utf-8")
    result = _run(example_block("<!-- tested-errors:"), tmp_path)
    assert result.stdout.splitlines() == [
        "fix the data: train.json, row 1, field 'label': missing field",
        "(row 1 of train.json)",
    ]


def test_workflow_example_runs_as_written(tmp_path: Path) -> None:
    for name in ("train.json", "validation.json"):
        shutil.copy(REPO / "examples" / "attractions" / name, tmp_path / name)
    result = _run(example_block("<!-- tested-workflow:"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"micro F1 0\.\d{3} with per-label \(.*\)\n", result.stdout)
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "report.html").is_file()


def test_docs_import_only_the_public_api() -> None:
    """The docs teach the names of tagger_core/__init__.py and nothing deeper (the click
    group, for testing commands, is the one other import)."""
    deep = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for line in page.read_text(encoding="utf-8").splitlines():
            match = re.search(r"\b(?:from|import) (tagger_core\.[\w.]+)", line)
            if match and match.group(1) != "tagger_core.cli":
                deep.append(f"{page.relative_to(REPO)}: {line.strip()}")
    assert not deep, "docs import below the public API:\n" + "\n".join(deep)


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
