"""`tagger install` / `tagger uninstall` build the right pip command line for the
interpreter running tagger, and report pip's failures by its exit status.

pip itself is replaced by a fake ``subprocess.run`` here; tests/test_install_hotels.py
installs a real plugin, regular and editable.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from tagger_plugins import install as install_plugin

from tagger_core import registry
from tagger_core.cli import cli

PIP = [sys.executable, "-m", "pip"]


class FakePip:
    """Records the command lines it is given; answers with ``returncode``."""

    def __init__(self, returncode: int = 0) -> None:
        self.returncode = returncode
        self.calls: list[list[str]] = []
        self.on_call = lambda: None

    def __call__(self, command, check=False, **kwargs):
        self.calls.append(list(command))
        self.on_call()
        return subprocess.CompletedProcess(command, self.returncode)


@pytest.fixture
def pip(monkeypatch: pytest.MonkeyPatch) -> FakePip:
    fake = FakePip()
    monkeypatch.setattr(install_plugin.subprocess, "run", fake)
    monkeypatch.setattr(install_plugin, "pip_available", lambda: True)
    return fake


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_commands_come_from_the_install_plugin() -> None:
    result = invoke("--help")
    assert "install" in result.output and "uninstall" in result.output
    manager = registry.load_plugins()
    hooks = [caller.name for caller in manager.get_hookcallers(manager.get_plugin("install"))]
    assert hooks == ["register_commands"]


@pytest.mark.parametrize(
    ("args", "pip_args"),
    [
        (["tagger-hotels"], ["install", "tagger-hotels"]),
        (["tagger-hotels", "tagger-tours"], ["install", "tagger-hotels", "tagger-tours"]),
        (["-U", "tagger-hotels"], ["install", "--upgrade", "tagger-hotels"]),
        (
            [
                "--no-cache-dir",
                "--force-reinstall",
                "--pre",
                "--no-deps",
                "--no-build-isolation",
                "--upgrade",
                "x",
            ],
            [
                "install",
                "--upgrade",
                "--force-reinstall",
                "--no-cache-dir",
                "--pre",
                "--no-deps",
                "--no-build-isolation",
                "x",
            ],
        ),
        (["-e", "plugins/tagger-hotels"], ["install", "--editable", "plugins/tagger-hotels"]),
        (
            ["-e", "a", "--editable", "b", "c"],
            ["install", "--editable", "a", "--editable", "b", "c"],
        ),
        # pip accepts paths and URLs as well as names; they pass through untouched.
        (
            ["./dist/tagger_hotels-0.1.0-py3-none-any.whl"],
            ["install", "./dist/tagger_hotels-0.1.0-py3-none-any.whl"],
        ),
    ],
)
def test_install_command_line(pip: FakePip, args: list[str], pip_args: list[str]) -> None:
    result = invoke("install", *args)
    assert result.exit_code == 0, result.output
    assert pip.calls == [[*PIP, *pip_args]]


def test_editable_path_is_passed_as_given(pip: FakePip, tmp_path: Path) -> None:
    project = tmp_path / "tagger-hotels"
    project.mkdir()
    result = invoke("install", "-e", str(project))
    assert result.exit_code == 0, result.output
    assert pip.calls == [[*PIP, "install", "--editable", str(project)]]


def test_install_needs_something_to_install(pip: FakePip) -> None:
    result = invoke("install")
    assert result.exit_code == 2
    assert "name at least one package, or give -e PATH" in result.output
    assert pip.calls == []


@pytest.mark.parametrize(
    ("args", "pip_args"),
    [
        (["tagger-hotels"], ["uninstall", "tagger-hotels"]),
        (["tagger-hotels", "-y"], ["uninstall", "--yes", "tagger-hotels"]),
        (["--yes", "a", "b"], ["uninstall", "--yes", "a", "b"]),
    ],
)
def test_uninstall_command_line(pip: FakePip, args: list[str], pip_args: list[str]) -> None:
    result = invoke("uninstall", *args)
    assert result.exit_code == 0, result.output
    assert pip.calls == [[*PIP, *pip_args]]


def test_uninstall_needs_a_name(pip: FakePip) -> None:
    assert invoke("uninstall").exit_code == 2
    assert pip.calls == []


@pytest.mark.parametrize("name", ["tagger", "Tagger"])
def test_uninstall_refuses_tagger_itself(pip: FakePip, name: str) -> None:
    result = invoke("uninstall", name, "-y")
    assert result.exit_code == 2
    assert "is tagger itself, not a plugin" in result.stderr
    assert pip.calls == []


@pytest.mark.parametrize(("command", "verb"), [("install", "install"), ("uninstall", "uninstall")])
def test_pip_failure_exits_with_pips_status(pip: FakePip, command: str, verb: str) -> None:
    pip.returncode = 3
    result = invoke(command, "no-such-plugin")
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [f"Error: pip {verb} failed with exit status 3"]
    assert "Traceback" not in result.output


def test_missing_pip_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, pip: FakePip) -> None:
    monkeypatch.setattr(install_plugin, "pip_available", lambda: False)
    result = invoke("install", "tagger-hotels")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: pip is not installed in tagger's environment")
    assert pip.calls == []


def test_install_names_the_plugins_it_added(monkeypatch: pytest.MonkeyPatch, pip: FakePip) -> None:
    installed = {"tfidf": "tagger 0.1.0"}
    monkeypatch.setattr(install_plugin, "plugin_entry_points", lambda: dict(installed))
    monkeypatch.setattr(install_plugin, "import_failures", lambda names: {})
    pip.on_call = lambda: installed.update(hotels="tagger-hotels 0.1.0")
    result = invoke("install", "tagger-hotels")
    assert "New plugins: hotels (tagger-hotels 0.1.0)" in result.output

    # Installing again adds nothing new.
    result = invoke("install", "tagger-hotels")
    assert "No new plugins" in result.output

    pip.on_call = lambda: installed.pop("hotels")
    result = invoke("uninstall", "tagger-hotels", "-y")
    assert "Removed plugins: hotels (tagger-hotels 0.1.0)" in result.output


def test_register_commands_on_a_fresh_group(pip: FakePip) -> None:
    """The hook adds both commands to any click group it is given."""
    group = click.Group()
    install_plugin.register_commands(cli=group)
    assert sorted(group.commands) == ["install", "uninstall"]
    result = CliRunner().invoke(group, ["install", "-e", "."])
    assert result.exit_code == 0, result.output
    assert pip.calls == [[*PIP, "install", "--editable", "."]]


def test_pip_runs_in_taggers_own_environment() -> None:
    """The real command line starts the pip of the interpreter that runs tagger."""
    result = subprocess.run(
        install_plugin.pip_command(["--version"]),
        capture_output=True,
        text=True,
        check=True,
    )
    import pip as test_environment_pip

    assert str(Path(test_environment_pip.__file__).parent) in result.stdout


def test_install_refuses_to_announce_a_plugin_that_fails_to_import(
    monkeypatch: pytest.MonkeyPatch, pip: FakePip
) -> None:
    installed = {"tfidf": "tagger 0.1.0"}
    monkeypatch.setattr(install_plugin, "plugin_entry_points", lambda: dict(installed))
    monkeypatch.setattr(
        install_plugin, "import_failures", lambda names: dict.fromkeys(names, "ImportError: boom")
    )
    pip.on_call = lambda: installed.update(hotels="tagger-hotels 0.1.0")
    result = invoke("install", "tagger-hotels")
    assert result.exit_code == 2 and "New plugins" not in result.output
    assert result.output.strip() == (
        "Error: plugin 'hotels' (tagger-hotels 0.1.0) was installed but fails to import: "
        "ImportError: boom; fix it, or remove it with: tagger uninstall tagger-hotels"
    )


def test_import_failures_loads_entry_points_in_a_fresh_interpreter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real check: an installed distribution whose entry point names a missing module."""
    info = tmp_path / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tagger]\nbroken = no_such_module_for_tagger\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    failures = install_plugin.import_failures(["broken", "tfidf"])
    assert failures == {
        "broken": "ModuleNotFoundError: No module named 'no_such_module_for_tagger'"
    }


def test_uninstall_never_removes_tagger_named_in_a_requirements_file(
    pip: FakePip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.txt").write_text("# the tool itself\nTagger==0.1.0  # pinned\n", "utf-8")
    (tmp_path / "plugins.txt").write_text("tagger-hotels\n-r base.txt\n", encoding="utf-8")
    for args in (
        ["--", "-r", "plugins.txt"],
        ["--", "--requirement=base.txt"],
        ["--", "-rbase.txt"],
    ):
        result = invoke("uninstall", *args)
        assert result.exit_code == 2, result.output
        assert "is tagger itself, not a plugin" in result.output
    assert pip.calls == []  # pip never ran
    result = invoke("uninstall", "--", "-r", "missing.txt")
    assert result.exit_code == 2 and "missing.txt: cannot read requirements file" in result.output
