"""A Ray Serve replica prints each of dialogsum's log lines once, in dialogsum's format, even
after a library configures the root logger (a replica starts with none, so dialogsum adds its
own handler there)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

#: A replica's process: its logging set up as the replica's constructor does, then a library
#: logs through the root logger (which configures it), then the service logs a request.
REPLICA = textwrap.dedent(
    """
    import logging
    from dialogsum.errors import logger
    from dialogsum.serve.ray_deployment import _log_to_stderr

    _log_to_stderr()
    logging.warning("a library's warning")
    logger.info("POST /v1/summarize 200")
    """
)


def test_a_replica_s_lines_print_once_after_a_library_configures_the_root_logger() -> None:
    # A process of its own: pytest's handlers on the root logger would hide the case.
    done = subprocess.run(
        [sys.executable, "-c", REPLICA], capture_output=True, text=True, timeout=120, check=True
    )
    lines = [line for line in done.stderr.splitlines() if "/v1/summarize" in line]
    assert lines == ["INFO dialogsum: POST /v1/summarize 200"], done.stderr
    assert "WARNING:root:a library's warning" in done.stderr  # the library's own line stays
