"""The CUDA half, proven on a GPU: training rates with MFU, serving on CUDA against int8 on the
CPU cores, and bf16-on-CUDA against fp32-on-CPU agreement. One bounded run, JSON out.

    python benchmarks/gpu_check.py --out $OUT            # on a GPU machine (about 6 minutes)
    python benchmarks/gpu_check.py --dry-run --out /tmp  # the same code paths, toy sizes, CPU

Parts (each writes its own JSON file, so a part that fails leaves the others' results):

1. ``train.json``: LoRA and full fine-tuning of the FLAN-T5-base architecture (random weights
   from the model config) on real DialogSum rows, bf16, a fixed number of steps: steps/s,
   tokens/s and model FLOPs utilisation against the GPU's bf16 peak.
2. ``serve.json``: the torch backend on CUDA at batch 1, 8 and 64, greedy and 4 beams
   (summaries/s, latency), against the onnxruntime int8 backend on this machine's CPU cores.
3. ``agreement.json``: greedy summaries of the bundled dialogsum-tiny in bf16 on CUDA against
   fp32 on the CPU for 100 test dialogues (target: at least 95% identical).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: bf16 dense peak of the GPUs this check expects (TFLOP/s), for MFU.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}


def find_data(explicit: str | None) -> Path:
    """The DialogSum folder: --data, a carried copy in the checkout, or ../shared."""
    candidates = [explicit] if explicit else []
    candidates += [
        str(ROOT / ".gpu" / "dialogsum"),
        str(ROOT.parent / "shared" / "data" / "dialogsum"),
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train.jsonl").is_file():
            return Path(candidate)
    raise SystemExit(f"no DialogSum data in {candidates}")


def find_config(explicit: str | None, size: str) -> Path:
    candidates = [explicit] if explicit else []
    candidates += [
        str(ROOT / ".gpu" / f"flan-t5-{size}.config.json"),
        str(ROOT.parent / "shared" / "models" / f"flan-t5-{size}.config.json"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit(f"no model config in {candidates}")


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_cores": os.cpu_count(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gb"] = torch.cuda.get_device_properties(0).total_memory / 2**30
    import transformers

    info["transformers"] = transformers.__version__
    return info


def peak_flops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    for key, tflops in PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def random_model(config: Path, device: str, dry_run: bool) -> tuple[Path, Any]:
    """A seeded random-weight model of ``config``'s shape saved with a tokenizer; and its config."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from dialogsum.training.tiny_models import build_tiny_tokenizer

    t5 = T5Config.from_json_file(str(config))
    if dry_run:  # the same code paths at toy size
        t5.update(
            {
                "d_model": 64,
                "d_kv": 16,
                "d_ff": 128,
                "num_layers": 2,
                "num_decoder_layers": 2,
                "num_heads": 4,
            }
        )
    folder = Path(tempfile.mkdtemp(prefix="gpu-check-model-"))
    torch.manual_seed(0)
    T5ForConditionalGeneration(t5).save_pretrained(folder)
    build_tiny_tokenizer().save_pretrained(folder)
    return folder, t5


def StepTimer(device: str) -> Any:
    """A Trainer callback recording each optimizer step's wall time (CUDA synchronised)."""
    import torch
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            self.seconds.append(time.perf_counter() - self.started)

    return Timer()


def train_part(args: argparse.Namespace, data: Path, config: Path) -> dict[str, Any]:
    """LoRA and full fine-tuning: steps/s, tokens/s and MFU."""
    import torch

    from dialogsum import Summarizer
    from dialogsum.data import load_examples
    from dialogsum.registry import get_registry
    from dialogsum.training.planning import plan_run, validate_run
    from dialogsum.training.trainer import train

    device = "cuda" if torch.cuda.is_available() else "cpu"
    folder, t5 = random_model(config, device, args.dry_run)
    rows = load_examples(data, "train")[: 64 if args.dry_run else 4000]
    results: dict[str, Any] = {}
    steps = 3 if args.dry_run else args.train_steps
    for method, options, batch in (("lora", {"r": 32}, 8), ("full", {}, 16)):
        base = Summarizer.from_pretrained(
            folder, backend_options={"device": device, "progress": False}
        )
        rate = StepTimer(device)
        method_options, training_options, data_options = validate_run(
            get_registry(),
            method,
            options,
            {
                "max_steps": steps + 2,
                "batch_size": batch,
                "precision": "auto",
                "save_strategy": "no",
                "eval_strategy": "no",
                "progress": False,
                "logging_steps": 1,
            },
            {"max_source_length": 512, "max_target_length": 128},
            base.manifest.data.model_copy,
        )
        plan = plan_run(
            model=base.model,
            tokenizer=base.tokenizer,
            manifest=base.manifest,
            source=base.source,
            registry=get_registry(),
            train=rows,
            method=method,
            method_options=method_options,
            training_options=training_options,
            data_options=data_options,
        )
        lengths = [len(f["input_ids"]) + len(f["labels"]) for f in plan.train_features]
        with tempfile.TemporaryDirectory() as scratch:
            train(
                plan.module,
                plan.tokenizer,
                plan.train_features,
                None,
                plan.training,
                learning_rate=plan.learning_rate,
                checkpoint_dir=Path(scratch),
                max_target_length=128,
                callbacks=[rate],
            )
        measured = rate.seconds[2:] or rate.seconds  # the first steps pay for warm-up
        step_s = statistics.median(measured)
        mean_tokens = statistics.fmean(lengths) * batch
        parameters = sum(p.numel() for p in base.model.parameters())
        # Training FLOPs per token: about 6 x parameters (forward 2, backward 4); an encoder or
        # decoder token only passes through its own half, so 3 x parameters per token.
        flops = 3 * parameters * mean_tokens / step_s
        peak = peak_flops()
        results[method] = {
            "batch_size": batch,
            "steps_timed": len(measured),
            "steps_per_s": 1 / step_s,
            "tokens_per_s": mean_tokens / step_s,
            "parameters": parameters,
            "model_tflops": flops / 1e12,
            "mfu": None if peak is None else flops / peak,
            "precision": "bf16" if device == "cuda" else "fp32",
        }
        print(method, json.dumps(results[method]), flush=True)
    results["d_model"] = t5.d_model
    return results


def serve_part(args: argparse.Namespace, data: Path, config: Path) -> dict[str, Any]:
    """Torch on CUDA at batch 1, 8, 64 (greedy, 4 beams) against int8 on the CPU cores."""
    import torch

    from dialogsum import Summarizer
    from dialogsum.data import load_examples

    device = "cuda" if torch.cuda.is_available() else "cpu"
    folder, _ = random_model(config, device, args.dry_run)
    texts = [e.dialogue for e in load_examples(data, "test")][:64]
    params = {"max_new_tokens": 32, "min_new_tokens": 32}
    results: dict[str, Any] = {"device": device, "rows": []}
    gpu = Summarizer.from_pretrained(folder, backend_options={"device": device, "progress": False})
    export = Path(tempfile.mkdtemp(prefix="gpu-check-int8-")) / "int8"
    cpu_model = Summarizer.from_pretrained(
        folder, backend_options={"device": "cpu", "progress": False}
    )
    cpu_model.export(export, quantize="int8")
    cpu = Summarizer.from_pretrained(export, backend_options={"progress": False})
    batches = (1, 8) if args.dry_run else (1, 8, 64)
    for engine, summarizer in (("torch-" + device, gpu), ("onnxruntime-int8-cpu", cpu)):
        for beams in (1, 4):
            for batch in batches:
                inputs = texts[:batch]
                summarizer.summarize(inputs, num_beams=beams, batch_size=batch, **params)
                times = []
                for _ in range(1 if args.dry_run else 3):
                    started = time.perf_counter()
                    summarizer.summarize(inputs, num_beams=beams, batch_size=batch, **params)
                    if device == "cuda":
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - started)
                latency = statistics.median(times)
                row = {
                    "engine": engine,
                    "beams": beams,
                    "batch": batch,
                    "latency_s": latency,
                    "summaries_per_s": batch / latency,
                }
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
    return results


def agreement_part(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    """dialogsum-tiny greedy: bf16 on CUDA against fp32 on the CPU."""
    import torch

    from dialogsum import Summarizer
    from dialogsum.data import load_examples

    device = "cuda" if torch.cuda.is_available() else "cpu"
    texts = [e.dialogue for e in load_examples(data, "test")][: 10 if args.dry_run else 100]
    greedy = {"num_beams": 1, "no_repeat_ngram_size": 0}
    reference = Summarizer.from_pretrained(
        "dialogsum-tiny", backend_options={"device": "cpu", "dtype": "float32", "progress": False}
    ).summarize(texts, **greedy)
    dtype = "bfloat16" if device == "cuda" else "float32"
    served = Summarizer.from_pretrained(
        "dialogsum-tiny", backend_options={"device": device, "dtype": dtype, "progress": False}
    ).summarize(texts, **greedy)
    identical = sum(a == b for a, b in zip(reference, served, strict=True)) / len(texts)
    return {
        "dialogues": len(texts),
        "device": device,
        "dtype": dtype,
        "identical": identical,
        "target": 0.95,
        "passed": identical >= 0.95,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check")))
    parser.add_argument("--data", help="DialogSum folder (default: .gpu/dialogsum or ../shared)")
    parser.add_argument("--config", help="FLAN-T5-base config (default: .gpu or ../shared)")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--dry-run", action="store_true", help="Toy sizes, on the CPU.")
    parser.add_argument("--parts", nargs="+", default=["train", "serve", "agreement"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = find_data(args.data)
    config = find_config(args.config, "base")
    (args.out / "environment.json").write_text(json.dumps(environment(), indent=2) + "\n")
    failed = []
    for part in args.parts:
        started = time.perf_counter()
        try:
            if part == "train":
                result = train_part(args, data, config)
            elif part == "serve":
                result = serve_part(args, data, config)
            else:
                result = agreement_part(args, data)
            result["seconds"] = time.perf_counter() - started
            (args.out / f"{part}.json").write_text(json.dumps(result, indent=2) + "\n")
            print(f"{part}: done in {result['seconds']:.0f} s", flush=True)
        except Exception:  # one part's failure must not cost the others' measurements
            failed.append(part)
            (args.out / f"{part}.error.txt").write_text(traceback.format_exc())
            print(f"{part}: FAILED\n{traceback.format_exc()}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
