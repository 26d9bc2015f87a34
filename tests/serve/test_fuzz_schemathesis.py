"""The service fuzzed with schemathesis from its own ``/openapi.json``: a real server on
127.0.0.1 around the tiny model, requests built from the schema (valid ones, and invalid ones
for the summarize body), a fixed number of examples with a fixed seed. No answer is a 500;
every error is the documented ``{"error": ..., "request_id": ...}`` (OpenAI's error shape on
the OpenAI-compatible routes); every summary list has one
summary per dialogue; and the server still answers afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialogsum import Summarizer
from dialogsum.serve import ServeSettings
from dialogsum.testing.serving import Server

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

#: Examples per operation and mode: about 30 s in all with the tiny model on two busy cores
#: (an operation without parameters needs one).
EXAMPLES = {"positive": 100, "negative": 100}
#: Longest a single request may take (the model's longest answer is well under a second).
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def url(tiny_model_dir: Path) -> Iterator[str]:
    summarizer = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    # Small limits keep each request fast; the fuzzer meets them as 413s.
    settings = ServeSettings(max_wait_ms=0, max_inputs=4, max_body_bytes=20_000, log_requests=False)
    with Server(summarizer, settings) as address:
        yield address


def operations(url: str) -> dict[str, Any]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=schemathesis.Config())
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[f"{operation.method.upper()} {operation.path}"] = operation
    return found


#: The routes whose errors are in OpenAI's shape.
OPENAI_ROUTES = ("/v1/completions", "/v1/chat/completions", "/v1/models")


def check_answer(case: Any, response: Any) -> None:
    """What the service promises of every answer."""
    where = f"{case.method} {case.path} with {case.body!r:.300}"
    status = response.status_code
    assert status < 500, f"{where} -> {status}: {response.text[:500]}"
    if status >= 400 and case.path in OPENAI_ROUTES:  # OpenAI's shape, for OpenAI's clients
        answer = response.json()
        assert set(answer) == {"error"}, f"{where} -> {answer}"
        assert set(answer["error"]) == {"message", "type", "param", "code"}, where
        assert answer["error"]["message"].strip(), where
    elif status >= 400:
        answer = response.json()
        assert set(answer) == {"error", "request_id"}, f"{where} -> {answer}"
        assert isinstance(answer["error"], str) and answer["error"].strip(), where
        assert [answer["request_id"]] == response.headers["x-request-id"], where
    elif case.method.upper() == "POST" and case.path == "/v1/summarize":
        sent = case.body["inputs"]
        summaries = response.json()
        assert len(summaries) == (1 if isinstance(sent, str) else len(sent)), where
        assert all(set(item) == {"summary_text"} for item in summaries), where


def fuzz(url: str, operation: Any, mode: str) -> None:
    """Run ``EXAMPLES[mode]`` requests to ``operation``, derandomized (the same every run)."""
    generation = getattr(schemathesis.GenerationMode, mode.upper())
    strategy = operation.as_strategy(generation_mode=generation)
    health = hypothesis.HealthCheck

    @hypothesis.settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        database=None,
        deadline=DEADLINE_S * 1000,
        suppress_health_check=[health.too_slow, health.filter_too_much, health.data_too_large],
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
    )
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=url, timeout=DEADLINE_S)
        check_answer(case, response)

    run()


def test_fuzzing_the_api_finds_no_500_and_only_documented_errors(url: str) -> None:
    found = operations(url)
    assert "POST /v1/summarize" in found and "GET /v1/model" in found  # the schema was read
    for operation in found.values():
        fuzz(url, operation, "positive")
    fuzz(url, found["POST /v1/summarize"], "negative")  # bodies the schema forbids

    assert httpx.get(f"{url}/readyz", timeout=30).status_code == 200
    answer = httpx.post(f"{url}/v1/summarize", json={"inputs": "#Person1#: Hi."}, timeout=60)
    assert answer.status_code == 200 and answer.json()[0]["summary_text"] is not None
