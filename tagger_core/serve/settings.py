"""What a server is started with: fixed at start, never chosen by a request."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from pydantic import BaseModel, Field

from tagger_core.errors import TaggerError

# Defaults sized for names (tens of characters) and for a review team's uploads.
MAX_TEXTS = 1000
MAX_CHARS = 1000
MAX_BODY_BYTES = 1 << 20  # a JSON request
MAX_UPLOAD_BYTES = 64 << 20  # a file to tag or review
MAX_REVIEW_ROWS = 10_000
BATCH_WAIT_MS = 5.0
MAX_BATCH = 256
ALONE_FROM = 64  # texts: a request this large is a batch by itself
TOKEN_VARIABLE = "TAGGER_TOKEN"


class ServeSettings(BaseModel):
    """Everything the app needs besides the taggers themselves."""

    taggers: dict[str, Path]  # served name → tagger folder
    verify: bool = True
    runtime: str | None = None  # "torch" or "onnx"; None: the encoder's own choice
    token: str | None = None
    corrections: Path | None = None
    anonymous_review: bool = False
    cors_origins: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)  # Host names answered; empty: any
    max_texts: int = Field(default=MAX_TEXTS, ge=1)
    max_chars: int = Field(default=MAX_CHARS, ge=1)
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=1024)
    max_upload_bytes: int = Field(default=MAX_UPLOAD_BYTES, ge=1024)
    max_review_rows: int = Field(default=MAX_REVIEW_ROWS, ge=1)
    batching: bool = True
    batch_wait_ms: float = Field(default=BATCH_WAIT_MS, ge=0)
    max_batch: int = Field(default=MAX_BATCH, ge=1)
    alone_from: int = Field(default=ALONE_FROM, ge=1)
    threads: int | None = Field(default=None, ge=1)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


def need_serve_extra() -> None:
    """One line naming the extra when FastAPI, uvicorn, python-multipart or
    fastapi-offline is missing."""
    try:
        import fastapi  # noqa: F401
        import fastapi_offline  # noqa: F401  # /docs and /redoc without a CDN
        import python_multipart  # noqa: F401  # FastAPI's forms and uploads
        import uvicorn  # noqa: F401
    except ImportError:
        raise TaggerError(
            'tagger serve needs the serve extra: pip install "tagger[serve]"'
        ) from None
