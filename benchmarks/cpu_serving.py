"""CPU serving speed: PyTorch eager vs onnxruntime fp32 vs onnxruntime int8, in one run.

FLAN-T5-base architecture with random weights (from ../shared/models), 200-token inputs, exactly
32 new tokens (greedy, min_new_tokens=32), 2 threads, batch 1 and batch 8. Each configuration
runs in its own process, one after another, so timings do not contend and peak memory (max RSS)
is the configuration's own. Writes benchmarks/results/cpu_serving.json, docs/benchmarks.md's
table and docs/benchmarks.png.

    python benchmarks/cpu_serving.py            # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, ROOT, config_path, random_model_exports

INPUT_TOKENS = 200
NEW_TOKENS = 32
THREADS = 2
ENGINES = ("pytorch", "onnxruntime-fp32", "onnxruntime-int8")


def inputs(batch: int, vocab: int) -> list[list[int]]:
    import numpy as np

    rng = np.random.default_rng(batch)
    return [[*rng.integers(3, vocab, INPUT_TOKENS - 1).tolist(), 1] for _ in range(batch)]


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM; ru_maxrss survives fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(engine: str, batch: int, repeats: int, work: Path) -> dict[str, float]:
    """Time one engine at one batch size in this process."""
    if engine == "pytorch":
        import torch
        from transformers import T5ForConditionalGeneration

        torch.set_num_threads(THREADS)
        model = T5ForConditionalGeneration.from_pretrained(work / "pytorch").eval()
        ids = torch.tensor(inputs(batch, 32000))

        def run() -> None:
            with torch.inference_mode():
                model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=False,
                    num_beams=1,
                    max_new_tokens=NEW_TOKENS,
                    min_new_tokens=NEW_TOKENS,
                )
    else:
        from dialogsum.generation import GenerationOptions
        from dialogsum.onnx.predictor import OnnxPredictor

        folder = work / ("onnx-fp32" if engine.endswith("fp32") else "onnx-int8")
        predictor = OnnxPredictor(folder, threads=THREADS, progress=False)
        ids = inputs(batch, 32000)
        mask = [[1] * len(row) for row in ids]
        options = GenerationOptions(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)

        def run() -> None:
            predictor.generate_ids(ids, mask, options)

    run()  # warm-up: first-call allocations and graph set-up are not serving cost
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    return {
        "median_s": median,
        "min_s": min(times),
        "tokens_per_s": batch * NEW_TOKENS / median,
        "peak_rss_mb": peak_rss_mb(),
    }


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({int(r["batch"]) for r in rows})  # type: ignore[call-overload]
    figure, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 3.6))
    for axis, batch in zip(axes, batches, strict=True):
        subset = [r for r in rows if r["batch"] == batch]
        names = [str(r["engine"]) for r in subset]
        speed = [float(r["tokens_per_s"]) for r in subset]  # type: ignore[arg-type]
        bars = axis.bar(names, speed, color=["#8c8c8c", "#4c72b0", "#55a868"])
        for bar, row in zip(bars, subset, strict=True):
            axis.annotate(
                f"{float(row['speedup']):.1f}x",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),  # type: ignore[arg-type]
                ha="center",
                va="bottom",
            )
        axis.set_title(f"batch {batch}")
        axis.set_ylabel("generated tokens / s")
    figure.suptitle(
        f"FLAN-T5-base architecture, {INPUT_TOKENS}-token input, {NEW_TOKENS} new tokens, {THREADS} threads"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=config_path("base"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/dialogsum-bench"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--worker", nargs=2, metavar=("ENGINE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.repeats, args.work)))
        return 0
    if not args.config.is_file():
        print(f"no model config at {args.config}", file=sys.stderr)
        return 1
    random_model_exports(args.config, args.work)
    rows: list[dict[str, object]] = []
    for batch in args.batches:
        for engine in ENGINES:
            command = [
                sys.executable,
                __file__,
                "--work",
                str(args.work),
                "--repeats",
                str(args.repeats),
                "--worker",
                engine,
                str(batch),
            ]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            rows.append({"engine": engine, "batch": batch, **result})
            print(
                f"batch {batch} {engine:18} median {result['median_s'] * 1000:8.0f} ms  "
                f"{result['tokens_per_s']:7.1f} tok/s  peak {result['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    for row in rows:
        baseline = next(r for r in rows if r["batch"] == row["batch"] and r["engine"] == "pytorch")
        row["speedup"] = float(baseline["median_s"]) / float(row["median_s"])  # type: ignore[arg-type]
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "repeats": args.repeats,
        "input_tokens": INPUT_TOKENS,
        "new_tokens": NEW_TOKENS,
        "threads": THREADS,
        "config": args.config.name,
    }
    (RESULTS / "cpu_serving.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
    )
    plot(rows, ROOT / "docs" / "benchmarks.png")
    for row in rows:
        print(
            f"| {row['batch']} | {row['engine']} | {float(row['median_s']) * 1000:.0f} | "  # type: ignore[arg-type]
            f"{float(row['tokens_per_s']):.1f} | {float(row['speedup']):.2f}x | {float(row['peak_rss_mb']):.0f} |"
        )  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
