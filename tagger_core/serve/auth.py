"""Who may talk to the server, checked in front of everything else.

The Host guard keeps a loopback server from answering pages of other sites whose names
were re-pointed at 127.0.0.1 (DNS rebinding): their requests name their own host. The
bearer token guards the API and the readiness probe, before a body is read, so that a
client without it learns nothing from a body's errors (FastAPI parses a body before a
route's dependencies run)."""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from tagger_core.errors import TaggerError
from tagger_core.serve.bodies import ApiError, error_body, send_json

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

# What a header carries intact: printable ASCII, no spaces (HTTP decodes other bytes as
# Latin-1, so a UTF-8 token could never match)
_TOKEN = re.compile(r"[!-~]+")


def checked_token(token: str) -> str:
    """The server's token as given (``--token`` or the environment), without the newline
    a secret file ends in; refused in one line when no client could send it."""
    token = token.strip()
    if not token:
        raise TaggerError("--token is empty")
    if not _TOKEN.fullmatch(token):
        raise TaggerError(
            "--token must be printable ASCII without spaces (what an HTTP header carries)"
        )
    return token


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def allowed_hosts(host: str, loopback: bool, named: list[str]) -> list[str]:
    """The Host names a server listening on ``host`` answers to: on loopback, its loopback
    names plus ``named`` (``--allowed-host``, e.g. behind a proxy); elsewhere ``named``
    only, and any name when none is (an empty list)."""
    if not loopback:
        return [name.lower() for name in named]
    names = [*LOOPBACK_NAMES, host, *named]
    return list(dict.fromkeys(name.lower().strip("[]") for name in names))


def host_name(header: str) -> str:
    """'[::1]:8000' → '::1', 'Localhost:8000' → 'localhost'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def check_bearer(expected: str | None, authorization: str) -> None:
    """Raises 401 unless ``authorization`` carries the server's token (if it has one)."""
    if expected is None:
        return
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode("latin-1"), expected.encode()
    ):
        raise ApiError(401, "a bearer token is required (Authorization: Bearer TOKEN)")


def first_header(scope: Scope, name: bytes) -> str:
    """The first ``name`` header, as Starlette's ``request.headers.get`` reads it."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


class TokenGate:
    """Answers 401 to a request for a ``guarded`` path that lacks the token; CORS
    preflights (OPTIONS, which browsers send without credentials) pass."""

    def __init__(self, app: ASGIApp, token: str, guarded: Callable[[str], bool]) -> None:
        self.app = app
        self.token = token
        self.guarded = guarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] != "OPTIONS" and self.guarded(scope["path"]):
            try:
                check_bearer(self.token, first_header(scope, b"authorization"))
            except ApiError as error:
                await _answer(send, error.status, error.message, (b"www-authenticate", b"Bearer"))
                return
        await self.app(scope, receive, send)


class HostGuard:
    """Answers 400 to a request whose Host header names none of ``hosts``. A request
    without one (HTTP/1.0; no browser sends such) passes."""

    def __init__(self, app: ASGIApp, hosts: list[str]) -> None:
        self.app = app
        self.hosts = frozenset(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            header = first_header(scope, b"host")
            if header and host_name(header) not in self.hosts:
                message = (
                    f"Host {header!r} is not a name of this server (it answers to "
                    f"{', '.join(sorted(self.hosts))}; --allowed-host adds one)"
                )
                await _answer(send, 400, message)
                return
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, message: str, *extra: tuple[bytes, bytes]) -> None:
    await send_json(send, status, orjson.dumps(error_body(status, message)), *extra)
