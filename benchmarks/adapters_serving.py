"""Many adapters on one server: memory, throughput and run-time loading, against one per server.

    python benchmarks/adapters_serving.py            # about 15 minutes on 2 cores

The FLAN-T5-base architecture (random weights, dialogsum-tiny's tokenizer, as in
serve_load.py) gets 9 LoRA adapters (r=32 on q and v, the LoRA method's defaults; one training
step each at a large learning rate, so each changes the summaries). Then, int8:

- **memory**: ``dialogsum serve`` with one multi-adapter export holding 8 of them, against
  ``dialogsum serve`` with one adapter merged and exported alone (8 such servers are 8 times
  that); resident memory after warm-up. Target: at most 1.3x one single-adapter server.
- **throughput** at concurrency 16, greedy, 32 forced tokens: 96 requests spread evenly over
  the 8 adapters (``parameters.adapter``) against 96 requests to the merged single-adapter
  server. Target: at least 0.8x. Zero errors, and every answer equal to that adapter's offline
  ``summarize()`` (and the single server's to its own).
- **loading at run time**: 160 requests at concurrency 16 over the 8 adapters, while the 9th is
  loaded with ``PUT /v1/adapters/{name}``; the p95 latency of the requests that overlapped the
  load, against the p95 of the same load without it. Target: within 1.5x.

Writes benchmarks/results/adapters_serving.json.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, config_path, current_export, random_model_exports
from serve_load import (
    BASE_PARAMS,
    DATA,
    WORK,
    free_port,
    peak_rss_mb,
    serve_command,
    start,
    with_dialogsum_tokenizer,
)

ADMIN_KEY = "bench-admin-key"
ADAPTERS = [f"a{i}" for i in range(9)]
SERVED = ADAPTERS[:8]


def tune_adapters(base: Path, work: Path) -> dict[str, Path]:
    """One LoRA run per name in ``ADAPTERS``, each on two other DialogSum train dialogues
    (reused when a previous run left it)."""
    from dialogsum import Summarizer
    from dialogsum.data import load_examples

    runs = {name: work / "adapters" / name for name in ADAPTERS}
    missing = [name for name, folder in runs.items() if not (folder / "model").is_dir()]
    if not missing:
        return runs
    model = Summarizer.from_pretrained(base, backend="torch", backend_options={"progress": False})
    examples = load_examples(DATA, "train")[: 2 * len(ADAPTERS)]
    for index, name in enumerate(ADAPTERS):
        if name not in missing:
            continue
        started = time.perf_counter()
        model.finetune(
            examples[2 * index : 2 * index + 2],
            method="lora",
            output_dir=runs[name],
            overwrite=True,
            training={
                "max_steps": 1,
                "learning_rate": 5e-2,
                "save_strategy": "no",
                "progress": False,
                "seed": index,
                "eval_strategy": "no",
            },
        )
        print(f"tuned {name} in {time.perf_counter() - started:.0f}s", flush=True)
    return runs


def serve(folder: Path, port: int, admin: bool = False) -> subprocess.Popen[bytes]:
    command = serve_command(folder, port)
    if admin:
        os.environ["DIALOGSUM_BENCH_ADMIN"] = ADMIN_KEY
        command += ["--admin-key-env", "DIALOGSUM_BENCH_ADMIN"]
    return start(command, port)


def requests_load(
    port: int, bodies: list[dict[str, Any]], expected: list[str] | None, concurrency: int
) -> list[dict[str, Any]]:
    """Each body posted to /v1/summarize at ``concurrency``: start, end, status, right."""
    import httpx

    client = httpx.Client(timeout=300)

    def one(index: int) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            response = client.post(f"http://127.0.0.1:{port}/v1/summarize", json=bodies[index])
            ok = response.status_code == 200
            right = ok and (
                expected is None or response.json()[0]["summary_text"].strip() == expected[index]
            )
        except httpx.HTTPError:
            ok = right = False
        return {"start": started, "end": time.perf_counter(), "ok": ok, "right": right}

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(len(bodies))))


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = sorted(r["end"] - r["start"] for r in results)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {
        "requests": len(results),
        "throughput": len(results) / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "errors": sum(not r["ok"] for r in results),
        "wrong": sum(r["ok"] and not r["right"] for r in results),
    }


def p95(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)


def main() -> int:
    from dialogsum import Summarizer
    from dialogsum.data import load_examples

    if not DATA.is_dir():
        print(f"no DialogSum corpus at {DATA}", file=sys.stderr)
        return 1
    folders = random_model_exports(config_path("base"), WORK)
    base = with_dialogsum_tokenizer(folders["pytorch"], WORK)
    texts = [e.dialogue for e in load_examples(DATA, "test")]
    runs = tune_adapters(base, WORK)
    multi, single = WORK / "multi-adapter-int8", WORK / "single-adapter-int8"
    results: dict[str, Any] = {"model": "flan-t5-base (random weights)", "adapters": len(SERVED)}
    if not current_export(multi):
        started = time.perf_counter()
        Summarizer.from_pretrained(base, backend_options={"progress": False}).export(
            multi, adapters={n: runs[n] for n in SERVED}, quantize="int8", overwrite=True
        )
        results["multi_export_seconds"] = time.perf_counter() - started
    if not current_export(single):
        tuned = Summarizer.from_pretrained(runs[SERVED[0]], backend_options={"progress": False})
        tuned.export(single, quantize="int8", overwrite=True)
    sizes = {
        name: info.size_bytes for name, info in Summarizer.from_pretrained(multi).adapters().items()
    }
    results["adapter_bytes"] = sizes

    count = 96
    sample = texts[:count]
    names = [SERVED[i % len(SERVED)] for i in range(count)]
    offline = Summarizer.from_pretrained(multi, backend_options={"progress": False})
    expected_multi = [
        offline.summarize([t], adapter=n, **BASE_PARAMS)[0].strip()
        for t, n in zip(sample, names, strict=True)
    ]
    del offline
    offline = Summarizer.from_pretrained(single, backend_options={"progress": False})
    expected_single = [s.strip() for s in offline.summarize(sample, **BASE_PARAMS)]
    del offline
    multi_bodies = [
        {"inputs": t, "parameters": {"generate_parameters": BASE_PARAMS, "adapter": n}}
        for t, n in zip(sample, names, strict=True)
    ]
    single_bodies = [
        {"inputs": t, "parameters": {"generate_parameters": BASE_PARAMS}} for t in sample
    ]

    # Memory and throughput, one server at a time.
    for label, folder, bodies, expected in (
        ("multi", multi, multi_bodies, expected_multi),
        ("single", single, single_bodies, expected_single),
    ):
        port = free_port()
        process = serve(folder, port, admin=label == "multi")
        try:
            requests_load(port, bodies[:16], None, 16)  # warm-up
            measured = summary(requests_load(port, bodies, expected, 16))
            measured["rss_mb"] = peak_rss_mb(process.pid, "VmRSS")
            measured["peak_rss_mb"] = peak_rss_mb(process.pid)
            results[label] = measured
            print(label, json.dumps(measured), flush=True)
            if label == "multi":
                results["runtime_load"] = runtime_load(port, texts, runs[ADAPTERS[8]])
                print("runtime load", json.dumps(results["runtime_load"]), flush=True)
        finally:
            stop(process)
    results["memory_ratio_to_one_single_server"] = (
        results["multi"]["rss_mb"] / results["single"]["rss_mb"]
    )
    results["memory_of_8_single_servers_mb"] = 8 * results["single"]["rss_mb"]
    results["throughput_ratio"] = results["multi"]["throughput"] / results["single"]["throughput"]
    print(
        f"memory: {results['memory_ratio_to_one_single_server']:.2f}x one single-adapter server; "
        f"throughput: {results['throughput_ratio']:.2f}x",
        flush=True,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "adapters_serving.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


def runtime_load(port: int, texts: list[str], run: Path) -> dict[str, Any]:
    """p95 of requests that overlap a run-time adapter load, against the same load without it."""
    import httpx

    count = 160
    bodies = [
        {
            "inputs": texts[i % len(texts)],
            "parameters": {"generate_parameters": BASE_PARAMS, "adapter": SERVED[i % 8]},
        }
        for i in range(count)
    ]
    without = requests_load(port, bodies, None, 16)
    window: dict[str, float] = {}

    def put() -> None:
        time.sleep(2.0)  # the load is running at full concurrency by then
        window["start"] = time.perf_counter()
        response = httpx.put(
            f"http://127.0.0.1:{port}/v1/adapters/{ADAPTERS[8]}",
            json={"path": str(run)},
            headers={"X-Admin-Key": ADMIN_KEY},
            timeout=300,
        )
        window["end"] = time.perf_counter()
        window["status"] = response.status_code

    loader = threading.Thread(target=put)
    loader.start()
    during = requests_load(port, bodies, None, 16)
    loader.join()
    overlapping = [
        r["end"] - r["start"]
        for r in during
        if r["end"] >= window["start"] and r["start"] <= window["end"]
    ]
    baseline = p95([r["end"] - r["start"] for r in without])
    return {
        "load_status": window["status"],
        "load_seconds": window["end"] - window["start"],
        "requests_overlapping_the_load": len(overlapping),
        "p95_overlapping_s": p95(overlapping) if overlapping else None,
        "p95_without_load_s": baseline,
        "p95_ratio": (p95(overlapping) / baseline) if overlapping else None,
        "errors": sum(not r["ok"] for r in during),
    }


if __name__ == "__main__":
    sys.exit(main())
