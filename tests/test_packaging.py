"""The wheel carries every module and data file, under tagger-specific import names only."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow

# repository folder → import name in site-packages
MAPPING = {
    "tagger_core": "tagger_core",
    "plugins": "tagger_plugins",
    "taxonomies": "tagger_taxonomies",
}
SHIPPED = {".py", ".yaml", ".typed"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    [path] = out.glob("tagger-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_every_source_and_data_file_is_in_the_wheel(wheel_names: set[str]) -> None:
    expected = {
        f"{MAPPING[folder]}/{path.relative_to(REPO / folder).as_posix()}"
        for folder in MAPPING
        for path in (REPO / folder).rglob("*")
        if path.suffix in SHIPPED and "__pycache__" not in path.parts
    }
    missing = sorted(expected - wheel_names)
    assert not missing, f"not packaged (add the package to pyproject's packages list): {missing}"


def test_no_generic_top_level_names(wheel_names: set[str]) -> None:
    top_level = {name.split("/")[0] for name in wheel_names if not name.startswith("tagger-")}
    assert top_level == {"tagger_core", "tagger_plugins", "tagger_taxonomies"}


def test_entry_points_register_the_builtins(wheel: Path) -> None:
    import configparser

    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        parser = configparser.ConfigParser()
        parser.read_string(archive.read(name).decode())
    assert parser["console_scripts"]["tagger"] == "tagger_core.cli:main"
    builtins = dict(parser["tagger"])
    assert builtins["tfidf"] == "tagger_plugins.tfidf"
    for module in builtins.values():  # every built-in entry point names a shipped module
        assert module.startswith("tagger_plugins.")
