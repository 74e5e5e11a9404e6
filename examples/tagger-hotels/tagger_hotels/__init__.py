"""tagger-hotels: a hotel entity plugin for tagger.

It registers the ``hotels`` taxonomy, a YAML file shipped inside this package, and adds
the ``tagger hotels`` commands. It uses only the public API of ``tagger_core``.
"""

from importlib.resources import files

from tagger_core import hookimpl


@hookimpl
def register_taxonomies(register):
    # A path is enough: tagger reads and checks the file when it needs the taxonomy.
    register(str(files("tagger_hotels") / "hotels.yaml"))


@hookimpl
def register_commands(cli):
    # Imported here, so that using tagger from Python never loads the command code.
    from tagger_hotels.cli import hotels

    cli.add_command(hotels)
