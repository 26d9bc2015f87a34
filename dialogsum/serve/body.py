"""Reading a request body within a size limit (413 past it).

An oversized body is read to its end and thrown away before the 413 goes out (a lingering
close, as nginx does): a server that answers and closes while the client is still sending
makes the client's TCP stack see a reset, and Python's ``urllib`` and ``requests`` (which
``huggingface_hub.InferenceClient`` uses) then raise ``ConnectionResetError`` instead of
reading the JSON error. What is thrown away is bounded in bytes and in time; past either
bound the 413 goes out at once with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from dialogsum.serve.inputs import Rejected

if TYPE_CHECKING:
    from starlette.requests import Request

_SMALLER = (
    "Send fewer or shorter dialogues per request (the server's max_body_bytes sets the limit)."
)

#: Largest oversized body read to its end before the 413 (or four times the limit, if larger).
DISCARD_BYTES = 64 * 1024 * 1024
#: Longest time spent reading an oversized body before the 413 goes out regardless.
DISCARD_SECONDS = 10.0


def discard_bound(limit: int) -> int:
    """The largest body read to its end, and thrown away, before answering 413."""
    return max(DISCARD_BYTES, 4 * limit)


async def read_body(request: Request, limit: int) -> bytes:
    """The body of ``request``, or :class:`Rejected` (413) when it is over ``limit`` bytes.

    A declared Content-Length over the limit is refused without keeping anything; a chunked
    body is counted as it arrives. Either way the rest of the body is read and discarded (up to
    :func:`discard_bound` bytes and :data:`DISCARD_SECONDS`) so the client hears the 413.
    """
    # Chunks joined once at the end: appending to one bytes object copies it every time.
    chunks: list[bytes] = []
    await receive_body(request, limit, chunks.append, _SMALLER)
    return b"".join(chunks)


async def receive_body(
    request: Request, limit: int, keep: Callable[[bytes], object], advice: str
) -> None:
    """Pass each chunk of the body of ``request`` to ``keep``, or raise :class:`Rejected`
    (413, with ``advice``) once it is over ``limit`` bytes, as :func:`read_body` does."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        message = f"The request body is {declared} bytes; the limit is {limit}. {advice}"
        # A client waiting for '100 Continue' has sent no body yet: it is answered at once
        # (reading would send the '100 Continue' and invite the body).
        waiting = request.headers.get("expect", "").lower() == "100-continue"
        fits = int(declared) <= discard_bound(limit)
        whole = not waiting and fits and await _discard(request.stream(), 0, limit)
        raise Rejected(413, message, None if whole else {"Connection": "close"})
    size = 0
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            whole = await _discard(stream, size, limit)
            raise Rejected(
                413,
                f"The request body is over the limit of {limit} bytes. {advice}",
                None if whole else {"Connection": "close"},
            )
        keep(chunk)


async def _discard(stream: AsyncIterator[bytes], size: int, limit: int) -> bool:
    """Read ``stream`` to its end and drop it; False when a bound stopped it first (the caller
    then closes the connection). ``size`` bytes have been read already."""
    from starlette.requests import ClientDisconnect

    bound = discard_bound(limit)

    async def drain() -> bool:
        received = size
        async for chunk in stream:
            received += len(chunk)
            if received > bound:
                return False
        return True

    try:
        return await asyncio.wait_for(drain(), DISCARD_SECONDS)
    except asyncio.TimeoutError:
        return False
    except ClientDisconnect:  # the client gave up: nobody to answer, nothing left to read
        return True
