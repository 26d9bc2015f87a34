"""Adapters at run time: listed with the API key, loaded (from a server-side folder or an
uploaded archive) and unloaded with the admin key, while requests go on being served; a change
that fails changes nothing."""

from __future__ import annotations

import asyncio
import io
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialogsum import Summarizer
from dialogsum.serve import ServeSettings
from dialogsum.testing.serving import Server

from .conftest import SHARED

KEY, ADMIN_KEY = "api-s3cret", "admin-s3cret"
API = {"X-API-Key": KEY}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
DIALOGUE = "#Person1#: Can I pay by card?\n#Person2#: Of course, over there."


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> ServeSettings:
    monkeypatch.setenv("TEST_DIALOGSUM_KEY", KEY)
    monkeypatch.setenv("TEST_DIALOGSUM_ADMIN", ADMIN_KEY)
    return ServeSettings(
        max_wait_ms=0,
        api_key_env="TEST_DIALOGSUM_KEY",
        admin_key_env="TEST_DIALOGSUM_ADMIN",
        max_adapter_bytes=200_000,
    )


@pytest.fixture
def served(
    tagging: Callable[..., Summarizer], keys: ServeSettings
) -> Iterator[tuple[Summarizer, str]]:
    summarizer = tagging("sales")
    with Server(summarizer, keys) as url:
        yield summarizer, url


def listed(url: str) -> list[str]:
    answer = httpx.get(f"{url}/v1/adapters", headers=API)
    assert answer.status_code == 200, answer.text
    return [adapter["name"] for adapter in answer.json()["adapters"]]


def summary(url: str, adapter: str | None) -> httpx.Response:
    parameters: dict[str, Any] = {"generate_parameters": SHARED, "adapter": adapter}
    payload = {"inputs": DIALOGUE, "parameters": parameters}
    return httpx.post(f"{url}/v1/summarize", json=payload, headers=API, timeout=60)


def zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for file in folder.iterdir():
            bundle.write(file, f"{folder.name}/{file.name}")
    return buffer.getvalue()


def tarred(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for file in folder.iterdir():
            bundle.add(file, file.name)
    return buffer.getvalue()


def test_load_by_path_replace_list_use_and_unload(
    served: tuple[Summarizer, str], adapter_dirs: dict[str, Path]
) -> None:
    summarizer, url = served
    assert listed(url) == ["sales"]
    path = {"path": str(adapter_dirs["support"])}
    created = httpx.put(f"{url}/v1/adapters/support", json=path, headers=ADMIN, timeout=30)
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["name"] == "support" and record["manifest"]["base_model"]
    assert record["source"] == str(adapter_dirs["support"])
    assert listed(url) == ["sales", "support"]
    answer = summary(url, "support")
    assert (
        answer.json()[0]["summary_text"]
        == summarizer.summarize([DIALOGUE], adapter="support", **SHARED)[0]
    )
    replaced = httpx.put(f"{url}/v1/adapters/support", json=path, headers=ADMIN, timeout=30)
    assert replaced.status_code == 200, replaced.text
    removed = httpx.delete(f"{url}/v1/adapters/support", headers=ADMIN)
    assert removed.status_code == 200 and removed.json()["name"] == "support"
    assert listed(url) == ["sales"]
    gone = httpx.delete(f"{url}/v1/adapters/support", headers=ADMIN)
    assert gone.status_code == 404 and "loaded: sales" in gone.json()["error"]
    assert summary(url, "support").status_code == 404
    metrics = httpx.get(f"{url}/metrics", headers=API).text
    assert 'dialogsum_adapter_loads_total{outcome="loaded"} 1.0' in metrics
    assert 'dialogsum_adapter_loads_total{outcome="replaced"} 1.0' in metrics
    assert "dialogsum_adapter_unloads_total 1.0" in metrics
    assert 'dialogsum_adapter_dialogues_total{adapter="support"} 1.0' in metrics


@pytest.mark.parametrize(
    ("pack", "content_type"),
    [(zipped, "application/zip"), (tarred, "application/gzip"), (zipped, None)],
)
def test_load_an_uploaded_archive(
    served: tuple[Summarizer, str],
    adapter_dirs: dict[str, Path],
    pack: Callable[[Path], bytes],
    content_type: str | None,
) -> None:
    summarizer, url = served
    headers = {**ADMIN, **({"Content-Type": content_type} if content_type else {})}
    body = pack(adapter_dirs["support"])
    created = httpx.put(f"{url}/v1/adapters/helpdesk", content=body, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    unpacked = Path(created.json()["source"])
    assert unpacked.is_dir() and (unpacked / "tag.txt").read_text() == "S"
    answer = summary(url, "helpdesk").json()[0]["summary_text"]
    assert answer == summarizer.summarize([DIALOGUE], adapter="helpdesk", **SHARED)[0]
    assert answer.startswith("[S] ")
    assert httpx.delete(f"{url}/v1/adapters/helpdesk", headers=ADMIN).status_code == 200
    assert not unpacked.exists()  # an uploaded folder lives as long as its adapter


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, text in files.items():
            bundle.writestr(name, text)
    return buffer.getvalue()


def _hostile_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("tag.txt", "S")
        bundle.writestr("../../escaped.txt", "x")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "body", "status", "needle"),
    [
        ("support", {"path": "corrupt"}, 422, "not a tagging adapter"),
        ("support", {"path": "other-base"}, 422, "tuned from '/models/another-t5'"),
        ("support", {"path": "/no/such/folder"}, 422, "No folder '/no/such/folder'"),
        ("support", {"folder": "x"}, 422, "path"),
        ("support", _hostile_zip(), 422, "outside the adapter's folder"),
        ("support", b"PK\x03\x04garbage", 422, "not a readable zip archive"),
        # the server's temporary folder is not the client's to know: told as the archive
        ("support", _zip({"notes.txt": "x"}), 422, "the uploaded archive"),
        ("support", b"plain text", 415, "application/zip"),
        # JSON sent as curl -d sends it, as a form: the Content-Type that came, and the fix
        (
            "support",
            b'{"path": "/x"}',
            415,
            "(Content-Type: application/x-www-form-urlencoded) is neither an archive nor JSON. "
            "It looks like JSON: send it with Content-Type: application/json.",
        ),
        ("support", b"PK\x03\x04" + b"\0" * 300_000, 413, "max_adapter_bytes"),
        ("-bad", {"path": "corrupt"}, 422, "Invalid adapter name '-bad'"),
        ("sales", {"path": "corrupt"}, 422, "not a tagging adapter"),  # sales is kept
    ],
)
def test_a_change_that_fails_says_why_and_changes_nothing(
    served: tuple[Summarizer, str],
    adapter_dirs: dict[str, Path],
    tmp_path: Path,
    name: str,
    body: Any,
    status: int,
    needle: str,
) -> None:
    _, url = served
    before = summary(url, "sales").json()
    if isinstance(body, dict) and body.get("path") in adapter_dirs:
        body = {"path": str(adapter_dirs[body["path"]])}
    sent = {"json": body} if isinstance(body, dict) else {"content": body}
    headers = dict(ADMIN)
    if isinstance(body, bytes) and body.startswith(b"{"):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    answer = httpx.put(f"{url}/v1/adapters/{name}", headers=headers, timeout=30, **sent)
    assert answer.status_code == status, answer.text
    assert needle in answer.json()["error"] and answer.json()["request_id"]
    assert listed(url) == ["sales"]
    assert summary(url, "sales").json() == before
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_without_an_admin_key_changes_are_403_and_a_wrong_key_401(
    tagging: Callable[..., Summarizer], adapter_dirs: dict[str, Path], keys: ServeSettings
) -> None:
    path = {"path": str(adapter_dirs["support"])}
    with Server(tagging("sales"), keys) as url:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"X-Admin-Key": KEY}, API):
            refused = httpx.put(f"{url}/v1/adapters/support", json=path, headers=headers)
            assert refused.status_code == 401, refused.text
            assert "admin key" in refused.json()["error"]
        assert (
            httpx.delete(f"{url}/v1/adapters/sales", headers={"X-Admin-Key": "x"}).status_code
            == 401
        )
        assert httpx.get(f"{url}/v1/adapters", headers=ADMIN).status_code == 401  # the API key's
        assert httpx.get(f"{url}/v1/adapters").status_code == 401
    open_settings = keys.model_copy(update={"admin_key_env": None})
    with Server(tagging("sales"), open_settings) as url:
        for method in ("PUT", "DELETE"):
            refused = httpx.request(method, f"{url}/v1/adapters/sales", json=path, headers=ADMIN)
            assert refused.status_code == 403, refused.text
            assert "--admin-key-env" in refused.json()["error"]
        assert listed(url) == ["sales"]


def test_a_load_leaves_requests_in_flight_and_queued_served(
    served: tuple[Summarizer, str], adapter_dirs: dict[str, Path]
) -> None:
    summarizer, url = served
    predictor = summarizer.predictor
    texts = [f"#Person1#: Table for {n}?\n#Person2#: This way." for n in range(2, 8)]
    adapters = ["sales", None] * 3
    expected = [
        summarizer.summarize([t], adapter=a, **SHARED)[0]
        for t, a in zip(texts, adapters, strict=True)
    ]
    predictor.load_delay = 2.0  # type: ignore[attr-defined]
    predictor.load_threads.clear()  # type: ignore[attr-defined]
    predictor.model_threads.clear()  # type: ignore[attr-defined]

    async def run() -> tuple[httpx.Response, list[tuple[float, httpx.Response]], float]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            started = time.perf_counter()
            load = asyncio.ensure_future(
                client.put(
                    "/v1/adapters/support",
                    json={"path": str(adapter_dirs["support"])},
                    headers=ADMIN,
                )
            )
            await asyncio.sleep(0.2)  # the load is under way

            async def ask(text: str, adapter: str | None) -> tuple[float, httpx.Response]:
                payload = {
                    "inputs": text,
                    "parameters": {"generate_parameters": SHARED, "adapter": adapter},
                }
                answer = await client.post("/v1/summarize", json=payload, headers=API)
                return time.perf_counter() - started, answer

            answers = await asyncio.gather(
                *(ask(t, a) for t, a in zip(texts, adapters, strict=True))
            )
            loaded = await load
            return loaded, answers, time.perf_counter() - started

    loaded, answers, total = asyncio.run(run())
    assert loaded.status_code == 201, loaded.text
    assert [a.json()[0]["summary_text"] for _, a in answers] == expected  # none lost or changed
    assert max(seconds for seconds, _ in answers) < 2.0 <= total  # answered during the load
    # The load ran beside the model's own thread, which went on serving.
    assert set(predictor.model_threads) == {"dialogsum-model_0"}  # type: ignore[attr-defined]
    assert len(predictor.load_threads) == 1  # type: ignore[attr-defined]
    assert not predictor.load_threads[0].startswith("dialogsum-model")  # type: ignore[attr-defined]
    assert listed(url) == ["sales", "support"]
