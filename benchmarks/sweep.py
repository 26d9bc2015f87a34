"""Settings found by `dialogsum sweep` against the course's way and an exhaustive grid, in one run.

dialogsum-tiny with LoRA, trained on DialogSum train rows (../shared/data/dialogsum) and scored on
validation dialogues (ROUGE-1, the model's own decoding settings), all on this machine:

- the course's way: settings guessed one run at a time, first a learning rate of 1e-3 for 100
  steps, then 1e-4 for 5 epochs;
- dialogsum's default fine-tuning settings (LoRA's own learning rate, 3 epochs);
- an exhaustive grid over the space (every combination, trained to the end, scored once);
- `dialogsum sweep` over the same space (Optuna: TPE and successive halving), the same sweep
  with whole rungs (``schedule: sync``: every trial pauses at a rung until all have reached it),
  and the first on Ray Tune (ASHA) with one worker, to check both engines pick the same best
  trial.

Compute is wall time on this machine (training, scoring and model starts). Each contender's best
model is then scored on test dialogues. Writes benchmarks/results/sweep.json and prints the
table for docs/benchmarks.md.

    python benchmarks/sweep.py                  # about 35 minutes on 2 cores
    python benchmarks/sweep.py --quick          # a small run to check the script (3 minutes)
    python benchmarks/sweep.py --rung-decoding greedy   # the sweeps' rungs decoded greedily
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, ROOT

DATA = ROOT.parent / "shared" / "data" / "dialogsum"
#: The one space every contender searches: four learning rates, three LoRA ranks.
SPACE = {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3], "r": [4, 8, 16]}


def rows(split: str, count: int) -> list[Any]:
    """The first ``count`` dialogues of a split, each with all its references."""
    from dialogsum.data import group_references, load_examples

    return group_references(load_examples(DATA / f"{split}.jsonl", split))[:count]


def timed(work: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def rouge1(model: Any, examples: list[Any]) -> float:
    return float(model.evaluate(examples)["rouge1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=400)
    parser.add_argument("--eval-rows", type=int, default=60)
    parser.add_argument("--test-rows", type=int, default=100)
    parser.add_argument(
        "--steps",
        type=int,
        default=162,
        help="Steps of a grid or sweep trial (162 = 18 x 3 x 3: rungs at 18, 54 and 162).",
    )
    parser.add_argument("--trials", type=int, default=12, help="Trials of the sweep.")
    parser.add_argument(
        "--rung-decoding",
        choices=["model", "greedy"],
        default="model",
        help="How the sweeps score the rungs where trials are compared (see docs/sweep.md).",
    )
    parser.add_argument("--quick", action="store_true", help="A small run to check the script.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/dialogsum-sweep-bench"))
    parser.add_argument("--output", type=Path, default=RESULTS / "sweep.json")
    args = parser.parse_args()
    if args.quick:
        args.train_rows, args.eval_rows, args.test_rows, args.steps, args.trials = 48, 8, 8, 9, 6
    if not DATA.is_dir():
        sys.exit(f"needs the DialogSum corpus in {DATA}")

    import torch

    from dialogsum import Summarizer

    torch.set_num_threads(1)  # the same in every contender and in Ray's workers
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    train = rows("train", args.train_rows)
    validation = rows("validation", args.eval_rows)
    test = rows("test", args.test_rows)
    base = Summarizer.from_pretrained("dialogsum-tiny", backend="torch")
    fixed = {"batch_size": 8, "progress": False, "save_strategy": "no"}
    results: dict[str, Any] = {
        "machine": platform.processor() or platform.machine(),
        "train_rows": len(train),
        "eval_rows": len(validation),
        "test_rows": len(test),
        "space": SPACE,
        "steps": args.steps,
        "rung_decoding": args.rung_decoding,
    }
    untuned_test = rouge1(base, test)
    results["untuned"] = {"test_rouge1": untuned_test}
    print(f"untuned: test rouge1 {untuned_test:.2f}", flush=True)

    def run(name: str, training: dict[str, Any]) -> dict[str, Any]:
        def train_and_score() -> tuple[Any, float]:
            tuned = base.finetune(train, method="lora", training={**fixed, **training})
            return tuned, rouge1(tuned, validation)

        (tuned, score), seconds = timed(train_and_score)
        return {
            "validation_rouge1": score,
            "seconds": seconds,
            "test_rouge1": rouge1(tuned, test),
            "training": training,
        }

    # The course's way: the seed's first guess, then the one that worked, one run at a time.
    course = [
        run("1e-3, 100 steps", {"learning_rate": 1e-3, "max_steps": 100 if not args.quick else 9})
    ]
    course.append(
        run("1e-4, 5 epochs", {"learning_rate": 1e-4, "epochs": 5 if not args.quick else 1})
    )
    results["course"] = {
        "runs": course,
        "seconds": sum(r["seconds"] for r in course),
        "validation_rouge1": max(r["validation_rouge1"] for r in course),
        "test_rouge1": max(course, key=lambda r: r["validation_rouge1"])["test_rouge1"],
    }
    results["default_settings"] = run("defaults", {})
    print(
        f"course: {results['course']['validation_rouge1']:.2f} in {results['course']['seconds']:.0f} s; defaults: {results['default_settings']['test_rouge1']:.2f} test",
        flush=True,
    )

    def sweep(name: str, **options: Any) -> tuple[Any, Any, float]:
        training = {**fixed, "max_steps": args.steps}
        (best, result), seconds = timed(
            lambda: base.sweep(
                train, validation, space=SPACE, method="lora", training=training,
                output_dir=args.work / name,
                sweep={"progress": False, "seed": 0, "rung_decoding": args.rung_decoding, **options},
            )
        )  # fmt: skip
        return best, result, seconds

    # The grid: every combination trained to the end and scored once.
    grid_runs = []
    started = time.perf_counter()
    for rate in SPACE["learning_rate"]:
        for rank in SPACE["r"]:
            tuned = base.finetune(
                train, method="lora", options={"r": rank},
                training={**fixed, "learning_rate": rate, "max_steps": args.steps},
            )  # fmt: skip
            grid_runs.append(({"learning_rate": rate, "r": rank}, rouge1(tuned, validation), tuned))
            print(f"grid {grid_runs[-1][:2]}", flush=True)
    seconds = time.perf_counter() - started
    settings, score, best = max(grid_runs, key=lambda run: run[1])
    results["grid"] = {
        "trials": len(grid_runs),
        "seconds": seconds,
        "validation_rouge1": score,
        "best": settings,
        "scores": [[run[0], run[1]] for run in grid_runs],
        "test_rouge1": rouge1(best, test),
    }
    print(f"grid: {results['grid']}", flush=True)

    def summarized(best: Any, swept: Any, seconds: float) -> dict[str, Any]:
        trials = swept.summary["trials"]
        states = [t["state"] for t in trials]
        return {
            "trials": len(states),
            "finished": states.count("finished"),
            "pruned": states.count("pruned"),
            "repeats": sum(t["repeat_of"] is not None for t in trials),
            "seconds": seconds,
            "validation_rouge1": swept.summary["best"]["score"],
            "best": swept.summary["best"]["params"],
            "best_trial": swept.summary["best"]["number"],
            "test_rouge1": rouge1(best, test),
            "rungs": swept.summary["rungs"],
            "projected_seconds": swept.summary["projection"]["projected_seconds"],
            "each": [
                {k: t[k] for k in ("number", "params", "state", "rungs", "seconds", "repeat_of")}
                for t in trials
            ],
        }

    best, swept, seconds = sweep("sweep", trials=args.trials)
    results["sweep"] = summarized(best, swept, seconds)
    print(f"sweep: {results['sweep']}", flush=True)
    results["sweep_sync"] = summarized(*sweep("sweep-sync", trials=args.trials, schedule="sync"))
    print(f"sync: {results['sweep_sync']}", flush=True)
    _, on_ray, seconds = sweep("sweep-ray", trials=args.trials, engine="ray", workers=1)
    results["sweep_ray"] = {
        "seconds": seconds,
        "best_trial": on_ray.summary["best"]["number"],
        "best": on_ray.summary["best"]["params"],
        "validation_rouge1": on_ray.summary["best"]["score"],
        "same_best_as_optuna": on_ray.summary["best"]["params"] == swept.summary["best"]["params"],
    }
    print(f"ray: {results['sweep_ray']}", flush=True)
    results["targets"] = {
        "sweep_within_0.2_of_grid": results["sweep"]["validation_rouge1"]
        >= results["grid"]["validation_rouge1"] - 0.2,
        "sweep_compute_share_of_grid": results["sweep"]["seconds"] / results["grid"]["seconds"],
        "sweep_test_above_default_settings": results["sweep"]["test_rouge1"]
        > results["default_settings"]["test_rouge1"],
        "sweep_test_above_untuned": results["sweep"]["test_rouge1"] > untuned_test,
        "engines_agree": results["sweep_ray"]["same_best_as_optuna"],
        "sync_within_0.2_of_grid": results["sweep_sync"]["validation_rouge1"]
        >= results["grid"]["validation_rouge1"] - 0.2,
        "sync_compute_share_of_grid": results["sweep_sync"]["seconds"] / results["grid"]["seconds"],
        "sync_test_above_default_settings": results["sweep_sync"]["test_rouge1"]
        > results["default_settings"]["test_rouge1"],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    grid_seconds = results["grid"]["seconds"]
    print(
        "\n| contender | runs | validation ROUGE-1 | test ROUGE-1 | wall time | share of the grid's |"
    )
    print("|---|---|---|---|---|---|")
    print(f"| untuned dialogsum-tiny | 0 | | {results['untuned']['test_rouge1']:.2f} | | |")
    default = results["default_settings"]
    print(
        f"| default settings (LoRA's rate, 3 epochs) | 1 | {default['validation_rouge1']:.2f} | {default['test_rouge1']:.2f} | {default['seconds']:.0f} s | {default['seconds'] / grid_seconds:.2f} |"
    )
    for run in results["course"]["runs"]:
        print(
            f"| the course's way: {run['training']} | 1 | {run['validation_rouge1']:.2f} | {run['test_rouge1']:.2f} | {run['seconds']:.0f} s | {run['seconds'] / grid_seconds:.2f} |"
        )
    grid = results["grid"]
    print(
        f"| grid ({grid['best']}) | {grid['trials']} | {grid['validation_rouge1']:.2f} | {grid['test_rouge1']:.2f} | {grid_seconds:.0f} s | 1.00 |"
    )
    sweep = results["sweep"]
    print(
        f"| dialogsum sweep ({sweep['best']}; {sweep['finished']} finished, {sweep['pruned']} pruned) | {sweep['trials']} | {sweep['validation_rouge1']:.2f} | {sweep['test_rouge1']:.2f} | {sweep['seconds']:.0f} s | {sweep['seconds'] / grid_seconds:.2f} |"
    )
    sync = results["sweep_sync"]
    print(
        f"| dialogsum sweep, schedule sync ({sync['best']}; {sync['finished']} finished, {sync['pruned']} pruned) | {sync['trials']} | {sync['validation_rouge1']:.2f} | {sync['test_rouge1']:.2f} | {sync['seconds']:.0f} s | {sync['seconds'] / grid_seconds:.2f} |"
    )
    ray = results["sweep_ray"]
    print(
        f"| dialogsum sweep on Ray Tune ({ray['best']}) | | {ray['validation_rouge1']:.2f} | | {ray['seconds']:.0f} s | {ray['seconds'] / grid_seconds:.2f} |"
    )
    print(f"\ntargets: {results['targets']}")


if __name__ == "__main__":
    main()
