"""What the API's requests, answers and errors look like (the OpenAPI document at /docs
is built from these models)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tagger_core.schemas import ComponentSpec, Taxonomy

if TYPE_CHECKING:
    from starlette.types import Send


class ApiError(Exception):
    """A request the client can fix, answered as JSON with ``status``."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def error_body(status: int, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"status": status, "message": message, "field": field}}


async def send_json(send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
    """A whole JSON answer through plain ASGI (the handlers in front of FastAPI)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def invalid_body(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    """pydantic's first complaint about a body, as a 422 naming the field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = field_name(first.get("loc", ()))
    message = str(first.get("msg", "invalid"))
    if first.get("type") == "json_invalid":
        message, where = "the body is not valid JSON", "body"
    return ApiError(422, f"{where}: {message}", where)


def field_name(location: Any) -> str:
    """('body', 'texts', 3) → 'texts[3]'; the part of a pydantic location a client sent."""
    parts = [p for p in location if p not in ("body", "query", "path", "form")]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _encodable(value: str) -> str:
    """JSON's ``\\ud800`` escapes decode to lone surrogates, which no UTF-8 file can hold:
    refused here rather than failing when the corrections file is written."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds a lone surrogate escape (such as \\ud800), not text") from None
    return value


Text = Annotated[str, AfterValidator(_encodable)]


class PredictRequest(BaseModel):
    """One name (``text``) or many (``texts``); ``rule`` overrides the saved decision rule
    as ``tagger predict --rule`` does."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, examples=["故宫博物院"])
    texts: list[str] | None = Field(default=None, examples=[["故宫博物院", "上海迪士尼乐园"]])
    rule: str | None = Field(default=None, description="a decision rule's name")
    rule_params: dict[str, Any] = Field(default_factory=dict)
    scores: bool = Field(default=True, description="include every label's score")


class PredictionOut(BaseModel):
    text: str
    labels: list[str]
    display_names: list[str]
    scores: dict[str, float] | None = None


class PredictResponse(BaseModel):
    tagger: str
    predictions: list[PredictionOut]


class TaggerInfo(BaseModel):
    name: str
    taxonomy: Taxonomy
    encoder: ComponentSpec
    rule: ComponentSpec
    validation_metrics: dict[str, Any] | None = None
    train_rows: int = 0
    valid_rows: int = 0


class CorrectionRequest(BaseModel):
    """A reviewed label set: the labels a person accepted or chose for ``text``."""

    model_config = ConfigDict(extra="forbid")

    text: Text
    labels: list[Text]
    predicted: list[Text] | None = Field(default=None, description="what the tagger said")
    id: Text | int | None = Field(default=None, description="the row's id in its file")
    reviewer: Text | None = Field(default=None, max_length=200)
    review_id: Text | None = Field(
        default=None,
        max_length=100,
        description="a client-made id: a retry with the same one is not written twice",
    )


class CorrectionResponse(BaseModel):
    written: bool
    row: int
    file: str


class ReviewItem(BaseModel):
    row: int
    id: str | int | None = None
    text: str
    labels: list[str]  # proposed: the file's 'predicted' field, else the tagger's
    file_labels: list[str] = Field(default_factory=list)
    scores: dict[str, float]


class ReviewItems(BaseModel):
    tagger: str
    file: str
    items: list[ReviewItem]
