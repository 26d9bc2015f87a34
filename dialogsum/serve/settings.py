"""The settings of ``dialogsum serve``: one pydantic model for flags, config files and the
``DIALOGSUM_SERVE_*`` environment variables (flags win over the file, the file over the
environment), for both engines: ``local`` (one uvicorn process) and ``ray`` (replicas on Ray
Serve, which alone read the replica and cluster settings)."""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialogsum.errors import ConfigError

ENV_PREFIX = "DIALOGSUM_SERVE_"
#: The settings only the ``ray`` engine reads; the local engine refuses them.
RAY_SETTINGS = (
    "replicas",
    "min_replicas",
    "max_replicas",
    "target_ongoing_requests",
    "replica_cpus",
    "ray_address",
)
#: The shapes of the variables Kubernetes sets for a Service (``X_SERVICE_HOST``, ``X_PORT``,
#: ``X_PORT_8000_TCP_ADDR`` ...), which are not settings.
_SERVICE_LINK = re.compile(r"_SERVICE_(HOST|PORT.*)$|_PORT(_\d+_(TCP|UDP|SCTP).*)?$")


class ServeSettings(BaseModel):
    """How the service runs: where it listens, how it batches, its limits, and on the ``ray``
    engine its replicas."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["local", "ray"] = Field(
        "local",
        description="local: one server process on this machine. ray: replicas on Ray Serve, on "
        "a local Ray or the cluster at --ray-address / RAY_ADDRESS "
        "(pip install 'dialogsum[ray-serve]').",
    )

    host: str = Field("127.0.0.1", description="Address to bind (loopback by default).")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind (0: any free port).")
    batching: Literal["continuous", "micro", "off"] = Field(
        "micro",
        description="micro: concurrent requests gathered into batches that run to their "
        "longest summary. continuous: each dialogue joins the running decode at its next step "
        "and leaves when its summary is final (backends that offer it; others micro-batch). "
        "off: one request at a time.",
    )
    max_batch_size: int = Field(
        16, gt=0, description="Most dialogues in one batch (continuous: decoding at once)."
    )
    max_batch_tokens: int = Field(
        32768,
        gt=0,
        description="Continuous batching: most tokens in flight, each dialogue counting beams x "
        "(input tokens + max_new_tokens); a larger dialogue runs alone.",
    )
    max_wait_ms: float = Field(
        5.0,
        ge=0,
        description="How long a batch waits for more requests before it runs (continuous: "
        "how long the first requests wait for company when nothing is decoding).",
    )
    max_queue: int = Field(
        256,
        gt=0,
        description="Requests waiting at most (continuous batching: dialogues waiting to join); "
        "more are answered 503 Retry-After.",
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
    admin_key_env: str | None = Field(
        None,
        description="Name of an environment variable holding the admin key, which loads and "
        "unloads adapters (PUT and DELETE /v1/adapters/NAME; 403 without one).",
    )
    max_adapter_bytes: int = Field(
        100_000_000,
        gt=0,
        description="Largest adapter archive uploaded to PUT /v1/adapters/NAME, and most bytes "
        "it may unpack to (413).",
    )
    log_requests: bool = Field(True, description="One JSON log line per request.")
    replicas: int = Field(
        1, gt=0, description="Replicas, each with its own copy of the model (ray engine)."
    )
    min_replicas: int | None = Field(
        None, gt=0, description="Fewest replicas when autoscaling (default 1; ray engine)."
    )
    max_replicas: int | None = Field(
        None,
        gt=0,
        description="Most replicas: setting it turns on autoscaling between --min-replicas and "
        "this (ray engine).",
    )
    target_ongoing_requests: float | None = Field(
        None,
        gt=0,
        description="Requests in flight per replica that autoscaling aims at (default: "
        "--max-batch-size, a full batch each; ray engine).",
    )
    replica_cpus: float = Field(
        1.0,
        gt=0,
        description="CPUs Ray reserves for each replica; give the backend as many threads "
        "(ray engine).",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to serve on (default: RAY_ADDRESS, else a local Ray started "
        "for the server; ray engine).",
    )

    @field_validator("batching", mode="before")
    @classmethod
    def _batching_flag(cls, value: Any) -> Any:
        # Before continuous batching, batching was on or off (true/false in config files).
        if isinstance(value, bool):
            return "micro" if value else "off"
        return value

    @model_validator(mode="after")
    def _replicas_or_autoscaling(self) -> ServeSettings:
        autoscaling = [
            name
            for name in ("min_replicas", "target_ongoing_requests")
            if getattr(self, name) is not None
        ]
        if autoscaling and self.max_replicas is None:
            raise ValueError(
                f"{' and '.join(autoscaling)} set autoscaling, which needs max_replicas: add "
                f"max_replicas (CLI: --max-replicas), or give a fixed number of replicas "
                f"(CLI: --replicas) instead"
            )
        if self.max_replicas is None:
            return self
        if "replicas" in self.model_fields_set:
            raise ValueError(
                "replicas is a fixed number of replicas and max_replicas turns on autoscaling; "
                "give one of them (CLI: --replicas, or --min-replicas and --max-replicas)"
            )
        if (self.min_replicas or 1) > self.max_replicas:
            raise ValueError(
                f"min_replicas={self.min_replicas} is above max_replicas={self.max_replicas}; "
                f"raise max_replicas (CLI: --max-replicas) or lower min_replicas"
            )
        return self

    def most_replicas(self) -> int:
        """The most replicas the ``ray`` engine runs at once."""
        return self.max_replicas if self.max_replicas is not None else self.replicas

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
        return _key(
            "api_key_env",
            self.api_key_env,
            "the service would run without a key",
            "to serve without one",
        )

    def admin_key(self) -> str | None:
        """The key that loads and unloads adapters, or None when adapters cannot be changed.

        Raises :class:`ConfigError` when ``admin_key_env`` names a variable that is unset or
        empty, as :meth:`api_key` does."""
        return _key(
            "admin_key_env",
            self.admin_key_env,
            "adapters could not be loaded or unloaded",
            "to serve the adapters the model has, unchanged",
        )


def _key(setting: str, variable: str | None, otherwise: str, without: str) -> str | None:
    """The key held in the environment variable ``variable`` (named by ``setting``)."""
    if not variable:
        return None
    key = os.environ.get(variable)
    if not key:
        state = "empty" if key == "" else "not set"
        raise ConfigError(
            f"{setting} is {variable!r}, but that environment variable is {state}, so "
            f"{otherwise}. Set it (export {variable}=<key>) or drop {setting} {without}."
        )
    return key
