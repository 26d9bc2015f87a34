"""CPU serving speed, in one run: PyTorch eager vs dialogsum's onnxruntime int8 vs CTranslate2.

Two models:

- the FLAN-T5-base architecture with random weights (from ../shared/models), random 200- and
  512-token inputs, exactly 32 new tokens, greedy and 4 beams, batch 1 and 8;
- the bundled dialogsum-tiny with its own decoding defaults (4 beams, no repeated trigrams),
  16 DialogSum test dialogues summarized one at a time and as one batch of 16.

Engines: PyTorch eager (transformers ``generate``), dialogsum's onnxruntime backend on the int8
export (batch-invariant int8), and the dialogsum-ctranslate2 plugin on its int8 export
(CTranslate2 int8). All on 2 threads. Every cell runs in its own process, one after another,
so timings do not contend; ratios are against PyTorch in the same run. Writes
benchmarks/results/cpu_serving.json and prints the table for docs/benchmarks.md.

    python benchmarks/cpu_serving.py            # about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, config_path, random_model_exports

NEW_TOKENS = 32
THREADS = 2
ENGINES = ("pytorch", "onnxruntime-int8", "ctranslate2-int8")


def random_inputs(batch: int, tokens: int) -> list[list[int]]:
    import numpy as np

    rng = np.random.default_rng(batch * 1000 + tokens)
    return [[*rng.integers(3, 32000, tokens - 1).tolist(), 1] for _ in range(batch)]


def base_runner(engine: str, batch: int, beams: int, tokens: int, work: Path) -> Any:
    """A no-argument function that decodes one batch with ``engine`` (FLAN-T5-base)."""
    ids = random_inputs(batch, tokens)
    if engine == "pytorch":
        import torch
        from transformers import T5ForConditionalGeneration

        torch.set_num_threads(THREADS)
        model = T5ForConditionalGeneration.from_pretrained(work / "pytorch").eval()
        tensor = torch.tensor(ids)

        def run() -> None:
            with torch.inference_mode():
                model.generate(
                    input_ids=tensor,
                    attention_mask=torch.ones_like(tensor),
                    do_sample=False,
                    num_beams=beams,
                    max_new_tokens=NEW_TOKENS,
                    min_new_tokens=NEW_TOKENS,
                )

        return run
    if engine == "onnxruntime-int8":
        from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor
        from dialogsum.generation import GenerationOptions

        predictor = OnnxPredictor(work / "onnx-int8", threads=THREADS, progress=False)
        mask = [[1] * len(row) for row in ids]
        options = GenerationOptions(
            max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, num_beams=beams
        )
        return lambda: predictor.generate_ids(ids, mask, options)
    from dialogsum_ctranslate2.predictor import CTranslate2Predictor

    from dialogsum.generation import GenerationOptions

    translator = CTranslate2Predictor(work / "ct2-int8", threads=THREADS, progress=False)
    options = GenerationOptions(
        max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, num_beams=beams
    )
    return lambda: translator.generate_ids(ids, options)


def tiny_runner(engine: str, batch: int, work: Path) -> Any:
    """Summarize 16 test dialogues with dialogsum-tiny's defaults, ``batch`` at a time."""
    from dialogsum import Summarizer
    from dialogsum.data import load_examples, sample_path

    texts = [e.dialogue for e in load_examples(sample_path("test"))[:16]]
    if engine == "pytorch":
        import torch

        torch.set_num_threads(THREADS)
        summarizer = Summarizer.from_pretrained(
            "dialogsum-tiny", backend_options={"progress": False}
        )
    elif engine == "onnxruntime-int8":
        summarizer = Summarizer.from_pretrained(
            work / "tiny-int8", backend_options={"progress": False, "threads": THREADS}
        )
    else:
        summarizer = Summarizer.from_pretrained(
            work / "tiny-ct2-int8", backend_options={"progress": False, "threads": THREADS}
        )
    if batch == 1:
        return lambda: [summarizer.summarize([text], batch_size=1) for text in texts]
    return lambda: summarizer.summarize(texts, batch_size=batch)


def worker(cell: dict[str, Any], repeats: int, work: Path) -> dict[str, float]:
    """Time one cell in this process: a warm-up, then the median of ``repeats`` runs."""
    if cell["model"] == "flan-t5-base":
        run = base_runner(cell["engine"], cell["batch"], cell["beams"], cell["tokens"], work)
    else:
        run = tiny_runner(cell["engine"], cell["batch"], work)
    run()  # warm-up: first-call allocations and graph set-up are not serving cost
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "min_s": min(times)}


def cells(tokens: list[int]) -> list[dict[str, Any]]:
    """Every measured configuration, in the order they run."""
    result = []
    for length in tokens:
        for beams in (1, 4):
            for batch in (1, 8):
                for engine in ENGINES:
                    result.append(
                        {
                            "model": "flan-t5-base",
                            "engine": engine,
                            "tokens": length,
                            "beams": beams,
                            "batch": batch,
                        }
                    )
    for batch in (1, 16):
        for engine in ENGINES:
            result.append({"model": "dialogsum-tiny", "engine": engine, "batch": batch})
    return result


def prepare(work: Path) -> None:
    """The FLAN-T5-base exports and dialogsum-tiny's int8 exports, ONNX and CTranslate2."""
    from dialogsum import Summarizer

    folders = random_model_exports(config_path("base"), work)
    exports = (
        (folders["pytorch"], work / "ct2-int8", "ctranslate2"),
        ("dialogsum-tiny", work / "tiny-int8", "onnxruntime"),
        ("dialogsum-tiny", work / "tiny-ct2-int8", "ctranslate2"),
    )
    for model, folder, backend in exports:
        if not (folder / "dialogsum.json").exists():
            Summarizer.from_pretrained(model, backend_options={"progress": False}).export(
                folder, backend=backend, quantize="int8", overwrite=True
            )


def label(row: dict[str, Any]) -> str:
    if row["model"] == "flan-t5-base":
        decoding = "greedy" if row["beams"] == 1 else f"{row['beams']} beams"
        return f"flan-t5-base | {row['tokens']} | {decoding} | {row['batch']}"
    mode = "one at a time" if row["batch"] == 1 else f"one batch of {row['batch']}"
    return f"dialogsum-tiny | 16 dialogues | defaults | {mode}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dialogsum-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, nargs="+", default=[200, 512])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker), args.repeats, args.work)))
        return 0
    if not config_path("base").is_file():
        print(f"no model config at {config_path('base')}", file=sys.stderr)
        return 1
    prepare(args.work)
    rows: list[dict[str, Any]] = []
    environment = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    for cell in cells(args.tokens):
        command = [
            sys.executable,
            __file__,
            "--work",
            str(args.work),
            "--repeats",
            str(args.repeats),
            "--worker",
            json.dumps(cell),
        ]
        output = subprocess.run(
            command, check=True, capture_output=True, text=True, env=environment
        ).stdout
        rows.append({**cell, **json.loads(output.strip().splitlines()[-1])})
        print(f"{label(cell)} | {cell['engine']}: {rows[-1]['median_s'] * 1000:.0f} ms", flush=True)
    for row in rows:
        same = {k: v for k, v in row.items() if k in ("model", "tokens", "beams", "batch")}
        baseline = next(
            r
            for r in rows
            if r["engine"] == "pytorch" and all(r.get(k) == v for k, v in same.items())
        )
        row["speedup_vs_pytorch"] = baseline["median_s"] / row["median_s"]
    meta = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": THREADS,
        "repeats": args.repeats,
        "new_tokens": NEW_TOKENS,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cpu_serving.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
    )
    print(
        "\n| model | input tokens | decoding | batch | PyTorch | dialogsum int8 | CTranslate2 int8 |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if row["engine"] != "pytorch":
            continue
        key = label(row)
        by_engine = {r["engine"]: r for r in rows if label(r) == key}
        cells_text = [f"{by_engine['pytorch']['median_s'] * 1000:.0f} ms"] + [
            f"{by_engine[e]['median_s'] * 1000:.0f} ms ({by_engine[e]['speedup_vs_pytorch']:.2f}x)"
            for e in ENGINES[1:]
        ]
        print(f"| {key} | {' | '.join(cells_text)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
