"""Does serving adapters unmerged cost summary quality, and does a summary depend on its batch?

    python benchmarks/adapters_quality.py [--data ../shared/data/dialogsum] [--limit N]

Tunes the bundled dialogsum-tiny three times on the shipped 200-dialogue train sample (seed 42):
two LoRA adapters (the quickstart's recipe, r=32 on q and v, 2 epochs; and r=8 on q, k, v and o,
3 epochs) and a prompt-tuning adapter (20 virtual tokens, 4 epochs). Then exports, int8:

- one multi-adapter folder, the base once and the three adapters beside it, unmerged;
- each adapter alone (LoRA merged into the weights, the soft prompt baked into the encoder).

Each adapter is scored on the DialogSum test split (every prediction against its three
references, averaged; its own decoding defaults) both ways. Target: unmerged ROUGE-1 within 0.3
of merged. Then every test dialogue is summarized with its adapter alone (batch 1) and inside
batches of 24 whose rows cycle through the three adapters and the base: the summaries must be
identical. Writes benchmarks/results/adapters_quality.json.
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

#: name -> (method, options, epochs)
ADAPTERS: dict[str, tuple[str, dict[str, Any], int]] = {
    "lora-qv": ("lora", {"r": 32, "target_modules": ["q", "v"]}, 2),
    "lora-qkvo": ("lora", {"r": 8, "target_modules": ["q", "k", "v", "o"]}, 3),
    "prompt": ("prompt_tuning", {"num_virtual_tokens": 20}, 4),
}


def score(folder: Path, test: list[Any], adapter: str | None) -> dict[str, float]:
    from dialogsum import Summarizer

    served = Summarizer.from_pretrained(folder, backend_options={"progress": False})
    started = time.perf_counter()
    generation = {"adapter": adapter} if adapter else {}
    scores = served.evaluate(test, batch_size=16, **generation)
    scores["seconds"] = time.perf_counter() - started
    return scores


def invariance(folder: Path, test: list[Any]) -> dict[str, Any]:
    """Summaries of each test dialogue alone and in batches mixing all adapters and the base."""
    from dialogsum import Summarizer

    served = Summarizer.from_pretrained(folder, backend_options={"progress": False})
    names: list[str | None] = [*ADAPTERS, None]
    texts = [e.dialogue for e in test]
    rows = [names[i % len(names)] for i in range(len(texts))]
    alone = [
        served.summarize([text], adapter=name, batch_size=1)[0]
        for text, name in zip(texts, rows, strict=True)
    ]
    # With each adapter's own decoding defaults (beam search): its rows in batches of 24.
    differ = 0
    for name in names:
        chosen = [i for i, row in enumerate(rows) if row == name]
        options = served.generation_options(adapter=name, batch_size=24)
        together = served.summarize([texts[i] for i in chosen], options=options)
        differ += sum(alone[i] != t for i, t in zip(chosen, together, strict=True))
    # And in batches whose neighbours are other adapters' rows (greedy, one shared option set).
    options = served.generation_options(num_beams=1, batch_size=24)
    greedy_alone = [
        served.summarize([text], adapter=name, num_beams=1, batch_size=1)[0]
        for text, name in zip(texts, rows, strict=True)
    ]
    mixed = served.summarize_rows(texts, rows, options)
    return {
        "dialogues": len(texts),
        "differ_in_adapter_batches_of_24": differ,
        "differ_in_mixed_greedy_batches_of_24": sum(
            a != b for a, b in zip(greedy_alone, mixed, strict=True)
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dialogsum"))
    parser.add_argument("--limit", type=int, help="Score only the first N test dialogues.")
    args = parser.parse_args()

    from dialogsum import Summarizer
    from dialogsum.data import group_references, load_examples, sample_path

    test = group_references(load_examples(args.data, "test"))[: args.limit]
    base = Summarizer.from_pretrained("dialogsum-tiny", backend_options={"progress": False})
    train = load_examples(sample_path("train"))
    results: dict[str, Any] = {"model": "dialogsum-tiny", "test_dialogues": len(test)}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        runs = {}
        for name, (method, options, epochs) in ADAPTERS.items():
            started = time.perf_counter()
            tuned = base.finetune(
                train,
                method=method,
                options=options,
                output_dir=work / name,
                training={
                    "epochs": epochs,
                    "batch_size": 8,
                    "save_strategy": "no",
                    "progress": False,
                    "seed": 42,
                },
            )
            runs[name] = (work / name, tuned)
            print(f"tuned {name} in {time.perf_counter() - started:.0f}s", flush=True)
        started = time.perf_counter()
        multi = base.export(
            work / "multi", adapters={n: folder for n, (folder, _) in runs.items()}, quantize="int8"
        )
        results["multi_export_seconds"] = time.perf_counter() - started
        results["parity"] = json.loads((multi / "dialogsum.json").read_text())["export"]["parity"]
        for name, (_, tuned) in runs.items():
            alone = tuned.export(work / f"{name}-alone", quantize="int8")
            entry = {"unmerged": score(multi, test, name), "merged": score(alone, test, None)}
            entry["rouge1_unmerged_minus_merged"] = (
                entry["unmerged"]["rouge1"] - entry["merged"]["rouge1"]
            )
            print(
                name,
                json.dumps(
                    {
                        k: round(v["rouge1"], 2) if isinstance(v, dict) else round(v, 2)
                        for k, v in entry.items()
                    }
                ),
                flush=True,
            )
            results[name] = entry
        results["batch_invariance"] = invariance(multi, test)
        print("batch invariance", results["batch_invariance"], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "adapters_quality.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
