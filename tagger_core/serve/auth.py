"""The bearer token, checked in front of everything else on the API and the readiness
probe: before a body is read, so that a client without the token learns nothing from a
body's errors (FastAPI parses a body before a route's dependencies run)."""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from tagger_core.errors import TaggerError
from tagger_core.serve.bodies import ApiError, error_body

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
                body = orjson.dumps(error_body(error.status, error.message))
                await send(
                    {
                        "type": "http.response.start",
                        "status": error.status,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
