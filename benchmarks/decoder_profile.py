"""Where a decode's time goes in dialogsum's onnxruntime backend, for the FLAN-T5-base export
of cpu_serving.py: each session's share of a call against Python between steps, and the
decoder step's node time by operator type (onnxruntime's own profiler).

Reads the int8 export ``cpu_serving.py`` leaves in its work folder (run it first), decodes
random 200-token inputs to exactly 32 new tokens on 2 threads, and prints, per case: the median
call, the time in each session (encoder, first step, the slotted decoder step) and the rest
(Python between steps), then the decoder's node time per operator type.

    python benchmarks/cpu_serving.py --tokens 200      # builds /tmp/dialogsum-bench
    python benchmarks/decoder_profile.py               # greedy and 4 beams, batch 1 and 8
    python benchmarks/decoder_profile.py --beams 1 --batch 1
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import current_export

NEW_TOKENS = 32
THREADS = 2
TOKENS = 200


def profile(work: Path, beams: int, batch: int, rounds: int, operators: bool) -> None:
    """Time one case in this process; with ``operators``, profile its sessions instead (the
    profiler slows every node, so the times come from a run without it)."""
    import numpy as np
    import onnxruntime as ort

    from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor
    from dialogsum.generation import GenerationOptions

    folder = Path(tempfile.mkdtemp(prefix="dialogsum-profile-"))
    make_session = ort.InferenceSession.__init__

    def profiled(self: Any, model: Any, options: Any = None, *args: Any, **kwargs: Any) -> None:
        if options is not None and operators:
            options.enable_profiling = True
            options.profile_file_prefix = str(folder / "session")
        make_session(self, model, options, *args, **kwargs)

    spent: collections.Counter[str] = collections.Counter()
    run_session = ort.InferenceSession.run

    def timed(self: Any, outputs: Any, feeds: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = run_session(self, outputs, feeds, *args, **kwargs)
        spent[_session_name(predictor, self)] += time.perf_counter() - started
        return result

    ort.InferenceSession.__init__ = profiled  # type: ignore[method-assign]
    ort.InferenceSession.run = timed  # type: ignore[method-assign]
    predictor = OnnxPredictor(work / "onnx-int8", threads=THREADS, progress=False)
    rng = np.random.default_rng(batch * 1000 + TOKENS)  # cpu_serving.py's inputs
    ids = [[*rng.integers(3, 32000, TOKENS - 1).tolist(), 1] for _ in range(batch)]
    mask = [[1] * TOKENS for _ in ids]
    options = GenerationOptions(
        max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, num_beams=beams
    )
    predictor.generate_ids(ids, mask, options)  # warm-up
    spent.clear()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        predictor.generate_ids(ids, mask, options)
        times.append(time.perf_counter() - started)
    if not operators:
        total = sum(times)
        median = statistics.median(times) * 1000
        print(f"\n{beams} beam(s), batch {batch}: median {median:.0f} ms")
        for name, seconds in spent.most_common():
            print(f"  {seconds / rounds * 1000:7.1f} ms  {name}")
        rest = (total - sum(spent.values())) / rounds
        print(f"  {rest * 1000:7.1f} ms  Python between steps ({rest / (total / rounds):.0%})")
        return
    by_type: collections.Counter[str] = collections.Counter()
    for event in json.loads(Path(predictor.slotted.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_type[event["args"]["op_name"]] += event["dur"]
    whole = sum(by_type.values())
    print("  decoder step node time by operator type (warm-up included):")
    for name, micros in by_type.most_common(16):
        print(f"    {name:30s} {micros / whole:6.1%}")


def _session_name(predictor: Any, session: Any) -> str:
    names = {
        id(predictor.encoder): "encoder",
        id(predictor.decoder): "first decoder step",
        id(predictor.slotted): "decoder steps (slotted)",
    }
    return names.get(id(session), "beam search top-k")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dialogsum-bench"))
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--case", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not current_export(args.work / "onnx-int8"):
        sys.exit(f"no int8 export in {args.work}: run benchmarks/cpu_serving.py first")
    if args.case:
        beams, batch, operators = args.case
        profile(args.work, beams, batch, args.rounds, bool(operators))
        return 0
    for beams in args.beams:
        for batch in args.batch:
            # Each run in its own process: profiling is set when the sessions are made.
            for operators in ("0", "1"):
                command = [sys.executable, __file__, "--work", str(args.work), "--rounds"]
                command += [str(args.rounds), "--case", str(beams), str(batch), operators]
                subprocess.run(command, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
