"""Working offline is dialogsum's own decision: after the hub fails to answer, dialogsum loads
from the local cache without another connection, and the rest of the process (its environment,
huggingface_hub's settings, an ``InferenceClient`` talking to a server on 127.0.0.1) is left as
it was.

The process under test is a real subprocess with a real refused connection (``HF_ENDPOINT``
points at a port nothing listens on) and a real Hugging Face cache holding the bundled model
as if it had been downloaded; an audit hook counts every connection it opens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dialogsum.modeling import bundled_model_dir

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

#: Nothing listens on the discard port of the loopback: the "hub" refuses at once.
HUB = ("127.0.0.1", 9)
REPO = "dialogsum-test/tiny"

SCRIPT = """
import json, os, sys
hub = tuple(json.loads(sys.argv[1]))
opened = []
sys.addaudithook(lambda event, args: opened.append(tuple(args[1])[:2])
                 if event == "socket.connect" and isinstance(args[1], tuple) else None)

from huggingface_hub import InferenceClient, constants
from dialogsum import Summarizer
from dialogsum.testing.serving import Server

report = {"constant_before": constants.HF_HUB_OFFLINE}
greedy = {"num_beams": 1, "max_new_tokens": 8}
dialogue = "#Person1#: Is the hub up?\\n#Person2#: Not from here."
summarizer = Summarizer.from_pretrained(sys.argv[2], backend_options={"progress": False})
report["hub_connections_first_load"] = opened.count(hub)
report["environment"] = {k: v for k, v in os.environ.items() if "OFFLINE" in k}
report["constant_after"] = constants.HF_HUB_OFFLINE
report["name_or_path"] = summarizer.predictor.torch_model.model.config._name_or_path
with Server(summarizer) as url:
    try:
        client = InferenceClient(model=f"{url}/v1/summarize")
        report["served"] = client.summarization(dialogue, generate_parameters=greedy).summary_text
    except Exception as exc:
        report["served"] = f"{type(exc).__name__}: {exc}"
report["direct"] = summarizer.summarize([dialogue], **greedy)[0]
before = opened.count(hub)
Summarizer.from_pretrained(sys.argv[2], backend_options={"progress": False})
report["hub_connections_second_load"] = opened.count(hub) - before
print(json.dumps(report))
"""


def cache_as_downloaded(home: Path, repo: str) -> None:
    """Put the bundled model in a Hugging Face cache under ``home`` as ``repo``, laid out as
    huggingface_hub lays out a download (``refs/main`` naming a snapshot)."""
    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(bundled_model_dir("dialogsum-tiny"), folder / "snapshots" / commit)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)


def test_a_failed_hub_connection_leaves_the_process_online(tmp_path: Path) -> None:
    cache_as_downloaded(tmp_path / "hf", REPO)
    env = {k: v for k, v in os.environ.items() if "OFFLINE" not in k}
    env["HF_ENDPOINT"] = f"http://{HUB[0]}:{HUB[1]}"
    env["HF_HOME"] = str(tmp_path / "hf")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(HUB), REPO],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    # dialogsum noticed the hub was down with one connection and loaded the cached model...
    assert report["hub_connections_first_load"] == 1
    assert report["name_or_path"] == REPO  # recorded as the hub id, as when loaded online
    # ...without switching the process offline...
    assert report["environment"] == {}
    assert report["constant_after"] is report["constant_before"] is False
    # ...so huggingface_hub's client still talks to a server on this machine...
    assert report["served"] == report["direct"]
    # ...and dialogsum's next load goes to the cache without trying the hub again.
    assert report["hub_connections_second_load"] == 0
