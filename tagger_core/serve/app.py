"""The HTTP API and the review page of `tagger serve`, as a FastAPI app.

Every error is JSON, ``{"error": {"status", "message", "field"}}``, with a status that says
what went wrong (401, 403, 404, 413, 422, 503); an unexpected failure is a 500 whose body
says only that, its traceback going to the server's log. Nothing a request sends chooses a
path on this machine: the taggers and the corrections file are fixed at start.

FastAPI comes from the ``serve`` extra: import this module after
:func:`tagger_core.serve.settings.need_serve_extra`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from tagger_core.components import FileOptions
from tagger_core.data.io import writer_for
from tagger_core.errors import TaggerError
from tagger_core.serve.auth import HostGuard, TokenGate
from tagger_core.serve.bodies import (
    ApiError,
    CorrectionRequest,
    CorrectionResponse,
    PredictRequest,
    PredictResponse,
    ReviewItems,
    TaggerInfo,
    error_body,
    invalid_body,
)
from tagger_core.serve.corrections import (
    REVIEW_SOURCE,
    CorrectionLog,
    canonical_labels,
    label_set_problem,
)
from tagger_core.serve.limits import TOO_LARGE, BodyLimit, too_large
from tagger_core.serve.predict import Predictions, PredictPath
from tagger_core.serve.settings import ServeSettings
from tagger_core.serve.taggers import Served
from tagger_core.serve.uploads import read_upload, saved_upload, tag_file
from tagger_core.taxonomy import labels_of

log = logging.getLogger("tagger.serve")
STATIC = Path(__file__).parent / "static"
API = "/v1"
# The routes that take a file upload: the only ones whose bodies may reach the upload limit
UPLOADS = re.compile(rf"{API}/taggers/[^/]+/(predict-file|review-items)")
# What output_format may be: a file suffix, never a path
SUFFIX = re.compile(r"\.?([A-Za-z0-9]{1,16})")
# uvicorn.config.STARTUP_FAILURE: the exit status of a worker that can never serve
STARTUP_FAILURE = 3


def create_app(
    settings: ServeSettings,
    on_failure: Callable[[str], None] | None = None,
    *,
    load_first: bool = False,
) -> FastAPI:
    """The app for ``settings``; ``on_failure`` hears a tagger that fails to load (the CLI
    stops the server with that line). One process loads its taggers in the background, so
    that /healthz answers at once; with ``load_first`` (each of several worker processes)
    the taggers are loaded before the process takes a connection, since a request reaching
    a worker still loading would get 503 after another worker's /readyz said ready."""
    served = Served(settings, on_failure or (lambda message: log.error("%s", message)))
    corrections = CorrectionLog(settings.corrections) if settings.corrections else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=served.load, name="tagger-loader", daemon=True)
        loader.start()
        if load_first:
            await asyncio.to_thread(loader.join)
            if served.failure is not None:  # logged in one line by on_failure
                # uvicorn's supervisor stops every worker on this exit status rather than
                # restarting one that would fail the same way
                os._exit(STARTUP_FAILURE)
        try:
            yield
        finally:  # uvicorn calls this once in-flight requests are answered
            served.close()
            loader.join(timeout=1)

    # FastAPI's own /docs and /redoc load their scripts from a CDN, blank on an offline
    # machine; these pages serve the same Swagger UI and ReDoc from the installed package
    app = FastAPIOffline(
        static_url="/static-docs",
        title="tagger",
        summary="Tag names with taxonomy labels; review and correct the labels.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.served = served
    app.state.corrections = corrections

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error_body(error.status, error.message, error.field), error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        refused = invalid_body(error.errors())
        return JSONResponse(error_body(422, refused.message, refused.field), 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if TOO_LARGE in request.scope:
            return JSONResponse(error_body(413, too_large(request.scope[TOO_LARGE])), 413)
        return JSONResponse(
            error_body(error.status_code, str(error.detail)),
            error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal error; see the server's log"), 500)

    # -- probes ---------------------------------------------------------------------------

    @app.get("/healthz", tags=["probes"])
    async def healthz() -> dict[str, str]:
        """The process answers (it may still be loading taggers)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"])
    async def readyz() -> JSONResponse:
        """200 once every tagger is loaded; 503 while loading or after a failure."""
        snapshot = served.taggers  # the loader replaces it as taggers come in
        loaded = sorted(snapshot)
        pending = sorted(set(settings.taggers) - set(loaded))
        if served.failure:
            body = {"status": "failed", "error": served.failure, "loaded": loaded}
            return JSONResponse(body, 503)
        if not served.ready.is_set():
            return JSONResponse({"status": "loading", "loaded": loaded, "pending": pending}, 503)
        batching = {
            name: {
                "batches": t.batcher.batches,
                "texts": t.batcher.texts,
                "wait_ms": round(t.wait * 1000, 3),
            }
            for name, t in snapshot.items()
            if t.batcher is not None
        }
        # the process says who answered: with --workers, each keeps its own counts
        return JSONResponse(
            {"status": "ready", "loaded": loaded, "batching": batching, "pid": os.getpid()}
        )

    # -- taggers and prediction -----------------------------------------------------------

    @app.get(f"{API}/taggers", tags=["taggers"])
    async def list_taggers() -> dict[str, Any]:
        """Every served tagger: taxonomy (labels, display names, descriptions), encoder,
        rule and validation figures; also whether corrections are taken."""
        loaded = served.taggers  # one snapshot: the loader replaces it as taggers come in
        return {
            "taggers": [t.info.model_dump(mode="json") for t in loaded.values()],
            "loading": sorted(set(settings.taggers) - set(loaded)),
            "corrections": corrections is not None,
            "review_needs_token": settings.token is not None,
            "anonymous_review": settings.anonymous_review,
            "limits": {
                "max_texts": settings.max_texts,
                "max_chars": settings.max_chars,
                "max_body_bytes": settings.max_body_bytes,
                "max_upload_bytes": settings.max_upload_bytes,
                "max_review_rows": settings.max_review_rows,
            },
        }

    @app.get(f"{API}/taggers/{{name}}", tags=["taggers"])
    async def show_tagger(name: str) -> TaggerInfo:
        return served.get(name).info

    predictions = Predictions(settings, served)

    @app.post(
        f"{API}/taggers/{{name}}/predict",
        tags=["taggers"],
        response_model=PredictResponse,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
            }
        },
    )
    async def predict(name: str, request: Request) -> Response:
        """Labels (ids and display names) and every label's score for one or many names."""
        # PredictPath answers these requests before FastAPI routes them; this route
        # documents the operation (its body: PredictRequest) and gives the same answers
        answer = await predictions.answer(name, await request.body())
        return Response(answer, media_type="application/json")

    # -- files ----------------------------------------------------------------------------

    @app.post(f"{API}/taggers/{{name}}/predict-file", tags=["files"])
    async def predict_file(
        name: str,
        file: Annotated[UploadFile, File(description="CSV, TSV, XLSX, JSON, JSON Lines or text")],
        output_format: Annotated[
            str | None, Form(description="a file suffix; default: the upload's")
        ] = None,
        text_field: Annotated[str, Form()] = "text",
        label_field: Annotated[str, Form()] = "label",
        display: Annotated[bool, Form()] = True,
    ) -> FileResponse:
        """The uploaded file tagged: every input field kept, 'predicted' (and display
        names and scores) added, in the same format unless another is asked for."""
        target = served.get(name)
        folder, path = await saved_upload(file, settings.max_upload_bytes)
        try:
            suffix = path.suffix
            if output_format:  # an empty field: the upload's own
                chosen = SUFFIX.fullmatch(output_format)
                if chosen is None:
                    raise ApiError(
                        422, "output_format: a file suffix of letters and digits, not a path",
                        "output_format",
                    )  # fmt: skip
                suffix = f".{chosen.group(1).lower()}"
            output = folder / f"{path.stem}.tagged{suffix}"
            try:
                writer_for(output)
            except TaggerError as error:
                message = error.message.replace("--format", "output_format")
                raise ApiError(422, f"output_format: {message}", "output_format") from None
            options = FileOptions(
                text_field=text_field, label_field=label_field, require_labels=False
            )
            await asyncio.to_thread(tag_file, target.tagger, path, output, options, display)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            output,
            filename=output.name,
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    @app.post(
        f"{API}/taggers/{{name}}/review-items",
        tags=["review"],
        response_model=ReviewItems,
    )
    async def review_items(
        name: str,
        file: Annotated[UploadFile, File(description="names to review, e.g. predict's output")],
        text_field: Annotated[str, Form()] = "text",
        label_field: Annotated[str, Form()] = "label",
    ) -> dict[str, Any]:
        """The rows of an uploaded file as review items: the label set proposed for each
        (its 'predicted' field where it has one, else the tagger's) and every score."""
        target = served.get(name)
        folder, path = await saved_upload(file, settings.max_upload_bytes)
        try:
            options = FileOptions(
                text_field=text_field, label_field=label_field, require_labels=False
            )
            records = await asyncio.to_thread(read_upload, path, options, settings.max_review_rows)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        scored = await target.scores([r.text for r in records]) if records else None
        ids = target.tagger.taxonomy.label_ids
        probabilities = scored.probabilities.tolist() if scored is not None else []
        items = []
        for index, record in enumerate(records):
            proposed = record.metadata.get("predicted")
            if not (isinstance(proposed, list) and all(isinstance(x, str) for x in proposed)):
                assert scored is not None  # records were scored
                proposed = labels_of(scored.chosen[index], target.tagger.taxonomy)
            items.append(
                {
                    "row": record.row or index + 1,
                    "id": record.id,
                    "text": record.text,
                    "labels": [label for label in proposed if label in target.display],
                    "file_labels": list(record.labels),
                    "scores": dict(zip(ids, probabilities[index], strict=True)),
                }
            )
        return {"tagger": name, "file": path.name, "items": items}

    # -- corrections ----------------------------------------------------------------------

    @app.post(
        f"{API}/taggers/{{name}}/corrections",
        tags=["review"],
        status_code=201,
        response_model=CorrectionResponse,
        responses={200: {"description": "already written (same review_id)"}},
    )
    async def correct(name: str, body: CorrectionRequest) -> JSONResponse:
        """Append an accepted or corrected label set to the corrections file, in the
        labelled format `tagger train` reads (source 'review')."""
        if corrections is None:
            raise ApiError(409, "this server keeps no corrections; start it with --corrections")
        if settings.token is None and not settings.anonymous_review:
            raise ApiError(
                403,
                "corrections need a token (start the server with --token) or, on loopback, "
                "--allow-anonymous-review",
            )
        target = served.get(name)
        taxonomy = target.tagger.taxonomy
        if not body.text.strip():
            raise ApiError(422, "text: empty text", "text")
        if len(body.text) > settings.max_chars:
            raise ApiError(413, f"text: longer than {settings.max_chars} characters")
        try:
            labels = canonical_labels(body.labels, taxonomy)
        except ValueError as error:
            raise ApiError(422, f"labels: {error}", "labels") from None
        problem = label_set_problem(labels, taxonomy)
        if problem:
            raise ApiError(422, f"labels: {problem}", "labels")
        entry: dict[str, Any] = {}
        if body.id is not None:
            entry["id"] = body.id
        entry.update({"text": body.text, "label": labels, "source": REVIEW_SOURCE})
        if body.reviewer:
            entry["reviewer"] = body.reviewer
        entry["tagger"] = name
        if body.predicted is not None:
            entry["predicted"] = body.predicted
        if body.review_id:
            entry["review_id"] = body.review_id
        try:
            written, row = await asyncio.to_thread(corrections.append, entry)
        except TaggerError as error:
            log.error("%s", error)
            raise ApiError(
                500, "the corrections file cannot be written; see the server's log"
            ) from None
        response = CorrectionResponse(written=written, row=row, file=corrections.path.name)
        return JSONResponse(response.model_dump(), 201 if written else 200)

    # -- the page -------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # outermost last: the Host guard, CORS (so that its headers reach the refusals too),
    # the token, the body limit, then predict's own path in front of FastAPI
    app.add_middleware(PredictPath, predictions=predictions)
    app.add_middleware(
        BodyLimit,
        json_limit=settings.max_body_bytes,
        upload_limit=settings.max_upload_bytes,
        uploads=UPLOADS,
    )
    if settings.token is not None:
        app.add_middleware(TokenGate, token=settings.token, guarded=_guarded)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    if settings.hosts:
        app.add_middleware(HostGuard, hosts=settings.hosts)
    return app


def _guarded(path: str) -> bool:
    """The paths a token guards: the API and the readiness probe (liveness, the page, its
    assets and the API's description need none)."""
    return path == "/readyz" or path == API or path.startswith(API + "/")


def _version() -> str:
    from tagger_core.version import __version__

    return __version__


SETTINGS_VARIABLE = "TAGGER_SERVE_SETTINGS"


def app_from_environment() -> FastAPI:
    """The app of one of several server processes (``--workers``), built from the
    settings the command put in the environment."""
    settings = ServeSettings.model_validate_json(os.environ[SETTINGS_VARIABLE])

    def failed(message: str) -> None:  # the command's own one-line form; it exits 2 after
        print(f"Error: {message}", file=sys.stderr, flush=True)

    return create_app(settings, failed, load_first=True)
