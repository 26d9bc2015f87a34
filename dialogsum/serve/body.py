"""Reading a request body within the size limit (413 past it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dialogsum.serve.inputs import Rejected

if TYPE_CHECKING:
    from starlette.requests import Request

_SMALLER = (
    "Send fewer or shorter dialogues per request (the server's max_body_bytes sets the limit)."
)


async def read_body(request: Request, limit: int) -> bytes:
    """The body of ``request``, or :class:`Rejected` (413) as soon as it is over ``limit`` bytes.

    A declared Content-Length over the limit is refused before anything is read; a chunked body
    is counted as it arrives and refused at the first chunk past the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Rejected(
            413, f"The request body is {declared} bytes; the limit is {limit}. {_SMALLER}"
        )
    # Chunks joined once at the end: appending to one bytes object copies it every time.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, f"The request body is over the limit of {limit} bytes. {_SMALLER}")
        chunks.append(chunk)
    return b"".join(chunks)
