"""The ``tagger`` click group: plugin commands added on first use, user errors printed as
one line with exit status 2, logging to stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from tagger_core.version import __version__

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT


class TaggerGroup(click.Group):
    """Adds plugin commands on first use and turns user errors into one line, exit 2."""

    _plugin_commands_added = False

    def _add_plugin_commands(self) -> None:
        if not TaggerGroup._plugin_commands_added:
            TaggerGroup._plugin_commands_added = True
            from tagger_core.registry import add_commands

            add_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._guard(ctx, self._add_plugin_commands)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._guard(ctx, self._add_plugin_commands)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        return self._guard(ctx, lambda: super(TaggerGroup, self).invoke(ctx))

    @staticmethod
    def _guard(ctx: click.Context, action: Callable[[], Any]) -> Any:
        from tagger_core.errors import TaggerError

        try:
            return action()
        except TaggerError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT
            click.echo("\nInterrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # e.g. `tagger predict ... | head`: stop quietly
            sys.stderr.close()
            ctx.exit(1)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"Error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(EXIT_USER_ERROR)


class _WarningFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "Warning: " if record.levelno >= logging.WARNING else ""
        return prefix + record.getMessage()


def _configure_logging(verbose: bool) -> None:
    log = logging.getLogger("tagger")
    log.handlers.clear()
    handler = logging.StreamHandler()  # stderr, looked up at emit time
    handler.setFormatter(_WarningFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False


@click.group(cls=TaggerGroup)
@click.version_option(__version__, prog_name="tagger")
@click.option("-v", "--verbose", is_flag=True, help="Print more about what is happening.")
def cli(verbose: bool) -> None:
    """Train taggers that label travel entities with a taxonomy, and apply them.

    \b
    tagger train --taxonomy attractions --train train.json --valid valid.json -o my-tagger
    tagger predict my-tagger 香港海洋公园 太平山顶
    tagger evaluate my-tagger test.json
    """
    _configure_logging(verbose)
