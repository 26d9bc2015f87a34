"""An oversized request hears its 413 and the JSON error, in the clients Python users have:
``urllib`` (which says ``Connection: close``) and ``requests`` (which ``InferenceClient``
uses), with a declared length and chunked. The server reads and discards the rest of the body
first, within a bound in bytes and in time; past the bound it answers at once and closes."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialogsum import Summarizer
from dialogsum.serve import ServeSettings, body
from dialogsum.testing.serving import Server

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
requests = pytest.importorskip("requests")

LIMIT = 64_000
#: 10 MB: far past the limit, and more than the loopback's socket buffers take in before the
#: server reads (a smaller body fits there whole, and the client never sees a reset).
BIG = json.dumps({"inputs": "#Person1#: Hello.\n" * 530_000}).encode()


@pytest.fixture(scope="module")
def url(tiny_model_dir: Path) -> Iterator[str]:
    summarizer = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    with Server(summarizer, ServeSettings(max_body_bytes=LIMIT)) as address:
        yield address


def assert_the_413(status: int, text: str) -> None:
    assert status == 413, text[:500]
    answer = json.loads(text)
    assert f"the limit is {LIMIT}" in answer["error"] or f"limit of {LIMIT}" in answer["error"]
    assert "max_body_bytes" in answer["error"] and answer["request_id"]


def assert_still_serving(url: str) -> None:
    response = requests.post(f"{url}/v1/summarize", json={"inputs": "#Person1#: Hi."}, timeout=60)
    assert response.status_code == 200, response.text


def test_urllib_reads_the_413_of_an_oversized_body(url: str) -> None:
    request = urllib.request.Request(
        f"{url}/v1/summarize", data=BIG, headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as raised:  # not a ConnectionResetError
        urllib.request.urlopen(request, timeout=60)
    assert_the_413(raised.value.code, raised.value.read().decode())
    assert_still_serving(url)


def test_requests_reads_the_413_of_an_oversized_body(url: str) -> None:
    response = requests.post(
        f"{url}/v1/summarize",
        data=BIG,
        headers={"Content-Type": "application/json", "Connection": "close"},
        timeout=60,
    )
    assert_the_413(response.status_code, response.text)
    assert_still_serving(url)


def test_requests_reads_the_413_of_an_oversized_chunked_body(url: str) -> None:
    def chunks() -> Iterator[bytes]:  # a generator: requests sends it chunked, no length
        for start in range(0, len(BIG), 65_536):
            yield BIG[start : start + 65_536]

    response = requests.post(
        f"{url}/v1/summarize",
        data=chunks(),
        headers={"Content-Type": "application/json", "Connection": "close"},
        timeout=60,
    )
    assert_the_413(response.status_code, response.text)
    assert_still_serving(url)


def raw_answer(url: str, head: str, sent_body: bytes = b"", timeout: float = 60) -> str:
    """The server's answer to a request whose headers are ``head`` and of whose body only
    ``sent_body`` is sent; the connection stays open on the client's side, and the answer must
    come within ``timeout`` seconds."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(head.encode() + b"\r\n" + sent_body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = connection.recv(65_536)
            if not data:
                break
            answer += data
    return answer.decode()


def test_a_body_past_the_discard_bound_is_answered_at_once_and_closed(url: str) -> None:
    declared = body.discard_bound(LIMIT) + 1
    head = f"POST /v1/summarize HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n"
    answer = raw_answer(url, head)  # no body sent: the server must not wait for one
    assert answer.startswith("HTTP/1.1 413") and "connection: close" in answer.lower()
    assert_the_413(413, answer.split("\r\n\r\n", 1)[1])
    assert_still_serving(url)


def test_a_client_that_stops_sending_gets_its_413_after_the_time_bound(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(body, "DISCARD_SECONDS", 0.5)
    head = f"POST /v1/summarize HTTP/1.1\r\nHost: x\r\nContent-Length: {4 * LIMIT}\r\n"
    # Half the body, then nothing: the answer comes after the bound, not when the client gives up.
    answer = raw_answer(url, head, b"x" * (2 * LIMIT), timeout=20)
    assert answer.startswith("HTTP/1.1 413") and "connection: close" in answer.lower()
    assert_still_serving(url)


def test_a_client_waiting_for_100_continue_is_answered_without_reading(url: str) -> None:
    head = (
        f"POST /v1/summarize HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BIG)}\r\n"
        f"Expect: 100-continue\r\n"
    )
    answer = raw_answer(url, head)
    assert answer.startswith("HTTP/1.1 413"), answer[:200]  # no '100 Continue' first
    assert_the_413(413, answer.split("\r\n\r\n", 1)[1])
