"""`tagger serve`: taggers behind a REST API and a review page (the serve extra)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tagger_core.cli.options import no_verify_option, runtime_option

if TYPE_CHECKING:
    import socket

    from tagger_core.serve.settings import ServeSettings


def served_taggers(paths: tuple[Path, ...]) -> dict[str, Path]:
    """Served name → folder: a tagger folder under its own name, or each tagger inside a
    folder of taggers under its name."""
    from tagger_core.errors import TaggerError
    from tagger_core.tagger import MANIFEST

    found: dict[str, Path] = {}
    for path in paths:
        if not path.is_dir():
            raise TaggerError("not a tagger folder nor a folder of taggers", file=path)
        inside = (
            [path]
            if (path / MANIFEST).is_file()
            else sorted(child for child in path.iterdir() if (child / MANIFEST).is_file())
        )
        if not inside:
            raise TaggerError(f"no tagger here (no {MANIFEST}, nor in its folders)", file=path)
        for folder in inside:
            name = folder.resolve().name
            if name in found:
                raise TaggerError(
                    f"two taggers would be served as '{name}': {found[name]} and {folder}; "
                    "rename one folder"
                )
            found[name] = folder
    return found


def bound_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a busy port is one line, and port 0 works."""
    import socket

    from tagger_core.errors import TaggerError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise TaggerError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.set_inheritable(True)
    return sock


@click.command("serve")
@click.argument(
    "taggers", metavar="TAGGER...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="TAGGER_TOKEN",
    help="Require 'Authorization: Bearer TOKEN' on the API (or set TAGGER_TOKEN, which "
    "keeps it out of the process list).",
)
@click.option(
    "--corrections",
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSON Lines file that reviewed label sets are appended to (fixed at start).",
)
@click.option(
    "--allow-anonymous-review",
    is_flag=True,
    help="Take corrections without a token (only when listening on loopback).",
)
@click.option(
    "--cors-origin", "cors_origins", multiple=True, help="Allow browser calls from this origin."
)
@click.option(
    "--allowed-host",
    "allowed_host_names",
    multiple=True,
    help="A Host name to answer besides the loopback ones (e.g. behind a proxy); on another "
    "address, the only names answered once one is given.",
)
@click.option(
    "--max-texts",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Texts per request.",
)
@click.option(
    "--max-chars",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Characters per text.",
)
@click.option(
    "--max-body-bytes",
    default=1 << 20,
    show_default=True,
    type=click.IntRange(min=1024),
    help="JSON request size.",
)
@click.option(
    "--max-upload-bytes",
    default=64 << 20,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Uploaded file size.",
)
@click.option(
    "--max-review-rows",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows per review upload.",
)
@click.option(
    "--batching/--no-batching",
    default=True,
    show_default=True,
    help="Score the texts of requests that arrive together in one batch.",
)
@click.option(
    "--batch-wait-ms",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How long a batch waits for the next request (10 such waits at most; never "
    "more than half of what scoring one name costs).",
)
@click.option(
    "--max-batch",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="Texts per batch.",
)
@click.option(
    "--alone-from",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests with at least this many texts skip the batch queue and are scored on "
    "their own thread, beside it.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="CPU threads each encoder scores with (default: the encoder's own; with --workers N, "
    "the CPUs divided among the N).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Server processes, each loading every tagger once.",
)
@click.option(
    "--shutdown-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a stop signal waits for requests in flight.",
)
@click.option("--access-log", is_flag=True, help="Log every request.")
@no_verify_option
@runtime_option
def serve_command(
    taggers: tuple[Path, ...],
    host: str,
    port: int,
    token: str | None,
    corrections: Path | None,
    allow_anonymous_review: bool,
    cors_origins: tuple[str, ...],
    allowed_host_names: tuple[str, ...],
    max_texts: int,
    max_chars: int,
    max_body_bytes: int,
    max_upload_bytes: int,
    max_review_rows: int,
    batching: bool,
    batch_wait_ms: float,
    max_batch: int,
    alone_from: int,
    threads: int | None,
    workers: int,
    shutdown_timeout: float,
    access_log: bool,
    no_verify: bool,
    runtime: str | None,
) -> None:
    """Serve TAGGER folders (or folders of taggers) over HTTP: a JSON API (/v1, described
    at /docs) and a page to tag names and files and to review and correct labels (/).

    \b
    tagger serve my-tagger --corrections reviewed.jsonl --allow-anonymous-review
    curl -s localhost:8000/v1/taggers/my-tagger/predict -H 'content-type: application/json' \\
         -d '{"texts": ["故宫博物院"]}'
    """
    from tagger_core.errors import TaggerError
    from tagger_core.files import check_parent
    from tagger_core.serve.auth import allowed_hosts, checked_token
    from tagger_core.serve.settings import ServeSettings, is_loopback, need_serve_extra

    need_serve_extra()
    loopback = is_loopback(host)
    if allow_anonymous_review and not loopback:
        raise TaggerError(
            f"--allow-anonymous-review is for loopback only; {host} is reachable from other "
            "machines: give --token instead"
        )
    if token is not None:
        token = checked_token(token)
    if corrections is not None:
        from tagger_core.serve.corrections import CorrectionLog

        check_parent(corrections)
        CorrectionLog(corrections)  # a cut or malformed file: one line now, before listening
    if threads is None and workers > 1:
        from tagger_core.machine import available_cpus

        # each process gets its share: N processes each scoring on every CPU fight for them
        threads = max(1, available_cpus() // workers)
    settings = ServeSettings(
        taggers=served_taggers(taggers),
        verify=not no_verify,
        runtime=runtime,
        token=token,
        corrections=corrections,
        anonymous_review=allow_anonymous_review,
        cors_origins=list(cors_origins),
        hosts=allowed_hosts(host, loopback, list(allowed_host_names)),
        max_texts=max_texts,
        max_chars=max_chars,
        max_body_bytes=max_body_bytes,
        max_upload_bytes=max_upload_bytes,
        max_review_rows=max_review_rows,
        batching=batching,
        batch_wait_ms=batch_wait_ms,
        max_batch=max_batch,
        alone_from=alone_from,
        threads=threads,
    )
    if not loopback and token is None:
        click.echo(
            f"Warning: {host} is reachable from other machines and no --token is set", err=True
        )
    sock = bound_socket(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{sock.getsockname()[1]}"
    click.echo(
        f"Serving {', '.join(settings.taggers)} on {url} (page {url}/, API {url}/docs); "
        "Ctrl-C stops.",
        err=True,
    )
    run_server(settings, sock, workers, shutdown_timeout, access_log)


def run_server(
    settings: ServeSettings,
    sock: socket.socket,
    workers: int,
    shutdown_timeout: float,
    access_log: bool,
) -> None:
    """Run uvicorn on ``sock`` until a stop signal; requests in flight are answered first."""
    import uvicorn

    from tagger_core.errors import TaggerError
    from tagger_core.serve.app import SETTINGS_VARIABLE, create_app

    common: dict[str, Any] = {
        "log_level": "info" if access_log else "warning",
        "access_log": access_log,
        "timeout_graceful_shutdown": shutdown_timeout,
        "server_header": False,
    }
    if workers > 1:  # uvicorn's supervisor starts the processes; each builds the app
        import os

        os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
        config = uvicorn.Config(
            "tagger_core.serve.app:app_from_environment", factory=True, workers=workers, **common
        )
        sock.set_inheritable(True)
        from uvicorn.supervisors import Multiprocess

        from tagger_core.serve.app import STARTUP_FAILURE

        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
        if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
            raise SystemExit(2)  # the worker printed the one-line error
        return
    failure: list[str] = []
    server: uvicorn.Server

    def stop(message: str) -> None:
        failure.append(message)
        server.should_exit = True

    app = create_app(settings, on_failure=stop)
    server = uvicorn.Server(uvicorn.Config(app, **common))
    server.run(sockets=[sock])
    if failure:
        raise TaggerError(failure[0])


COMMANDS = [serve_command]
