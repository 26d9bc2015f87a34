"""``dialogsum serve --engine ray``: the command starts a local Ray, says where it listens once its
replicas are ready, answers as ``summarize()`` does, and on SIGTERM or Ctrl-C answers what it
accepted and exits 0; Ray Serve missing, or ``--port 0`` for a cluster, stops it with one line
(exit 2). Its settings' errors are tested with the others, in ``test_serve.py``."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dialogsum import Summarizer
from dialogsum.errors import install_command

from ..without_modules import cli_without

#: Starting a local Ray and a replica (which imports torch) on a busy 2-core machine.
START_S = 120
#: Stopping: the application deleted (each replica drains), then the local Ray.
STOP_S = 60
GREEDY = {"num_beams": 1, "max_new_tokens": 12}
DIALOGUE = "#Person1#: Is the train late?\n#Person2#: Ten minutes, they said."


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stderr lines as they come (a thread reads them, so a wait can time out)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for(lines: queue.Queue[str], needle: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"no {needle!r} within {seconds} s; the log:\n{''.join(seen)[-4000:]}")


def test_the_command_serves_on_ray_and_stops_cleanly_on_sigterm(tiny_model_dir: Path) -> None:
    pytest.importorskip("ray.serve")
    command = [
        sys.executable,
        "-m",
        "dialogsum",
        "serve",
        "--engine",
        "ray",
        "--model",
        str(tiny_model_dir),
        "--port",
        "0",  # a free port, which the "listening" line names
        "--replicas",
        "1",
        "--no-log-requests",
    ]
    env = {**os.environ, "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("RAY_ADDRESS", None)
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        lines = lines_of(process)
        listening = wait_for(lines, "listening on http://", START_S)
        assert "(Ray Serve, 1 replica)" in listening
        url = listening.split("listening on ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert httpx.get(f"{url}/readyz", timeout=10).json() == {"status": "ready"}
        summarizer = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
        answer = httpx.post(
            f"{url}/v1/summarize",
            json={"inputs": DIALOGUE, "parameters": {"generate_parameters": GREEDY}},
            timeout=60,
        )
        assert answer.json() == [{"summary_text": summarizer.summarize([DIALOGUE], **GREEDY)[0]}]
        long_request = {
            "inputs": [f"#Person1#: Hi {n}.\n#Person2#: Hello." for n in range(8)],
            "parameters": {
                "generate_parameters": {"num_beams": 4, "max_new_tokens": 60, "min_new_tokens": 60}
            },
        }
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{url}/v1/summarize", json=long_request, timeout=60)
            time.sleep(0.3)  # accepted and running when the signal comes
            process.send_signal(signal.SIGTERM)
            accepted = pending.result(timeout=STOP_S)
        assert accepted.status_code == 200 and len(accepted.json()) == 8
        assert process.wait(timeout=STOP_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigint_stops_it_as_sigterm_does_and_a_second_signal_ends_it_at_once() -> None:
    """Ctrl-C (SIGINT) takes the path SIGTERM takes above; the first puts back the handlers
    that were there before, so a second one is not held up by a stop that hangs."""
    from dialogsum.serve.ray_engine import stop_signals

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stop_signals() as stopping:
        assert not stopping.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        assert stopping.wait(5)
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_free_port_is_this_machine_s_so_a_cluster_needs_a_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray.serve")
    from dialogsum.cli import main

    monkeypatch.setenv("RAY_ADDRESS", "ray://cluster.invalid:10001")
    assert main(["serve", "--engine", "ray", "--model", "/nonexistent/model", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert "the Ray cluster at 'ray://cluster.invalid:10001'; give the port" in error, error


def test_without_ray_serve_the_command_names_the_extra(tiny_model_dir: Path) -> None:
    # Ray without its serve extra (no grpc), as after pip install 'dialogsum[ray]'.
    command = [
        sys.executable,
        "-c",
        cli_without("grpc"),
        "serve",
        "--engine",
        "ray",
        "--model",
        str(tiny_model_dir),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("dialogsum serve: error: dialogsum serve --engine ray needs ")
    assert lines[0].endswith(f"{install_command('ray-serve')}.")


@pytest.mark.parametrize("broken", ["missing", "manifest"])
def test_a_model_folder_a_local_ray_cannot_load_is_refused_before_ray_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], broken: str
) -> None:
    pytest.importorskip("ray.serve")
    import ray

    from dialogsum.cli import main

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # Set, then removed: monkeypatch then restores the environment after the test.
    monkeypatch.setenv("RAY_DEDUP_LOGS", "unset")
    monkeypatch.delenv("RAY_DEDUP_LOGS")
    folder = tmp_path / "served-int8"
    if broken == "manifest":
        folder.mkdir()
        (folder / "dialogsum.json").write_text("{not json")
    started = time.monotonic()
    assert main(["serve", "--engine", "ray", "--model", f"{folder}/", "--port", "0"]) == 2
    assert time.monotonic() - started < 10  # Ray was not started (that takes longer)
    assert not ray.is_initialized()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    expected = "it does not exist" if broken == "missing" else "dialogsum.json is corrupt"
    assert expected in lines[0], lines
    # Every request's log line on the console, as the local engine's (Ray folds repeats).
    assert os.environ["RAY_DEDUP_LOGS"] == "0"
