"""The settings of ``dialogsum serve``: one pydantic model for flags, config files and the
``DIALOGSUM_SERVE_*`` environment variables (flags win over the file, the file over the
environment)."""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dialogsum.errors import ConfigError

ENV_PREFIX = "DIALOGSUM_SERVE_"
#: The shapes of the variables Kubernetes sets for a Service (``X_SERVICE_HOST``, ``X_PORT``,
#: ``X_PORT_8000_TCP_ADDR`` ...), which are not settings.
_SERVICE_LINK = re.compile(r"_SERVICE_(HOST|PORT.*)$|_PORT(_\d+_(TCP|UDP|SCTP).*)?$")


class ServeSettings(BaseModel):
    """How the service runs: where it listens, how it batches, its limits."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Address to bind (loopback by default).")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind (0: any free port).")
    batching: bool = Field(True, description="Gather concurrent requests into one batch.")
    max_batch_size: int = Field(16, gt=0, description="Most dialogues in one batch.")
    max_wait_ms: float = Field(
        5.0, ge=0, description="How long a batch waits for more requests before it runs."
    )
    max_queue: int = Field(
        256, gt=0, description="Requests waiting at most; more are answered 503 Retry-After."
    )
    max_body_bytes: int = Field(1_000_000, gt=0, description="Largest request body (413).")
    max_inputs: int = Field(64, gt=0, description="Most dialogues in one request (413).")
    over_length: Literal["truncate", "reject"] = Field(
        "truncate",
        description="Dialogues over the model's input length: truncate (and say so in the "
        "X-Dialogsum-Truncated header) or reject with 422.",
    )
    request_timeout_s: float = Field(60.0, gt=0, description="Answer 504 after this long.")
    api_key_env: str | None = Field(
        None, description="Name of an environment variable holding the API key (401 without)."
    )
    log_requests: bool = Field(True, description="One JSON log line per request.")

    @classmethod
    def environment(cls) -> dict[str, Any]:
        """Settings from ``DIALOGSUM_SERVE_<FIELD>`` environment variables (strings).

        A variable with the prefix that names no setting is reported (a misspelt one would
        otherwise be ignored without a word) but not fatal: Kubernetes injects
        ``<SERVICE>_PORT...`` and ``<SERVICE>_SERVICE_...`` variables for every Service, and a
        Service named ``dialogsum-serve-...`` must not stop the pods."""
        from dialogsum.errors import logger

        known = {ENV_PREFIX + name.upper(): name for name in cls.model_fields}
        found: dict[str, Any] = {}
        for variable, value in os.environ.items():
            if not variable.startswith(ENV_PREFIX):
                continue
            if variable in known:
                found[known[variable]] = value
            elif not _SERVICE_LINK.search(variable):
                logger.warning(
                    "The environment variable %s names no setting of dialogsum serve and is "
                    "ignored; the settings are: %s.",
                    variable,
                    ", ".join(sorted(known)),
                )
        return found

    def api_key(self) -> str | None:
        """The API key the requests must carry, or None when the service is open.

        Raises :class:`ConfigError` when ``api_key_env`` names a variable that is unset or
        empty: a misspelt or forgotten variable must not leave the service open."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            state = "empty" if key == "" else "not set"
            raise ConfigError(
                f"api_key_env is {self.api_key_env!r}, but that environment variable is "
                f"{state}, so the service would run without a key. Set it "
                f"(export {self.api_key_env}=<key>) or drop api_key_env to serve without one."
            )
        return key
