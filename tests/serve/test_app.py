"""The service's app: the API key check, the body size limit over many chunks, and the test
kit's in-process client on an app mounted in another."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialogsum import Summarizer
from dialogsum.data import load_examples
from dialogsum.plugin_api import GenerationOptions, ModelManifest, Predictor
from dialogsum.serve import ServeSettings
from dialogsum.testing import asgi_client
from dialogsum.testing.serving import Server

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

KEY_MESSAGE = (
    "Missing or wrong API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
)
GREEDY = {"num_beams": 1, "max_new_tokens": 12}


class Reverse(Predictor):
    """Summarizes a dialogue as itself reversed, at once; fails on dialogues holding
    ``fail_on``."""

    manifest = ModelManifest()

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        if self.fail_on and any(self.fail_on in d for d in dialogues):
            raise RuntimeError("boom")
        return [d[::-1] for d in dialogues]


def post(url: str, payload: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/summarize", json=payload, timeout=60, **kwargs)


# -- the API key ----------------------------------------------------------------------------------


def test_the_api_key_is_compared_in_constant_time_on_every_keyed_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(given: Any, key: Any) -> bool:
        compared.append((given, key))
        return real(given, key)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    monkeypatch.setenv("TEST_DIALOGSUM_KEY", "s3cret")
    with Server(Summarizer(Reverse()), ServeSettings(api_key_env="TEST_DIALOGSUM_KEY")) as address:
        missing = post(address, {"inputs": "abc"})
        assert missing.status_code == 401
        assert missing.json()["error"] == KEY_MESSAGE and missing.json()["request_id"]
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        # Wrong keys of the key's own length, a prefix of it and a longer one.
        wrong = [
            {"X-API-Key": "s3creT"},
            {"X-API-Key": "S3cret"},
            {"Authorization": "Bearer s3cres"},
            {"X-API-Key": "s3cre"},
            {"Authorization": "Bearer s3cret1"},
            {"Authorization": "Basic s3cret"},  # not a bearer token
        ]
        for headers in wrong:
            refused = post(address, {"inputs": "abc"}, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["error"] == KEY_MESSAGE
        for headers in ({"X-API-Key": "s3cret"}, {"Authorization": "Bearer s3cret"}):
            good = post(address, {"inputs": "abc"}, headers=headers)
            assert good.status_code == 200 and good.json() == [{"summary_text": "cba"}], headers
        for path in ("/healthz", "/readyz", "/", "/openapi.json"):  # open: no key compared
            assert httpx.get(f"{address}{path}").status_code == 200, path
    assert len(compared) == 1 + len(wrong) + 2  # once per keyed request, open ones never
    assert all(isinstance(given, bytes) and isinstance(key, bytes) for given, key in compared)
    assert compared[-1] == (b"s3cret", b"s3cret")


def test_a_key_that_is_not_ascii_is_compared_as_the_bytes_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_DIALOGSUM_KEY", "clé-secrète")
    with Server(Summarizer(Reverse()), ServeSettings(api_key_env="TEST_DIALOGSUM_KEY")) as address:
        good = post(address, {"inputs": "abc"}, headers={"X-API-Key": "clé-secrète".encode()})
        assert good.status_code == 200, good.text
        latin = post(
            address, {"inputs": "abc"}, headers={"X-API-Key": "clé-secrète".encode("latin-1")}
        )
        assert latin.status_code == 401


# -- the body limit -------------------------------------------------------------------------------

LIMIT = 60_000


@pytest.fixture(scope="module")
def limited() -> Iterator[str]:
    with Server(Summarizer(Reverse()), ServeSettings(max_body_bytes=LIMIT)) as address:
        yield address


def chunked(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def body_of(dialogue: str, length: int) -> bytes:
    """A request for ``dialogue`` padded with JSON whitespace to exactly ``length`` bytes."""
    body = json.dumps({"inputs": dialogue}).encode()
    return body + b" " * (length - len(body))


@pytest.mark.parametrize("length", [LIMIT - 1, LIMIT])
def test_a_body_in_many_chunks_is_accepted_up_to_the_limit(limited: str, length: int) -> None:
    dialogue = "#Person1#: Hello.\n#Person2#: " + "Hi there. " * 2000
    with httpx.Client(timeout=60) as client:
        request = client.build_request(
            "POST", f"{limited}/v1/summarize", content=chunked(body_of(dialogue, length))
        )
        # Streamed without a Content-Length: the server counts the chunks as they come.
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        response = client.send(request)
    assert response.status_code == 200, response.text
    assert response.json() == [{"summary_text": dialogue[::-1]}]


@pytest.mark.parametrize("length", [LIMIT + 1, 3 * LIMIT])
def test_a_body_in_many_chunks_over_the_limit_is_refused_with_413(
    limited: str, length: int
) -> None:
    with httpx.Client(timeout=60) as client:
        request = client.build_request(
            "POST", f"{limited}/v1/summarize", content=chunked(body_of("x", length))
        )
        assert "content-length" not in request.headers
        response = client.send(request)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error.startswith(f"The request body is over the limit of {LIMIT} bytes.")
    assert "max_body_bytes" in error


# -- the in-process client ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def summarizer(tiny_model_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})


def test_asgi_client_serves_an_app_mounted_in_another(
    summarizer: Summarizer, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi import FastAPI

    from dialogsum.serve import create_app

    dialogue = load_examples(sample_dir / "test.jsonl")[0].dialogue
    monkeypatch.setenv("TEST_DIALOGSUM_MOUNT_KEY", "k")
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    outer = FastAPI(lifespan=lifespan)
    inner = create_app(summarizer, ServeSettings(api_key_env="TEST_DIALOGSUM_MOUNT_KEY"))
    outer.mount("/summarizer", inner)

    async def use() -> list[httpx.Response]:
        async with asgi_client(outer) as client:
            assert events == ["startup"]  # the host's lifespan runs around the block
            refused = await client.get("/summarizer/v1/model")
            answer = await client.post(
                "/summarizer/v1/summarize",
                json={"inputs": dialogue, "parameters": {"generate_parameters": GREEDY}},
                headers={"X-API-Key": "k"},
            )
            ready = await client.get("/summarizer/readyz")
            return [refused, answer, ready]

    refused, answer, ready = asyncio.run(use())
    assert events == ["startup", "shutdown"]
    assert refused.status_code == 401
    assert answer.status_code == 200, answer.text
    assert answer.json() == [{"summary_text": summarizer.summarize([dialogue], **GREEDY)[0]}]
    assert answer.headers["X-Request-Id"]
    assert ready.json() == {"status": "ready"}  # the first request started the mounted app


def test_asgi_client_runs_the_apps_lifespan_warm_up_and_drain() -> None:
    from dialogsum.serve import create_app

    app = create_app(Summarizer(Reverse()))

    async def use() -> tuple[httpx.Response, httpx.Response]:
        async with asgi_client(app) as client:
            # Warmed up before the first request: no request started it.
            ready = await client.get("/readyz")
            answer = await client.post("/v1/summarize", json={"inputs": "abc"})
            return ready, answer

    ready, answer = asyncio.run(use())
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert answer.json() == [{"summary_text": "cba"}]
    assert app.state.dialogsum.ready is False  # shut down at the end of the block


def test_asgi_client_reports_a_failed_startup() -> None:
    from dialogsum.serve import create_app

    app = create_app(Summarizer(Reverse(fail_on="warming up")))

    async def use() -> None:
        async with asgi_client(app):
            pass

    with pytest.raises(RuntimeError, match=r"lifespan startup failed(.|\n)*warm-up summary"):
        asyncio.run(use())
