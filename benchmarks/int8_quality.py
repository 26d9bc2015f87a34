"""Does int8 cost summary quality, and does a summary depend on its batch?

    python benchmarks/int8_quality.py [--model dialogsum-tiny] [--data ../shared/data/dialogsum]

For the model and for a LoRA tune of it (the quickstart's: 200 sample train dialogues, 2
epochs, seed 42), exports fp32 and int8 ONNX, serves each with the onnxruntime backend using
the model's own decoding defaults, and scores both on the test split (each prediction against
its three references, averaged). Targets: int8 ROUGE-1 within 0.3 of fp32 for both. Then, for
every test dialogue, the int8 summary alone (batch 1) must equal the one inside batches of 8
and 32. Writes benchmarks/results/int8_quality.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, ROOT


def score(folder: Path, test: list[Any]) -> dict[str, float]:
    from dialogsum import Summarizer

    served = Summarizer.from_pretrained(folder, backend_options={"progress": False})
    started = time.perf_counter()
    scores = served.evaluate(test, batch_size=16)
    scores["seconds"] = time.perf_counter() - started
    return scores


def invariance(folder: Path, test: list[Any]) -> dict[str, Any]:
    """How many test dialogues get another int8 summary inside a batch than alone."""
    from dialogsum import Summarizer

    served = Summarizer.from_pretrained(folder, backend_options={"progress": False})
    texts = [e.dialogue for e in test]
    alone = served.summarize(texts, batch_size=1)
    result: dict[str, Any] = {"dialogues": len(texts)}
    for batch in (8, 32):
        batched = served.summarize(texts, batch_size=batch)
        result[f"differ_in_batch_{batch}"] = sum(
            a != b for a, b in zip(alone, batched, strict=True)
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dialogsum-tiny")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dialogsum"))
    parser.add_argument("--limit", type=int, help="Score only the first N test dialogues.")
    args = parser.parse_args()

    from dialogsum import Summarizer
    from dialogsum.data import group_references, load_examples, sample_path

    test = group_references(load_examples(args.data, "test"))[: args.limit]
    base = Summarizer.from_pretrained(args.model, backend_options={"progress": False})
    train = load_examples(sample_path("train"))
    results: dict[str, Any] = {"model": args.model, "test_dialogues": len(test)}
    with tempfile.TemporaryDirectory() as scratch:
        tuned = base.finetune(
            train,
            method="lora",
            output_dir=Path(scratch) / "lora-run",
            training={"epochs": 2, "batch_size": 8, "save_strategy": "no", "progress": False},
        )
        for label, source in (("base", base), ("lora", tuned)):
            entry: dict[str, Any] = {}
            for name, quantize in (("fp32", None), ("int8", "int8")):
                folder = source.export(Path(scratch) / f"{label}-{name}", quantize=quantize)
                entry[name] = score(folder, test)
                print(label, name, json.dumps({k: round(v, 2) for k, v in entry[name].items()}))
                if label == "base" and quantize == "int8":
                    entry["batch_invariance"] = invariance(folder, test)
                    print(label, "batch invariance", entry["batch_invariance"], flush=True)
            entry["rouge1_int8_minus_fp32"] = entry["int8"]["rouge1"] - entry["fp32"]["rouge1"]
            print(f"{label}: ROUGE-1 int8 - fp32: {entry['rouge1_int8_minus_fp32']:+.2f}")
            results[label] = entry
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "int8_quality.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
