"""Requests for different adapters share one model call (``summarize_rows``), each answered
with its own adapter's summary; an adapter unloaded under a queued batch fails only the
requests that asked for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from dialogsum import Summarizer
from dialogsum.data import sample_rows
from dialogsum.serve import ServeSettings
from dialogsum.testing.serving import Server

from .conftest import SHARED

ADMIN = {"Authorization": "Bearer admin-s3cret"}


def dialogues(count: int) -> list[str]:
    return [row["dialogue"] for row in sample_rows("test")[:count]]


def ask(url: str, dialogue: str, adapter: str | None) -> httpx.Response:
    parameters: dict[str, Any] = {"generate_parameters": SHARED}
    if adapter is not None:
        parameters["adapter"] = adapter
    payload = {"inputs": dialogue, "parameters": parameters}
    return httpx.post(f"{url}/v1/summarize", json=payload, timeout=60)


def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Wait for ``condition`` (a bounded poll)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.02)


def queue_depth(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics").text
    line = next(line for line in metrics.splitlines() if line.startswith("dialogsum_queue_depth "))
    return float(line.split()[-1])


def test_requests_for_different_adapters_share_one_model_call(
    tagging: Callable[..., Summarizer],
) -> None:
    summarizer = tagging("support", "sales")
    texts = dialogues(6)
    adapters = ["support", None, "sales", "support", "sales", None]
    expected = [
        summarizer.summarize([text], adapter=adapter, **SHARED)[0]
        for text, adapter in zip(texts, adapters, strict=True)
    ]
    predictor = summarizer.predictor
    settings = ServeSettings(max_wait_ms=300, max_batch_size=16)
    with Server(summarizer, settings) as url:
        predictor.row_calls.clear()  # type: ignore[attr-defined]
        with ThreadPoolExecutor(len(texts)) as pool:
            answers = list(pool.map(ask, [url] * len(texts), texts, adapters))
    assert [a.status_code for a in answers] == [200] * len(texts)
    assert [a.json()[0]["summary_text"] for a in answers] == expected  # none swapped
    calls = predictor.row_calls  # type: ignore[attr-defined]
    assert len(calls) < len(texts)  # batched
    assert any({"support", "sales", None} <= set(call) for call in calls), calls  # mixed


def test_an_adapter_unloaded_under_a_queued_batch_fails_only_its_requests(
    tagging: Callable[..., Summarizer], monkeypatch: Any
) -> None:
    monkeypatch.setenv("TEST_DIALOGSUM_ADMIN", "admin-s3cret")
    summarizer = tagging("support")
    predictor = summarizer.predictor
    texts = dialogues(3)
    base_answer = summarizer.summarize([texts[2]], **SHARED)[0]
    settings = ServeSettings(max_wait_ms=0, admin_key_env="TEST_DIALOGSUM_ADMIN")
    with Server(summarizer, settings) as url, ThreadPoolExecutor(3) as pool:
        calls = len(predictor.options)  # type: ignore[attr-defined]
        busy = pool.submit(ask, url, "#Person1#: [slow] Still there?\n#Person2#: Yes.", None)
        until(lambda: len(predictor.options) > calls)  # type: ignore[attr-defined]
        # The model is busy with it: the next two are checked (valid) and wait in the queue.
        doomed = pool.submit(ask, url, texts[1], "support")
        kept = pool.submit(ask, url, texts[2], None)
        until(lambda: queue_depth(url) == 2)
        removed = httpx.delete(f"{url}/v1/adapters/support", headers=ADMIN, timeout=10)
        assert removed.status_code == 200, removed.text
        assert busy.result().status_code == 200
        assert doomed.result().status_code == 404
        assert "No adapter named 'support'" in doomed.result().json()["error"]
        assert kept.result().status_code == 200
        assert kept.result().json() == [{"summary_text": base_answer}]
    calls = predictor.row_calls  # type: ignore[attr-defined]
    assert any(sorted(call, key=str) == [None, "support"] for call in calls), calls
    assert calls[-1] == [None]  # the rest of that batch ran again, alone
