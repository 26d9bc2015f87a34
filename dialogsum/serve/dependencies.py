"""The FastAPI dependencies of the endpoints: the app's :class:`ServiceState`, and the API key.

The key is checked here, on the routes that hold data, rather than in a middleware: the probes
(``/healthz``, ``/readyz``), the page and FastAPI's API docs simply do not declare it, and a
route's dependencies run before its body is read.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from dialogsum.serve.state import ServiceState

#: The answer to a request without the right key (status 401, ``WWW-Authenticate: Bearer``).
API_KEY_MESSAGE = (
    "Missing or wrong API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
)


def service_state(request: Request) -> ServiceState:
    """The state of the app that serves ``request``: ``app.state.dialogsum``.

    ``request.app`` is the innermost application, so an app mounted in another finds its own.
    """
    state: ServiceState = request.app.state.dialogsum
    return state


#: An endpoint parameter annotated with this receives the app's :class:`ServiceState`.
ServiceStateDep = Annotated[ServiceState, Depends(service_state)]


def require_api_key(request: Request, state: ServiceStateDep) -> None:
    """Refuse (401) a request without the service's API key; pass every request when the
    service has none.

    The key comes as ``Authorization: Bearer <key>`` (which wins when both are sent) or
    ``X-API-Key: <key>``.
    """
    if state.api_key is None:
        return
    given = request.headers.get("x-api-key") or ""
    authorization = request.headers.get("authorization") or ""
    if authorization.lower().startswith("bearer "):
        given = authorization[len("bearer ") :]
    # Constant time, so the answer's timing does not tell how much of a guess was right.
    # Starlette decodes header values as latin-1: encoding back gives the bytes that were sent.
    if not hmac.compare_digest(given.encode("latin-1"), state.api_key):
        raise HTTPException(401, API_KEY_MESSAGE, headers={"WWW-Authenticate": "Bearer"})
