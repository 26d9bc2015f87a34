"""CPU serving speed, in one run: PyTorch eager vs dialogsum's onnxruntime int8 vs CTranslate2
vs onnxruntime's own BeamSearch operator.

Two models:

- the FLAN-T5-base architecture with random weights (from ../shared/models), random 200- and
  512-token inputs, exactly 32 new tokens, greedy and 4 beams, batch 1 and 8;
- the bundled dialogsum-tiny with its own decoding defaults (4 beams, no repeated trigrams),
  16 DialogSum test dialogues summarized one at a time and as one batch of 16.

Engines: PyTorch eager (transformers ``generate``), dialogsum's onnxruntime backend on the int8
export (batch-invariant int8), the dialogsum-ctranslate2 plugin on its int8 export
(CTranslate2 int8), and onnxruntime's ``BeamSearch`` contrib operator, which runs the whole
decode loop in C++ over int8 sub-graphs quantized per tensor by ``quantize_dynamic`` (built by
ort_generation.py; greedy is one beam). ``--engines`` can add a fifth: the same operator over
sub-graphs quantized as dialogsum's exports are (per row), which tells the operator's loop
apart from its quantization. All on 2 threads. Every cell runs in its own process,
one after another, so timings do not contend; ratios are against PyTorch in the same run.
Each cell also records how many of its outputs (token ids; summaries for dialogsum-tiny) are
PyTorch's, and, batched, how many are what the same row gets alone. Writes
benchmarks/results/cpu_serving.json (or --output) and prints the tables for docs/benchmarks.md.

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, config_path, current_export, random_model_exports
from ort_generation import MODEL_FILE, BeamSearchModel, build_beam_search

NEW_TOKENS = 32
THREADS = 2
BEAM_SEARCH = "onnxruntime-beamsearch-int8"
MODELS = ("flan-t5-base", "dialogsum-tiny")
#: The BeamSearch operator over sub-graphs quantized per row, as dialogsum's exports are.
BEAM_SEARCH_ROWS = "onnxruntime-beamsearch-rowint8"
#: The engines a run measures unless ``--engines`` says otherwise.
ENGINES = ("pytorch", "onnxruntime-int8", "ctranslate2-int8", BEAM_SEARCH)
COLUMNS = {
    "pytorch": "PyTorch",
    "onnxruntime-int8": "dialogsum int8",
    "ctranslate2-int8": "CTranslate2 int8",
    BEAM_SEARCH: "onnxruntime BeamSearch int8",
    BEAM_SEARCH_ROWS: "onnxruntime BeamSearch, dialogsum's int8",
}
#: Each BeamSearch engine's graphs: its quantization, and its work folders (FLAN-T5-base,
#: dialogsum-tiny).
BEAM_SEARCH_GRAPHS = {
    BEAM_SEARCH: ("tensor", "beamsearch-int8", "tiny-beamsearch-int8"),
    BEAM_SEARCH_ROWS: ("row", "beamsearch-rowint8", "tiny-beamsearch-rowint8"),
}


def random_inputs(batch: int, tokens: int) -> list[list[int]]:
    import numpy as np

    rng = np.random.default_rng(batch * 1000 + tokens)
    return [[*rng.integers(3, 32000, tokens - 1).tolist(), 1] for _ in range(batch)]


def base_runner(engine: str, beams: int, work: Path) -> Callable[[list[list[int]]], Any]:
    """FLAN-T5-base with ``engine`` loaded: a function of a batch of ids that returns a
    no-argument function decoding that batch (and returning what the engine returns)."""
    if engine == "pytorch":
        import torch
        from transformers import T5ForConditionalGeneration

        torch.set_num_threads(THREADS)
        model = T5ForConditionalGeneration.from_pretrained(work / "pytorch").eval()

        def torch_batch(ids: list[list[int]]) -> Callable[[], Any]:
            tensor = torch.tensor(ids)

            def run() -> Any:
                with torch.inference_mode():
                    return model.generate(
                        input_ids=tensor,
                        attention_mask=torch.ones_like(tensor),
                        do_sample=False,
                        num_beams=beams,
                        max_new_tokens=NEW_TOKENS,
                        min_new_tokens=NEW_TOKENS,
                    )

            return run

        return torch_batch
    if engine in BEAM_SEARCH_GRAPHS:
        search = BeamSearchModel(work / BEAM_SEARCH_GRAPHS[engine][1] / MODEL_FILE, THREADS)

        def beam_search_batch(ids: list[list[int]]) -> Callable[[], Any]:
            mask = [[1] * len(row) for row in ids]
            return lambda: search.generate_ids(
                ids, mask, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, num_beams=beams
            )

        return beam_search_batch
    from dialogsum.generation import GenerationOptions

    options = GenerationOptions(
        max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, num_beams=beams
    )
    if engine == "onnxruntime-int8":
        from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor

        predictor = OnnxPredictor(work / "onnx-int8", threads=THREADS, progress=False)

        def onnx_batch(ids: list[list[int]]) -> Callable[[], Any]:
            mask = [[1] * len(row) for row in ids]
            return lambda: predictor.generate_ids(ids, mask, options)

        return onnx_batch
    from dialogsum_ctranslate2.predictor import CTranslate2Predictor

    translator = CTranslate2Predictor(work / "ct2-int8", threads=THREADS, progress=False)
    return lambda ids: lambda: translator.generate_ids(ids, options)


def token_rows(engine: str, output: Any, eos: int = 1) -> list[list[int]]:
    """Each row's new token ids up to and including eos, whatever ``engine`` returned."""
    from dialogsum.generation import cut_at_eos

    rows = output.tolist() if hasattr(output, "tolist") else output
    if engine == "pytorch" or engine in BEAM_SEARCH_GRAPHS:  # these return the start token too
        rows = [row[1:] for row in rows]
    return [cut_at_eos(list(row), eos) for row in rows]


def tiny_runner(engine: str, batch: int, work: Path) -> Any:
    """Summarize 16 test dialogues with dialogsum-tiny's defaults, ``batch`` at a time."""
    from dialogsum import Summarizer
    from dialogsum.data import load_examples, sample_path

    texts = [e.dialogue for e in load_examples(sample_path("test"))[:16]]
    if engine in BEAM_SEARCH_GRAPHS:
        return tiny_beam_search(texts, batch, work, BEAM_SEARCH_GRAPHS[engine][2])
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
        return lambda: [summarizer.summarize([text], batch_size=1)[0] for text in texts]
    return lambda: summarizer.summarize(texts, batch_size=batch)


def tiny_beam_search(
    texts: list[str], batch: int, work: Path, graph: str
) -> Callable[[], list[str]]:
    """dialogsum-tiny's BeamSearch graph behind the steps every backend shares: the prompt,
    tokenizer and truncation of the model's manifest, length-sorted padded batches, decoding."""
    from tokenizers import Tokenizer

    from dialogsum.generation import GenerationOptions, encode_with_tokenizers, summarize_batches
    from dialogsum.modeling import read_manifest, resolve_model_dir

    folder = resolve_model_dir("dialogsum-tiny")
    assert folder is not None
    manifest = read_manifest(folder)
    options = GenerationOptions(**manifest.generation)
    config = json.loads((folder / "config.json").read_text())
    eos, pad = int(config["eos_token_id"]), int(config["pad_token_id"])
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    search = BeamSearchModel(work / graph / MODEL_FILE, THREADS)

    def run_batch(ids: list[list[int]], mask: list[list[int]]) -> list[str]:
        sequences = search.generate_ids(
            ids,
            mask,
            max_new_tokens=options.max_new_tokens or manifest.data.max_target_length,
            min_new_tokens=options.min_new_tokens,
            num_beams=options.num_beams,
            length_penalty=options.length_penalty,
        )
        return list(tokenizer.decode_batch(token_rows(BEAM_SEARCH, sequences, eos)))

    def summarize(chunk: list[str]) -> list[str]:
        sources = encode_with_tokenizers(chunk, tokenizer, eos, manifest.data)
        return summarize_batches(sources, batch, pad, run_batch, progress=False)

    if batch == 1:
        return lambda: [summarize([text])[0] for text in texts]
    return lambda: summarize(texts)


def worker(cell: dict[str, Any], repeats: int, work: Path) -> dict[str, Any]:
    """Time one cell in this process: a warm-up, then the median of ``repeats`` runs; with
    the outputs (token ids or summaries) and, for a batch of FLAN-T5-base rows decoded by an
    int8 engine, how many rows decode alone to what they decoded to in the batch."""
    engine = cell["engine"]
    decode = None
    if cell["model"] == "flan-t5-base":
        decode = base_runner(engine, cell["beams"], work)
        ids = random_inputs(cell["batch"], cell["tokens"])
        run = decode(ids)
    else:
        run = tiny_runner(engine, cell["batch"], work)
    output = run()  # warm-up: first-call allocations and graph set-up are not serving cost
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    result: dict[str, Any] = {"median_s": statistics.median(times), "min_s": min(times)}
    if decode is None:
        result["outputs"] = output
        return result
    result["outputs"] = token_rows(engine, output)
    if cell["batch"] > 1 and engine != "pytorch":
        alone = [token_rows(engine, decode([row])())[0] for row in ids]
        result["rows_equal_alone"] = sum(
            a == b for a, b in zip(alone, result["outputs"], strict=True)
        )
    return result


def cells(
    tokens: list[int], engines: tuple[str, ...], models: Sequence[str] = MODELS
) -> list[dict[str, Any]]:
    """Every measured configuration, in the order they run."""
    result = []
    for length in tokens if "flan-t5-base" in models else []:
        for beams in (1, 4):
            for batch in (1, 8):
                for engine in engines:
                    result.append(
                        {
                            "model": "flan-t5-base",
                            "engine": engine,
                            "tokens": length,
                            "beams": beams,
                            "batch": batch,
                        }
                    )
    for batch in (1, 16) if "dialogsum-tiny" in models else ():
        for engine in engines:
            result.append({"model": "dialogsum-tiny", "engine": engine, "batch": batch})
    return result


def prepare(work: Path, engines: tuple[str, ...]) -> None:
    """The FLAN-T5-base exports and dialogsum-tiny's int8 exports: ONNX, CTranslate2 and the
    BeamSearch graphs of ``engines`` (each reused when a previous run left it)."""
    from dialogsum import Summarizer
    from dialogsum.modeling import read_manifest, resolve_model_dir

    folders = random_model_exports(config_path("base"), work)
    tiny = resolve_model_dir("dialogsum-tiny")
    assert tiny is not None
    ngrams = int(read_manifest(tiny).generation.get("no_repeat_ngram_size", 0))
    for engine, (quantization, base_graph, tiny_graph) in BEAM_SEARCH_GRAPHS.items():
        if engine in engines:
            build_beam_search(folders["pytorch"], work / base_graph, quantization=quantization)
            build_beam_search(
                tiny, work / tiny_graph, no_repeat_ngram_size=ngrams, quantization=quantization
            )
    exports = (
        (folders["pytorch"], work / "ct2-int8", "ctranslate2"),
        ("dialogsum-tiny", work / "tiny-int8", "onnxruntime"),
        ("dialogsum-tiny", work / "tiny-ct2-int8", "ctranslate2"),
    )
    for model, folder, backend in exports:
        if not current_export(folder):
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
    parser.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    parser.add_argument("--output", type=Path, default=RESULTS / "cpu_serving.json")
    parser.add_argument(
        "--engines",
        type=engine_list,
        default=ENGINES,
        help=f"comma-separated, PyTorch first (default {','.join(ENGINES)}; also "
        f"{BEAM_SEARCH_ROWS})",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker), args.repeats, args.work)))
        return 0
    if not config_path("base").is_file():
        print(f"no model config at {config_path('base')}", file=sys.stderr)
        return 1
    prepare(args.work, args.engines)
    rows: list[dict[str, Any]] = []
    environment = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    for cell in cells(args.tokens, args.engines, args.models):
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
    compare_outputs(rows)
    for row in rows:
        row["speedup_vs_pytorch"] = same_cell(rows, row, "pytorch")["median_s"] / row["median_s"]
    meta = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": THREADS,
        "repeats": args.repeats,
        "new_tokens": NEW_TOKENS,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print_tables(rows, args.engines)
    return 0


def engine_list(text: str) -> tuple[str, ...]:
    """``--engines``: known names, PyTorch first (the ratios are against it)."""
    engines = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in engines if name not in COLUMNS]
    if unknown or not engines or engines[0] != "pytorch":
        raise argparse.ArgumentTypeError(
            f"expected pytorch first, then any of {', '.join(list(COLUMNS)[1:])}; got {text!r}"
        )
    return engines


def same_cell(rows: list[dict[str, Any]], row: dict[str, Any], engine: str) -> dict[str, Any]:
    """The row of ``engine`` measured in ``row``'s cell."""
    keys = ("model", "tokens", "beams", "batch")
    return next(
        r for r in rows if r["engine"] == engine and all(r.get(k) == row.get(k) for k in keys)
    )


def compare_outputs(rows: list[dict[str, Any]]) -> None:
    """Replace each row's outputs by counts: how many there were, how many are PyTorch's in the
    same cell, and (dialogsum-tiny in one batch) how many are the engine's one-at-a-time ones."""
    for row in rows:
        outputs = row["outputs"]
        row["n_outputs"] = len(outputs)
        if row["engine"] != "pytorch":
            reference = same_cell(rows, row, "pytorch")["outputs"]
            row["rows_equal_pytorch"] = sum(a == b for a, b in zip(outputs, reference, strict=True))
        if row["model"] == "dialogsum-tiny" and row["batch"] > 1:
            alone = next(
                r["outputs"]
                for r in rows
                if r["model"] == row["model"] and r["engine"] == row["engine"] and r["batch"] == 1
            )
            row["rows_equal_alone"] = sum(a == b for a, b in zip(outputs, alone, strict=True))
    for row in rows:
        del row["outputs"]


def print_tables(rows: list[dict[str, Any]], engines: tuple[str, ...]) -> None:
    """The speed table, then the outputs table (same as PyTorch; batched rows same as alone)."""
    columns = [COLUMNS[e] for e in engines]
    print(f"\n| model | input tokens | decoding | batch | {' | '.join(columns)} |")
    print("|---|---|---|---|" + "---|" * len(columns))
    for row in rows:
        if row["engine"] != "pytorch":
            continue
        by_engine = {e: same_cell(rows, row, e) for e in engines}
        cells_text = [f"{row['median_s'] * 1000:.0f} ms"] + [
            f"{by_engine[e]['median_s'] * 1000:.0f} ms ({by_engine[e]['speedup_vs_pytorch']:.2f}x)"
            for e in engines[1:]
        ]
        print(f"| {label(row)} | {' | '.join(cells_text)} |")
    print(
        "\nOutputs equal to PyTorch's in the same cell (token ids; summaries for "
        "dialogsum-tiny), and, batched, rows equal to the same row decoded alone:\n"
    )
    print(f"| model | input tokens | decoding | batch | {' | '.join(columns[1:])} |")
    print("|---|---|---|---|" + "---|" * (len(columns) - 1))
    for row in rows:
        if row["engine"] != "pytorch":
            continue
        texts = []
        for engine in engines[1:]:
            other = same_cell(rows, row, engine)
            text = f"{other['rows_equal_pytorch']}/{other['n_outputs']} = PyTorch"
            if "rows_equal_alone" in other:
                text += f", {other['rows_equal_alone']}/{other['n_outputs']} = alone"
            texts.append(text)
        print(f"| {label(row)} | {' | '.join(texts)} |")


if __name__ == "__main__":
    sys.exit(main())
