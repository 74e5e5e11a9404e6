"""Uploaded files: copied to a private folder under a tidied name, read and written by the
CLI's own data sources, errors naming the user's file and row (never a server path)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from fastapi import UploadFile

from tagger_core.components import FileOptions
from tagger_core.errors import TaggerError
from tagger_core.registry import data_source_for
from tagger_core.schemas import Record
from tagger_core.serve.bodies import ApiError
from tagger_core.tagger import Tagger

_UNSAFE = re.compile(r"[^\w.\-]+")
# Bytes of a tidied upload name: with ".tagged" and a suffix it stays far below the 255
# bytes a file name may have
NAME_BYTES = 120


async def saved_upload(file: UploadFile, limit: int) -> tuple[Path, Path]:
    """The upload copied to a private folder under a tidied version of its own name (so
    that errors name the user's file, never a server path); the folder is the caller's."""
    name = _short(_UNSAFE.sub("_", Path(file.filename or "upload").name).lstrip(".") or "upload")
    try:  # read by the same data sources as the CLI's files, chosen by the suffix
        data_source_for(Path(name))
    except TaggerError as error:
        message = error.message.replace("; choose one with --format", "")
        raise ApiError(422, f"file: {name}: {message}", "file") from None
    folder = Path(tempfile.mkdtemp(prefix="tagger-upload-"))
    path = folder / name
    written = 0
    try:
        with open(path, "wb") as handle:
            while block := await file.read(1 << 20):
                written += len(block)
                if written > limit:
                    raise ApiError(413, f"file: larger than this server's limit of {limit} bytes")
                handle.write(block)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, path


def _short(name: str) -> str:
    """``name`` with its stem cut to fit :data:`NAME_BYTES` (its suffix picks the reader)."""
    path = Path(name)
    room = NAME_BYTES - len(path.suffix.encode())
    if len(name.encode()) <= NAME_BYTES or room <= 0:
        return name  # a suffix that long names no reader: refused by the caller
    return (path.stem.encode()[:room].decode("utf-8", "ignore") or "upload") + path.suffix


def in_upload(error: TaggerError, path: Path) -> ApiError:
    """A reader's one-line error about an upload, naming the file as the user sent it."""
    message = str(error).replace(str(path.parent) + os.sep, "")
    return ApiError(422, message, error.field)


def read_upload(path: Path, options: FileOptions, limit: int) -> list[Record]:
    from tagger_core.data.io import iter_records

    records: list[Record] = []
    try:
        for record in iter_records(path, None, options):
            if len(records) >= limit:
                raise ApiError(413, f"file: more than {limit} rows to review; split it")
            if not record.text.strip():
                raise ApiError(422, f"{path.name}, row {record.row}: empty text", "text")
            records.append(record)
    except TaggerError as error:
        raise in_upload(error, path) from None
    return records


def tag_file(tagger: Tagger, path: Path, output: Path, options: FileOptions, display: bool) -> None:
    from tagger_core.data.io import iter_records
    from tagger_core.workflows.predict import predict_to_file

    try:
        rows = predict_to_file(
            tagger, iter_records(path, None, options), output, options=options, display=display
        )
    except TaggerError as error:
        raise in_upload(error, path) from None
    if rows == 0:
        raise ApiError(422, f"file: {path.name} has no rows", "file")
