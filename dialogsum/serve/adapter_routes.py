"""The adapter endpoints: ``GET /v1/adapters`` (the API key) lists what is served beside the
base model; ``PUT`` and ``DELETE /v1/adapters/{name}`` (the admin key) load and unload one while
the service runs, without pausing the requests in flight (see
:mod:`~dialogsum.serve.adapter_admin`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from dialogsum.adapter_serving import UnknownAdapterError, check_adapter_name
from dialogsum.errors import DialogsumError
from dialogsum.serve.body import read_body, receive_body
from dialogsum.serve.dependencies import ServiceStateDep, require_admin_key, require_api_key
from dialogsum.serve.inputs import Rejected
from dialogsum.serve.responses import error_response, failure, json_response
from dialogsum.serve.schema import AdapterFolder
from dialogsum.serve.state import ServiceState
from dialogsum.serve.uploads import ARCHIVES, archive_kind, remove, unpack
from dialogsum.validation import format_validation_error

router = APIRouter()

#: ``PUT /v1/adapters/{name}``'s body, for /docs and /openapi.json (it is read by hand).
PUT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/AdapterFolder"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "application/gzip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.get(
    "/v1/adapters",
    summary="The adapters served beside the base model.",
    dependencies=[Depends(require_api_key)],
)
async def list_adapters(state: ServiceStateDep) -> dict[str, Any]:
    """The base model's id and each adapter's record (method, base, manifest, size, source)."""
    adapters = state.summarizer.adapters()
    return {
        "base": state.model_id,
        "adapters": [adapters[name].model_dump(mode="json") for name in sorted(adapters)],
    }


@router.put(
    "/v1/adapters/{name}",
    summary="Load an adapter from a server-side folder or an uploaded archive.",
    dependencies=[Depends(require_admin_key)],
    status_code=201,
    openapi_extra=PUT_BODY,
)
async def put_adapter(name: str, request: Request, state: ServiceStateDep) -> Response:
    """201 with the adapter's record when it is new, 200 when it replaced one so named."""
    upload: Path | None = None
    try:
        _check_name(name, state)
        if _media_type(request) == "application/json":
            folder = _server_folder(await read_body(request, state.settings.max_body_bytes))
        else:
            upload = state.adapters.upload_folder()
            folder = await _unpacked(request, state, upload)
        change = await state.adapters.load(name, folder, upload)  # it keeps or removes upload
    except Exception as exc:
        remove(upload)  # a failed change keeps nothing of its upload
        return _refusal(exc, request, state, upload)
    return json_response(change.info.model_dump(mode="json"), 200 if change.replaced else 201)


@router.delete(
    "/v1/adapters/{name}",
    summary="Unload an adapter.",
    dependencies=[Depends(require_admin_key)],
)
async def delete_adapter(name: str, request: Request, state: ServiceStateDep) -> Response:
    """200 with the record of the adapter removed; 404 naming the loaded ones."""
    try:
        _check_name(name, state)
        info = await state.adapters.unload(name)
    except Exception as exc:
        return _refusal(exc, request, state)
    return json_response(info.model_dump(mode="json"), 200)


def _check_name(name: str, state: ServiceState) -> None:
    try:
        check_adapter_name(name)
    except DialogsumError as exc:
        raise Rejected(422, str(exc)) from None
    if name == state.model_id:
        raise Rejected(
            422,
            f"{name!r} is the base model's id on this server (GET /v1/models); give the "
            f"adapter another name.",
        )


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _server_folder(body: bytes) -> Path:
    """The folder a JSON body names, on the server: it must exist."""
    try:
        path = AdapterFolder.model_validate_json(body or b"null").path
    except ValidationError as exc:
        raise Rejected(
            422,
            f'Invalid body: {format_validation_error(exc)}. Send {{"path": "/server/folder"}} '
            f"as JSON, or upload {ARCHIVES}.",
        ) from None
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise Rejected(
            422,
            f"No folder {path!r} on the server: give the path of an adapter folder that the "
            f"server can read, or upload {ARCHIVES}.",
        )
    return folder


async def _unpacked(request: Request, state: ServiceState, upload: Path) -> Path:
    """The adapter folder of an uploaded archive, unpacked under ``upload``."""
    limit = state.settings.max_adapter_bytes
    archive = upload / "archive"
    with archive.open("wb") as sink:
        advice = "Upload a smaller adapter, or raise the server's max_adapter_bytes."
        await receive_body(request, limit, sink.write, advice)
    with archive.open("rb") as head:
        start = head.read(64)
    kind = archive_kind(request.headers.get("content-type"), start[:4])
    if kind is None:
        sent = request.headers.get("content-type") or "none"
        # curl -d sends JSON as a form unless told: the likeliest mistake, told as such.
        json_like = start.lstrip().startswith(b"{")
        hint = " It looks like JSON: send it with Content-Type: application/json." * json_like
        raise Rejected(
            415,
            f"The body (Content-Type: {sent}) is neither an archive nor JSON.{hint} Send "
            f"{ARCHIVES} (Content-Type: application/zip or application/gzip), or JSON "
            f'{{"path": "/server/folder"}} (Content-Type: application/json).',
        )
    into = upload / "adapter"
    into.mkdir()
    try:
        return await asyncio.to_thread(unpack, archive, kind, into, limit)
    finally:
        archive.unlink(missing_ok=True)


def _refusal(
    exc: Exception, request: Request, state: ServiceState, upload: Path | None = None
) -> Response:
    """The answer to an adapter change that failed, nothing changed: 404 for an adapter that
    is not loaded, 422 for one dialogsum says cannot be loaded (corrupt, another base model),
    500 for a backend's own failure. An upload's folder on the server is told as the
    archive (the client never saw that path, and it is gone)."""
    request_id = request.state.request_id
    if isinstance(exc, DialogsumError) and not isinstance(exc, UnknownAdapterError):
        message = str(exc)
        if upload is not None:
            message = message.replace(str(upload / "adapter"), "the uploaded archive")
        exc = Rejected(422, message)
    answer = failure(exc, state.settings, request_id)
    return error_response(answer.status, answer.message, request_id, answer.headers)
