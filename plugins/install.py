"""``tagger install`` and ``tagger uninstall``: pip, run in tagger's own environment.

Plugins must be installed into the same Python environment as tagger, which is easy to get
wrong when tagger was installed with pipx or lives in a virtual environment that is not
active. These commands run ``python -m pip`` with the interpreter that runs tagger
(``sys.executable``), as ``llm install`` does. When pip fails, tagger exits with pip's
exit status.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from tagger_core import ENTRY_POINT_GROUP, TaggerError, hookimpl

# Uninstalling these would remove tagger itself, not a plugin.
PROTECTED = {"tagger"}


def normalized(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(args: Sequence[str], base: Path | None = None) -> list[str]:
    """The distribution names that ``pip uninstall ARGS`` would act on: plain names, and
    every name in requirements files given with -r/--requirement, nested ones included."""
    names: list[str] = []
    items = list(args)
    i = 0
    while i < len(items):
        item = items[i].strip()
        i += 1
        file = None
        if item in ("-r", "--requirement"):
            if i < len(items):
                file, i = items[i], i + 1
        elif item.startswith("--requirement="):
            file = item.split("=", 1)[1]
        elif item.startswith("-r") and len(item) > 2:
            file = item[2:]
        elif item and not item.startswith("-"):
            names.append(re.split(r"[\s<>=!~;\[@(]", item, maxsplit=1)[0])
        if file is None:
            continue
        path = Path(file) if base is None or Path(file).is_absolute() else base / file
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TaggerError(f"cannot read requirements file: {exc}", file=path) from None
        tokens = [t for line in lines for t in line.split("#", 1)[0].split() if t]
        names += requirement_names(tokens, path.parent)
    return names


def pip_command(args: Sequence[str]) -> list[str]:
    """The command line that runs pip with the interpreter running tagger."""
    return [sys.executable, "-m", "pip", *args]


def install_args(
    packages: Sequence[str],
    *,
    editable: Sequence[str] = (),
    upgrade: bool = False,
    force_reinstall: bool = False,
    no_cache_dir: bool = False,
    pre: bool = False,
    no_deps: bool = False,
    no_build_isolation: bool = False,
) -> list[str]:
    """``pip install`` arguments; pip gives each ``-e PATH`` its own ``--editable``."""
    args = ["install"]
    for flag, wanted in (
        ("--upgrade", upgrade),
        ("--force-reinstall", force_reinstall),
        ("--no-cache-dir", no_cache_dir),
        ("--pre", pre),
        ("--no-deps", no_deps),
        ("--no-build-isolation", no_build_isolation),
    ):
        if wanted:
            args.append(flag)
    for path in editable:
        args += ["--editable", path]
    return [*args, *packages]


def uninstall_args(packages: Sequence[str], *, yes: bool = False) -> list[str]:
    return ["uninstall", *(["--yes"] if yes else []), *packages]


def pip_available() -> bool:
    return importlib.util.find_spec("pip") is not None


def run_pip(args: Sequence[str]) -> None:
    """Run pip, its output going straight to the terminal; exit with its status on failure."""
    command = pip_command(args)
    if not pip_available():
        raise TaggerError(
            f"pip is not installed in tagger's environment ({sys.executable}); "
            f"add it with: {sys.executable} -m ensurepip"
        )
    try:
        returncode = subprocess.run(command, check=False).returncode
    except OSError as exc:
        raise TaggerError(f"cannot run pip with {sys.executable}: {exc}") from None
    if returncode != 0:
        click.echo(f"Error: pip {args[0]} failed with exit status {returncode}", err=True)
        raise click.exceptions.Exit(returncode)


def plugin_entry_points() -> dict[str, str]:
    """Installed plugins: entry-point name → "distribution version"."""
    importlib.invalidate_caches()  # see what pip just wrote into site-packages
    found = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        found[entry_point.name] = f"{dist.name} {dist.version}" if dist is not None else ""
    return found


_IMPORT_CHECK = """
import importlib.metadata, json, sys
failed = {}
for ep in importlib.metadata.entry_points(group=sys.argv[1]):
    if ep.name in sys.argv[2:]:
        try:
            ep.load()
        except Exception as exc:
            failed[ep.name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failed))
"""


def import_failures(names: Sequence[str]) -> dict[str, str]:
    """Plugins among ``names`` that fail to import, each with its error, checked in a fresh
    interpreter (an editable install is only on the path of processes started after it)."""
    if not names:
        return {}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK, ENTRY_POINT_GROUP, *names],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {
            name: done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "unknown error"
            for name in names
        }


def describe(names: Sequence[str], plugins: dict[str, str]) -> str:
    return ", ".join(f"{name} ({plugins[name]})" if plugins[name] else name for name in names)


@hookimpl
def register_commands(cli):  # type: ignore[no-untyped-def]
    @cli.command()
    @click.argument("packages", nargs=-1)
    @click.option(
        "-e",
        "--editable",
        multiple=True,
        metavar="PATH",
        help="Install the project at PATH in editable mode (repeatable).",
    )
    @click.option("-U", "--upgrade", is_flag=True, help="Upgrade to the newest versions.")
    @click.option("--force-reinstall", is_flag=True, help="Reinstall even if up to date.")
    @click.option("--no-cache-dir", is_flag=True, help="Do not use pip's cache.")
    @click.option("--pre", is_flag=True, help="Include pre-release and development versions.")
    @click.option("--no-deps", is_flag=True, help="Do not install dependencies.")
    @click.option(
        "--no-build-isolation",
        is_flag=True,
        help="Build with the tools already installed (offline builds).",
    )
    def install(
        packages: tuple[str, ...],
        editable: tuple[str, ...],
        upgrade: bool,
        force_reinstall: bool,
        no_cache_dir: bool,
        pre: bool,
        no_deps: bool,
        no_build_isolation: bool,
    ) -> None:
        """Install plugins with pip, into the environment tagger runs in.

        PACKAGES are anything pip accepts: names from a package index, paths, URLs.

        \b
        tagger install tagger-hotels
        tagger install -e path/to/tagger-hotels
        """
        if not packages and not editable:
            raise click.UsageError("name at least one package, or give -e PATH")
        before = plugin_entry_points()
        run_pip(
            install_args(
                packages,
                editable=editable,
                upgrade=upgrade,
                force_reinstall=force_reinstall,
                no_cache_dir=no_cache_dir,
                pre=pre,
                no_deps=no_deps,
                no_build_isolation=no_build_isolation,
            )
        )
        after = plugin_entry_points()
        added = sorted(set(after) - set(before))
        broken = import_failures(added)
        working = [name for name in added if name not in broken]
        if working:
            click.echo(f"New plugins: {describe(working, after)}. See them with: tagger plugins")
        elif not broken:
            click.echo("No new plugins. See what is installed with: tagger plugins")
        if broken:
            name = sorted(broken)[0]
            distribution = after[name].split(" ")[0] or name
            raise TaggerError(
                f"plugin '{name}' ({after[name] or 'no distribution'}) was installed but fails "
                f"to import: {broken[name]}; fix it, or remove it with: tagger uninstall "
                f"{distribution}"
            )

    @cli.command()
    @click.argument("packages", nargs=-1, required=True)
    @click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
    def uninstall(packages: tuple[str, ...], yes: bool) -> None:
        """Uninstall plugins with pip, from the environment tagger runs in.

        Arguments after -- go to pip as they are, e.g. a requirements file. tagger itself
        is never uninstalled, also not when a requirements file names it.

        \b
        tagger uninstall tagger-hotels -y
        tagger uninstall -- -r plugins.txt
        """
        protected = sorted(
            name for name in requirement_names(packages) if normalized(name) in PROTECTED
        )
        if protected:
            raise TaggerError(
                f"'{protected[0]}' is tagger itself, not a plugin; "
                f"remove it with: {sys.executable} -m pip uninstall {protected[0]}"
            )
        before = plugin_entry_points()
        run_pip(uninstall_args(packages, yes=yes))
        removed = sorted(set(before) - set(plugin_entry_points()))
        if removed:
            click.echo(f"Removed plugins: {describe(removed, before)}")
