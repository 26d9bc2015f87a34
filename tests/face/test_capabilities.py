"""Capabilities, not classes: a third party's torch backend gets every ability the built-in has.

The Summarizer decides whether a model can be fine-tuned, saved, merged and exported by the
predictor's declared ``torch_model`` capability, never by ``isinstance`` against the built-in
predictor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dialogsum import ConfigError, InferenceBackend, NoOptions, Summarizer, hookimpl
from dialogsum.plugin_api import GenerationOptions, ModelManifest, Predictor, TorchModel
from dialogsum.plugins import make_plugin_manager

PROBE = ["#Person1#: Where is the station?\n#Person2#: Two blocks north, next to the bank."]


class ThirdPartyPredictor(Predictor):
    """A predictor of the third party's own: greedy decoding written here, not dialogsum's."""

    def __init__(self, model: Any, tokenizer: Any, manifest: Any) -> None:
        self.model, self.tokenizer, self.manifest = model, tokenizer, manifest
        self.calls = 0

    @property
    def torch_model(self) -> TorchModel:
        """The capability that lets this predictor be tuned, saved, merged and exported."""
        return TorchModel(self.model, self.tokenizer, self.manifest)

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        import torch

        self.calls += 1
        summaries = []
        for dialogue in dialogues:
            ids = self.tokenizer([self.manifest.data.render(dialogue)], return_tensors="pt")
            with torch.inference_mode():
                output = self.model.generate(
                    **ids,
                    num_beams=1,
                    do_sample=False,
                    max_new_tokens=options.max_new_tokens or 8,
                )
            summaries.append(self.tokenizer.decode(output[0], skip_special_tokens=True).strip())
        return summaries


class ThirdPartyTorchBackend(InferenceBackend):
    name = "acme-torch"
    Options = NoOptions

    def load(self, model_dir: Path | str, options: Any) -> ThirdPartyPredictor:
        from dialogsum.modeling import load_model

        loaded = load_model(model_dir)
        return ThirdPartyPredictor(loaded.model, loaded.tokenizer, loaded.manifest)


class AcmePlugin:
    @hookimpl
    def register_backends(self, register: Callable[[Any], None]) -> None:
        register(ThirdPartyTorchBackend())


@pytest.fixture(scope="module")
def plugins() -> Any:
    manager = make_plugin_manager()  # the built-ins and installed plugins
    manager.register(AcmePlugin(), name="acme")
    return manager


def test_a_third_party_torch_backend_can_be_tuned_saved_merged_and_exported(
    plugins: Any, tiny_model_dir: Path, few_examples, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("optimum.exporters.onnx")
    acme = Summarizer.from_pretrained(tiny_model_dir, backend="acme-torch", plugins=plugins)
    assert isinstance(acme.predictor, ThirdPartyPredictor)
    assert acme.predictor.torch_model is not None  # the capability, declared by the predictor
    assert acme.summarize(PROBE) and acme.predictor.calls == 1  # its own code serves

    tuned = acme.finetune(
        few_examples,
        method="lora",
        options={"r": 4},
        training={
            "max_steps": 4,
            "logging_steps": 1,
            "progress": False,
            "learning_rate": 1e-2,
            "save_strategy": "no",
        },
        data={"max_source_length": 128, "max_target_length": 32},
    )
    assert tuned.method == "lora" and len(tuned.training.losses) >= 4  # type: ignore[union-attr]

    saved = tuned.save(tmp_path / "adapter")
    manifest = json.loads((saved / "dialogsum.json").read_text())
    assert manifest["peft"] is True and manifest["base_model"] == str(tiny_model_dir.resolve())
    reloaded = Summarizer.from_pretrained(saved, backend="acme-torch", plugins=plugins)
    assert reloaded.method == "lora" and reloaded.manifest.peft

    merged = reloaded.merge()
    assert not merged.manifest.peft and merged.manifest.merged

    folder = reloaded.export(tmp_path / "onnx")
    export = json.loads((folder / "dialogsum.json").read_text())["export"]
    assert export["parity"]["passed"] is True and export["backend"] == "onnxruntime"
    served = Summarizer.from_pretrained(folder, plugins=plugins)
    assert served.backend == "onnxruntime"
    expected = merged.summarize(PROBE, max_new_tokens=8, num_beams=1)
    assert served.summarize(PROBE, max_new_tokens=8, num_beams=1) == expected


def test_a_predictor_without_a_torch_model_cannot_be_tuned() -> None:
    class TextOnly(Predictor):
        manifest = ModelManifest()

        def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
            return ["summary"] * len(dialogues)

    summarizer = Summarizer(TextOnly(), backend="text-only")
    assert TextOnly().torch_model is None
    for action in (
        lambda: summarizer.finetune([{"dialogue": "a", "summary": "b"}]),
        lambda: summarizer.save("never-written"),
        summarizer.merge,
        lambda: summarizer.export("never-written"),
    ):
        with pytest.raises(ConfigError, match=r"needs the PyTorch model.*backend 'text-only'"):
            action()
    assert not Path("never-written").exists()
