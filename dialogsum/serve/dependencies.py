"""The FastAPI dependencies of the endpoints: the app's :class:`ServiceState`, the API key and
the admin key.

The keys are checked here, on the routes that need them, rather than in a middleware: the
probes (``/healthz``, ``/readyz``), the page and FastAPI's API docs simply do not declare one,
the routes that change adapters declare the admin key, and a route's dependencies run before its
body is read.
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
#: The answer to an adapter change without the admin key (401).
ADMIN_KEY_MESSAGE = (
    "Missing or wrong admin key: send it as 'Authorization: Bearer <key>' or 'X-Admin-Key: <key>'."
)
#: The answer to an adapter change on a server started without an admin key (403).
NO_ADMIN_KEY_MESSAGE = (
    "This server loads and unloads no adapters: it was started without an admin key. Start "
    "it with --admin-key-env NAME (admin_key_env: NAME in the config file, or "
    "DIALOGSUM_SERVE_ADMIN_KEY_ENV=NAME), the environment variable NAME holding the key, and "
    "send that key as 'Authorization: Bearer <key>' or 'X-Admin-Key: <key>'."
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
    ``X-API-Key: <key>``; OpenAI's clients send the former.
    """
    if state.api_key is not None and not _carries(request, "x-api-key", state.api_key):
        raise HTTPException(401, API_KEY_MESSAGE, headers={"WWW-Authenticate": "Bearer"})


def require_admin_key(request: Request, state: ServiceStateDep) -> None:
    """Refuse an adapter change: 403 when the service has no admin key, 401 without it.

    The key comes as ``Authorization: Bearer <key>`` (which wins when both are sent) or
    ``X-Admin-Key: <key>``.
    """
    if state.admin_key is None:
        raise HTTPException(403, NO_ADMIN_KEY_MESSAGE)
    if not _carries(request, "x-admin-key", state.admin_key):
        raise HTTPException(401, ADMIN_KEY_MESSAGE, headers={"WWW-Authenticate": "Bearer"})


def _carries(request: Request, header: str, key: bytes) -> bool:
    """Whether ``request`` carries ``key`` as a bearer token or in ``header``."""
    given = request.headers.get(header) or ""
    authorization = request.headers.get("authorization") or ""
    if authorization.lower().startswith("bearer "):
        given = authorization[len("bearer ") :]
    # Constant time, so the answer's timing does not tell how much of a guess was right.
    # Starlette decodes header values as latin-1: encoding back gives the bytes that were sent.
    return hmac.compare_digest(given.encode("latin-1"), key)
