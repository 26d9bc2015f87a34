"""Shared fixtures: dialogsum's own test kit, as plugin authors use it, the full corpus, and the
expensive artefacts that several rooms use, each built once per session.

``dialogsum.testing`` provides ``tiny_model_dir``, ``tiny_model``, ``tiny_tokenizer``,
``plugin_manager``, ``sample_dir``, ``few_examples`` and ``one_torch_thread``, and keeps the
session offline (no hub calls, no telemetry).

The session fixtures below are read-only for their users: a test that changes a folder copies
it first. Each is built only when a collected test asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .training_runs import train

if TYPE_CHECKING:
    from dialogsum import Summarizer
    from dialogsum.data import Example

pytest_plugins = ["dialogsum.testing"]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dialogsum"

#: A fine-tuning run of one step, logged, with no checkpoint: enough to make an adapter.
ONE_STEP = {"max_steps": 1, "progress": False, "save_strategy": "no", "logging_steps": 1}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full DialogSum corpus beside the checkout; tests using it skip where it is absent."""
    if not (SHARED_DATA / "test.jsonl").is_file():
        pytest.skip(f"the full DialogSum corpus is not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread (the kit's ``one_torch_thread`` says why)."""


@pytest.fixture(scope="session")
def lora_run_dir(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, sample_dir: Path
) -> Path:
    """The run folder of ``dialogsum train`` with ``training_runs.CHECKPOINTED_RUN`` (LoRA,
    a checkpoint at every step) over the sample's validation split, run to its end in a
    process of its own: the result every repeated, resumed or budgeted run must reproduce."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = train(tiny_model_dir, sample_dir / "validation.jsonl", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="session")
def bundled_lora_dir(tmp_path_factory: pytest.TempPathFactory, few_examples: list[Example]) -> Path:
    """A LoRA adapter tuned from the bundled dialogsum-tiny, saved: it records that name."""
    from dialogsum import Summarizer

    base = Summarizer.from_pretrained("dialogsum-tiny", backend_options={"progress": False})
    tuned = base.finetune(few_examples[:4], method="lora", options={"r": 2}, training=ONE_STEP)
    return tuned.save(tmp_path_factory.mktemp("bundled") / "lora")


@pytest.fixture(scope="session")
def onnx_export_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported to ONNX (fp32) by the onnxruntime backend."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("optimum.exporters.onnx")
    from dialogsum import Summarizer

    model = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    return model.export(tmp_path_factory.mktemp("exports") / "onnx")


@pytest.fixture(scope="session")
def lora_summarizer(tiny_model_dir: Path, few_examples: list[Example]) -> Summarizer:
    """The tiny model after six steps of LoRA (r=4), in memory, served by torch."""
    from dialogsum import Summarizer

    base = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    return base.finetune(
        few_examples,
        method="lora",
        options={"r": 4},
        training={"max_steps": 6, "progress": False, "learning_rate": 1e-2, "save_strategy": "no"},
    )


@pytest.fixture(scope="session")
def lora_export_dir(lora_summarizer: Summarizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``lora_summarizer`` exported to ONNX (fp32, the adapter merged)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("optimum.exporters.onnx")
    return lora_summarizer.export(tmp_path_factory.mktemp("exports") / "lora")


ADAPTER_TRAINING = {"max_steps": 3, "progress": False, "learning_rate": 2e-2, "save_strategy": "no"}


@pytest.fixture(scope="session")
def adapter_runs(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, few_examples: list[Example]
) -> dict[str, Path]:
    """Saved adapters of the tiny model: LoRA ``support`` (r=4) and ``sales`` (r=2) on q and v,
    ``prompted`` (prompt tuning, 4 tokens), and ``wide`` (LoRA on q, k, v and o)."""
    from dialogsum import Summarizer

    base = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    folder = tmp_path_factory.mktemp("adapter-runs")
    plan: dict[str, tuple[list[Example], str, dict[str, Any]]] = {
        "support": (few_examples, "lora", {"r": 4, "dropout": 0.0}),
        "sales": (few_examples[2:], "lora", {"r": 2, "dropout": 0.0}),
        "prompted": (few_examples, "prompt_tuning", {"num_virtual_tokens": 4}),
        "wide": (few_examples, "lora", {"r": 2, "target_modules": ["q", "k", "v", "o"]}),
    }
    runs = {}
    for name, (examples, method, options) in plan.items():
        tuned = base.finetune(examples, method=method, options=options, training=ADAPTER_TRAINING)
        runs[name] = tuned.save(folder / name)
    return runs


@pytest.fixture(scope="session")
def multi_adapter_export(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, adapter_runs: dict[str, Path]
) -> Path:
    """The tiny model exported (int8) with ``support``, ``sales`` and ``prompted`` beside it."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("optimum.exporters.onnx")
    from dialogsum import Summarizer

    base = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    chosen = {name: adapter_runs[name] for name in ("support", "sales", "prompted")}
    return base.export(
        tmp_path_factory.mktemp("multi") / "export", adapters=chosen, quantize="int8"
    )
