"""A multi-adapter ONNX export served for real: each adapter answered through the summarize
route, the ``openai`` client (streaming and not) and ``huggingface_hub``'s client, exactly as
``summarize()`` answers offline; an adapter loaded and unloaded at run time under load."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialogsum import Summarizer
from dialogsum.data import Example
from dialogsum.serve import ServeSettings
from dialogsum.testing.serving import Server

pytest.importorskip("onnxruntime")
openai = pytest.importorskip("openai")

KEY, ADMIN_KEY = "api-s3cret", "admin-s3cret"
API = {"X-API-Key": KEY}
ADMIN = {"X-Admin-Key": ADMIN_KEY}
GREEDY = {"num_beams": 1, "max_new_tokens": 16}
NAMES: list[str | None] = ["support", "sales", "prompted", None]


@pytest.fixture(scope="module")
def model(multi_adapter_export: Path) -> Summarizer:
    return Summarizer.from_pretrained(multi_adapter_export, backend_options={"progress": False})


@pytest.fixture
def url(model: Summarizer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TEST_DIALOGSUM_KEY", KEY)
    monkeypatch.setenv("TEST_DIALOGSUM_ADMIN", ADMIN_KEY)
    settings = ServeSettings(
        max_wait_ms=20, api_key_env="TEST_DIALOGSUM_KEY", admin_key_env="TEST_DIALOGSUM_ADMIN"
    )
    with Server(model, settings) as address:
        yield address


def offline(model: Summarizer, text: str, adapter: str | None) -> str:
    return model.summarize([text], adapter=adapter, **GREEDY)[0]


def post(url: str, text: str, adapter: str | None) -> httpx.Response:
    body = {"inputs": text, "parameters": {"generate_parameters": GREEDY, "adapter": adapter}}
    return httpx.post(f"{url}/v1/summarize", json=body, headers=API, timeout=120)


def test_every_adapter_through_every_client_answers_as_offline(
    model: Summarizer, url: str, few_examples: list[Example], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import InferenceClient, constants
    from huggingface_hub.utils import reset_sessions

    # The suite runs with the hub offline; this client only talks to 127.0.0.1.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    reset_sessions()

    text = few_examples[0].dialogue
    expected = {name: offline(model, text, name) for name in NAMES}
    assert len(set(expected.values())) == len(NAMES)  # each adapter answers its own way
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY)
    base_id = next(
        m.id for m in client.models.list() if m.id not in ("support", "sales", "prompted")
    )
    assert {m.id for m in client.models.list()} == {base_id, "support", "sales", "prompted"}
    streamed: dict[str | None, int] = {}
    for name in NAMES:
        answer = post(url, text, name)
        assert answer.status_code == 200, answer.text
        assert answer.json()[0]["summary_text"] == expected[name]
        chat = client.chat.completions.create(
            model=name or base_id,
            messages=[{"role": "user", "content": text}],
            max_tokens=GREEDY["max_new_tokens"],
            temperature=0,
        )
        assert chat.choices[0].message.content == expected[name]
        stream = client.completions.create(
            model=name or base_id, prompt=text, max_tokens=GREEDY["max_new_tokens"], stream=True
        )
        pieces = [chunk.choices[0].text for chunk in stream if chunk.choices]
        streamed[name] = len([piece for piece in pieces if piece])
        assert "".join(pieces).strip() == expected[name]
    # Sent word by word as greedy decoding proceeds (a summary of one word comes at once).
    assert all(count > 1 for name, count in streamed.items() if len(expected[name].split()) > 2), (
        streamed
    )
    assert any(count > 1 for count in streamed.values()), streamed
    hub = InferenceClient(f"{url}/v1/summarize", headers=API)
    assert hub.summarization(text, generate_parameters=GREEDY).summary_text == expected[None]
    unknown = post(url, text, "suport")
    assert unknown.status_code == 404 and "prompted, sales, support" in unknown.text


def test_an_adapter_added_and_removed_under_load_fails_no_request(
    model: Summarizer, url: str, few_examples: list[Example], adapter_runs: dict[str, Path]
) -> None:
    texts = [e.dialogue for e in few_examples[:4]]
    jobs = [(texts[i % 4], NAMES[i % 4]) for i in range(24)]
    expected = {(t, n): offline(model, t, n) for t, n in set(jobs)}
    as_sales = offline(model, texts[0], "sales")
    changes: list[Any] = []

    def change() -> None:
        put = httpx.put(
            f"{url}/v1/adapters/sales-2",
            json={"path": str(adapter_runs["sales"])},
            headers=ADMIN,
            timeout=120,
        )
        changes.append(put.status_code)
        # The run folder loaded at run time answers as the exported copy of it does.
        changes.append(post(url, texts[0], "sales-2").json()[0]["summary_text"] == as_sales)
        changes.append(httpx.delete(f"{url}/v1/adapters/sales-2", headers=ADMIN).status_code)

    def one(job: tuple[str, str | None]) -> Any:
        return post(url, *job)

    changer = threading.Thread(target=change)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(one, job) for job in jobs]
        changer.start()
        answers = [future.result() for future in futures]
    changer.join()
    assert changes == [201, True, 200]
    assert [a.status_code for a in answers] == [200] * len(jobs)
    assert [a.json()[0]["summary_text"] for a in answers] == [expected[job] for job in jobs]
    listed = httpx.get(f"{url}/v1/adapters", headers=API).json()["adapters"]
    assert sorted(a["name"] for a in listed) == ["prompted", "sales", "support"]
