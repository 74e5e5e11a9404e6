"""Shared fixtures: small labelled data written to tmp files, and a clean plugin state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tagger_core import registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "attractions"
SHARED_DATA = REPO.parent / "shared" / "data"

# A tiny multi-label set in the attraction taxonomy: distinctive characters per label.
TOY = [
    ("海洋公园", ["Playgrounds", "Zoos & Animal Parks"]),
    ("迪士尼乐园", ["Playgrounds"]),
    ("欢乐谷乐园", ["Playgrounds"]),
    ("水上乐园", ["Water Parks"]),
    ("玛雅水公园", ["Water Parks"]),
    ("大澳渔村", ["Villages"]),
    ("乌镇古镇", ["Villages"]),
    ("黄大仙祠", ["Others"]),
    ("庙街夜市", ["Others"]),
    ("黄山风景区", ["Natural Landscape"]),
    ("浅水湾海滩", ["Natural Landscape"]),
    ("维多利亚公园", ["Gardens & Parks"]),
    ("拙政园花园", ["Gardens & Parks"]),
    ("广州塔观景台", ["Observation Decks & Towers"]),
    ("旅游塔观景台", ["Observation Decks & Towers"]),
    ("北京动物园", ["Zoos & Animal Parks"]),
    ("海洋馆动物园", ["Zoos & Animal Parks"]),
    ("故宫博物院", ["Museums & Galleries"]),
    ("香港艺术馆", ["Museums & Galleries"]),
    ("科学博物馆", ["Museums & Galleries"]),
]


def write_json(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def toy_rows() -> list[dict]:
    return [{"text": text, "label": labels} for text, labels in TOY]


@pytest.fixture
def toy_file(tmp_path: Path, toy_rows: list[dict]) -> Path:
    return write_json(tmp_path / "toy.json", toy_rows)


@pytest.fixture(scope="session", autouse=True)
def _fp32_on_every_cpu() -> Iterator[None]:
    """precision=auto computes in fp32 on every CPU in tests (session-wide, so module and
    session fixtures too, and their subprocesses): score comparisons must not depend on
    whether the machine has native bf16. The choice itself is tested with the detection
    mocked both ways (test_bert_encoder.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAGGER_CPU_BF16", "0")
        yield


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the built-in plugins only, whatever the developer's shell exports."""
    for name in ("TAGGER_PLUGINS", "TAGGER_TAXONOMY_PATH", "TAGGER_PROGRESS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def register_plugin():
    """Register ad-hoc plugin objects for one test; they are removed afterwards."""
    manager = registry.load_plugins()
    names: list[str] = []

    def register(plugin: object, name: str) -> None:
        manager.register(plugin, name=name)
        names.append(name)

    yield register
    for name in names:
        manager.unregister(name=name)


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    """`tagger train` on the attraction taxonomy: the arguments many CLI tests start from."""
    return ["train", "--taxonomy", "attractions", "--train", str(data), "-o", str(out), *extra]


def train_toy(folder: Path, name: str = "toy") -> Path:
    """A default tagger trained on TOY through the CLI, as a user would, in ``folder/name``."""
    from tagger_core.cli import cli

    data = write_json(folder / "toy.json", [{"text": t, "label": labels} for t, labels in TOY])
    result = CliRunner().invoke(cli, train_args(data, folder / name))
    assert result.exit_code == 0, result.output
    return folder / name


def one_line_error(result) -> str:
    """The CLI's error output, checked to be exactly one 'Error: ...' line, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: "), lines
    return lines[0]
