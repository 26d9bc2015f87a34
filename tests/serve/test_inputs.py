"""A request's adapter: ``parameters.adapter`` chooses it, its own decoding defaults apply, and
one that is not loaded is a 404 naming those that are; checked once, before the model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from dialogsum import Summarizer
from dialogsum.serve import ServeSettings
from dialogsum.testing.serving import Server

from .conftest import SHARED, tagging_model

DIALOGUE = "#Person1#: Is the train late?\n#Person2#: Ten minutes, they said."


@pytest.fixture(scope="module")
def served(
    tiny_model_dir: Any, tagging_plugins: Any, adapter_dirs: Any
) -> Iterator[tuple[Summarizer, str]]:
    summarizer = tagging_model(tiny_model_dir, tagging_plugins, adapter_dirs, "support", "sales")
    with Server(summarizer, ServeSettings(max_wait_ms=0)) as url:
        yield summarizer, url


def summarize(url: str, parameters: dict[str, Any]) -> httpx.Response:
    payload = {"inputs": DIALOGUE, "parameters": parameters}
    return httpx.post(f"{url}/v1/summarize", json=payload, timeout=60)


@pytest.mark.parametrize("adapter", ["support", "sales", None])
def test_each_request_gets_the_adapter_it_asks_for(
    served: tuple[Summarizer, str], adapter: str | None
) -> None:
    summarizer, url = served
    parameters = {"adapter": adapter} if adapter else {}
    answer = summarize(url, parameters)
    assert answer.status_code == 200, answer.text
    expected = summarizer.summarize([DIALOGUE], adapter=adapter)[0]
    assert answer.json() == [{"summary_text": expected}]
    tag = {"support": "[S] ", "sales": "[$] ", None: ""}[adapter]
    assert expected.startswith(tag) and (adapter is not None or not expected.startswith("["))


def test_the_adapter_s_own_decoding_defaults_apply(served: tuple[Summarizer, str]) -> None:
    summarizer, url = served
    predictor = summarizer.predictor
    assert summarize(url, {"adapter": "sales"}).status_code == 200
    used = predictor.options[-1]  # type: ignore[attr-defined]
    assert (used.num_beams, used.max_new_tokens) == (1, 8)  # the adapter's, not the base's 4, 64
    answer = summarize(url, {"adapter": "sales", "generate_parameters": {"max_new_tokens": 5}})
    assert answer.status_code == 200
    assert predictor.options[-1].max_new_tokens == 5  # type: ignore[attr-defined]


def test_an_adapter_that_is_not_loaded_is_a_404_naming_the_loaded_ones(
    served: tuple[Summarizer, str],
) -> None:
    _, url = served
    answer = summarize(url, {"adapter": "billing", "generate_parameters": SHARED})
    assert answer.status_code == 404, answer.text
    error = answer.json()["error"]
    assert error.startswith("parameters.adapter: No adapter named 'billing'")
    assert "loaded: sales, support" in error and answer.json()["request_id"]


@pytest.mark.parametrize(
    ("parameters", "needle"),
    [
        (
            {"generate_parameters": {"adapter": "sales"}},
            "choose the adapter with parameters.adapter",
        ),
        ({"adapter": 3}, "parameters.adapter"),
        ({"adapter": "sales", "generate_parameters": {"beams": 2}}, "beams"),
    ],
)
def test_an_adapter_given_wrongly_says_where_it_goes(
    served: tuple[Summarizer, str], parameters: dict[str, Any], needle: str
) -> None:
    _, url = served
    answer = summarize(url, parameters)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert needle in error
    if "Valid fields" in error:  # what a request may set, without what it sets elsewhere
        assert "num_beams" in error and "adapter" not in error.split("Valid fields")[1]


def test_a_model_without_adapters_says_so(
    tagging: Callable[..., Summarizer], tiny_model_dir: Any
) -> None:
    base = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    with Server(base, ServeSettings(max_wait_ms=0)) as url:
        answer = summarize(url, {"adapter": "support"})
    assert answer.status_code == 404
    assert "this model serves no adapters" in answer.json()["error"]
