"""``POST /v1/taggers/{name}/predict``: the call a catalogue pipeline makes once per name.

Its requests are answered by :class:`PredictPath`, a plain ASGI handler in front of
FastAPI. With micro-batching a name costs about 1 ms of scoring, and FastAPI's routing,
dependency solving and request wrappers cost another 0.16 ms of event-loop time per
request (0.26 against 0.10 ms, ``bench/serve_load.py cpu``), all on the same cores. The
FastAPI route stays, calling the same :meth:`Predictions.answer`, for the OpenAPI document.
The token gate (:class:`~tagger_core.serve.auth.TokenGate`) and the body limit
(:class:`~tagger_core.serve.limits.BodyLimit`) wrap both.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from tagger_core.errors import TaggerError
from tagger_core.registry import make_rule
from tagger_core.serve.bodies import (
    ApiError,
    PredictRequest,
    error_body,
    invalid_body,
    send_json,
)
from tagger_core.taxonomy import labels_of

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from tagger_core.components import DecisionRule
    from tagger_core.serve.settings import ServeSettings
    from tagger_core.serve.taggers import Served


class Predictions:
    """Parses a predict body, checks it against the server's limits, scores it and writes
    the answer as JSON bytes; every problem is an :class:`ApiError`."""

    def __init__(self, settings: ServeSettings, served: Served) -> None:
        self.settings = settings
        self.served = served

    async def answer(self, name: str, raw: bytes) -> bytes:
        try:
            body = PredictRequest.model_validate_json(raw)
        except ValidationError as error:
            raise invalid_body(error.errors(include_url=False)) from None
        target = self.served.get(name)
        texts = self.texts_of(body)
        rule = self.rule_of(body.rule, body.rule_params)
        scored = await target.scores(texts)
        chosen = scored.chosen
        if rule is not None:
            try:
                chosen = target.tagger.decide(scored.scores, rule)
            except TaggerError as error:
                raise ApiError(422, f"rule: {error}", "rule") from None
        ids = target.tagger.taxonomy.label_ids
        probabilities = scored.probabilities.tolist() if body.scores else None
        predictions = []
        for row, text in enumerate(texts):
            labels = labels_of(chosen[row], target.tagger.taxonomy)
            predictions.append(
                {
                    "text": text,
                    "labels": labels,
                    "display_names": [target.display[label] for label in labels],
                    "scores": dict(zip(ids, probabilities[row], strict=True))
                    if probabilities is not None
                    else None,
                }
            )
        # written here (PredictResponse documents it): validating the answer just built
        # would cost more per request than scoring a name in a batch
        return orjson.dumps({"tagger": name, "predictions": predictions})

    def texts_of(self, body: PredictRequest) -> list[str]:
        if (body.text is None) == (body.texts is None):
            raise ApiError(422, "texts: give either 'text' or 'texts'", "texts")
        texts, field = ([body.text], "text") if body.text is not None else (body.texts, "texts")
        assert texts is not None
        if not texts:
            raise ApiError(422, "texts: give at least one text", "texts")
        limits = self.settings
        if len(texts) > limits.max_texts:
            raise ApiError(
                413, f"texts: {len(texts)} texts; this server takes at most {limits.max_texts}"
            )
        for index, text in enumerate(texts):
            where = field if field == "text" else f"texts[{index}]"
            if not text.strip():
                raise ApiError(422, f"{where}: empty text", where)
            if len(text) > limits.max_chars:
                raise ApiError(
                    413, f"{where}: {len(text)} characters; the limit is {limits.max_chars}"
                )
        return texts

    @staticmethod
    def rule_of(name: str | None, params: dict[str, Any]) -> DecisionRule[Any] | None:
        if name is None:
            if params:
                raise ApiError(422, "rule_params: needs 'rule'", "rule_params")
            return None
        try:
            return make_rule(name, params)
        except TaggerError as error:
            raise ApiError(422, f"rule: {error}", "rule") from None


_PATH = re.compile(r"/v1/taggers/([^/]+)/predict")


class PredictPath:
    """Answers ``POST /v1/taggers/{name}/predict`` itself and hands every other request to
    ``app``. An unexpected failure propagates to the app's error middleware (a JSON 500)."""

    def __init__(self, app: ASGIApp, predictions: Predictions) -> None:
        self.app = app
        self.predictions = predictions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            scope["type"] == "http" and scope["method"] == "POST" and _PATH.fullmatch(scope["path"])
        )
        if not found:
            await self.app(scope, receive, send)
            return
        try:
            chunks = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # nobody to answer
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            status, answer = 200, await self.predictions.answer(found.group(1), b"".join(chunks))
        except ApiError as error:
            status = error.status
            answer = orjson.dumps(error_body(error.status, error.message, error.field))
        await send_json(send, status, answer)
