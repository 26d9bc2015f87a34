"""Load test of ``dialogsum serve``: throughput and latency under load, with continuous,
micro- and no batching, against a hand-written FastAPI + transformers pipeline peer, every
answer checked.

    python benchmarks/serve_load.py                  # closed loop, open loop and soak
    python benchmarks/serve_load.py --part open      # one part: closed, open or soak

Closed loop: a bounded number of requests at concurrency 1, 4, 16 and 32. Open loop (how
serving benchmarks measure servers today): requests arrive at a fixed rate, Poisson arrivals
with a fixed seed, at a sweep of rates up to past saturation; each rate reports throughput,
p50/p95/p99 latency from the arrival time, and time to first token (dialogsum's requests
stream through the OpenAI-compatible ``/v1/completions``; the peer cannot stream, so its first
token is its answer). The FLAN-T5-base case mixes 16, 32 and 64 forced new tokens, so
summaries end at different steps. ``docs/serve_open_loop.png`` plots p95 latency against
offered load.

Each server starts on 127.0.0.1 (a free port) in its own process; a bounded number of requests
(one DialogSum test dialogue each) is sent at each level. Two models: the
bundled dialogsum-tiny int8 export with its own decoding defaults, and the FLAN-T5-base
architecture (random weights, int8, greedy, 32 forced tokens). FLAN-T5-base reads the dialogues
with dialogsum-tiny's tokenizer (8,000 pieces trained on DialogSum), whose token counts are
close to T5's own SentencePiece; the peer gets the same tokenizer. Every response must equal what
``summarize()`` gives offline for that dialogue: errors and wrong answers are counted. Then a
memory soak: 2,000 requests to the dialogsum-tiny server (batching on, concurrency 16,
cycling through all 500 test dialogues), its resident memory read after the first 200 and
after all of them. Writes benchmarks/results/serve_load.json (and serve_open_loop.json),
docs/serve_load.png and docs/serve_open_loop.png.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, ROOT, config_path, current_export, random_model_exports

WORK = Path("/tmp/dialogsum-bench")
DATA = ROOT.parent / "shared" / "data" / "dialogsum"
BASE_PARAMS = {"num_beams": 1, "max_new_tokens": 32, "min_new_tokens": 32}
#: Requests of the memory soak (dialogsum-tiny, batching on).
SOAK = 2000
#: The servers compared: dialogsum with each batching mode, and the hand-written peer.
ENGINES = {
    "dialogsum-continuous": ["--batching", "continuous"],
    "dialogsum-micro": ["--batching", "micro"],
    "dialogsum-no-batching": ["--batching", "off"],
}
#: Open loop: arrival rates as shares of the closed-loop throughput at concurrency 16 of
#: dialogsum's continuous batching (measured first), and requests per rate.
OPEN_SHARES = (0.25, 0.5, 0.75, 1.0, 1.25)
OPEN_REQUESTS = {"dialogsum-tiny": 160, "flan-t5-base": 64}
#: The peer is far slower: fewer requests per rate keep its sweep to minutes.
PEER_OPEN_REQUESTS = {"dialogsum-tiny": 24, "flan-t5-base": 12}
#: The FLAN-T5-base open-loop requests cycle through these forced lengths.
BASE_LENGTHS = (16, 32, 64)


#: The files of a tokenizer saved by transformers.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def with_dialogsum_tokenizer(folder: Path, work: Path) -> Path:
    """``folder`` (linked, not copied) with dialogsum-tiny's tokenizer in place of its own.

    The random-weight exports carry a 400-piece tokenizer that makes a DialogSum test dialogue
    310 tokens long at the median (6 of the first 64 run past 512); FLAN-T5's SentencePiece
    gives about 170, as the DialogSum-trained 8,000-piece one does (168). Serving cost grows
    with input length, so the realistic lengths are what a FLAN-T5 user's server sees.
    """
    tiny = ROOT / "dialogsum" / "models" / "dialogsum-tiny"
    target = work / f"{folder.name}-dialogsum-tokenizer"
    target.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        link = target / path.name
        if path.name not in TOKENIZER_FILES and not link.exists():
            link.symlink_to(path.resolve())
    for name in TOKENIZER_FILES:
        shutil.copyfile(tiny / name, target / name)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    """The process's peak resident memory (or, with ``field="VmRSS"``, its current one)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak(
    port: int, pid: int, texts: list[str], params: dict[str, Any], expected: list[str]
) -> dict[str, Any]:
    """SOAK requests at concurrency 16, cycling through ``texts``: resident memory after the
    first 200 and after all of them (a leak shows as growth), every answer checked."""
    first = [i % len(texts) for i in range(200)]
    rest = [i % len(texts) for i in range(200, SOAK)]
    rows = []
    for indices in (first, rest):
        rows.append(
            load(port, [texts[i] for i in indices], params, 16, [expected[i] for i in indices])
        )
        rows[-1]["rss_mb"] = peak_rss_mb(pid, "VmRSS")
    return {
        "requests": SOAK,
        "errors": rows[0]["errors"] + rows[1]["errors"],
        "wrong": rows[0]["wrong"] + rows[1]["wrong"],
        "rss_after_200_mb": rows[0]["rss_mb"],
        "rss_after_all_mb": rows[1]["rss_mb"],
        "growth": rows[1]["rss_mb"] / rows[0]["rss_mb"] - 1,
        "throughput": rows[1]["throughput"],
    }


def serve_command(export: Path, port: int) -> list[str]:
    """``dialogsum serve`` of ``export`` on ``port`` as every benchmark runs it: batches of up
    to 16 gathered for 5 ms, 2 threads, no request log or progress bar."""
    return [
        sys.executable, "-m", "dialogsum", "serve", "--model", str(export), "--port", str(port),
        "--no-log-requests", "--max-batch-size", "16", "--max-wait-ms", "5",
        "--backend-option", "threads=2", "--backend-option", "progress=false",
    ]  # fmt: skip


def start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    import httpx

    env = {**os.environ, "OMP_NUM_THREADS": "2", "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode()[-2000:])  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not become ready")


def percentiles(values: list[float]) -> dict[str, float]:
    """The median, p95 and p99 of ``values`` (seconds)."""
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {"p50_s": statistics.median(ordered), "p95_s": pct(0.95), "p99_s": pct(0.99)}


def load(
    port: int,
    texts: list[str],
    params: dict[str, Any],
    concurrency: int,
    expected: list[str] | None,
) -> dict[str, Any]:
    import httpx

    client = httpx.Client(timeout=300)

    def one(index: int) -> tuple[float, bool, bool]:
        started = time.perf_counter()
        try:
            response = client.post(
                f"http://127.0.0.1:{port}/v1/summarize",
                json={"inputs": texts[index], "parameters": {"generate_parameters": params}},
            )
            ok = response.status_code == 200
            right = ok and (
                expected is None or response.json()[0]["summary_text"].strip() == expected[index]
            )
        except httpx.HTTPError:
            ok = right = False
        return time.perf_counter() - started, ok, right

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(len(texts))))
    wall = time.perf_counter() - started
    latencies = [r[0] for r in results]
    return {
        "requests": len(texts),
        "concurrency": concurrency,
        "throughput": len(texts) / wall,
        **percentiles(latencies),
        "errors": sum(not r[1] for r in results),
        "wrong": sum(r[1] and not r[2] for r in results),
    }


def model_id(port: int) -> str:
    import httpx

    return str(httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()["data"][0]["id"])


def open_loop(
    port: int,
    texts: list[str],
    params: list[dict[str, Any]],
    rate: float,
    expected: list[str] | None,
    *,
    stream: bool,
    seed: int = 0,
) -> dict[str, Any]:
    """Requests ``texts[i]`` (with ``params[i]``) arriving at ``rate`` per second, Poisson
    arrivals: latency and time to first token from each arrival, every answer checked."""
    import httpx

    rng = random.Random(seed)
    arrivals, clock = [], 0.0
    for _ in texts:
        clock += rng.expovariate(rate)
        arrivals.append(clock)
    client = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=len(texts)))
    served = model_id(port) if stream else ""
    start_at = time.perf_counter() + 0.5

    def one(index: int) -> tuple[float, float, bool, bool]:
        due = start_at + arrivals[index]
        time.sleep(max(0.0, due - time.perf_counter()))
        first = None
        text = ""
        try:
            if stream:
                body = {
                    "model": served,
                    "prompt": texts[index],
                    "stream": True,
                    "generate_parameters": params[index],
                }
                url = f"http://127.0.0.1:{port}/v1/completions"
                with client.stream("POST", url, json=body) as response:
                    ok = response.status_code == 200
                    for line in response.iter_lines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        delta = json.loads(line[6:])["choices"][0].get("text") or ""
                        if delta and first is None:
                            first = time.perf_counter()
                        text += delta
            else:
                response = client.post(
                    f"http://127.0.0.1:{port}/v1/summarize",
                    json={
                        "inputs": texts[index],
                        "parameters": {"generate_parameters": params[index]},
                    },
                )
                ok = response.status_code == 200
                text = response.json()[0]["summary_text"] if ok else ""
        except (httpx.HTTPError, ValueError, KeyError):
            ok = False
        done = time.perf_counter()
        right = ok and (expected is None or text.strip() == expected[index])
        return done - due, (first or done) - due, ok, right

    with ThreadPoolExecutor(len(texts)) as pool:
        results = list(pool.map(one, range(len(texts))))
    wall = max(start_at + a + r[0] for a, r in zip(arrivals, results, strict=True)) - start_at
    firsts = percentiles([r[1] for r in results])
    return {
        "requests": len(texts),
        "rate": rate,
        "throughput": len(texts) / wall,
        **percentiles([r[0] for r in results]),
        "ttft_p50_s": firsts["p50_s"],
        "ttft_p95_s": firsts["p95_s"],
        "errors": sum(not r[2] for r in results),
        "wrong": sum(r[2] and not r[3] for r in results),
    }


def main() -> int:
    from dialogsum import Summarizer
    from dialogsum.data import load_examples

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "closed", "open", "soak"), default="all")
    parser.add_argument("--model", choices=("all", "dialogsum-tiny", "flan-t5-base"), default="all")
    parser.add_argument(
        "--engines",
        default=",".join([*ENGINES, "peer"]),
        help="comma-separated servers to run (default: all of them)",
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"no DialogSum corpus at {DATA}", file=sys.stderr)
        return 1
    folders = random_model_exports(config_path("base"), WORK)
    tiny_int8 = WORK / "tiny-int8"
    if not current_export(tiny_int8):
        Summarizer.from_pretrained("dialogsum-tiny").export(
            tiny_int8, quantize="int8", overwrite=True
        )
    texts = [e.dialogue for e in load_examples(DATA, "test")]
    models = {
        "dialogsum-tiny": (
            tiny_int8,
            {},
            Path(str(ROOT / "dialogsum" / "models" / "dialogsum-tiny")),
        ),
        "flan-t5-base": (
            with_dialogsum_tokenizer(folders["int8"], WORK),
            BASE_PARAMS,
            with_dialogsum_tokenizer(folders["pytorch"], WORK),
        ),
    }
    rows: list[dict[str, Any]] = []
    opened: list[dict[str, Any]] = []
    for name, (export, params, torch_dir) in models.items():
        if args.model not in ("all", name):
            continue
        count = 96 if name == "dialogsum-tiny" else 64
        # The tiny model's soak cycles through the whole test split.
        sample = texts if name == "dialogsum-tiny" else texts[:count]
        offline = Summarizer.from_pretrained(export, backend_options={"progress": False})
        expected = [s.strip() for s in offline.summarize(sample, **params)]
        # Open loop: the base model's requests cycle through forced lengths.
        arriving = texts[: OPEN_REQUESTS[name]]
        if name == "flan-t5-base":
            open_params = [
                {"max_new_tokens": n, "min_new_tokens": n}
                for n in (BASE_LENGTHS * len(arriving))[: len(arriving)]
            ]
        else:
            open_params = [{} for _ in arriving]
        open_expected = [
            offline.summarize([text], **one)[0].strip()
            for text, one in zip(arriving, open_params, strict=True)
        ]
        del offline
        saturation: dict[str, float] = {}
        for engine in [e for e in (*ENGINES, "peer") if e in args.engines.split(",")]:
            port = free_port()
            if engine == "peer":
                command = [
                    sys.executable,
                    str(ROOT / "benchmarks" / "peer_fastapi.py"),
                    str(torch_dir),
                    str(port),
                ]
                levels, check = (1, 16), None  # PyTorch's summaries are not the int8 ones
            else:
                command = [*serve_command(export, port), *ENGINES[engine]]
                levels, check = (1, 4, 16, 32), expected
            if args.part == "open":
                # The rates of the open loop are shares of the best of these.
                levels = (1, 16) if engine == "peer" else (16,)
            process = start(command, port)
            try:
                if args.part in ("all", "closed", "open"):
                    for concurrency in levels:
                        n = count if engine != "peer" else min(count, 32)
                        result = load(
                            port, sample[:n], params, concurrency, check[:n] if check else None
                        )
                        result.update(
                            model=name, engine=engine, peak_rss_mb=peak_rss_mb(process.pid)
                        )
                        if concurrency == 16 or engine == "peer":
                            saturation[engine] = max(
                                saturation.get(engine, 0.0), result["throughput"]
                            )
                        if args.part != "open":
                            rows.append(result)
                        print(json.dumps(result), flush=True)
                if (
                    args.part in ("all", "soak")
                    and name == "dialogsum-tiny"
                    and (engine == "dialogsum-continuous")
                ):
                    soaked = soak(port, process.pid, sample, params, expected)
                    soaked.update(model=name, engine=engine, concurrency=16, soak=True)
                    rows.append(soaked)
                    print(json.dumps(soaked), flush=True)
                if args.part in ("all", "open"):
                    # dialogsum's engines share the rates (shares of continuous batching's
                    # closed-loop throughput at concurrency 16); the peer's are shares of its
                    # own best closed-loop throughput.
                    base_rate = saturation["peer" if engine == "peer" else "dialogsum-continuous"]
                    peer = engine == "peer"
                    for share in OPEN_SHARES:
                        n = PEER_OPEN_REQUESTS[name] if peer else len(arriving)
                        result = open_loop(
                            port,
                            arriving[:n],
                            open_params[:n],
                            share * base_rate,
                            None if peer else open_expected[:n],
                            stream=not peer,
                        )
                        result.update(model=name, engine=engine, share=share)
                        opened.append(result)
                        print(json.dumps(result), flush=True)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=120)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if rows:
        rows = merged(RESULTS / "serve_load.json", rows)
        plot(rows, ROOT / "docs" / "serve_load.png")
    if opened:
        opened = merged(RESULTS / "serve_open_loop.json", opened)
        plot_open(opened, ROOT / "docs" / "serve_open_loop.png")
    return 0


def merged(path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` written to ``path`` over the rows of the same models and parts it held, the
    rows of the others kept (a run of one part or model leaves the rest of the results)."""
    fresh = {(r["model"], bool(r.get("soak"))) for r in rows}
    old = json.loads(path.read_text()) if path.exists() else []
    kept = [r for r in old if (r["model"], bool(r.get("soak"))) not in fresh]
    path.write_text(json.dumps(kept + rows, indent=2) + "\n")
    return kept + rows


def plot_open(rows: list[dict[str, Any]], path: Path) -> None:
    """p95 latency against offered load, one panel per model, one line per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in rows})
    figure, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        for engine in (*ENGINES, "peer"):
            subset = [r for r in rows if r["model"] == model and r["engine"] == engine]
            if subset:
                axis.plot(
                    [r["rate"] for r in subset], [r["p95_s"] for r in subset], marker="o",
                    label=engine,
                )  # fmt: skip
        axis.axhline(2.0, color="grey", linestyle=":", linewidth=1)
        axis.set_title(f"{model}: open loop (Poisson arrivals)")
        axis.set_xlabel("offered load (requests / s)")
        axis.set_ylabel("p95 latency (s)")
        axis.set_yscale("log")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in rows})
    figure, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        for engine in (*ENGINES, "peer"):
            subset = [
                r
                for r in rows
                if r["model"] == model and r["engine"] == engine and not r.get("soak")
            ]
            axis.plot(
                [r["throughput"] for r in subset],
                [r["p95_s"] for r in subset],
                marker="o",
                label=engine,
            )
            for r in subset:
                axis.annotate(str(r["concurrency"]), (r["throughput"], r["p95_s"]), fontsize=8)
        axis.set_title(model)
        axis.set_xlabel("summaries / s")
        axis.set_ylabel("p95 latency (s)")
        axis.set_yscale("log")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
