"""The torch backend on CUDA (skipped where no CUDA GPU is present)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dialogsum import Summarizer  # noqa: E402
from dialogsum.backends.torch import resolve_dtype  # noqa: E402
from dialogsum.errors import BackendError  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
PROBE = ["#Person1#: Is the meeting at ten?\n#Person2#: No, it moved to eleven."]


def test_cpu_resolves_to_float32() -> None:
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_asking_for_cuda_without_a_gpu(tiny_model_dir: Path) -> None:
    with pytest.raises(
        BackendError, match=r"device='cuda' was asked for, but PyTorch sees no CUDA GPU"
    ):
        Summarizer.from_pretrained(tiny_model_dir, backend_options={"device": "cuda"})


@pytest.mark.cuda
@cuda
def test_cuda_serves_in_bf16_and_agrees_with_cpu(tiny_model_dir: Path) -> None:
    gpu = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    parameter = next(gpu.model.parameters())
    assert parameter.device.type == "cuda"
    assert parameter.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
    fp32 = Summarizer.from_pretrained(
        tiny_model_dir, backend_options={"device": "cuda", "dtype": "float32", "progress": False}
    )
    cpu = Summarizer.from_pretrained(
        tiny_model_dir, backend_options={"device": "cpu", "progress": False}
    )
    assert fp32.summarize(PROBE, max_new_tokens=12) == cpu.summarize(PROBE, max_new_tokens=12)
    assert len(gpu.summarize(PROBE * 3, max_new_tokens=12, num_beams=4)) == 3


@pytest.mark.cuda
@cuda
def test_cuda_finetune_trains_in_bf16(tiny_model_dir: Path, few_examples) -> None:  # type: ignore[no-untyped-def]
    base = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    tuned = base.finetune(
        few_examples * 2,
        method="lora",
        options={"r": 4},
        training={
            "max_steps": 12,
            "logging_steps": 1,
            "progress": False,
            "learning_rate": 1e-2,
            "save_strategy": "no",
        },
    )
    losses = tuned.training.losses  # type: ignore[union-attr]
    assert sum(losses[-3:]) < sum(losses[:3])
    assert next(tuned.model.parameters()).device.type == "cuda"
