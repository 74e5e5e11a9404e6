"""The ``tagger`` command line: one module per command family, each command parsing its
options, calling one workflow and printing. Plugins add commands through the
``register_commands`` hook.
"""

from __future__ import annotations

from tagger_core.cli import (
    data,
    evaluate,
    experiments,
    export,
    optimize,
    plugins,
    predict,
    serve,
    suggest,
    taxonomies,
    train,
    tune,
)
from tagger_core.cli.app import cli

for family in (
    train,
    tune,
    predict,
    serve,
    suggest,
    evaluate,
    optimize,
    export,
    data,
    experiments,
    plugins,
    taxonomies,
):
    for command in family.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli(prog_name="tagger")


__all__ = ["cli", "main"]
