"""Does int8 cost summary quality? ROUGE of a model's fp32 and int8 ONNX exports on DialogSum test.

    python benchmarks/int8_quality.py [--model dialogsum-tiny] [--data ../shared/data/dialogsum]

Exports the model twice (fp32 and int8), serves each with the onnxruntime backend using the
model's own decoding defaults, scores both on the test split (each prediction against its three
references, averaged) and reports the ROUGE-1 difference (target: int8 within 0.5 of fp32).
Writes benchmarks/results/int8_quality.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, ROOT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dialogsum-tiny")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dialogsum"))
    parser.add_argument("--limit", type=int, help="Score only the first N test dialogues.")
    args = parser.parse_args()

    from dialogsum import Summarizer
    from dialogsum.data import group_references, load_examples

    test = group_references(load_examples(args.data, "test"))[: args.limit]
    source = Summarizer.from_pretrained(args.model, backend_options={"progress": False})
    results: dict[str, object] = {"model": args.model, "test_dialogues": len(test)}
    with tempfile.TemporaryDirectory() as scratch:
        for name, quantize in (("fp32", None), ("int8", "int8")):
            folder = source.export(Path(scratch) / name, quantize=quantize)
            served = Summarizer.from_pretrained(
                folder, backend="onnxruntime", backend_options={"progress": False}
            )
            started = time.perf_counter()
            scores = served.evaluate(test, batch_size=16)
            scores["seconds"] = time.perf_counter() - started
            results[name] = scores
            print(name, json.dumps({k: round(v, 2) for k, v in scores.items()}), flush=True)
    difference = results["int8"]["rouge1"] - results["fp32"]["rouge1"]  # type: ignore[index]
    results["rouge1_int8_minus_fp32"] = difference
    print(f"ROUGE-1 int8 - fp32: {difference:+.2f} (target: within 0.5)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "int8_quality.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
