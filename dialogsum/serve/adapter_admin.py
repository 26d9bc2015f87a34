"""Adapters loaded and unloaded while the service runs.

A change runs on a thread of its own, never on the micro-batcher's model thread, so the requests
in flight and those queued go on being served while an adapter loads; the predictor swaps it in
atomically (``Predictor.load_adapter``). Changes run one at a time, so that whether a load
replaced an adapter is known for certain. A folder unpacked from an upload is kept while its
adapter is served (a backend may read its files after loading) and removed when the adapter is
unloaded or replaced, or when the service stops.

This module imports no FastAPI.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from dialogsum.adapter_serving import AdapterInfo
    from dialogsum.serve.metrics import ServeMetrics
    from dialogsum.summarizer import Summarizer


class AdapterChange(NamedTuple):
    """A loaded adapter, and whether it replaced one of the same name."""

    info: AdapterInfo
    replaced: bool


class AdapterAdmin:
    """Loads and unloads the adapters of one service, and keeps the folders of uploaded ones."""

    def __init__(self, summarizer: Summarizer, metrics: ServeMetrics) -> None:
        self.summarizer = summarizer
        self.metrics = metrics
        #: When the service started: the ``created`` time of what it served from the start.
        self.started = int(time.time())
        #: When each adapter was loaded here (those the model came with are not listed).
        self.loaded_at: dict[str, int] = {}
        self._uploads: dict[str, Path] = {}  # adapter -> the folder its upload was unpacked in
        self._root: Path | None = None
        self._lock: asyncio.Lock | None = None

    def created(self, name: str | None) -> int:
        """When the base (``None``) or adapter ``name`` began to be served (Unix seconds)."""
        return self.loaded_at.get(name, self.started) if name is not None else self.started

    def upload_folder(self) -> Path:
        """A new, empty folder for one upload, under a folder of this service's own."""
        if self._root is None or not self._root.is_dir():
            self._root = Path(tempfile.mkdtemp(prefix="dialogsum-adapters-"))
        return Path(tempfile.mkdtemp(prefix="upload-", dir=self._root))

    async def load(self, name: str, folder: Path, upload: Path | None = None) -> AdapterChange:
        """Serve the adapter in ``folder`` as ``name``; ``upload``, the folder an upload was
        unpacked in, is kept while the adapter is served (and removed if it fails to load).

        Raises what ``Summarizer.load_adapter`` raises; nothing changes then."""
        async with self._changes():
            replaced = name in self.summarizer.adapters()
            try:
                info = await asyncio.to_thread(self.summarizer.load_adapter, name, folder)
            except BaseException:
                self.metrics.adapter_loads.labels("failed").inc()
                if upload is not None:
                    shutil.rmtree(upload, ignore_errors=True)
                raise
            self._forget(name)
            if upload is not None:
                self._uploads[name] = upload
            self.loaded_at[name] = int(time.time())
            self.metrics.adapter_loads.labels("replaced" if replaced else "loaded").inc()
            return AdapterChange(info, replaced)

    async def unload(self, name: str) -> AdapterInfo:
        """Stop serving adapter ``name``; raises ``UnknownAdapterError`` when it is not loaded."""
        async with self._changes():
            info = await asyncio.to_thread(self.summarizer.unload_adapter, name)
            self._forget(name)
            self.metrics.adapter_unloads.inc()
            return info

    def close(self) -> None:
        """Remove every unpacked upload (the service is stopping)."""
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        self._uploads.clear()

    def _forget(self, name: str) -> None:
        self.loaded_at.pop(name, None)
        upload = self._uploads.pop(name, None)
        if upload is not None:
            shutil.rmtree(upload, ignore_errors=True)

    def _changes(self) -> asyncio.Lock:
        # Made on first use, on the loop that serves (a lock made elsewhere may bind to another).
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock
