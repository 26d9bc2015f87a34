"""``dialogsum batch`` on the DialogSum train split: rows per second of the local engine and of
the Ray engine, and whether they wrote the same summaries.

    python benchmarks/batch_throughput.py                 # all 12,460 train dialogues
    python benchmarks/batch_throughput.py --limit 200     # a quick look

The model is the bundled dialogsum-tiny exported to int8 ONNX (what a user serves on a CPU),
with its own decoding defaults (4 beams, no repeated trigrams) and greedy. Each engine runs as
the real CLI in its own process with the same workers and threads; the Ray engine's time
includes starting a local Ray. Results go to ``benchmarks/results/batch_throughput.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT

TRAIN = ROOT.parent / "shared" / "data" / "dialogsum" / "train.jsonl"


def export_model(work: Path) -> Path:
    from dialogsum import Summarizer

    folder = work / "dialogsum-tiny-int8"
    Summarizer.from_pretrained("dialogsum-tiny", backend_options={"progress": False}).export(
        folder, quantize="int8"
    )
    return folder


def read(output: Path) -> dict[object, str]:
    files = sorted(output.glob("*.jsonl")) if output.is_dir() else [output]
    summaries: dict[object, str] = {}
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            assert record["id"] not in summaries, f"id {record['id']} written twice"
            summaries[record["id"]] = record["summary"]
    return summaries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="Only the first N train dialogues.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="Threads per worker.")
    parser.add_argument("--chunk-size", type=int, default=64)
    args = parser.parse_args()
    if not TRAIN.is_file():
        sys.exit(f"{TRAIN} is missing: this benchmark needs the DialogSum corpus in ../shared.")
    with tempfile.TemporaryDirectory(prefix="dialogsum-batch-bench-") as scratch:
        work = Path(scratch)
        source = TRAIN
        if args.limit:
            source = work / "train.jsonl"
            with TRAIN.open(encoding="utf-8") as full:
                source.write_text("".join(itertools.islice(full, args.limit)))
        rows = sum(1 for line in source.open(encoding="utf-8") if line.strip())
        model = export_model(work)
        decodings: dict[str, list[str]] = {"model defaults": [], "greedy": ["--num-beams", "1"]}
        runs = []
        for decoding, flags in decodings.items():
            results = {}
            outputs = {"local": work / f"local-{len(runs)}.jsonl", "ray": work / f"ray-{len(runs)}"}
            for engine, output in outputs.items():
                command = [
                    sys.executable, "-m", "dialogsum", "batch", "--model", str(model),
                    "--input", str(source), "--output", str(output), "--engine", engine,
                    "--workers", str(args.workers), "--threads", str(args.threads),
                    "--chunk-size", str(args.chunk_size), "--no-progress", *flags,
                ]  # fmt: skip
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                seconds = time.perf_counter() - started
                if done.returncode != 0:
                    sys.exit(f"{engine} failed:\n{done.stderr[-4000:]}")
                report = json.loads(done.stdout)
                results[engine] = {
                    "rows": report["rows"],
                    "wall_seconds": round(seconds, 2),
                    "job_seconds": round(report["seconds"], 2),
                    "rows_per_second": round(rows / seconds, 2),
                }
                print(decoding, engine, results[engine], flush=True)
            local, ray = read(outputs["local"]), read(outputs["ray"])
            runs.append(
                {
                    "decoding": decoding,
                    "engines": results,
                    "same_ids": sorted(map(str, local)) == sorted(map(str, ray)),
                    "differing_summaries": sum(local[key] != ray.get(key) for key in local),
                }
            )
    record = {
        "model": "dialogsum-tiny, int8 ONNX export",
        "rows": rows,
        "workers": args.workers,
        "threads_per_worker": args.threads,
        "chunk_size": args.chunk_size,
        "runs": runs,
    }
    print(json.dumps(record, indent=2))
    if not args.limit:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "batch_throughput.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
