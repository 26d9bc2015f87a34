"""A backend that serves "adapters" beside the tiny model, for the tests of the service and the
commands (the onnxruntime backend's multi-adapter export is tested in its own room).

The tiny model's own torch predictor summarizes; an adapter is a folder holding a manifest (its
decoding defaults) and a tag, and a summary made with it is ``"[tag] "`` followed by the base
model's summary under the adapter's defaults: an answer checkable against ``summarize()`` offline.
Rows of different adapters run in one call of the base model, as a real multi-adapter backend
runs them; greedy decoding reports the text so far word by word (``on_partial``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from dialogsum import hookimpl
from dialogsum.adapter_serving import AdapterInfo, UnknownAdapterError
from dialogsum.plugin_api import (
    ConfigError,
    GenerationOptions,
    InferenceBackend,
    ModelError,
    ModelManifest,
    Options,
    Predictor,
)

#: The file of an adapter folder that holds its tag.
TAG_FILE = "tag.txt"


def write_adapter(
    folder: Path, tag: str, base_model: str, manifest: ModelManifest, **generation: Any
) -> Path:
    """An adapter folder for the model whose manifest is ``manifest``, tuned from
    ``base_model``, with decoding defaults ``generation``."""
    folder.mkdir(parents=True)
    record = manifest.model_copy(
        update={"method": "lora", "base_model": base_model, "peft": True, "generation": generation}
    )
    (folder / "dialogsum.json").write_text(record.model_dump_json(), encoding="utf-8")
    (folder / TAG_FILE).write_text(tag, encoding="utf-8")
    return folder


class TaggingPredictor(Predictor):
    """The tiny model's torch predictor, with tagging adapters beside it."""

    def __init__(self, base: Predictor, base_model: str) -> None:
        self.base = base
        self.manifest = base.manifest
        self.base_model = base_model
        #: The adapters served, replaced whole on every change (so a change is atomic).
        self.served: dict[str, tuple[AdapterInfo, str]] = {}
        #: The adapters of the rows of every summarize_rows call, in order.
        self.row_calls: list[list[str | None]] = []
        #: Seconds a load takes (a test holds a load open while requests are served).
        self.load_delay = 0.0
        #: Threads that ran loads, and those that ran the model.
        self.load_threads: list[str] = []
        self.model_threads: list[str] = []
        #: The options of every model call, in order.
        self.options: list[GenerationOptions] = []
        #: Seconds a model call takes when a dialogue holds "[slow]".
        self.slow_delay = 1.5

    def token_ids(self, texts: list[str]) -> list[list[int]] | None:
        return self.base.token_ids(texts)

    def adapters(self) -> dict[str, AdapterInfo]:
        return {name: info for name, (info, _) in self.served.items()}

    def load_adapter(self, name: str, source: Path) -> AdapterInfo:
        self.load_threads.append(threading.current_thread().name)
        from dialogsum.modeling import read_manifest

        try:
            manifest = read_manifest(source)
            tag = (source / TAG_FILE).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{source} is not a tagging adapter: {exc}") from None
        if manifest.base_model != self.base_model:
            raise ConfigError(
                f"Adapter {name!r} was tuned from {manifest.base_model!r}, not from this "
                f"model's base {self.base_model!r}."
            )
        time.sleep(self.load_delay)
        info = AdapterInfo(
            name=name,
            method=manifest.method or "lora",
            base_model=manifest.base_model,
            manifest=manifest,
            size_bytes=len(tag.encode()),
            source=str(source),
            details={"tag": tag},
        )
        self.served = {**self.served, name: (info, tag)}
        return info

    def unload_adapter(self, name: str) -> AdapterInfo:
        served = dict(self.served)
        if name not in served:
            raise UnknownAdapterError(name, list(served))
        info, _ = served.pop(name)
        self.served = served
        return info

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        return self._answer(dialogues, [options.adapter] * len(dialogues), options, None, None)

    def summarize_rows(
        self,
        dialogues: list[str],
        adapters: list[str | None],
        options: GenerationOptions,
        on_summary: Callable[[int, str], None] | None = None,
        on_partial: Callable[[int, str], None] | None = None,
    ) -> list[str]:
        self.row_calls.append(list(adapters))
        return self._answer(dialogues, adapters, options, on_summary, on_partial)

    def _answer(
        self,
        dialogues: list[str],
        adapters: list[str | None],
        options: GenerationOptions,
        on_summary: Callable[[int, str], None] | None,
        on_partial: Callable[[int, str], None] | None,
    ) -> list[str]:
        self.model_threads.append(threading.current_thread().name)
        self.options.append(options)
        if any("[slow]" in dialogue for dialogue in dialogues):
            time.sleep(self.slow_delay)
        served = self.served  # one set of adapters for the whole call
        for name in adapters:
            if name is not None and name not in served:
                raise UnknownAdapterError(name, list(served))
        base = self.base.summarize(dialogues, options.model_copy(update={"adapter": None}))
        answers = []
        for index, (summary, name) in enumerate(zip(base, adapters, strict=True)):
            answer = summary if name is None else f"[{served[name][1]}] {summary}"
            if on_partial is not None and options.num_beams == 1:
                words = answer.split(" ")
                for count in range(1, len(words)):
                    on_partial(index, " ".join(words[:count]))
            if on_summary is not None:
                on_summary(index, answer)
            answers.append(answer)
        return answers


class TaggingOptions(Options):
    """The tagging backend's options: the adapters to serve from the start."""

    adapters: dict[str, str] = Field(default_factory=dict, description="name -> adapter folder")


class TaggingBackend(InferenceBackend):
    """Serves a saved model with torch, and tagging adapters beside it."""

    name = "tagging"
    Options = TaggingOptions

    def load(self, model_dir: Path | str, options: Any) -> TaggingPredictor:
        from dialogsum.backends.torch import TorchBackend, TorchOptions

        base = TorchBackend().load(model_dir, TorchOptions(progress=False))
        predictor = TaggingPredictor(base, str(model_dir))
        for name, folder in options.adapters.items():
            predictor.load_adapter(name, Path(folder))
        return predictor


class TaggingPlugin:
    """The plugin registering the tagging backend."""

    @hookimpl
    def register_backends(self, register: Callable[[Any], None]) -> None:
        register(TaggingBackend())


PLUGIN = TaggingPlugin()
