"""The export parity gate on the real FLAN-T5 architectures (small, base, large), random weights.

For each size: a seeded random-weight model of the exact shape, its fp32 export (the gate:
first-step logits, greedy tokens, 4-beam tokens against PyTorch on eight DialogSum dialogues,
32 new tokens) and its int8 export (greedy agreement with fp32). Also checks a LoRA-merged and a
prompt-tuned FLAN-T5-small. Writes benchmarks/results/parity_sizes.json and prints a Markdown
table for docs/benchmarks.md.

    python benchmarks/parity_sizes.py [--sizes small base large]   # large: about 15 minutes
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, config_path, random_model_exports


def parity_of(folder: Path) -> dict[str, object]:
    export = json.loads((folder / "dialogsum.json").read_text())["export"]
    return dict(export["parity"])


def tuned_variants(work: Path) -> list[dict[str, object]]:
    """LoRA-merged and prompt-tuned FLAN-T5-small exports, each through the gate."""
    import torch

    from dialogsum import Summarizer
    from dialogsum.data import sample_path

    base_dir = random_model_exports(config_path("small"), work / "small")["pytorch"]
    base = Summarizer.from_pretrained(base_dir, backend_options={"progress": False})
    rows = []
    for method, options, lr in (
        ("lora", {"r": 16}, 1e-3),
        ("prompt_tuning", {"num_virtual_tokens": 20}, 3e-2),
    ):
        torch.manual_seed(0)
        tuned = base.finetune(
            sample_path("train"),
            method=method,
            options=options,
            training={
                "max_steps": 10,
                "batch_size": 4,
                "progress": False,
                "learning_rate": lr,
                "save_strategy": "no",
            },
            data={"max_source_length": 256, "max_target_length": 64},
        )
        folder = work / f"small-{method}"
        shutil.rmtree(folder, ignore_errors=True)
        tuned.export(folder, quantize="int8")
        rows.append({"model": f"flan-t5-small + {method}", **parity_of(folder)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "base", "large"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dialogsum-parity"))
    parser.add_argument(
        "--no-tuned", action="store_true", help="skip the LoRA and prompt-tuning rows"
    )
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    for size in args.sizes:
        config = config_path(size)
        if not config.is_file():
            print(f"no config at {config}", file=sys.stderr)
            return 1
        folders = random_model_exports(config, args.work / size)
        rows.append(
            {
                "model": f"flan-t5-{size}",
                **parity_of(folders["fp32"]),
                "int8_agreement": parity_of(folders["int8"])["int8"]["greedy_agreement_with_fp32"],
            }
        )  # type: ignore[index]
        print(json.dumps(rows[-1]), flush=True)
    if not args.no_tuned:
        for row in tuned_variants(args.work):
            row["int8_agreement"] = row.pop("int8")["greedy_agreement_with_fp32"]  # type: ignore[index]
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "parity_sizes.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(
        "| model | max logits diff | tolerance | greedy identical | 4-beam identical | gate | int8 greedy agreement |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        tolerance = 1e-4 * float(row["logits_scale"])  # type: ignore[arg-type]
        print(
            f"| {row['model']} | {float(row['max_abs_logits_difference']):.1e} | {tolerance:.1e} | "  # type: ignore[arg-type]
            f"{float(row['greedy_identical']):.0%} | {float(row['beam4_identical']):.0%} | "  # type: ignore[arg-type]
            f"{'pass' if row['passed'] else 'FAIL'} | {float(row['int8_agreement']):.0%} |"
        )  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
