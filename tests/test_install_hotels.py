"""The proof that a new entity needs no change to the core: install the separate
``examples/tagger-hotels`` distribution with ``tagger install`` (pip), use it through the
``tagger`` command line, then uninstall it.

Everything runs in a throwaway virtual environment layered over the test environment (it
sees tagger and its dependencies through a ``.pth`` file), so the test environment itself
is never changed, even when the test is interrupted. pip runs offline: ``--no-deps``,
``--no-build-isolation`` and ``PIP_NO_INDEX``. Deselect with ``-m "not slow"``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
HOTELS = REPO / "examples" / "tagger-hotels"


class Environment:
    """A virtual environment whose ``tagger`` sees the test environment's packages."""

    def __init__(self, root: Path) -> None:
        venv.create(root, with_pip=False, symlinks=os.name != "nt")
        bin_dir = root / ("Scripts" if os.name == "nt" else "bin")
        self.python = bin_dir / ("python.exe" if os.name == "nt" else "python")
        purelib = Path(
            self.run_python(
                "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
            ).stdout.strip()
        )
        # addsitedir also runs the .pth files there (e.g. tagger's own editable install).
        parents = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
        if site.ENABLE_USER_SITE:
            parents.append(site.getusersitepackages())
        lines = "; ".join(f"site.addsitedir({str(p)!r})" for p in dict.fromkeys(parents))
        (purelib / "_tagger_test_overlay.pth").write_text(f"import site; {lines}\n")
        self.site_packages = purelib
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"TAGGER_PLUGINS", "TAGGER_TAXONOMY_PATH", "PYTHONHOME"}
        }
        self.env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        self.cwd = root

    def run_python(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), *args], capture_output=True, text=True, check=True, timeout=120
        )

    def tagger(
        self, *args: str, expect: int = 0, plugins: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``tagger`` command line in this environment; check its exit status.

        ``plugins`` sets TAGGER_PLUGINS for this one call.
        """
        env = self.env if plugins is None else {**self.env, "TAGGER_PLUGINS": plugins}
        result = subprocess.run(
            [str(self.python), "-c", "from tagger_core.cli import main; main()", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.cwd,
            timeout=300,
        )
        assert result.returncode == expect, (
            f"tagger {' '.join(args)} exited {result.returncode}, expected {expect}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result

    def plugins(self) -> dict[str, dict]:
        listing = json.loads(self.tagger("plugins", "--json").stdout)
        return {entry["name"]: entry for entry in listing}


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture
def environment(tmp_path: Path) -> Environment:
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed: the plugin cannot be built offline")
    if installed("tagger-hotels"):
        pytest.skip(
            "tagger-hotels is already installed in the test environment; "
            "`tagger uninstall tagger-hotels` to run this test"
        )
    return Environment(tmp_path / "venv")


@pytest.fixture
def hotels_source(tmp_path: Path) -> Path:
    """A copy of the plugin's source, so that building it leaves the repository clean."""
    return Path(
        shutil.copytree(
            HOTELS,
            tmp_path / "tagger-hotels",
            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".*"),
        )
    )


OFFLINE = ("--no-deps", "--no-build-isolation")


def test_install_train_predict_uninstall(environment: Environment, hotels_source: Path) -> None:
    env = environment
    assert "hotels" not in env.plugins()
    env.tagger("taxonomy", "show", "hotels", expect=2)  # unknown before installing

    installed = env.tagger("install", *OFFLINE, str(hotels_source))
    assert "New plugins: hotels (tagger-hotels 0.1.0)" in installed.stdout
    # A regular install: the taxonomy file must have travelled inside the wheel.
    assert (env.site_packages / "tagger_hotels" / "hotels.yaml").is_file()

    hotels = env.plugins()["hotels"]
    assert hotels["distribution"] == "tagger-hotels"
    assert hotels["version"] == "0.1.0"
    assert hotels["provides"] == {"taxonomies": ["hotels"], "commands": ["hotels"]}
    assert hotels["hooks"] == ["register_commands", "register_taxonomies"]
    taxonomies = json.loads(env.tagger("taxonomies", "--json").stdout)
    assert {"name": "hotels", "plugin": "hotels", "labels": 10}.items() <= next(
        t for t in taxonomies if t["name"] == "hotels"
    ).items()

    data = hotels_source / "data"
    env.tagger(
        "train",
        "--taxonomy",
        "hotels",
        "--train",
        str(data / "train.json"),
        "--valid",
        str(data / "validation.json"),
        "-o",
        "hotel-tagger",
    )
    predicted = env.tagger("predict", "hotel-tagger", "--json", "三亚海棠湾喜来登度假酒店")
    prediction = json.loads(predicted.stdout)
    assert prediction["text"] == "三亚海棠湾喜来登度假酒店"
    assert "resort" in prediction["predicted"]
    evaluated = json.loads(
        env.tagger("evaluate", "hotel-tagger", str(data / "validation.json"), "--json").stdout
    )
    assert evaluated["rows"] == len(json.loads((data / "validation.json").read_text("utf-8")))

    # The subcommand the plugin adds through register_commands.
    stats = env.tagger("hotels", "stats", str(data / "train.json"), str(data / "validation.json"))
    assert "温泉水疗" in stats.stdout
    assert "Problem" not in stats.stderr

    # The plugin's own tests, and the test file of the tutorial, pass against the
    # installed plugin.
    tutorial_tests = REPO / "docs" / "plugins" / "tutorial-hotels.md"
    block = re.search(
        r"Create `tests/test_tagger_hotels.py`:\n\n```python\n(.*?)^```",
        tutorial_tests.read_text(encoding="utf-8"),
        re.MULTILINE | re.DOTALL,
    )
    assert block, "the tutorial no longer shows tests/test_tagger_hotels.py"
    (hotels_source / "tests" / "test_tutorial.py").write_text(block.group(1), encoding="utf-8")
    tests = subprocess.run(
        [str(env.python), "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests"],
        capture_output=True,
        text=True,
        env=env.env,
        cwd=hotels_source,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "test_tutorial.py::test_stats_command PASSED" in tests.stdout, tests.stdout

    removed = env.tagger("uninstall", "tagger-hotels", "-y")
    assert "Removed plugins: hotels (tagger-hotels 0.1.0)" in removed.stdout
    assert "hotels" not in env.plugins()
    # The tagger trained with it still loads: the manifest holds a taxonomy snapshot.
    assert "resort" in env.tagger("predict", "hotel-tagger", "三亚亚龙湾万豪度假酒店").stdout


def test_editable_install(environment: Environment, hotels_source: Path) -> None:
    env = environment
    env.tagger("install", *OFFLINE, "-e", str(hotels_source))
    assert env.plugins()["hotels"]["distribution"] == "tagger-hotels"

    # Editable: a change to the source shows without reinstalling.
    taxonomy_file = hotels_source / "tagger_hotels" / "hotels.yaml"
    taxonomy_file.write_text(
        taxonomy_file.read_text(encoding="utf-8").replace('version: "1.0"', 'version: "1.1"'),
        encoding="utf-8",
    )
    shown = json.loads(env.tagger("taxonomy", "show", "hotels", "--json").stdout)
    assert shown["version"] == "1.1"

    env.tagger("uninstall", "tagger-hotels", "--yes")
    assert "hotels" not in env.plugins()


def test_broken_plugin_can_be_skipped_and_uninstalled(
    environment: Environment, tmp_path: Path
) -> None:
    """The debugging story of docs/plugins/installing.md, end to end."""
    env = environment
    source = tmp_path / "tagger-broken"
    (source / "tagger_broken").mkdir(parents=True)
    (source / "tagger_broken" / "__init__.py").write_text("import a_module_that_is_missing\n")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=77"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "tagger-broken"\nversion = "1.0"\n'
        '[project.entry-points.tagger]\nbroken = "tagger_broken"\n'
    )
    # pip installs it, but tagger does not announce it as a new plugin: it says it is broken.
    installed = env.tagger("install", *OFFLINE, str(source), expect=2)
    assert "New plugins" not in installed.stdout
    assert installed.stderr.strip().splitlines()[-1] == (
        "Error: plugin 'broken' (tagger-broken 1.0) was installed but fails to import: "
        "ModuleNotFoundError: No module named 'a_module_that_is_missing'; fix it, or remove "
        "it with: tagger uninstall tagger-broken"
    )

    failed = env.tagger("plugins", expect=2)
    assert failed.stderr.strip().splitlines() == [
        "Error: plugin 'broken' (tagger_broken) failed to import: ModuleNotFoundError: "
        "No module named 'a_module_that_is_missing' (set TAGGER_PLUGINS to skip it)"
    ]
    listing = json.loads(env.tagger("plugins", "--json", plugins="data_sources,tfidf").stdout)
    assert [entry["name"] for entry in listing] == ["data_sources", "tfidf"]

    env.tagger("uninstall", "tagger-broken", "-y", plugins="install")
    assert "broken" not in env.plugins()
