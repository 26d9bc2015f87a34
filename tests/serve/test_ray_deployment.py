"""The service on Ray Serve: two replicas on a local Ray (2 CPUs), deployed as a Ray Serve config
file deploys it (``dialogsum.cli.serve:ray_app`` with its ``args``), answered through Ray
Serve's HTTP proxy exactly as ``summarize()`` answers offline; a replica killed with SIGKILL
loses none of the requests Ray Serve routes after it, and is replaced."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialogsum import Summarizer
from dialogsum.data import load_examples
from dialogsum.serve import ServeSettings

pytest.importorskip("fastapi")
serve = pytest.importorskip(
    "ray.serve", reason="needs Ray Serve: pip install 'dialogsum[ray-serve]'"
)

import ray  # noqa: E402  (after the skip: ray.serve is importable)

from dialogsum.serve.ray_deployment import (  # noqa: E402
    DEPLOYMENT,
    SummarizerReplica,
    deployment_options,
)
from dialogsum.testing import asgi_client  # noqa: E402

APPLICATION = "dialogsum-config"
#: How long a killed replica may take to be replaced (a new process loads torch and the model).
RECOVERY_S = 90
GREEDY = {"num_beams": 1, "max_new_tokens": 12}
BEAMS = {"num_beams": 3, "max_new_tokens": 10, "no_repeat_ngram_size": 2}


@pytest.fixture(scope="module")
def summarizer(tiny_model_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})


@pytest.fixture(scope="module")
def dialogues(sample_dir: Path) -> list[str]:
    return [e.dialogue for e in load_examples(sample_dir / "test.jsonl")[:8]]


@pytest.fixture(scope="module")
def url(tiny_model_dir: Path) -> Iterator[str]:
    """Two replicas of the tiny model behind Ray Serve's proxy on a free loopback port."""
    from dialogsum.cli.serve import ray_app
    from dialogsum.serve.ray_engine import free_port

    if ray.is_initialized():
        pytest.skip("another test left Ray running in this process")
    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init replaces it; later tests need it
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        # The replicas must run this checkout's dialogsum (PYTHONPATH, or the working directory
        # Ray puts on its workers' path), not another install of it.
        assert ray.get(_dialogsum_file.remote()) == _dialogsum_file_here()
        port = free_port("127.0.0.1")
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        # What Ray Serve does with a config file's import_path and args.
        args = {
            "model": str(tiny_model_dir),
            "backend_options": {"progress": False},
            "server": {"replicas": 2, "max_wait_ms": 20},
        }
        serve.run(ray_app(args), name=APPLICATION, route_prefix="/", blocking=False)
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()
        signal.signal(signal.SIGTERM, sigterm)


def _dialogsum_file_here() -> str:
    import dialogsum

    return str(Path(dialogsum.__file__).resolve())


_dialogsum_file = ray.remote(num_cpus=0)(_dialogsum_file_here)


def post(url: str, payload: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/summarize", json=payload, timeout=60)


def summary_of(url: str, dialogue: str, options: dict[str, Any]) -> str:
    answer = post(url, {"inputs": dialogue, "parameters": {"generate_parameters": options}})
    assert answer.status_code == 200, answer.text
    return str(answer.json()[0]["summary_text"])


def replicas() -> dict[str, int]:
    """The live replicas' actor names and process ids."""
    found = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if not actor["name"].startswith(f"SERVE_REPLICA::{APPLICATION}#"):
            continue
        try:
            handle = ray.get_actor(actor["name"], namespace=actor["namespace"])
            found[actor["name"]] = ray.get(handle.__ray_call__.remote(_pid), timeout=10)
        except (ValueError, ray.exceptions.RayError):
            continue  # dead, or gone since it was listed
    return found


def _pid(replica: Any) -> int:
    return os.getpid()


def running_replicas() -> int:
    status = serve.status().applications[APPLICATION].deployments[DEPLOYMENT]
    return int(status.replica_states.get("RUNNING", 0))


def test_two_replicas_answer_as_summarize_does_offline(
    url: str, summarizer: Summarizer, dialogues: list[str]
) -> None:
    assert running_replicas() == 2
    jobs = [(dialogue, options) for dialogue in dialogues for options in (GREEDY, BEAMS)]
    with ThreadPoolExecutor(8) as pool:
        served = list(pool.map(lambda job: summary_of(url, *job), jobs))
    offline = [summarizer.summarize([dialogue], **options)[0] for dialogue, options in jobs]
    assert served == offline
    listed = post(url, {"inputs": dialogues[:3], "parameters": {"generate_parameters": GREEDY}})
    assert [s["summary_text"] for s in listed.json()] == summarizer.summarize(
        dialogues[:3], **GREEDY
    )


def test_the_probes_model_card_and_errors_answer_through_the_proxy(url: str) -> None:
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert httpx.get(f"{url}/v1/model").json()["backend"] == "torch"
    bad = post(url, {"inputs": "", "parameters": {}})
    assert bad.status_code == 422 and bad.json()["request_id"]  # the app's error shape
    # one X-Request-Id, the id in the body: Ray Serve's proxy sets it, so the app does not
    assert bad.headers.get_list("x-request-id") == [bad.json()["request_id"]]
    mine = httpx.post(f"{url}/v1/summarize", json={"inputs": ""}, headers={"X-Request-Id": "r-1"})
    assert mine.headers.get_list("x-request-id") == ["r-1"] and mine.json()["request_id"] == "r-1"


def test_a_killed_replica_loses_no_request_routed_after_it_and_is_replaced(
    url: str, summarizer: Summarizer, dialogues: list[str]
) -> None:
    before = replicas()
    assert len(before) == 2
    killed_name, killed_pid = next(iter(before.items()))
    os.kill(killed_pid, signal.SIGKILL)
    # Sent at once, while Ray Serve still lists the dead replica: those routed to it are
    # retried on the other one.
    with ThreadPoolExecutor(8) as pool:
        served = list(pool.map(lambda d: summary_of(url, d, GREEDY), dialogues))
    assert served == [summarizer.summarize([d], **GREEDY)[0] for d in dialogues]
    deadline = time.monotonic() + RECOVERY_S
    while time.monotonic() < deadline:
        now = replicas()
        if killed_name not in now and len(now) == 2 and running_replicas() == 2:
            break
        time.sleep(1)
    else:
        pytest.fail(f"the killed replica was not replaced within {RECOVERY_S} s: {replicas()}")
    assert killed_pid not in replicas().values()
    assert summary_of(url, dialogues[0], BEAMS) == summarizer.summarize([dialogues[0]], **BEAMS)[0]


def test_the_health_check_is_the_app_s_readiness(tiny_model_dir: Path) -> None:
    """What Ray Serve's health check calls fails until the warm-up summary is done, as
    ``/readyz`` answers 503 until then (here in this process, through the app's lifespan)."""
    load = functools.partial(
        Summarizer.from_pretrained, tiny_model_dir, backend_options={"progress": False}
    )
    replica = SummarizerReplica(load, ServeSettings(max_wait_ms=0))
    with pytest.raises(RuntimeError, match="not ready"):
        replica.check_health()
    app = replica.__serve_build_asgi_app__()
    with pytest.raises(RuntimeError, match="GET /readyz answers 503"):
        replica.check_health()

    async def ready() -> None:
        async with asgi_client(app) as client:
            replica.check_health()  # the lifespan has warmed the model up
            assert (await client.get("/readyz")).status_code == 200
        with pytest.raises(RuntimeError, match="not ready"):
            replica.check_health()  # stopped

    asyncio.run(ready())


def test_replicas_or_autoscaling_become_the_deployment_s_options() -> None:
    fixed = deployment_options(ServeSettings(replicas=3, replica_cpus=2, max_queue=32))
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert fixed["ray_actor_options"] == {"num_cpus": 2}
    assert fixed["max_ongoing_requests"] == 32 + 16 and fixed["max_queued_requests"] == 32
    scaling = deployment_options(ServeSettings(max_replicas=4, max_batch_size=8))
    assert "num_replicas" not in scaling
    assert scaling["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 8,  # a full batch per replica
    }
    aimed = deployment_options(
        ServeSettings(min_replicas=2, max_replicas=5, target_ongoing_requests=3)
    )
    assert aimed["autoscaling_config"] == {
        "min_replicas": 2,
        "max_replicas": 5,
        "target_ongoing_requests": 3,
    }


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"port": 9000}, "args: port cannot be set"),
        ({"server": {"host": "0.0.0.0"}}, "args: host cannot be set"),
        ({"ray_address": "auto"}, "args: ray_address cannot be set"),
        ({"replicas": 0}, "server.replicas: Input should be greater than 0"),
        ({"replica": 2}, "replica"),
    ],
)
def test_a_config_file_s_args_are_checked_as_the_command_s_settings(
    args: dict[str, Any], needle: str
) -> None:
    from dialogsum.cli.serve import ray_app
    from dialogsum.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        ray_app({"model": "dialogsum-tiny", **args})
    assert needle in str(raised.value)
