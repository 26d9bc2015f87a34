"""dialogsum serve: a real uvicorn server on 127.0.0.1, driven by huggingface_hub's client and
httpx; every answer is checked against what summarize() gives offline."""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialogsum import Summarizer
from dialogsum.data import load_examples
from dialogsum.plugin_api import GenerationOptions, ModelManifest, Predictor
from dialogsum.serve import ServeSettings
from dialogsum.testing.serving import Server

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

GREEDY = {"num_beams": 1, "max_new_tokens": 12}


@pytest.fixture(scope="module")
def summarizer(tiny_model_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})


@pytest.fixture(scope="module")
def dialogues(sample_dir: Path) -> list[str]:
    return [e.dialogue for e in load_examples(sample_dir / "test.jsonl")[:16]]


@pytest.fixture(scope="module")
def url(summarizer: Summarizer) -> Iterator[str]:
    settings = ServeSettings(max_wait_ms=20, max_inputs=8, max_body_bytes=60_000)
    with Server(summarizer, settings) as address:
        yield address


def post(url: str, payload: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/summarize", json=payload, timeout=60, **kwargs)


def test_the_hugging_face_client_works_unchanged(
    url: str, summarizer: Summarizer, dialogues: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import InferenceClient, constants
    from huggingface_hub.utils import reset_sessions

    # The suite runs with the hub offline; this client only talks to 127.0.0.1.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    reset_sessions()

    client = InferenceClient(model=f"{url}/v1/summarize")
    result = client.summarization(dialogues[0], generate_parameters=GREEDY)
    assert result.summary_text == summarizer.summarize([dialogues[0]], **GREEDY)[0]


def test_concurrent_requests_are_batched_and_answered_each_their_own(
    url: str, summarizer: Summarizer, dialogues: list[str]
) -> None:
    expected = summarizer.summarize(dialogues, **GREEDY)

    def ask(index: int) -> str:
        response = post(
            url, {"inputs": dialogues[index], "parameters": {"generate_parameters": GREEDY}}
        )
        assert response.status_code == 200, response.text
        return response.json()[0]["summary_text"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(len(dialogues))))
    assert answers == expected  # none lost, none swapped
    metrics = httpx.get(f"{url}/metrics").text
    batches = [
        line
        for line in metrics.splitlines()
        if line.startswith("dialogsum_batch_requests_bucket") and 'le="1.0"' in line
    ]
    count = [
        line for line in metrics.splitlines() if line.startswith("dialogsum_batch_requests_count")
    ]
    assert float(batches[0].split()[-1]) < float(count[0].split()[-1])  # some batch held >1
    assert 'dialogsum_requests_total{route="/v1/summarize",status="200"}' in metrics


def test_a_list_comes_back_in_order(url: str, summarizer: Summarizer, dialogues: list[str]) -> None:
    response = post(url, {"inputs": dialogues[:5], "parameters": {"generate_parameters": GREEDY}})
    assert [r["summary_text"] for r in response.json()] == summarizer.summarize(
        dialogues[:5], **GREEDY
    )
    assert response.headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        (
            {"inputs": "x", "parameters": {"generate_parameters": {"num_beams": 0}}},
            422,
            "num_beams",
        ),
        ({"inputs": "x", "parameters": {"generate_parameters": {"beams": 2}}}, 422, "beams"),
        (
            {"inputs": "x", "parameters": {"generate_parameters": {"batch_size": 2}}},
            422,
            "batch_size",
        ),
        ({"text": "x"}, 422, "inputs"),
        ({"inputs": ["ok", ""]}, 422, "dialogues[1] is empty"),
        ({"inputs": []}, 422, "non-empty"),
        ({"inputs": ["a"] * 9}, 413, "at most 8"),
        ({"inputs": "x" * 70_000}, 413, "limit"),
    ],
)
def test_bad_requests_get_a_clear_status(url: str, payload: Any, status: int, needle: str) -> None:
    response = post(url, payload)
    assert response.status_code == status, response.text
    body = response.json()
    assert needle in body["error"] and body["request_id"]
    if "Valid fields" in body["error"]:  # only what a request may set is offered
        assert "num_beams" in body["error"] and "batch_size" not in body["error"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "not JSON"),
        (b"", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b'["a dialogue"]', "must be a JSON object"),
        (b'{"inputs": "x", "foo": 1}', "A request takes inputs and parameters"),
        (b'{"input": "x"}', "input: not a setting here (did you mean 'inputs'?)"),
        (b'{"inputs": "x", "parameters": {"adaptor": "a"}}', "(did you mean 'adapter'?)"),
        # text-generation APIs take generation options in parameters; so does transformers'
        # max_length, and a misspelling of one is still one
        (
            b'{"inputs": "x", "parameters": {"max_length": 5, "temprature": 1}}',
            'inside parameters.generate_parameters: {"generate_parameters": '
            '{"max_new_tokens": ..., "temperature": ...}}',
        ),
        (
            b'{"inputs": "x", "num_beams": 2}',
            "num_beams: a generation option, which goes inside parameters.generate_parameters",
        ),
    ],
)
def test_a_body_that_is_not_a_request_says_what_one_looks_like(
    url: str, body: bytes, needle: str
) -> None:
    response = httpx.post(f"{url}/v1/summarize", content=body, timeout=60)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert needle in error and "(options)" not in error
    if "foo" in body.decode():
        assert error.startswith("Invalid request: foo:")
    elif error.startswith("Invalid request"):
        assert "A request takes inputs and parameters" in error
    else:
        assert '{"inputs":' in error  # the shape of a request, to copy


def test_unknown_routes_and_methods_answer_in_the_error_shape(url: str) -> None:
    missing = httpx.get(f"{url}/v1/summarise")
    assert missing.status_code == 404
    assert "POST /v1/summarize" in missing.json()["error"] and missing.json()["request_id"]
    wrong = httpx.get(f"{url}/v1/summarize")
    assert wrong.status_code == 405 and "GET is not allowed" in wrong.json()["error"]


def test_health_readiness_model_card_docs_and_page(url: str) -> None:
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{url}/readyz").status_code == 200
    card = httpx.get(f"{url}/v1/model").json()
    assert card["backend"] == "torch" and card["limits"]["max_inputs"] == 8
    assert httpx.get(f"{url}/docs").status_code == 200
    schema = httpx.get(f"{url}/openapi.json").json()
    body = schema["paths"]["/v1/summarize"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/SummarizeRequest"}
    declared = schema["components"]["schemas"]
    assert {"inputs", "parameters"} <= set(declared["SummarizeRequest"]["properties"])
    assert "generate_parameters" in declared["Parameters"]["properties"]
    assert "security" not in schema  # no key configured
    assert "<textarea" in httpx.get(f"{url}/").text
    assert len(httpx.get(f"{url}/v1/samples").json()) == 8
    metrics = httpx.get(f"{url}/metrics").text
    assert 'route="/docs"' in metrics and 'route="/openapi.json"' in metrics


class Slow(Predictor):
    """A predictor that takes its time, or fails, to test limits and faults."""

    manifest = ModelManifest()

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.delay, self.fail_on = delay, fail_on

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        time.sleep(self.delay)
        if self.fail_on and any(self.fail_on in d for d in dialogues):
            raise RuntimeError("boom")
        return [d[::-1] for d in dialogues]


def test_an_api_key_is_required_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DIALOGSUM_KEY", "s3cret")
    settings = ServeSettings(api_key_env="TEST_DIALOGSUM_KEY")
    with Server(Summarizer(Slow()), settings) as address:
        assert post(address, {"inputs": "abc"}).status_code == 401
        assert post(address, {"inputs": "abc"}, headers={"X-API-Key": "nope"}).status_code == 401
        good = post(address, {"inputs": "abc"}, headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200 and good.json() == [{"summary_text": "cba"}]
        assert httpx.get(f"{address}/healthz").status_code == 200  # probes need no key
        # The page and the API docs hold no data; a browser cannot send the key to load them.
        assert "<textarea" in httpx.get(f"{address}/").text
        schema = httpx.get(f"{address}/openapi.json").json()
        assert schema["security"] and "bearer" in schema["components"]["securitySchemes"]
        for path in ("/v1/model", "/v1/samples", "/metrics"):
            assert httpx.get(f"{address}{path}").status_code == 401, path


@pytest.mark.parametrize("value", [None, ""])
def test_a_key_variable_that_is_unset_or_empty_stops_the_service(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    from dialogsum.errors import ConfigError
    from dialogsum.serve import create_app

    if value is None:
        monkeypatch.delenv("TEST_DIALOGSUM_KEY", raising=False)
    else:
        monkeypatch.setenv("TEST_DIALOGSUM_KEY", value)
    state = "not set" if value is None else "empty"
    with pytest.raises(ConfigError, match=f"TEST_DIALOGSUM_KEY.*{state}"):
        create_app(Summarizer(Slow()), ServeSettings(api_key_env="TEST_DIALOGSUM_KEY"))


def test_model_failure_timeout_and_full_queue() -> None:
    settings = ServeSettings(request_timeout_s=0.5, max_queue=1, batching=False)
    with Server(Summarizer(Slow(delay=0.3, fail_on="boom")), settings) as address:
        failed = post(address, {"inputs": "boom"})
        assert failed.status_code == 500 and "RuntimeError" in failed.json()["error"]
        assert failed.json()["request_id"] == failed.headers["X-Request-Id"]
        assert post(address, {"inputs": "fine"}).json() == [{"summary_text": "enif"}]
        with ThreadPoolExecutor(6) as pool:
            statuses = sorted(
                pool.map(lambda _: post(address, {"inputs": "x"}).status_code, range(6))
            )
        assert 503 in statuses and 200 in statuses
        rejected = next(r for r in [post(address, {"inputs": "y"})] if r)
        assert rejected.status_code == 200  # the queue drained: the server still serves
    slow = ServeSettings(request_timeout_s=0.2)
    with Server(Summarizer(Slow(delay=1.0)), slow) as address:
        timed_out = post(address, {"inputs": "late"})
        assert timed_out.status_code == 504 and "timeout" in timed_out.json()["error"]


class Streaming(Slow):
    """Reports a dialogue holding "quick" at once and the rest after ``delay``, as a decoder
    whose short summaries finish first does."""

    def summarize_each(
        self, dialogues: list[str], options: GenerationOptions, on_summary: Any
    ) -> list[str]:
        for index, dialogue in enumerate(dialogues):
            if "quick" in dialogue:
                on_summary(index, dialogue[::-1])
        return self.summarize(dialogues, options)


def test_a_request_is_answered_as_soon_as_its_own_summaries_are_final() -> None:
    settings = ServeSettings(max_wait_ms=200, max_batch_size=8)  # the two share one batch
    with Server(Summarizer(Streaming(delay=1.5)), settings) as address:

        def timed(text: str) -> tuple[float, Any]:
            started = time.perf_counter()
            response = post(address, {"inputs": text})
            return time.perf_counter() - started, response.json()

        with ThreadPoolExecutor(2) as pool:
            slow, quick = pool.map(timed, ["a slow one", "the quick one"])
        assert quick[1] == [{"summary_text": "eno kciuq eht"}]
        assert slow[1] == [{"summary_text": "eno wols a"}]
        assert quick[0] < 1.0 < slow[0]  # not held until the batch's slow dialogue is done
        metrics = httpx.get(f"{address}/metrics").text
        count = next(
            line
            for line in metrics.splitlines()
            if line.startswith("dialogsum_batch_dialogues_count")
        )
        assert float(count.split()[-1]) == 2  # the warm-up, then one batch of both


def test_sigterm_finishes_accepted_requests_and_exits_0(tiny_model_dir: Path) -> None:
    # --port 0 takes any free port; the server says which in its log, ready by then.
    command = [
        sys.executable,
        "-m",
        "dialogsum",
        "serve",
        "--model",
        str(tiny_model_dir),
        "--port",
        "0",
        "--no-log-requests",
    ]
    env = {**os.environ, "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        assert process.stderr is not None
        lines = iter(process.stderr.readline, "")  # ends if the server exits
        listening = next(line for line in lines if "listening on http://" in line)
        url = listening.split("listening on ")[1].strip()
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        long_request = {
            "inputs": [f"#Person1#: Hi {n}.\n#Person2#: Hello." for n in range(8)],
            "parameters": {
                "generate_parameters": {"num_beams": 4, "max_new_tokens": 60, "min_new_tokens": 60}
            },
        }
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post, url, long_request)
            time.sleep(0.3)  # accepted and running when the signal comes
            process.send_signal(signal.SIGTERM)
            answer = pending.result(timeout=60)
        assert answer.status_code == 200 and len(answer.json()) == 8
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize(
    ("environment", "flags", "needle"),
    [
        ({"DIALOGSUM_SERVE_PORT": "abc"}, [], "DIALOGSUM_SERVE_PORT='abc'"),
        ({"DIALOGSUM_SERVE_OVER_LENGTH": "drop"}, [], "DIALOGSUM_SERVE_OVER_LENGTH='drop'"),
        (
            {"DIALOGSUM_SERVE_API_KEY_ENV": "TEST_DIALOGSUM_UNSET_KEY"},
            [],
            "TEST_DIALOGSUM_UNSET_KEY', but that environment variable is not set",
        ),
        (
            {},
            ["--admin-key-env", "TEST_DIALOGSUM_UNSET_KEY"],
            "admin_key_env is 'TEST_DIALOGSUM_UNSET_KEY', but that environment variable is not set",
        ),
        ({}, ["--host", "no-such-host.invalid"], "server.host: 'no-such-host.invalid'"),
        # The ray engine's settings, checked before Ray is needed (test_ray_engine.py runs it).
        (
            {},
            ["--engine", "ray", "--replicas", "0"],
            "server.replicas (--replicas): Input should be greater than 0",
        ),
        (
            {},
            ["--engine", "ray", "--replica-cpus", "0"],
            "server.replica_cpus (--replica-cpus): Input should be greater than 0",
        ),
        (
            {},
            ["--replicas", "2", "--ray-address", "auto"],
            "--replicas, --ray-address (server.replicas, server.ray_address) apply to the ray engine only; add --engine ray",
        ),
        (
            {"DIALOGSUM_SERVE_REPLICAS": "2"},
            [],
            "--replicas (server.replicas) applies to the ray engine only",
        ),
        (
            {"DIALOGSUM_SERVE_ENGINE": "ray", "DIALOGSUM_SERVE_MAX_REPLICAS": "0"},
            [],
            "DIALOGSUM_SERVE_MAX_REPLICAS='0': Input should be greater than 0",
        ),
        (
            {},
            ["--engine", "ray", "--replicas", "2", "--max-replicas", "3"],
            "give one of them (CLI: --replicas, or --min-replicas and --max-replicas)",
        ),
        (
            {},
            ["--engine", "ray", "--min-replicas", "2"],
            "min_replicas set autoscaling, which needs max_replicas",
        ),
        (
            {},
            ["--engine", "ray", "--min-replicas", "3", "--max-replicas", "2"],
            "min_replicas=3 is above max_replicas=2",
        ),
        ({}, ["--engine", "cluster"], "server.engine (--engine): Input should be 'local' or 'ray'"),
    ],
)
def test_bad_settings_stop_the_command_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    environment: dict[str, str],
    flags: list[str],
    needle: str,
) -> None:
    from dialogsum.cli import main

    monkeypatch.delenv("TEST_DIALOGSUM_UNSET_KEY", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # Each stops before the model loads: the model named here does not exist.
    assert main(["serve", "--model", "/nonexistent/model", *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dialogsum serve: error:") and needle in error, error
    assert len(error.strip().splitlines()) == 1


def test_the_app_mounted_in_another_serves_from_its_first_request(
    summarizer: Summarizer, dialogues: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi import FastAPI

    from dialogsum.serve import create_app

    monkeypatch.setenv("TEST_DIALOGSUM_MOUNT_KEY", "k")
    settings = ServeSettings(max_wait_ms=0, api_key_env="TEST_DIALOGSUM_MOUNT_KEY")
    outer = FastAPI()  # a mounted app gets no lifespan events of its own
    outer.mount("/summarizer", create_app(summarizer, settings))
    with Server(app=outer) as address:
        # The open paths are open under the mount prefix too; the rest needs the key.
        assert httpx.get(f"{address}/summarizer/healthz").status_code == 200
        assert httpx.get(f"{address}/summarizer/v1/model").status_code == 401
        monkeypatch.setattr(
            httpx, "post", functools.partial(httpx.post, headers={"X-API-Key": "k"})
        )
        monkeypatch.setattr(httpx, "get", functools.partial(httpx.get, headers={"X-API-Key": "k"}))
        answer = post(
            f"{address}/summarizer",
            {"inputs": dialogues[0], "parameters": {"generate_parameters": GREEDY}},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == [
            {"summary_text": summarizer.summarize([dialogues[0]], **GREEDY)[0]}
        ]
        assert httpx.get(f"{address}/summarizer/readyz").json() == {"status": "ready"}


class Broken(Predictor):
    """A backend's predictor that breaks the contract: too few summaries, or not strings."""

    manifest = ModelManifest()

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> Any:
        if dialogues == [WARM_UP]:
            return ["ready"]
        return self.answer


WARM_UP = "#Person1#: Is the service up?\n#Person2#: It is warming up."


@pytest.mark.parametrize(
    ("answer", "got"), [(["only one"], "1 items (str)"), ([None, None], "2 items (NoneType)")]
)
def test_a_backend_that_breaks_its_contract_is_named_not_waited_for(answer: Any, got: str) -> None:
    from dialogsum.errors import PluginError
    from dialogsum.serve.state import WARM_UP as SERVED_WARM_UP

    assert SERVED_WARM_UP == WARM_UP
    summarizer = Summarizer(Broken(answer), backend="sloppy")
    with pytest.raises(
        PluginError, match=rf"'sloppy' backend broke its contract.*{re.escape(got)}"
    ):
        summarizer.summarize(["a", "b"])
    with Server(summarizer, ServeSettings(request_timeout_s=30)) as address:
        started = time.perf_counter()
        response = post(address, {"inputs": ["a", "b"]})
        assert response.status_code == 500 and "broke its contract" in response.json()["error"]
        assert time.perf_counter() - started < 5  # answered, not left to time out


def test_a_backend_failure_is_named() -> None:
    from dialogsum.errors import BackendError

    with pytest.raises(BackendError, match=r"'torch' backend failed: RuntimeError: boom"):
        Summarizer(Slow(fail_on="boom")).summarize(["boom"])


def test_a_misspelt_setting_variable_is_reported_and_a_service_link_is_not(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from dialogsum.cli import main

    monkeypatch.setenv("DIALOGSUM_SERVE_MAX_QEUE", "3")
    monkeypatch.setenv("DIALOGSUM_SERVE_CANARY_PORT", "tcp://10.0.0.5:8000")  # Kubernetes'
    with caplog.at_level("WARNING", logger="dialogsum"):
        assert main(["serve", "--model", "/nonexistent/model"]) == 2  # stops at the model
    assert "DIALOGSUM_SERVE_MAX_QEUE names no setting" in caplog.text
    assert "DIALOGSUM_SERVE_MAX_QUEUE" in caplog.text and "CANARY" not in caplog.text


class Recording(Predictor):
    """Remembers the options object each call received."""

    def __init__(self) -> None:
        self.manifest = ModelManifest(generation={"num_beams": 3, "max_new_tokens": 20})
        self.received: list[GenerationOptions] = []

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        self.received.append(options)
        return [f"{options.num_beams}:{options.max_new_tokens}" for _ in dialogues]


def test_a_request_s_options_are_validated_once_and_passed_down_as_the_object() -> None:
    predictor = Recording()
    settings = ServeSettings(max_wait_ms=0, max_batch_size=4)
    with Server(Summarizer(predictor, backend="recording"), settings) as address:
        answer = post(
            address,
            {
                "inputs": "#Person1#: Hi.",
                "parameters": {"generate_parameters": {"max_new_tokens": 7}},
            },
        )
        assert answer.status_code == 200, answer.text
        # The model's defaults under the request's own, and the server's batch size.
        assert answer.json() == [{"summary_text": "3:7"}]
        refused = post(
            address,
            {"inputs": "#Person1#: Hi.", "parameters": {"generate_parameters": {"num_beams": 0}}},
        )
        assert refused.status_code == 422 and "num_beams" in refused.json()["error"]
    last = predictor.received[-1]
    assert isinstance(last, GenerationOptions)
    assert (last.num_beams, last.max_new_tokens, last.batch_size) == (3, 7, 4)
