"""The request-body limit, enforced before FastAPI reads a body: by Content-Length, or as a
chunked body passes the limit. The upload limit applies to the upload routes only,
whatever content type another request claims."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from tagger_core.serve.bodies import error_body, send_json

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Refuses a body over its limit with 413 before reading it (by Content-Length) or as
    soon as it passes the limit (chunked): a client cannot make the server hold more."""

    def __init__(
        self, app: ASGIApp, json_limit: int, upload_limit: int, uploads: re.Pattern[str]
    ) -> None:
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit
        self.uploads = uploads  # the paths that take multipart uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        upload = headers.get(b"content-type", b"").startswith(
            b"multipart/"
        ) and self.uploads.fullmatch(scope["path"])
        limit = self.upload_limit if upload else self.json_limit
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._refuse(send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    scope[TOO_LARGE] = limit  # FastAPI may turn the raise into a 400
                    raise _TooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except _TooLarge:
            if not started:
                await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        body = json.dumps(error_body(413, too_large(limit))).encode()
        await send_json(send, 413, body, (b"connection", b"close"))


class _TooLarge(Exception):
    pass


TOO_LARGE = "tagger.body_limit"  # set in the request's scope when its body passed the limit


def too_large(limit: int) -> str:
    return f"the request body is larger than this server's limit of {limit} bytes"
