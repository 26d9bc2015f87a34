"""The service's endpoints, as one APIRouter. Each reaches the app's :class:`ServiceState`
through a dependency; the routes that hold data also declare the API key check."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from dialogsum.serve.body import read_body
from dialogsum.serve.dependencies import ServiceStateDep, require_api_key
from dialogsum.serve.inputs import request_inputs
from dialogsum.serve.page import PAGE
from dialogsum.serve.responses import error_response, failure, json_response
from dialogsum.serve.schema import Summary

#: The endpoints; ``create_app`` includes it. The probes and the page declare no key: they hold
#: no data, and a browser cannot send a key header to load the page (the page asks for it).
router = APIRouter()

_KEYED = [Depends(require_api_key)]


@router.post(
    "/v1/summarize",
    summary="Summarize one or more dialogues.",
    response_model=list[Summary],
    dependencies=_KEYED,
    # The body is read and checked by hand (size limit first, then the schema), so the
    # schema is declared here for /docs and /openapi.json.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SummarizeRequest"}}
            },
        }
    },
)
async def summarize(request: Request, state: ServiceStateDep) -> Response:
    """Summaries in input order, or a JSON error saying what to change."""
    request_id = request.state.request_id
    settings = state.settings
    try:
        body = await read_body(request, settings.max_body_bytes)
        texts, options, cut = request_inputs(body, settings, state.summarizer)
        counts = state.measure(texts, cut=cut)
        summaries = await state.summarize(texts, options)
    except Exception as exc:  # each failure its status; the server goes on serving
        answer = failure(exc, settings, request_id)
        return error_response(answer.status, answer.message, request_id, answer.headers)
    headers = {}
    if counts is not None and counts.truncated:
        headers["X-Dialogsum-Truncated"] = ",".join(map(str, counts.truncated))
    return json_response([{"summary_text": text} for text in summaries], 200, headers)


@router.get("/healthz", summary="Alive.")
async def healthz() -> dict[str, str]:
    """Always ok while the process serves."""
    return {"status": "ok"}


@router.get("/readyz", summary="Model loaded and warmed up.")
async def readyz(state: ServiceStateDep) -> Response:
    """200 once the model has summarized its warm-up dialogue; 503 (Retry-After) before."""
    state.start()
    if state.ready:
        return json_response({"status": "ready"}, 200)
    return json_response({"status": "starting"}, 503, {"Retry-After": "1"})


@router.get(
    "/v1/model", summary="What is served: the manifest, backend and limits.", dependencies=_KEYED
)
async def model(state: ServiceStateDep) -> dict[str, Any]:
    """The model card."""
    return state.model_card()


@router.get("/metrics", summary="Prometheus metrics.", dependencies=_KEYED)
async def prometheus(state: ServiceStateDep) -> Response:
    """The app's metrics in Prometheus' text format."""
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)


@router.get(
    "/v1/samples",
    summary="A few DialogSum sample dialogues, for the web page.",
    dependencies=_KEYED,
)
async def samples() -> list[dict[str, str]]:
    """The first eight dialogues of the bundled sample's test split."""
    from dialogsum.data import sample_rows

    return [
        {"id": str(row.get("fname", index)), "dialogue": row["dialogue"]}
        for index, row in enumerate(sample_rows("test")[:8])
    ]


@router.get("/", include_in_schema=False)
async def page() -> Response:
    """The web page."""
    return HTMLResponse(PAGE)
