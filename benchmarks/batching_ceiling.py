"""What micro-batching can gain at most: the model's time per dialogue alone and in batches of 16.

    python benchmarks/batching_ceiling.py            # about 4 minutes on 2 cores

A server at concurrency 16 batches the requests that happen to be waiting, so its batches hold
dialogues of mixed lengths. This measures, offline and without HTTP, for the two models of
``serve_load.py`` (same exports, same decoding): each dialogue summarized alone; the same
dialogues in batches of 16 taken in arrival order, as a server forms them; and in batches of 16
sorted by length (what ``summarize()`` does offline, the best a batch can be composed). The ratio
alone / batched is the ceiling of the serving gain, before any HTTP cost.

For FLAN-T5-base (greedy, 32 forced tokens) each phase is timed on its own: the encoder, the
first decoder step (which projects the encoder output into every layer's cross-attention keys
and values, padding included) and the 31 later steps (each reads every row's cross-attention
cache, padded to the batch's longest dialogue). Padding is reported as padded positions over
real ones. Medians of 3 rounds. Then one profiled run (onnxruntime's own profiler) of 31 later
steps over the first arrival-order batch: each operator type's share of the step, and what the
attention over the cross-attention cache reads per second. Writes
``benchmarks/results/batching_ceiling.json``.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, config_path, current_export, random_model_exports
from serve_load import BASE_PARAMS, DATA, WORK, with_dialogsum_tokenizer

#: Dialogues per measurement and per batch.
COUNT, BATCH = 64, 16
ROUNDS = 3


def phases(predictor: Any, sources: list[list[int]], steps: int) -> list[float]:
    """Seconds of encoder, first step and later steps for one padded batch, greedy."""
    from dialogsum.generation import GenerationOptions, pad_batch

    ids, mask = pad_batch(sources, predictor.pad_token_id)
    started = time.perf_counter()
    hidden, encoder_mask = predictor._encode_batch(ids, mask)
    encoded = time.perf_counter()
    predictor.first_step(hidden, encoder_mask, None)
    first = time.perf_counter()
    lane = forced_lane(predictor, ids, mask, steps, GenerationOptions)  # its own encoder pass
    later = time.perf_counter()
    while lane.rows:
        lane.step()
    return [encoded - started, first - encoded, time.perf_counter() - later]


def forced_lane(predictor: Any, ids: Any, mask: Any, steps: int, options: Any) -> Any:
    """A lane holding the batch after its first step, greedy with ``steps`` forced tokens."""
    from dialogsum.backends.onnxruntime.lanes import Lane

    lane = Lane(predictor, 1)
    forced = options(num_beams=1, max_new_tokens=steps, min_new_tokens=steps)
    lane.join(predictor._items(ids, mask, None, None), predictor.search(len(ids), forced))
    return lane


def groups(sources: list[list[int]], order: str) -> list[list[list[int]]]:
    """Batches of ``BATCH`` in arrival order or sorted by length."""
    indices = list(range(len(sources)))
    if order == "sorted":
        indices.sort(key=lambda i: len(sources[i]))
    return [[sources[i] for i in indices[k : k + BATCH]] for k in range(0, len(indices), BATCH)]


def padding(batches: list[list[list[int]]]) -> float:
    """Padded positions over real ones, counting the cross-attention's masked tail."""
    from dialogsum.backends.onnxruntime.step_slots import CROSS_ATTENTION_TAIL

    real = sum(len(s) for batch in batches for s in batch)
    padded = sum(len(batch) * (max(map(len, batch)) + CROSS_ATTENTION_TAIL) for batch in batches)
    return padded / real


def step_profile(folder: Path, sources: list[list[int]], steps: int) -> dict[str, Any]:
    """Operator shares of FLAN-T5-base's later decoder steps for one batch, profiled."""
    import json as json_module
    import tempfile

    import onnx
    import onnxruntime as ort

    from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor
    from dialogsum.backends.onnxruntime.step_slots import (
        CROSS_ATTENTION_TAIL,
        add_top_log_probs,
        slot_self_attention,
    )
    from dialogsum.generation import GenerationOptions, pad_batch

    predictor = OnnxPredictor(folder, threads=2, progress=False)
    with tempfile.TemporaryDirectory() as scratch:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(scratch) / "step")
        # The decoder steps the predictor runs (rewritten at load), profiled.
        model = onnx.load(str(folder / "decoder_with_past_model.onnx"))
        slot_self_attention(model)
        add_top_log_probs(model)  # as the predictor's own, whose outputs the lane reads
        predictor.slotted = ort.InferenceSession(model.SerializeToString(), options)
        ids, mask = pad_batch(sources, predictor.pad_token_id)
        hidden, _ = predictor._encode_batch(ids, mask)
        lane = forced_lane(predictor, ids, mask, steps, GenerationOptions)
        while lane.rows:
            lane.step()
        events = json_module.loads(Path(predictor.slotted.end_profiling()).read_text())
    by_operator: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            operator = event["args"]["op_name"]
            by_operator[operator] = by_operator.get(operator, 0.0) + event["dur"]
    total = sum(by_operator.values())
    attention = by_operator.get("MatMul", 0.0) + by_operator.get("FusedMatMul", 0.0)
    layers = sum(i.name.endswith(".encoder.key") for i in predictor.slotted.get_inputs())
    width = len(ids[0]) + CROSS_ATTENTION_TAIL
    # Keys and values of every layer, every row, every step: 74 KB a position for FLAN-T5-base.
    cache_bytes = 2 * layers * len(ids) * width * hidden.shape[2] * 4 * (steps - 1)
    return {
        "rows": len(ids),
        "positions": width,
        "share": {
            op: round(t / total, 3)
            for op, t in sorted(by_operator.items(), key=lambda kv: -kv[1])[:6]
        },
        "attention_share": attention / total,
        "attention_gb_per_s": cache_bytes / (attention / 1e6) / 1e9,
    }


def base_model(texts: list[str]) -> dict[str, Any]:
    from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor

    folders = random_model_exports(config_path("base"), WORK)
    predictor = OnnxPredictor(
        with_dialogsum_tokenizer(folders["int8"], WORK), threads=2, progress=False
    )
    sources = predictor.encode(texts, warn=False)
    steps = int(BASE_PARAMS["max_new_tokens"])
    phases(predictor, sources[:BATCH], steps)  # warm-up
    rounds: dict[str, list[list[float]]] = {"alone": [], "arrival": [], "sorted": []}
    for _ in range(ROUNDS):
        rounds["alone"].append(_total(phases(predictor, [s], steps) for s in sources))
        for order in ("arrival", "sorted"):
            batches = groups(sources, order)
            rounds[order].append(_total(phases(predictor, b, steps) for b in batches))
    result: dict[str, Any] = {"model": "flan-t5-base", "dialogues": len(sources)}
    for name, values in rounds.items():
        per_dialogue = [statistics.median(v[i] for v in values) / len(sources) for i in range(3)]
        result[name] = {
            "encoder_ms": 1000 * per_dialogue[0],
            "first_step_ms": 1000 * per_dialogue[1],
            "later_steps_ms": 1000 * per_dialogue[2],
            "total_ms": 1000 * sum(per_dialogue),
        }
    for order in ("arrival", "sorted"):
        result[order]["padding"] = padding(groups(sources, order))
        result[order]["gain"] = result["alone"]["total_ms"] / result[order]["total_ms"]
    result["step_profile"] = step_profile(
        with_dialogsum_tokenizer(folders["int8"], WORK), groups(sources, "arrival")[0], steps
    )
    return result


def tiny_model(texts: list[str]) -> dict[str, Any]:
    from dialogsum import Summarizer
    from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor
    from dialogsum.generation import parse_generation

    folder = WORK / "tiny-int8"
    if not current_export(folder):
        Summarizer.from_pretrained("dialogsum-tiny").export(folder, quantize="int8", overwrite=True)
    predictor = OnnxPredictor(folder, threads=2, progress=False)
    sources = predictor.encode(texts, warn=False)
    arrival = [texts[k : k + BATCH] for k in range(0, len(texts), BATCH)]
    alone = parse_generation({"batch_size": 1}, predictor.manifest.generation)
    batched = parse_generation({"batch_size": BATCH}, predictor.manifest.generation)
    predictor.summarize(texts[:BATCH], batched)  # warm-up
    timings: dict[str, list[float]] = {"alone": [], "arrival": [], "sorted": []}
    for _ in range(ROUNDS):
        timings["alone"].append(_timed(lambda: [predictor.summarize([t], alone) for t in texts]))
        timings["arrival"].append(
            _timed(lambda: [predictor.summarize(b, batched) for b in arrival])
        )
        timings["sorted"].append(_timed(lambda: predictor.summarize(texts, batched)))
    result: dict[str, Any] = {"model": "dialogsum-tiny", "dialogues": len(texts)}
    for name, values in timings.items():
        result[name] = {"total_ms": 1000 * statistics.median(values) / len(texts)}
    for order in ("arrival", "sorted"):
        result[order]["padding"] = padding(groups(sources, order))
        result[order]["gain"] = result["alone"]["total_ms"] / result[order]["total_ms"]
    return result


def _total(parts: Any) -> list[float]:
    return [sum(column) for column in zip(*parts, strict=True)]


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> int:
    from dialogsum.data import load_examples
    from dialogsum.errors import logger

    logger.setLevel(logging.ERROR)  # one truncation warning per single call would flood the log
    if not DATA.is_dir():
        print(f"no DialogSum corpus at {DATA}", file=sys.stderr)
        return 1
    texts = [e.dialogue for e in load_examples(DATA, "test")][:COUNT]
    rows = [tiny_model(texts), base_model(texts)]
    for row in rows:
        print(json.dumps(row, indent=1), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batching_ceiling.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
