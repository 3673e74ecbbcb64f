"""``POST /ipcc/manager/file``: an application uploads a prompt into its own folder of the voice library.

A ``multipart/form-data`` body with the fields ``appId``, ``file`` (the audio) and ``filename`` (optional: the
file part's own name otherwise). The name is 1–100 characters of ``A-Z a-z 0-9 . _ -`` (not starting with a
dot) ending in ``.wav``, ``.flac``, ``.ogg`` or ``.mp3``; the content must be audio libsndfile decodes, at most
:data:`MAX_UPLOAD_SECONDS` long by its header (checked before decoding); at most ``[limits] uploadBytes`` (10 MiB)
— refused unread beyond. The file lands in ``<voices>/apps/<app>/NAME`` (0600,
its folder 0700), written to a temporary name and renamed, so a reader never sees half a file; uploading a
name again replaces the application's own file. The answer's ``fileInfo`` (``apps/<app>/NAME``) is what to put
in ``voiceStr`` with ``playFlag`` 1. Paths under ``apps/`` of another application are refused for every field
that reads the voice library (:func:`check_owner`): one application never reads or overwrites another's files.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import posixpath
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import soundfile as sf
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from engine.audio.decode import AudioDecodeError, load_audio
from engine.core.orders import MultOrders, PlayKind
from engine.errors import OK, MediaError, RequestError
from engine.server.http import read_body
from engine.server.routes import app_folder
from engine.wire.openapi import IpccResponse, upload_body
from engine.wire.request import error_response, response

if TYPE_CHECKING:
    from engine.server.app import Engine

APPS_FOLDER = "apps"
#: A prompt's duration at most (seconds), read from the file's header before anything is decoded.
MAX_UPLOAD_SECONDS = 600
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}\.(wav|flac|ogg|mp3)", re.IGNORECASE)


def check_owner(app_id: str, relative: str, field: str, kind: PlayKind = PlayKind.FILE) -> None:
    """Refuse (``108100`` naming ``field``) a file path inside another application's upload folder."""
    if kind is not PlayKind.FILE:
        return
    parts = posixpath.normpath(relative.replace("\\", "/")).split("/")
    if parts[0] == APPS_FOLDER and (len(parts) < 3 or parts[1] != app_folder(app_id)):
        raise MediaError(field, f"{relative[:80]!r} is not in this application's folder {APPS_FOLDER}/"
                                f"{app_folder(app_id)}/")


def owned(parse: Callable[[Mapping[str, Any]], MultOrders]) -> Callable[[Mapping[str, Any]], MultOrders]:
    """``parse``, then :func:`check_owner` on every file order."""

    def parse_owned(fields: Mapping[str, Any]) -> MultOrders:
        request = parse(fields)
        for i, order in enumerate(request.orders):
            check_owner(request.app_id, order.source, f"orders[{i}].voiceStr", order.kind)
        return request

    return parse_owned


def parse_form(raw: bytes, content_type: str) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """A ``multipart/form-data`` body → its text fields and its ``file`` part (part name, content)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise RequestError("Content-Type", "must be multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        raise RequestError("body", "is not a multipart/form-data body")
    fields: dict[str, str] = {}
    upload = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if name == "file":
            upload = (part.get_filename() or "", payload)
        elif isinstance(name, str):
            fields[name.strip()] = payload.decode("utf-8", "replace")[:1000]
    return fields, upload


def store(engine: Engine, raw: bytes, content_type: str) -> dict[str, Any]:
    """Check and store one upload; the answer (``fileInfo``)."""
    fields, upload = parse_form(raw, content_type)
    app_id = fields.get("appId", "").strip()
    if not app_id:
        raise RequestError("appId", "is required")
    engine.config.application(app_id)
    if upload is None:
        raise RequestError("file", "is required (a file part named 'file')")
    name = (fields.get("filename") or upload[0]).strip()
    if not _NAME.fullmatch(name) or ".." in name:
        raise RequestError("filename", f"must be 1-100 characters A-Z a-z 0-9 . _ - ending in .wav, .flac, .ogg or "
                                       f".mp3, got {name[:60]!r}")
    folder = Path(engine.settings.voices) / APPS_FOLDER / app_folder(app_id)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=Path(name).suffix)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(upload[1])
        try:
            seconds = sf.info(temporary).duration  # from the header: a small file may hold hours of silence
        except (RuntimeError, ValueError, sf.LibsndfileError):
            raise RequestError("file", "is not audio the engine decodes (WAV, FLAC, OGG or MP3)") from None
        if not 0 < seconds <= MAX_UPLOAD_SECONDS:
            raise RequestError("file", f"plays {seconds:.1f} s; a prompt lasts at most {MAX_UPLOAD_SECONDS} s")
        try:
            load_audio(temporary)
        except (AudioDecodeError, ValueError):
            raise RequestError("file", "is not audio the engine decodes (WAV, FLAC, OGG or MP3)") from None
        os.replace(temporary, folder / name)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    file_info = f"{APPS_FOLDER}/{app_folder(app_id)}/{name}"
    return response(OK, "ok", app_id, "", fileInfo=file_info, fileName=name, size=len(upload[1]))


def register(app: FastAPI, engine: Engine) -> None:
    """``POST /ipcc/manager/file``."""
    limit = engine.max_upload_bytes

    async def upload_file(request: Request) -> Response:
        try:
            raw = await read_body(request, limit)
        except RequestError as exc:
            return JSONResponse(error_response(exc), headers={"Connection": "close"})
        except ClientDisconnect:
            return Response(status_code=400)
        content_type = request.headers.get("content-type", "")
        action = lambda _text: store(engine, raw, content_type)  # noqa: E731 - the engine's action shape
        return JSONResponse(await engine.run_on_pool(action, ""))

    app.add_api_route("/ipcc/manager/file", upload_file, methods=["POST"], response_model=IpccResponse,
                      summary="Upload a prompt into the application's folder", openapi_extra=upload_body())
