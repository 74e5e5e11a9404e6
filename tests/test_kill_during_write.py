"""A process killed (SIGKILL) at the moment it publishes an output, for every kind of
output tagger writes: the old file (or tagger folder) is still there and intact, no
fragment carries the target's name, and the next run to the same target succeeds and
leaves no hidden fragment behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import EXAMPLES, TOY

from tagger_core import Record, Tagger

# Runs the CLI with os.replace / os.rename (what every atomic write ends with) killing the
# process when the destination is the file or folder named first on the command line.
KILL_AT_PUBLISH = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    victim = sys.argv.pop(1)

    def deadly(real):
        def publish(src, dst, *args, **kwargs):
            if Path(dst).name == victim:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, *args, **kwargs)
        return publish

    os.replace, os.rename = deadly(os.replace), deadly(os.rename)
    import tagger_core.files as files  # before anything imports its atomic folder swap

    if os.environ.get("NO_SWAP"):
        files.exchange = lambda first, second: False
    else:
        files.exchange = deadly(files.exchange)
    from tagger_core.cli import main
    sys.argv[0] = "tagger"
    main()
    """
)

TRAIN = str(EXAMPLES / "train.json")
VALID = str(EXAMPLES / "validation.json")


def _tagger(
    *args: str, kill: str | None = None, cwd: Path, swap: bool = True
) -> subprocess.CompletedProcess[str]:
    code = KILL_AT_PUBLISH if kill else "from tagger_core.cli import main; main()"
    argv = [kill] if kill else []
    return subprocess.run(
        [sys.executable, "-c", code, *argv, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **({} if swap else {"NO_SWAP": "1"})},
    )


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = [Record(text=t, labels=tuple(labels)) for t, labels in TOY]
    path = tmp_path_factory.mktemp("kill") / "model"
    return Tagger.create("attractions").train(records).save(path)


# (what is written, command line with {model}; the output that the kill hits)
WRITES = [
    ("predictions", ["predict", "{model}", "-i", VALID, "-o", "out.jsonl", "--force"], "out.jsonl"),
    ("predictions as a table", ["predict", "{model}", "-i", VALID, "-o", "out.csv", "--force"],
     "out.csv"),
    ("predictions in a workbook", ["predict", "{model}", "-i", VALID, "-o", "out.xlsx", "--force"],
     "out.xlsx"),
    ("evaluate's metrics", ["evaluate", "{model}", VALID, "--metrics-file", "metrics.json",
     "--report", "report.html", "--force"], "metrics.json"),
    ("evaluate's report", ["evaluate", "{model}", VALID, "--metrics-file", "metrics.json",
     "--report", "report.html", "--force"], "report.html"),
    ("evaluate's errors", ["evaluate", "{model}", VALID, "--errors-file", "errors.csv",
     "--force"], "errors.csv"),
    ("a split part", ["split", "--data", f"a={TRAIN}", "-o", "parts", "--force"],
     "valid.json"),
    ("a taxonomy", ["taxonomy", "infer", TRAIN, "-o", "taxonomy.yaml", "--force"],
     "taxonomy.yaml"),
    ("cross-validation metrics", ["cv", "--data", f"a={TRAIN}", "--taxonomy", "attractions",
     "-k", "2", "--metrics-file", "cv.json", "--force"], "cv.json"),
    ("a trained tagger", ["train", "--taxonomy", "attractions", "--train", TRAIN, "-o",
     "trained", "--force"], "trained"),
]  # fmt: skip


def _target(cwd: Path, name: str) -> Path:
    found = [p for p in cwd.rglob(name) if not any(part.startswith(".") for part in p.parts)]
    return found[0] if found else cwd / name


def _snapshot(path: Path) -> object:
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()
        }
    return path.read_bytes()


@pytest.mark.parametrize(("what", "command", "victim"), WRITES, ids=[w[0] for w in WRITES])
def test_a_kill_while_publishing_keeps_the_old_output(
    model: Path, tmp_path: Path, what: str, command: list[str], victim: str
) -> None:
    args = [arg.replace("{model}", str(model)) for arg in command]
    first = _tagger(*args, cwd=tmp_path)  # the "old" outputs
    assert first.returncode == 0, first.stderr
    target = _target(tmp_path, victim)
    old = _snapshot(target)
    if what == "a trained tagger":
        json.loads((target / "manifest.json").read_text(encoding="utf-8"))  # a real tagger

    killed = _tagger(*args, kill=victim, cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr
    assert _snapshot(target) == old  # nothing of the killed run under the target's name
    visible = {p.name for p in tmp_path.rglob("*") if not p.name.startswith(".")}
    assert not any(".partial" in name or name.endswith(".old") for name in visible)
    if what == "a trained tagger":
        Tagger.load(target)  # still loads, checksums and all

    again = _tagger(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert target.stat().st_mode & 0o044 == 0o044  # readable by others, as a plain write is
    hidden = sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{victim}."))
    assert hidden == []  # the killed run's fragments were cleaned up by the next write


def test_without_an_atomic_swap_a_killed_save_is_restored(tmp_path: Path) -> None:
    """Where folders cannot be swapped in one step, a kill between a save's two renames
    leaves the old tagger only in its hidden backup: loading names it, and the next save
    to that target puts it back before replacing it."""
    args = ["train", "--taxonomy", "attractions", "--train", TRAIN, "-o", "trained", "--force"]
    assert _tagger(*args, cwd=tmp_path).returncode == 0
    killed = _tagger(*args, kill="trained", cwd=tmp_path, swap=False)
    assert killed.returncode == -9, killed.stderr
    with pytest.raises(Exception, match=r"an interrupted save left the previous one in .*\.old"):
        Tagger.load(tmp_path / "trained")
    again = _tagger(*args, cwd=tmp_path, swap=False)
    assert again.returncode == 0, again.stderr
    Tagger.load(tmp_path / "trained")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trained"]
