"""Continuous batching: the optional backend capability, and a thread that drives it.

A backend that offers it returns a :class:`ContinuousDecoder` from
``Predictor.continuous_decoder(settings)``. Rows (one dialogue each) are added from any thread;
one thread calls :meth:`ContinuousDecoder.step` over and over: each call admits waiting rows
(their encoder pass and first decoder step) within the settings' budget, runs one decoder step
over every row in flight, and answers each row the moment its summary is final. A row admitted
while others decode joins them at the next step, instead of waiting for a whole batch to end.

The contract a backend keeps: every row's summary is the one ``summarize()`` gives it alone
with the same options, whatever else is in flight (:class:`dialogsum.testing.BackendContract`
checks it). :class:`ContinuousRunner` is the thread ``dialogsum serve`` runs one with.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from dialogsum.generation import GenerationOptions


@dataclass
class ContinuousRow:
    """One dialogue to summarize, and where its answer goes.

    The callbacks run on the decoding thread: keep them short (hand the result to another
    thread or event loop)."""

    dialogue: str
    #: Validated options (``Summarizer.generation_options``); ``options.adapter`` is the row's
    #: adapter (None: the base).
    options: GenerationOptions
    on_summary: Callable[[str], None]
    on_error: Callable[[Exception], None]
    #: Hears the summary decoded so far after each step, where the backend can tell (greedy).
    on_partial: Callable[[str], None] | None = None


@dataclass(frozen=True)
class ContinuousSettings:
    """How much a continuous decoder keeps in flight."""

    #: Most dialogues decoding at once.
    max_rows: int = 16
    #: Most tokens in flight: each dialogue counts ``beams x (input tokens + max_new_tokens)``,
    #: what its caches and steps grow with. A dialogue bigger than the budget runs alone.
    max_tokens: int = 32768
    #: Rows join the decode in groups: each join runs the encoder and copies the caches, and
    #: each group is searched apart, so a join waits until the rows that can join (those
    #: waiting, as many as ``max_rows`` and ``max_tokens`` leave room for) are at least this
    #: share of those in flight ...
    join_ratio: float = 0.25
    #: ... or until the oldest has waited this many decoder steps.
    max_waiting_steps: int = 6
    #: With nothing in flight, the first rows wait this long (seconds) for company, unless
    #: ``max_rows`` are waiting: requests that arrive a moment apart then start as one group
    #: instead of one by one (each group's start costs its own encoder and first step).
    max_wait_s: float = 0.0


class ContinuousDecoder(ABC):
    """Rows join a running decode between steps and leave as soon as they are final."""

    @abstractmethod
    def add(self, rows: list[ContinuousRow]) -> None:
        """Queue ``rows`` (safe from any thread); they are admitted by a later :meth:`step`."""

    @abstractmethod
    def step(self) -> bool:
        """Admit waiting rows and run one decoder step (one thread only); False when nothing
        is waiting or in flight."""

    @property
    @abstractmethod
    def waiting(self) -> int:
        """Rows queued and not admitted yet."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Rows admitted and not final yet."""


class ContinuousRunner:
    """A thread that steps a :class:`ContinuousDecoder` while it has work, and sleeps
    otherwise; :meth:`stop` returns once every added row is answered."""

    def __init__(self, decoder: ContinuousDecoder, *, name: str = "dialogsum-decoder") -> None:
        self.decoder = decoder
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        #: Runs on the thread before its first step (e.g. to set a context variable).
        self.on_start: Callable[[], None] | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def add(self, rows: list[ContinuousRow]) -> None:
        """Queue ``rows`` and wake the thread."""
        self.decoder.add(rows)
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Answer every row added, then stop the thread."""
        self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        if self.on_start is not None:
            self.on_start()
        while True:
            self._wake.clear()
            busy = self.decoder.step()
            if busy:
                continue
            if self._closing and not self.decoder.waiting:
                return
            self._wake.wait(0.5)


class CheckedDecoder(ContinuousDecoder):
    """A backend's decoder as the :class:`~dialogsum.Summarizer` hands it out: dialogues are
    checked when added (a :class:`~dialogsum.errors.DataError` there), and a backend's own
    failure reaches a row as a :class:`~dialogsum.errors.BackendError` naming the backend."""

    def __init__(self, decoder: ContinuousDecoder, backend: str) -> None:
        self.decoder = decoder
        #: How errors name the backend: "'onnxruntime' backend", with a plugin's distribution.
        self.backend = backend

    def add(self, rows: list[ContinuousRow]) -> None:
        from dialogsum.generation import check_dialogues

        check_dialogues([row.dialogue for row in rows])
        self.decoder.add([self._named(row) for row in rows])

    def step(self) -> bool:
        return self.decoder.step()

    @property
    def waiting(self) -> int:
        return self.decoder.waiting

    @property
    def in_flight(self) -> int:
        return self.decoder.in_flight

    def _named(self, row: ContinuousRow) -> ContinuousRow:
        from dialogsum.errors import BackendError, DialogsumError
        from dialogsum.modeling import first_line

        listener = row.on_error

        def on_error(exc: Exception) -> None:
            if not isinstance(exc, DialogsumError):
                named = BackendError(
                    f"The {self.backend} failed: {type(exc).__name__}: {first_line(exc)}."
                )
                named.__cause__ = exc
                exc = named
            listener(exc)

        return ContinuousRow(row.dialogue, row.options, row.on_summary, on_error, row.on_partial)
