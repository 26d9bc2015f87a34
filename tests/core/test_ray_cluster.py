"""Joining a Ray cluster: an address where nothing listens is told at once, not retried for
minutes while Ray logs its attempts."""

from __future__ import annotations

import socket
import time

import pytest

from dialogsum.errors import ConfigError
from dialogsum.ray_cluster import _unanswered, connect

pytest.importorskip("ray")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_address_where_nothing_listens_is_refused_at_once() -> None:
    port = _closed_port()
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        connect(f"127.0.0.1:{port}", num_cpus=1)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"Cannot join the Ray cluster at '127.0.0.1:{port}' (from --ray-address)" in message
    assert "nothing answers there (Connection refused)" in message
    assert "ray start --head" in message


def test_only_host_and_port_are_probed() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert _unanswered(f"127.0.0.1:{port}") is None
        assert _unanswered(f"ray://127.0.0.1:{port}") is None
    assert _unanswered("auto") is None  # Ray's to resolve
    assert _unanswered(f"ray://127.0.0.1:{_closed_port()}") == "Connection refused"
