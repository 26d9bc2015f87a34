"""``dialogsum serve`` on a port another process holds stops before loading the model, with one
line naming the address and what to do, and exit status 2 (not uvicorn's ``[Errno 98]`` after
the model has loaded)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


# The bundled model, as a user starts it; and one that does not exist, which shows the port is
# checked before any model is looked at.
@pytest.mark.parametrize("model", ["dialogsum-tiny", "/nonexistent/model"])
def test_serve_on_a_port_in_use_says_so_in_one_line_before_loading(model: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "dialogsum", "serve", "--model", model, "--port", str(port)],
            capture_output=True,
            text=True,
            env={**os.environ, "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD": "1"},
            timeout=300,
        )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(
        "dialogsum serve: error: server.port: cannot listen on "
        f"127.0.0.1:{port}: another process is listening there"
    )
    assert "--port" in lines[0]


def test_serve_on_a_free_port_goes_on_to_the_model() -> None:
    from dialogsum.cli.serve import check_port

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_port("127.0.0.1", port)  # no error: the server may bind it
    check_port("127.0.0.1", 0)
