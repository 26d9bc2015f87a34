"""What the service's endpoints share: the model, the settings, the keys, the metrics, the
micro-batcher, the adapters' changes and whether the model has warmed up. One
:class:`ServiceState` per app, kept on ``app.state.dialogsum`` and handed to the endpoints by a
FastAPI dependency.

This module imports no FastAPI: it is plain asyncio around the :class:`MicroBatcher`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dialogsum.continuous import ContinuousSettings
from dialogsum.errors import logger
from dialogsum.generation import warn_truncated_inputs
from dialogsum.serve.adapter_admin import AdapterAdmin
from dialogsum.serve.continuous_batcher import ContinuousBatcher
from dialogsum.serve.inputs import Counts, InputMeter, Rejected
from dialogsum.serve.metrics import BASE_LABEL, ServeMetrics
from dialogsum.serve.micro_batcher import MicroBatcher

if TYPE_CHECKING:
    from dialogsum.generation import GenerationOptions, OnSummary
    from dialogsum.serve.settings import ServeSettings
    from dialogsum.summarizer import Summarizer

request_log = logger.getChild("serve")

#: A dialogue the service summarizes once at start-up, before it says it is ready.
WARM_UP = "#Person1#: Is the service up?\n#Person2#: It is warming up."

#: The service whose model call runs on this thread (set around each call the batcher makes).
_serving: ContextVar[ServiceState | None] = ContextVar("dialogsum_serving", default=None)


class TruncationOnce(logging.Filter):
    """Lets the backends' truncation warning (``warn_truncated_inputs``, whose records carry
    a ``truncated`` count) through once per served model, and holds back the rest: a server
    would otherwise log it on every batch. Every truncated input is still counted in the
    ``dialogsum_truncated_inputs_total`` metric. Records from outside a service's model call
    (a ``summarize()`` of the user's in the same process) pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a truncation warning after a service's first; every other record passes."""
        state = _serving.get()
        truncated = getattr(record, "truncated", None)
        if state is None or truncated is None:
            return True
        if not state.meter.available:  # else measure() has counted the request's inputs
            state.metrics.truncated.inc(int(truncated))
        with _ONCE_LOCK:  # the request path and the batcher's thread both log it
            if state.truncation_logged:
                return False
            state.truncation_logged = True
        record.msg = (
            f"{record.getMessage()} This server logs it once; the metric "
            f"dialogsum_truncated_inputs_total counts every truncated input."
        )
        record.args = None
        return True


_TRUNCATION_ONCE = TruncationOnce()
_ONCE_LOCK = threading.Lock()


class ServiceState:
    """The summarizer, settings, metrics and micro-batcher of one app, and its readiness.

    ``dialogsum serve`` starts the batcher in the app's lifespan (:meth:`startup`,
    :meth:`shutdown`); an app mounted inside another one gets no lifespan events of its own, so
    there the first request starts it (:meth:`start`).
    """

    def __init__(self, summarizer: Summarizer, settings: ServeSettings) -> None:
        self.summarizer = summarizer
        self.settings = settings
        # ConfigError when api_key_env or admin_key_env names an unset variable.
        #: The API key as bytes, for a constant-time comparison; None when the service is open.
        self.api_key = _key_bytes(settings.api_key())
        #: The admin key (loads and unloads adapters) as bytes; None when none may.
        self.admin_key = _key_bytes(settings.admin_key())
        #: The base model's id in the OpenAI-compatible API (``GET /v1/models``).
        self.model_id = base_model_id(summarizer.source)
        self.metrics = ServeMetrics()
        #: Loads and unloads adapters while the service runs.
        self.adapters = AdapterAdmin(summarizer, self.metrics)
        self.meter = InputMeter.of(summarizer)
        #: True once the warm-up summary is done, until shutdown.
        self.ready = False
        #: Whether the app sets ``X-Request-Id`` on its answers: not behind Ray Serve's proxy,
        #: which sets it itself (to the id it passes on in the request's header).
        self.request_id_header = True
        #: True once this model's truncation warning has been logged (:class:`TruncationOnce`).
        self.truncation_logged = False
        if _TRUNCATION_ONCE not in logger.filters:
            logger.addFilter(_TRUNCATION_ONCE)
        self._batcher: MicroBatcher | ContinuousBatcher | None = None
        #: The batching in effect: the settings', but micro where continuous batching was
        #: asked of a backend that has none (known now: a mounted app makes its batcher at
        #: its first request, and its model card may be asked for before).
        self.batching: str = settings.batching
        if settings.batching == "continuous" and summarizer.continuous_decoder() is None:
            self.batching = "micro"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warm_up: asyncio.Task[None] | None = None

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch (0 before the batcher starts)."""
        return self._batcher.depth if self._batcher is not None else 0

    def start(self) -> MicroBatcher | ContinuousBatcher:
        """The batcher, started (and its warm-up queued) on first use on this event loop."""
        loop = asyncio.get_running_loop()
        if self._batcher is None or self._loop is not loop:
            # (A host that runs each request on a loop of its own gets a batcher per loop.)
            self._batcher = self._new_batcher()
            self._batcher.start()
            self._loop, self.ready = loop, False
            self._warm_up = loop.create_task(self._warm(self._batcher))
        elif not self.ready and self._warm_up is not None and self._warm_up.done():
            self._warm_up = loop.create_task(self._warm(self._batcher))  # the last one failed
        return self._batcher

    def _new_batcher(self) -> MicroBatcher | ContinuousBatcher:
        """The batcher the settings ask for: continuous where the backend offers it."""
        settings = self.settings
        if settings.batching == "continuous":
            decoder = self.summarizer.continuous_decoder(
                ContinuousSettings(
                    settings.max_batch_size,
                    settings.max_batch_tokens,
                    max_wait_s=settings.max_wait_ms / 1000,
                )
            )
            if decoder is not None:
                self.metrics.decoding.set_function(lambda: decoder.in_flight)
                return ContinuousBatcher(
                    decoder,
                    max_queue=settings.max_queue,
                    on_start=self._serve_on_this_thread,
                )
            request_log.info(
                "the %s backend has no continuous batching: micro-batching instead",
                self.summarizer.backend,
            )
        return MicroBatcher(
            self._summarize_batch,
            batching=settings.batching != "off",
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            on_batch=self.metrics.observe_batch,
        )

    def _serve_on_this_thread(self) -> None:
        """Mark the decoding thread as this service's (for :class:`TruncationOnce`)."""
        _serving.set(self)

    def _summarize_batch(
        self,
        texts: list[str],
        adapters: list[str | None],
        options: GenerationOptions,
        on_summary: OnSummary,
        on_partial: OnSummary,
    ) -> list[str]:
        """One model call of the batcher, on its worker thread, known there as this service's
        (for :class:`TruncationOnce`)."""
        token = _serving.set(self)
        try:
            return self.summarizer.summarize_rows(
                texts, adapters, options, on_summary=on_summary, on_partial=on_partial
            )
        finally:
            _serving.reset(token)

    async def _warm(self, batcher: MicroBatcher | ContinuousBatcher) -> None:
        try:
            options = self.summarizer.generation_options(batch_size=self.settings.max_batch_size)
            await batcher.submit([WARM_UP], options)
        except Exception:
            # Without a lifespan (a mounted app) nothing else would read this error, and
            # /readyz would say 'starting' for ever; the next request tries again.
            request_log.exception("the warm-up summary failed; the service is not ready")
            return
        self.ready = True

    async def startup(self) -> None:
        """Start the batcher and wait for the warm-up; raise when the model fails it."""
        batcher = self.start()
        if self._warm_up is not None:
            await self._warm_up
        if not self.ready:
            await batcher.stop()
            raise RuntimeError("the model failed its warm-up summary (logged above)")

    async def shutdown(self) -> None:
        """Stop once every accepted request is answered (the drain on SIGTERM)."""
        self.ready = False
        if self._batcher is not None:
            await self._batcher.stop()
        self.adapters.close()

    def measure(self, texts: list[str], *, cut: bool = True) -> Counts | None:
        """Count the input tokens into the metrics; :class:`Rejected` for over-long inputs when
        the settings say to reject them, or the request (``cut`` False) does."""
        counts = self.meter.measure(texts)
        if counts is None:
            return None
        self.metrics.input_tokens.inc(counts.tokens)
        self.metrics.truncated.inc(len(counts.truncated))
        if counts.truncated and self.settings.over_length == "truncate" and cut:
            self._log_truncation(len(counts.truncated), len(texts))
        rejecting = self.settings.over_length == "reject"
        if counts.truncated and (rejecting or not cut):
            why = (
                "this server rejects over-long inputs instead of truncating them"
                if rejecting
                else "the request's truncation is do_not_truncate; leave it out to have "
                "them cut to that length"
            )
            raise Rejected(
                422,
                f"{_inputs(counts.truncated)} {', '.join(map(str, counts.lengths))} tokens "
                f"with the prompt, longer than the model's {counts.limit} input tokens; "
                f"shorten {'it' if len(counts.truncated) == 1 else 'them'} ({why}).",
            )
        return counts

    def _log_truncation(self, truncated: int, total: int) -> None:
        """The backends' truncation warning, through :class:`TruncationOnce` (so once per
        served model): logged here, where every request's inputs are counted, since a
        continuous decoder cuts its rows without a warning of its own."""
        if self.truncation_logged:
            return
        token = _serving.set(self)
        try:
            warn_truncated_inputs(truncated, total, self.meter.data)
        finally:
            _serving.reset(token)

    async def summarize(
        self, texts: list[str], options: GenerationOptions, on_partial: OnSummary | None = None
    ) -> list[str]:
        """The summaries of one request, through the batcher, within the request timeout;
        ``on_partial(index, text)`` hears the text decoded so far, where the backend can tell.

        Raises :class:`~dialogsum.serve.micro_batcher.QueueFull`, :class:`asyncio.TimeoutError`,
        :class:`~dialogsum.adapter_serving.UnknownAdapterError` (the adapter was unloaded
        since the request was checked) or whatever the model raised."""
        batcher = self.start()
        self.metrics.queue_depth.set(batcher.depth + 1)
        try:
            summaries = await asyncio.wait_for(
                batcher.submit(texts, options, on_partial), timeout=self.settings.request_timeout_s
            )
        finally:
            self.metrics.queue_depth.set(self.queue_depth)
        self.metrics.adapter_dialogues.labels(options.adapter or BASE_LABEL).inc(len(texts))
        if self.meter.available:
            self.metrics.output_tokens.inc(self.meter.count(summaries))
        return summaries

    def model_card(self) -> dict[str, Any]:
        """What is served: the manifest, backend and limits (``GET /v1/model``)."""
        summarizer, settings = self.summarizer, self.settings
        manifest = summarizer.manifest.model_dump(mode="json")
        export = manifest.get("export") or {}
        return {
            "id": self.model_id,
            "source": summarizer.source,
            "backend": summarizer.backend,
            "method": summarizer.method,
            "base_model": manifest.get("base_model"),
            "export_backend": export.get("backend"),
            "quantize": (export.get("options") or {}).get("quantize"),
            "parity": export.get("parity"),
            "generation_defaults": manifest.get("generation"),
            "data": manifest.get("data"),
            "adapters": sorted(summarizer.adapters()),
            "limits": {
                "max_body_bytes": settings.max_body_bytes,
                "max_inputs": settings.max_inputs,
                "max_batch_size": settings.max_batch_size,
                "batching": self.batching,
                "over_length": settings.over_length,
                "request_timeout_s": settings.request_timeout_s,
            },
        }


def _inputs(positions: list[int]) -> str:
    """``input 2 is`` or ``inputs 0, 2 are`` (positions in the request's inputs)."""
    if len(positions) == 1:
        return f"input {positions[0]} is"
    return f"inputs {', '.join(map(str, positions))} are"


def base_model_id(source: str | None) -> str:
    """The base model's id in the OpenAI-compatible API: the served folder's name
    (``served-int8``), else the hub id or bundled name it was loaded as, else ``dialogsum``
    (a model held only in memory)."""
    if not source:
        return "dialogsum"
    path = Path(source)
    return path.name if path.is_absolute() and path.name else source


def _key_bytes(key: str | None) -> bytes | None:
    """A key as bytes for a constant-time comparison; surrogateescape gives back the
    environment's own bytes where they are not UTF-8."""
    return key.encode("utf-8", "surrogateescape") if key is not None else None
