"""What continuous batching can gain at most over micro-batching, in process, on this machine.

    python benchmarks/continuous_ceiling.py            # about 6 minutes on 2 cores
    python benchmarks/continuous_ceiling.py --model dialogsum-tiny --output /tmp/tiny.json

Sixteen clients in a closed loop, without HTTP: each sends its next DialogSum test dialogue the
moment its summary comes back. Micro-batching takes the dialogues waiting, up to 16, and
decodes them to the end of their longest summary while new ones wait; continuous batching (the
service's decoder) lets each join the running decode at the next step. Both run on one
predictor, in alternating rounds, and every summary is compared with the other mode's.

A third mode, ``queued``, gives the continuous decoder every dialogue at once, as a saturated
service holds them: rows can join only as others finish, one or two at a time, while the queue
stays long.

Each run is timed by phase (encoder, first decoder step, the later steps' model call, and the
rest: the search, cache moves and joins in Python), with the decoder steps it took and the rows
each carried. Then the model's step alone is timed at 1 to 16 dialogues in flight and fitted as
``a + b x rows``, the model's call alone and the whole step (search and cache moves included).
From these, the **ceiling**: continuous batching with every step full (16 dialogues), nothing
carried, and the encoder and first steps as micro-batching spent them, against micro-batching's
steps as it took them, both priced by the fitted step. A step's cost grows almost in proportion to its rows on 2 cores, so
fuller steps save only the fixed part ``a`` of the steps micro-batching's emptier ones take.

dialogsum-tiny with its own decoding defaults (4 beams, no repeated trigrams); FLAN-T5-base
(random weights, dialogsum-tiny's tokenizer, as ``serve_load.py``) greedy with 16, 32 and 64
forced tokens in turn, so that summaries end at different steps. Writes
``benchmarks/results/continuous_ceiling.json``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, config_path, current_export, random_model_exports
from serve_load import DATA, WORK, with_dialogsum_tokenizer

CLIENTS = 16
ROUNDS = 3
COUNTS = {"dialogsum-tiny": 192, "flan-t5-base": 48}


@contextlib.contextmanager
def timed_phases(spent: Counter[str]) -> Iterator[None]:
    """Add each phase's seconds (and the decoder steps' rows) to ``spent`` while inside."""
    from dialogsum.backends.onnxruntime.lanes import Lane
    from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor

    originals = {
        (OnnxPredictor, "_encode_batch"): "encoder",
        (OnnxPredictor, "first_step"): "first_step",
        (Lane, "_run"): "step_model",
    }

    def wrap(function: Callable[..., Any], name: str) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if name == "step_model":
                lane = args[0]
                spent["steps"] += 1
                spent["rows"] += lane.rows
                spent["carried_rows"] += len(lane.tokens)
                spent["capacity"] += lane.capacity
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return timed

    for (owner, attribute), name in originals.items():
        setattr(owner, attribute, wrap(getattr(owner, attribute), name))
    try:
        yield
    finally:
        for owner, attribute in originals:
            setattr(owner, attribute, getattr(owner, attribute).__wrapped__)


def closed_loop(
    predictor: Any, decoder: Any, texts: list[str], options: list[Any], mode: str
) -> Any:
    """Summaries of ``texts`` by CLIENTS clients in a closed loop, and the seconds it took."""
    from dialogsum.continuous import ContinuousRow

    got: dict[int, str] = {}
    following = iter(range(CLIENTS, len(texts)))
    started = time.perf_counter()
    if mode == "queued":  # every dialogue waiting from the start: a saturated service
        decoder.add(
            [
                ContinuousRow(text, option, functools.partial(got.__setitem__, index), _raise)
                for index, (text, option) in enumerate(zip(texts, options, strict=True))
            ]
        )
        while decoder.step():
            pass
    elif mode == "continuous":

        def send(index: int) -> None:
            def done(summary: str) -> None:
                got[index] = summary
                after = next(following, None)
                if after is not None:
                    send(after)

            decoder.add([ContinuousRow(texts[index], options[index], done, _raise)])

        for index in range(CLIENTS):
            send(index)
        while decoder.step():
            pass
    else:
        waiting = deque(range(CLIENTS))
        while waiting:
            batch = [waiting.popleft() for _ in range(min(CLIENTS, len(waiting)))]
            # One call per length limit, as the service's micro-batcher groups them.
            for limit in sorted({options[i].max_new_tokens for i in batch}):
                rows = [i for i in batch if options[i].max_new_tokens == limit]

                def each(position: int, summary: str, rows: list[int] = rows) -> None:
                    got[rows[position]] = summary
                    after = next(following, None)
                    if after is not None:
                        waiting.append(after)

                predictor.summarize_rows(
                    [texts[i] for i in rows], [None] * len(rows),
                    options[rows[0]].model_copy(update={"batch_size": CLIENTS}), on_summary=each,
                )  # fmt: skip
    return got, time.perf_counter() - started


def _raise(exc: Exception) -> None:
    raise exc


def step_cost(predictor: Any, texts: list[str], options: Any) -> dict[str, Any]:
    """A decoder step at 1 to 16 dialogues in flight, fitted as ``a + b x rows``: the model's
    call alone (``Lane._run``), and the whole step (the search and cache moves included)."""
    import numpy as np

    from dialogsum.backends.onnxruntime.lanes import Lane

    points = []
    forced = options.model_copy(update={"max_new_tokens": 64, "min_new_tokens": 64})
    for items in (1, 2, 4, 8, 16):
        sources = predictor.encode(texts[:items], warn=False)
        lane = Lane(predictor, options.num_beams)
        lane.join(
            predictor._items(sources, [[1] * len(s) for s in sources], None, None),
            predictor.search(items, forced),  # no row ends while timed
        )
        for _ in range(3):
            lane.step()
        model, whole = [], []
        for _ in range(9):
            started = time.perf_counter()
            lane._run()
            model.append(time.perf_counter() - started)
            started = time.perf_counter()
            lane.step()
            whole.append(time.perf_counter() - started)
        points.append((lane.rows, statistics.median(model), statistics.median(whole)))
    rows = np.array([p[0] for p in points], float)
    fits = {}
    for index, name in ((1, "model"), (2, "step")):
        ms = np.array([1000 * p[index] for p in points])
        slope, fixed = np.polyfit(rows, ms, 1)
        fits[name] = {"fixed_ms": float(fixed), "per_row_ms": float(slope)}
    return {
        "points": [
            {"rows": int(r), "model_ms": round(1000 * m, 3), "step_ms": round(1000 * w, 3)}
            for r, m, w in points
        ],
        **fits,
    }


def measure(
    name: str, folder: Path, texts: list[str], params: list[dict[str, Any]]
) -> dict[str, Any]:
    from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor
    from dialogsum.continuous import ContinuousRow, ContinuousSettings
    from dialogsum.generation import parse_generation

    predictor = OnnxPredictor(folder, threads=2, progress=False)
    options = [parse_generation(p, predictor.manifest.generation) for p in params]
    decoder = predictor.continuous_decoder(ContinuousSettings(max_rows=CLIENTS))
    # The service's warm-up: one dialogue through each mode (the decoder reserves its caches).
    warm: list[str] = []
    decoder.add([ContinuousRow(texts[0], options[0], warm.append, _raise)])
    while decoder.step():
        pass
    predictor.summarize_rows(texts[:CLIENTS], [None] * CLIENTS, options[0])
    runs: dict[str, list[dict[str, Any]]] = {"micro": [], "continuous": [], "queued": []}
    answers: dict[str, dict[int, str]] = {}
    for _ in range(ROUNDS):
        for mode in runs:
            spent: Counter[str] = Counter()
            with timed_phases(spent):
                answers[mode], seconds = closed_loop(predictor, decoder, texts, options, mode)
            steps = spent["steps"]
            runs[mode].append(
                {
                    "seconds": seconds,
                    "summaries_per_s": len(texts) / seconds,
                    "encoder_s": spent["encoder"],
                    "first_step_s": spent["first_step"],
                    "step_model_s": spent["step_model"],
                    "rest_s": seconds
                    - spent["encoder"]
                    - spent["first_step"]
                    - spent["step_model"],
                    "steps": steps,
                    "row_steps": spent["rows"],
                    "mean_rows": spent["rows"] / steps,
                    "mean_rows_carried": spent["carried_rows"] / steps,
                    "mean_capacity": spent["capacity"] / steps,
                }
            )
    result: dict[str, Any] = {"model": name, "dialogues": len(texts), "clients": CLIENTS}
    for mode, values in runs.items():
        middle = sorted(values, key=lambda v: v["seconds"])[len(values) // 2]
        result[mode] = {k: round(v, 4) if isinstance(v, float) else v for k, v in middle.items()}
    result["differ"] = sum(
        answers["micro"][i] != answers[mode][i] for i in answers["micro"] for mode in runs
    )
    cost = step_cost(predictor, texts, options[0])
    result["step_cost"] = cost
    micro = result["micro"]
    full = CLIENTS * options[0].num_beams
    ideal_steps = micro["row_steps"] / full
    fixed, per_row = cost["step"]["fixed_ms"] / 1000, cost["step"]["per_row_ms"] / 1000
    joins = micro["encoder_s"] + micro["first_step_s"]
    # Both from the fitted step, so that the fit's own error cancels: micro-batching's steps
    # as it took them, and continuous batching at its best, every step full and nothing
    # carried, with the encoder and first steps micro-batching spent.
    modelled = joins + micro["steps"] * fixed + micro["row_steps"] * per_row
    ideal = joins + ideal_steps * fixed + micro["row_steps"] * per_row
    result["ceiling"] = {
        "ideal_steps": round(ideal_steps, 1),
        "micro_modelled_seconds": round(modelled, 3),
        "ideal_seconds": round(ideal, 3),
        "speedup_over_micro": round(modelled / ideal, 3),
        "measured_speedup": round(micro["seconds"] / result["continuous"]["seconds"], 3),
        "queued_speedup": round(micro["seconds"] / result["queued"]["seconds"], 3),
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> int:
    import argparse

    from dialogsum import Summarizer
    from dialogsum.data import load_examples

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["all", *COUNTS], default="all")
    parser.add_argument("--output", type=Path, default=RESULTS / "continuous_ceiling.json")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # truncation notes, once per call
    if not (DATA / "test.jsonl").exists():
        print(f"needs the DialogSum test split at {DATA}", file=sys.stderr)
        return 2
    texts = [e.dialogue for e in load_examples(DATA, "test")]
    tiny = WORK / "tiny-int8"
    if not current_export(tiny):
        Summarizer.from_pretrained("dialogsum-tiny").export(tiny, quantize="int8", overwrite=True)
    results = []
    if args.model in ("all", "dialogsum-tiny"):
        count = COUNTS["dialogsum-tiny"]
        results.append(measure("dialogsum-tiny", tiny, texts[:count], [{} for _ in range(count)]))
    if args.model in ("all", "flan-t5-base"):
        exports = random_model_exports(config_path("base"), WORK)
        base = with_dialogsum_tokenizer(exports["int8"], WORK)
        count = COUNTS["flan-t5-base"]
        lengths = [(16, 32, 64)[i % 3] for i in range(count)]
        params = [{"num_beams": 1, "max_new_tokens": n, "min_new_tokens": n} for n in lengths]
        results.append(measure("flan-t5-base", base, texts[:count], params))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
