"""Continuous batching in a real server: concurrent requests with mixed lengths, beams and
adapters share the running decode, and each is answered exactly as ``summarize()`` offline."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dialogsum import Summarizer
from dialogsum.data import Example
from dialogsum.serve import ServeSettings, create_app
from dialogsum.serve.continuous_batcher import ContinuousBatcher
from dialogsum.serve.micro_batcher import MicroBatcher
from dialogsum.testing.serving import Server

pytest.importorskip("onnxruntime")

ADAPTERS: list[str | None] = [None, "support", "sales", "prompted"]


@pytest.fixture(scope="module")
def model(multi_adapter_export: Path) -> Summarizer:
    return Summarizer.from_pretrained(multi_adapter_export, backend_options={"progress": False})


def _requests(few_examples: list[Example]) -> list[tuple[str, dict[str, Any], str | None]]:
    """Dialogues with greedy and 4-beam decoding, three lengths and every adapter."""
    texts = [e.dialogue for e in few_examples]
    return [
        (
            texts[i % len(texts)],
            {"num_beams": (1, 4)[i % 2], "max_new_tokens": (6, 12, 24)[i % 3]},
            ADAPTERS[i % len(ADAPTERS)],
        )
        for i in range(16)
    ]


def _answers(address: str, requests: list[tuple[str, dict[str, Any], str | None]]) -> list[str]:
    def one(request: tuple[str, dict[str, Any], str | None]) -> str:
        text, generate, adapter = request
        body = {
            "inputs": text,
            "parameters": {"generate_parameters": generate, "adapter": adapter},
        }
        response = httpx.post(f"{address}/v1/summarize", json=body, timeout=120)
        assert response.status_code == 200, response.text
        return str(response.json()[0]["summary_text"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, requests))


@pytest.mark.parametrize("batching", ["continuous", "micro", "off"])
def test_every_batching_answers_concurrent_requests_as_offline(
    model: Summarizer, few_examples: list[Example], batching: str
) -> None:
    requests = _requests(few_examples)
    expected = [
        model.summarize([text], adapter=adapter, **generate)[0]
        for text, generate, adapter in requests
    ]
    app = create_app(model, ServeSettings(batching=batching, max_batch_size=4))  # type: ignore[arg-type]
    with Server(app=app) as address:
        assert _answers(address, requests) == expected
        kind = ContinuousBatcher if batching == "continuous" else MicroBatcher
        assert isinstance(app.state.dialogsum._batcher, kind)
        card = httpx.get(f"{address}/v1/model", timeout=30).json()
        assert card["limits"]["batching"] == batching
        metrics = httpx.get(f"{address}/metrics", timeout=30).text
        # Continuous batching's dialogues in flight (none now); micro-batching's model calls.
        assert _metric(metrics, "dialogsum_decoding_dialogues") == 0
        calls = _metric(metrics, "dialogsum_batch_dialogues_count")
        assert calls > 0 if batching != "continuous" else calls == 0
    if batching == "continuous":
        # The gauge reads the decoder at each scrape: three rows in flight show as 3.
        app.state.dialogsum._batcher.decoder.decoder._rows_in_flight = 3
        text = app.state.dialogsum.metrics.render()[0].decode()
        assert _metric(text, "dialogsum_decoding_dialogues") == 3


def test_a_backend_without_continuous_batching_is_micro_batched(tiny_model_dir: Path) -> None:
    torch_model = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    assert torch_model.continuous_decoder() is None
    app = create_app(torch_model, ServeSettings(batching="continuous"))
    # Known before the batcher is made (a mounted app makes it at its first request).
    assert app.state.dialogsum.batching == "micro"
    with Server(app=app) as address:
        body = {"inputs": "#Person1#: Hi.\n#Person2#: Hello.", "parameters": {}}
        assert httpx.post(f"{address}/v1/summarize", json=body, timeout=120).status_code == 200
        assert isinstance(app.state.dialogsum._batcher, MicroBatcher)
        card = httpx.get(f"{address}/v1/model", timeout=30).json()
        assert card["limits"]["batching"] == "micro"  # what it does, not what was asked


def _metric(text: str, name: str) -> float:
    return float(next(x for x in text.splitlines() if x.startswith(name + " ")).split()[-1])


def test_the_batching_setting() -> None:
    # Config files written when batching was on or off still load.
    assert ServeSettings().batching == "micro"  # measured faster on 2 cores (benchmarks.md)
    assert ServeSettings(batching=True).batching == "micro"  # type: ignore[arg-type]
    assert ServeSettings(batching=False).batching == "off"  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="'continuous', 'micro' or 'off'"):
        ServeSettings(batching="dynamic")  # type: ignore[arg-type]


def test_a_request_for_sampling_is_refused_naming_the_backend(model: Summarizer) -> None:
    body = {"inputs": "#Person1#: Hi.", "parameters": {"generate_parameters": {"top_p": 0.9}}}
    with Server(model, ServeSettings(max_wait_ms=0)) as address:
        answer = httpx.post(f"{address}/v1/summarize", json=body, timeout=60)
        assert httpx.get(f"{address}/readyz", timeout=10).status_code == 200
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error.startswith("parameters.generate_parameters: Invalid options for generation:")
    assert "top_p=0.9: the onnxruntime backend decodes by greedy or beam search" in error
    # Not told to add do_sample (which it would then refuse), nor offered the sampling options.
    assert "--do-sample" not in error and "do_sample=True" not in error
    assert "top_p" not in error.split("Valid fields: ")[1]
