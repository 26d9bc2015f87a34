"""A server logs the truncation warning once per served model, not on every batch, and still
counts every truncated input in ``dialogsum_truncated_inputs_total``; a ``summarize()`` of the
user's in the same process is warned as before."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest

from dialogsum import Summarizer
from dialogsum.plugin_api import (
    DataOptions,
    GenerationOptions,
    ModelManifest,
    Predictor,
    warn_truncated_inputs,
)
from dialogsum.serve import ServeSettings
from dialogsum.testing.serving import Server

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

#: Far over any model's input length here.
LONG = "\n".join(
    f"#Person{1 + n % 2}#: This is sentence number {n} of a long talk." for n in range(150)
)
GREEDY = {"num_beams": 1, "max_new_tokens": 4}


def truncation_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if hasattr(record, "truncated")]


def truncated_total(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    line = next(x for x in metrics.splitlines() if x.startswith("dialogsum_truncated_inputs_total"))
    return float(line.split()[-1])


def ask(url: str, dialogues: list[str]) -> httpx.Response:
    payload = {"inputs": dialogues, "parameters": {"generate_parameters": GREEDY}}
    response = httpx.post(f"{url}/v1/summarize", json=payload, timeout=120)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("batching", ["micro", "continuous"])
def test_the_truncation_warning_is_logged_once_and_every_input_counted(
    tiny_model_dir: Path,
    onnx_export_dir: Path,
    caplog: pytest.LogCaptureFixture,
    batching: str,
) -> None:
    # A continuous decoder cuts its rows without a warning of its own: the service logs it.
    folder = onnx_export_dir if batching == "continuous" else tiny_model_dir
    summarizer = Summarizer.from_pretrained(folder, backend_options={"progress": False})
    assert batching == "micro" or summarizer.continuous_decoder() is not None
    settings = ServeSettings(max_wait_ms=0, log_requests=False, batching=batching)
    with caplog.at_level(logging.WARNING, logger="dialogsum"), Server(summarizer, settings) as url:
        for dialogues in ([LONG], ["#Person1#: Hi.", LONG], [LONG, LONG]):  # three batches
            assert ask(url, dialogues).headers["X-Dialogsum-Truncated"]
        assert truncated_total(url) == 4
    logged = truncation_warnings(caplog)
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert "dialogsum_truncated_inputs_total" in logged[0].getMessage()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dialogsum"):
        summarizer.summarize([LONG], **GREEDY)  # the user's own call, outside the service
    assert len(truncation_warnings(caplog)) == 1


class Cutting(Predictor):
    """Cuts dialogues to 200 characters and says so, as a backend does; counts no tokens."""

    manifest = ModelManifest(data=DataOptions(max_source_length=200))

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        cut = sum(len(dialogue) > 200 for dialogue in dialogues)
        warn_truncated_inputs(cut, len(dialogues), self.manifest.data)
        return [dialogue[:10] for dialogue in dialogues]


def test_a_backend_that_counts_no_tokens_still_has_its_truncation_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = ServeSettings(max_wait_ms=0, log_requests=False)
    summarizer = Summarizer(Cutting(), backend="cutting")
    with caplog.at_level(logging.WARNING, logger="dialogsum"), Server(summarizer, settings) as url:
        for dialogues in ([LONG], [LONG, LONG]):
            ask(url, dialogues)
        assert truncated_total(url) == 3
    assert len(truncation_warnings(caplog)) == 1


def test_over_long_inputs_are_refused_by_position_under_reject(tiny_model_dir: Path) -> None:
    summarizer = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    settings = ServeSettings(max_wait_ms=0, log_requests=False, over_length="reject")
    with Server(summarizer, settings) as url:
        tokens = r"(\d+) tokens with the prompt, longer than the model's (\d+) input tokens"
        for dialogues, named in (
            ([LONG], rf"input 0 is {tokens}; shorten it "),
            (["#Person1#: Hi.", LONG, LONG], rf"inputs 1, 2 are (\d+), {tokens}; shorten them "),
        ):
            payload = {"inputs": dialogues, "parameters": {"generate_parameters": GREEDY}}
            response = httpx.post(f"{url}/v1/summarize", json=payload, timeout=120)
            assert response.status_code == 422, response.text
            found = re.search(named, response.json()["error"])
            assert found is not None, response.text
            *lengths, limit = map(int, found.groups())
            assert all(length > limit for length in lengths)
        assert ask(url, ["#Person1#: Hi."]).status_code == 200  # short ones still served
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        # Nothing refused reached the model: the warm-up summary and the short one did.
        assert "dialogsum_batch_dialogues_sum 2.0" in metrics, metrics


def test_a_request_may_ask_not_to_truncate_and_a_bad_choice_is_named(
    tiny_model_dir: Path,
) -> None:
    summarizer = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    settings = ServeSettings(max_wait_ms=0, log_requests=False)  # the server truncates

    def post(url: str, truncation: str) -> httpx.Response:
        parameters = {"generate_parameters": GREEDY, "truncation": truncation}
        payload = {"inputs": ["#Person1#: Hi.", LONG], "parameters": parameters}
        return httpx.post(f"{url}/v1/summarize", json=payload, timeout=120)

    with Server(summarizer, settings) as url:
        refused = post(url, "do_not_truncate")
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert (
            error.startswith("input 1 is ")
            and "the request's truncation is do_not_truncate" in error
        )
        cut = post(url, "longest_first")  # transformers' own names: cut, as by default
        assert cut.status_code == 200 and cut.headers["X-Dialogsum-Truncated"] == "1"
        wrong = post(url, "yes")
        assert wrong.status_code == 422
        assert "'do_not_truncate', 'longest_first', 'only_first' or 'only_second'" in wrong.text
