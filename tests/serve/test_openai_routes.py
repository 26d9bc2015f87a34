"""The OpenAI-compatible routes, driven by OpenAI's own Python client against a real server:
completions and chat completions (whole and streamed), the models list, and OpenAI's errors;
every answer checked against ``summarize()`` offline."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from dialogsum import Summarizer
from dialogsum.serve import ServeSettings
from dialogsum.testing.serving import Server

from .conftest import SHARED, tagging_model

openai = pytest.importorskip("openai")

KEY = "api-s3cret"
DIALOGUE = "#Person1#: Where did you park?\n#Person2#: Behind the library, near the gym."
OTHER = "#Person1#: Is dinner at seven?\n#Person2#: At eight; the table is booked."


@pytest.fixture(scope="module")
def served(
    tiny_model_dir: Any, tagging_plugins: Any, adapter_dirs: Any
) -> Iterator[tuple[Summarizer, str]]:
    summarizer = tagging_model(tiny_model_dir, tagging_plugins, adapter_dirs, "support", "sales")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("TEST_DIALOGSUM_OPENAI_KEY", KEY)
    settings = ServeSettings(max_wait_ms=150, api_key_env="TEST_DIALOGSUM_OPENAI_KEY")
    try:
        with Server(summarizer, settings) as url:
            yield summarizer, url
    finally:
        monkeypatch.undo()


@pytest.fixture(scope="module")
def client(served: tuple[Summarizer, str]) -> Any:
    return openai.OpenAI(base_url=f"{served[1]}/v1", api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def base_id(served: tuple[Summarizer, str]) -> str:
    return served[0].source.rsplit("/", 1)[-1]  # type: ignore[union-attr]


def test_the_models_are_the_base_and_every_adapter(client: Any, base_id: str) -> None:
    models = client.models.list()
    assert [model.id for model in models.data] == [base_id, "sales", "support"]
    assert all(m.object == "model" and m.owned_by == "dialogsum" and m.created for m in models.data)


def test_a_completion_is_the_prompt_s_summary(
    client: Any, served: tuple[Summarizer, str], base_id: str
) -> None:
    summarizer = served[0]
    answer = client.completions.create(model=base_id, prompt=DIALOGUE, max_tokens=12, temperature=0)
    expected = summarizer.summarize([DIALOGUE], max_new_tokens=12)[0]
    assert answer.choices[0].text == expected and answer.model == base_id
    assert answer.object == "text_completion" and answer.choices[0].finish_reason in (
        "stop",
        "length",
    )
    usage = answer.usage
    assert usage.prompt_tokens > 10 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    several = client.completions.create(model="sales", prompt=[DIALOGUE, OTHER])
    assert [c.index for c in several.choices] == [0, 1]
    assert [c.text for c in several.choices] == summarizer.summarize(
        [DIALOGUE, OTHER], adapter="sales"
    )


def test_a_summary_cut_at_max_tokens_finishes_for_length(
    client: Any, served: tuple[Summarizer, str]
) -> None:
    answer = client.completions.create(model="support", prompt=DIALOGUE, max_tokens=2)
    assert answer.choices[0].finish_reason == "length"
    assert (
        answer.choices[0].text
        == served[0].summarize([DIALOGUE], adapter="support", max_new_tokens=2)[0]
    )


def test_a_chat_completion_summarizes_the_last_user_message(
    client: Any, served: tuple[Summarizer, str]
) -> None:
    messages = [
        {"role": "system", "content": "You summarize dialogues."},
        {"role": "user", "content": "an earlier dialogue"},
        {"role": "assistant", "content": "an earlier summary"},
        {"role": "user", "content": [{"type": "text", "text": DIALOGUE}]},
    ]
    answer = client.chat.completions.create(model="support", messages=messages)
    expected = served[0].summarize([DIALOGUE], adapter="support")[0]
    assert answer.choices[0].message.content == expected and expected.startswith("[S] ")
    assert answer.choices[0].message.role == "assistant" and answer.object == "chat.completion"


def test_greedy_decoding_streams_the_summary_as_it_is_decoded(
    client: Any, served: tuple[Summarizer, str]
) -> None:
    expected = served[0].summarize([DIALOGUE], adapter="support")[0]  # greedy: its defaults
    stream = client.chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": DIALOGUE}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(texts) == expected
    assert len(texts) >= 3  # word by word, not one piece
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_beam_search_streams_one_chunk_once_final(
    client: Any, served: tuple[Summarizer, str], base_id: str
) -> None:
    expected = served[0].summarize([DIALOGUE], max_new_tokens=12, num_beams=4)[0]
    chunks = list(
        client.completions.create(
            model=base_id,
            prompt=DIALOGUE,
            max_tokens=12,
            stream=True,
            extra_body={"generate_parameters": {"num_beams": 4}},
        )
    )
    texts = [c.choices[0].text for c in chunks if c.choices[0].text]
    assert texts == [expected]
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_openai_and_summarize_requests_share_batches(
    served: tuple[Summarizer, str], client: Any
) -> None:
    summarizer, url = served
    predictor = summarizer.predictor
    predictor.row_calls.clear()  # type: ignore[attr-defined]

    def summarize() -> str:
        payload = {
            "inputs": OTHER,
            "parameters": {"generate_parameters": SHARED, "adapter": "support"},
        }
        answer = httpx.post(
            f"{url}/v1/summarize", json=payload, headers={"X-API-Key": KEY}, timeout=60
        )
        return str(answer.json()[0]["summary_text"])

    def complete() -> str:
        answer = client.completions.create(model="support", prompt=DIALOGUE)  # defaults: SHARED
        return str(answer.choices[0].text)

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.submit(summarize), pool.submit(complete)
        assert first.result() == summarizer.summarize([OTHER], adapter="support")[0]
        assert second.result() == summarizer.summarize([DIALOGUE], adapter="support")[0]
    assert ["support", "support"] in predictor.row_calls  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("create", "error", "needle"),
    [
        (
            dict(model="billing"),
            "NotFoundError",
            "'billing' does not exist on this server; its models are",
        ),
        (dict(n=2), "BadRequestError", "one choice per prompt"),
        (dict(temperature=0.7), "BadRequestError", "decodes deterministically"),
        (dict(top_p=0.9), "BadRequestError", "top_p=0.9"),
        (dict(stop=["\n"]), "BadRequestError", "stop sequences are not supported"),
        (dict(logprobs=2), "BadRequestError", "This server takes: model"),
        (dict(extra_body={"temprature": 0}), "BadRequestError", "(did you mean 'temperature'?)"),
        (
            dict(extra_body={"num_beams": 2}),
            "BadRequestError",
            'inside generate_parameters: {"generate_parameters": {"num_beams": ...}}',
        ),
        # not min_tokens or max_tokens misspelt: a generation option to put in its place
        (
            dict(extra_body={"min_new_tokens": 2}),
            "BadRequestError",
            "min_new_tokens: a generation option, which goes inside generate_parameters.",
        ),
        (
            dict(extra_body={"generate_parameters": {"num_beams": 0}}),
            "BadRequestError",
            "num_beams",
        ),
        (dict(prompt=""), "BadRequestError", "prompt"),
    ],
)
def test_what_cannot_be_honoured_is_an_openai_error_saying_why(
    client: Any, base_id: str, create: dict[str, Any], error: str, needle: str
) -> None:
    arguments = {"model": base_id, "prompt": DIALOGUE, **create}
    with pytest.raises(getattr(openai, error)) as raised:
        client.completions.create(**arguments)
    body = raised.value.body
    assert needle in body["message"], body
    assert set(body) == {"message", "type", "param", "code"}
    if error == "NotFoundError":
        assert body["code"] == "model_not_found" and "sales, support" in body["message"]


@pytest.mark.parametrize(
    ("route", "field", "value", "needle"),
    [
        ("completions", "max_tokens", 0, "greater than 0"),
        ("completions", "max_tokens", 5000, "less than or equal to 4096"),
        ("chat", "max_completion_tokens", 0, "greater than 0"),
        ("chat", "max_tokens", 5000, "less than or equal to 4096"),
    ],
)
def test_a_bad_max_tokens_is_told_by_the_name_it_was_sent_as(
    client: Any, base_id: str, route: str, field: str, value: int, needle: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        if route == "chat":
            messages = [{"role": "user", "content": DIALOGUE}]
            client.chat.completions.create(model=base_id, messages=messages, **{field: value})
        else:
            client.completions.create(model=base_id, prompt=DIALOGUE, **{field: value})
    body = raised.value.body
    assert body["param"] == field, body
    assert f"{field}: Input should be {needle}" in body["message"], body
    assert "generate_parameters" not in body["message"], body


def test_a_wrong_key_is_an_authentication_error(
    served: tuple[Summarizer, str], base_id: str
) -> None:
    wrong = openai.OpenAI(base_url=f"{served[1]}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.models.list()
    assert "API key" in raised.value.body["message"]
