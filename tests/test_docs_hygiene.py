"""The docs as a new user meets them: every file they name exists, and the commands they
show leave nothing untracked in a clone (their outputs are in .gitignore)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
OUTPUT_FLAGS = (
    "-o|--output|--metrics-file|--results-file|--errors-file|--sweep-file|--sweep-plot|"
    "--dump|--report"
)


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def test_links_and_named_files_exist() -> None:
    missing = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not re.match(r"[a-z]+://", target) and not (page.parent / target).exists():
                missing.append(f"{page.relative_to(REPO)}: link to {target}")
        for line in text.splitlines():
            for name in re.findall(r"(?<![\w/.-])([\w-]+\.md)\b", line):
                if "../shared/" in line or any(REPO.rglob(name)):
                    continue
                missing.append(f"{page.relative_to(REPO)}: names {name}, not in the repository")
    assert missing == []


def doc_outputs() -> list[str]:
    """Relative paths that the docs' commands write."""
    found = set()
    for page in PAGES:
        for block in _code_blocks(page.read_text(encoding="utf-8")):
            for path in re.findall(rf"(?:^|\s)(?:{OUTPUT_FLAGS})[ =]([^\s`'\"\]]+)", block):
                if path.startswith(("/", "$", "-")) or path.isupper() or "{" in path:
                    continue  # absolute, a variable, or a placeholder such as OUT
                found.add(path)
    return sorted(found)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_doc_commands_write_only_ignored_paths() -> None:
    outputs = doc_outputs()
    assert {"parts", "by-source", "attractions-tagger", "my-tagger"} <= set(outputs)
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = [
        path
        for path in outputs
        if subprocess.run(
            ["git", "check-ignore", "-q", "--no-index", path], cwd=REPO, check=False
        ).returncode
        != 0
    ]
    assert tracked == [], f"add to .gitignore: {tracked}"


def test_evaluation_guide_shows_the_attraction_examples_it_talks_about() -> None:
    """Every per-label table on the attraction page lists attraction labels (it once showed
    a SemEval table with emotions)."""
    from tagger_core import resolve_taxonomy

    labels = set(resolve_taxonomy("attractions").label_ids)
    page = (REPO / "docs" / "evaluation.md").read_text(encoding="utf-8")
    shown = []
    for block in _code_blocks(page):
        lines = block.splitlines()
        for start, line in enumerate(lines):
            if line.startswith("LABEL "):
                for row in lines[start + 1 :]:
                    if not row.strip():
                        break  # the table ends at a blank line
                    name = re.split(r"\s{2,}", row.strip())[0]
                    if name not in ("...", "…") and not name.startswith("("):
                        shown.append(name)
    assert shown and set(shown) <= labels, set(shown) - labels


def test_bert_guide_points_to_the_command_that_lists_encoder_options() -> None:
    page = (REPO / "docs" / "bert.md").read_text(encoding="utf-8")
    assert "`tagger plugins --options`" in page
    assert "train --help` shows" not in page
