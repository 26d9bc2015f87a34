"""How many onnxruntime threads a ``dialogsum serve`` replica should use, batching on and off.

    python benchmarks/serve_threads.py          # about 2 minutes on 2 cores

The bundled dialogsum-tiny int8 export (its own decoding defaults), served with
``--backend-option threads=1`` and ``threads=2``, with batching on and off: 32 warm-up requests,
then 320 (the first 320 DialogSum test dialogues) at concurrency 16, every answer checked against
``summarize()`` offline. Three rounds, the four servers in turn in each; medians reported. Also
the CPU time per request of the server's event-loop thread and of the load generator (from
``/proc``), which share the machine's cores with the model. The load generator shares the machine's cores, as in
``serve_load.py``. Writes ``benchmarks/results/serve_threads.json``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, current_export
from serve_load import DATA, WORK, free_port, load, start

REQUESTS, CONCURRENCY, ROUNDS = 320, 16, 3


def serve(
    export: Path, texts: list[str], expected: list[str], threads: int, batching: bool
) -> dict[str, Any]:
    """One server's run: start it, warm it up, send the requests, stop it."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "dialogsum",
        "serve",
        "--model",
        str(export),
        "--port",
        str(port),
        "--no-log-requests",
        "--max-batch-size",
        "16",
        "--max-wait-ms",
        "5",
        "--backend-option",
        f"threads={threads}",
    ]
    if not batching:
        command += ["--batching", "off"]
    process = start(command, port)
    try:
        load(port, texts[:32], {}, CONCURRENCY, None)  # warm-up
        loop_before = _thread_cpu(process.pid, process.pid)
        client_before = _own_cpu()
        result = load(port, texts, {}, CONCURRENCY, expected)
        result["event_loop_ms_per_request"] = (
            1000 * (_thread_cpu(process.pid, process.pid) - loop_before) / len(texts)
        )
        result["load_generator_ms_per_request"] = 1000 * (_own_cpu() - client_before) / len(texts)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    result.update(threads=threads, batching=batching)
    return result


def _thread_cpu(pid: int, tid: int) -> float:
    """CPU seconds (user and system) of one thread of a process (the main thread: tid = pid)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    from dialogsum import Summarizer
    from dialogsum.data import load_examples

    if not DATA.is_dir():
        print(f"no DialogSum corpus at {DATA}", file=sys.stderr)
        return 1
    export = WORK / "tiny-int8"
    if not current_export(export):
        Summarizer.from_pretrained("dialogsum-tiny").export(export, quantize="int8", overwrite=True)
    texts = [e.dialogue for e in load_examples(DATA, "test")][:REQUESTS]
    offline = Summarizer.from_pretrained(export, backend_options={"progress": False})
    expected = [s.strip() for s in offline.summarize(texts)]
    del offline
    rows: list[dict[str, Any]] = []
    servers = [(threads, batching) for threads in (1, 2) for batching in (True, False)]
    for _ in range(ROUNDS):
        for threads, batching in servers:
            rows.append(serve(export, texts, expected, threads, batching))
            print(json.dumps(rows[-1]), flush=True)
    for name in ("event_loop_ms_per_request", "load_generator_ms_per_request"):
        batched = [r[name] for r in rows if r["batching"] and r["threads"] == 2]
        print(f"{name}, batching on, 2 threads: median {statistics.median(batched):.2f}")
    medians = {
        f"threads={threads} batching={'on' if batching else 'off'}": statistics.median(
            r["throughput"] for r in rows if (r["threads"], r["batching"]) == (threads, batching)
        )
        for threads, batching in servers
    }
    print(json.dumps(medians, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_threads.json").write_text(
        json.dumps({"runs": rows, "median_throughput": medians}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
