"""The Ray engine: Ray Data reads the input, an actor pool summarizes, part files come out.

A lines datasource → ``map_batches`` (parse, drop rows done earlier or malformed) → ``map_batches``
with an actor pool (one model per actor, loaded once) → a JSON Lines datasink. It runs on a
local Ray started for the job, or on the cluster named by ``--ray-address`` / ``RAY_ADDRESS``;
paths may be on any filesystem Ray and pyarrow read (local, ``s3://``, ``gs://``).

Rows are read as lines rather than with ``read_json`` so that a malformed row is judged by the
same rules as in the local engine (and dropped here after the driver has reported it), and so
that an id keeps its JSON type (a number stays a number) on its way through Arrow. The lines
are split and decoded as the driver reads them (not with ``read_text``, whose strict decoding
fails the whole file on one line that is not UTF-8), and travel as bytes, since Arrow's strings
cannot hold such a line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dialogsum.batch.local import Work
from dialogsum.batch.output import PART_SUFFIX, summary_line
from dialogsum.batch.rows import DECODE_ERRORS, InputFile, is_uri, parse_row
from dialogsum.batch.settings import BatchSettings
from dialogsum.errors import BackendError, DataError, clause, require


@contextmanager
def connected(settings: BatchSettings) -> Iterator[None]:
    """Ray for the job: the cluster the settings or ``RAY_ADDRESS`` name, else a local Ray
    started here (and shut down when the job ends). Entered before the job writes anything,
    so a cluster that cannot be reached fails a job that has written nothing."""
    require_ray()
    import ray

    started_here = _connect(ray, settings)
    try:
        yield
    finally:
        if started_here:
            ray.shutdown()


def run_ray(
    files: Iterable[InputFile],
    done: set[str | int],
    output: str,
    work: Work,
    settings: BatchSettings,
) -> int:
    """Summarize every row of ``files`` whose id is not in ``done`` into part files in
    ``output``, on the Ray :func:`connected` joined; returns how many dialogues were longer
    than the model's input length (summarized from their beginning)."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = settings.progress
    # Local paths as absolute ones: a cluster's tasks do not run in this command's folder.
    locations = [_absolute(file.location) for file in files]
    dataset = ray.data.read_datasource(_lines_source(locations))
    dataset = dataset.map_batches(
        _parse_lines,
        fn_kwargs={"done": done},
        batch_format="pyarrow",
    )
    dataset = dataset.map_batches(
        _SummarizeActor,
        fn_constructor_kwargs={"work": work},
        batch_size=settings.chunk_size,
        compute=ActorPoolStrategy(size=settings.workers),
        num_cpus=actor_cpus(work.threads, settings.workers, _cluster_cpus(ray)),
        batch_format="numpy",
    )
    sink = _lines_sink(_absolute(output))
    try:
        dataset.write_datasink(sink)
    except ray.exceptions.RayError as exc:
        raise BackendError(
            f"The Ray job failed: {clause(exc)}. Part files written so far in {output} are "
            f"kept; rerun the same command to go on from there."
        ) from exc
    return int(sink.truncated)


#: CPUs the actors leave to Ray Data's read, parse and write tasks (each asks for one).
READING_CPUS = 1.0


def actor_cpus(threads: int, workers: int, cluster: tuple[float, float]) -> float:
    """The CPUs each of ``workers`` actors reserves: its ``threads``, but never so many that
    the actors hold every CPU of the cluster (``(total, largest node)``), since Ray Data's read
    task would then wait for a CPU forever; nor more than the largest node has, where an actor
    could never be placed. An actor may then run more threads than it reserves, which is slower
    than it could be but never stuck."""
    total, largest = cluster
    reading = min(READING_CPUS, total / 2)
    share = (total - reading) / workers
    # Whole CPUs where each actor gets at least one: fractions could leave half a CPU free on
    # each of two nodes and no whole one anywhere for a read task. A fraction only where the
    # CPUs are fewer than the actors.
    if share >= 1:
        share = float(int(share))
    return max(min(float(threads), share, largest), 0.01)


def _absolute(location: str) -> str:
    """``location`` as an absolute path when it is a local one; a URI as it is."""
    if is_uri(location):
        return location
    return str(Path(location.removeprefix("file://")).expanduser().resolve())


def _cluster_cpus(ray: Any) -> tuple[float, float]:
    """The CPUs of the cluster Ray is connected to, and of its largest live node."""
    nodes = [node.get("Resources", {}).get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")]
    total = float(ray.cluster_resources().get("CPU", 0.0))
    return total, float(max(nodes, default=total))


def require_ray() -> None:
    """Raise :class:`~dialogsum.errors.MissingDependencyError` naming ``dialogsum[ray]`` unless
    Ray Data is installed (checked before a job writes anything)."""
    require(("ray", "ray.data"), extra="ray", purpose="dialogsum batch --engine ray")


def _connect(ray: Any, settings: BatchSettings) -> bool:
    """Join the cluster the settings or ``RAY_ADDRESS`` name, else start a local Ray; returns
    whether a Ray was started (and so must be stopped) here."""
    from dialogsum.ray_cluster import connect

    if ray.is_initialized():
        return False
    # Logical CPUs for a local Ray: one share per actor plus one, so that reading and parsing
    # tasks are never starved by the actors holding every CPU.
    cores = os.cpu_count() or 1
    needed = settings.workers * settings.worker_threads() + 1
    return connect(settings.ray_address, num_cpus=max(cores, needed))


def _parse_lines(batch: Any, done: set[str | int]) -> dict[str, Any]:
    """Rows of this batch still to summarize: id (as JSON, so its type survives) and dialogue.

    A row the driver found malformed is dropped here too (the driver has already failed the job
    or written it to the rejects file); rows whose id is already in the output are skipped.
    """
    import numpy as np

    ids: list[str] = []
    dialogues: list[str] = []
    for raw in batch.column("line").to_pylist():
        try:
            row = parse_row(raw.decode("utf-8", DECODE_ERRORS), "row")
        except DataError:
            continue
        if row.id is None or row.id in done:
            continue
        ids.append(json.dumps(row.id))
        dialogues.append(row.dialogue)
    return {"id": np.array(ids, dtype=str), "dialogue": np.array(dialogues, dtype=str)}


class _SummarizeActor:
    """One model copy, loaded once per actor."""

    def __init__(self, work: Work) -> None:
        from dialogsum.batch.local import start_worker

        start_worker(work)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from dialogsum.batch.local import counted_chunk

        dialogues = [str(d) for d in batch["dialogue"]]
        summaries, truncated = counted_chunk(dialogues) if dialogues else ([], 0)
        lines = [
            summary_line(json.loads(str(row_id)), summary)
            for row_id, summary in zip(batch["id"], summaries, strict=True)
        ]
        # The chunk's count of truncated dialogues rides on its first row (the others carry 0),
        # so that the sink's sum over all rows is the job's total.
        counts = np.zeros(len(lines), dtype=np.int64)
        if len(lines):
            counts[0] = truncated
        return {"line": np.array(lines, dtype=str), "truncated": counts}


def _lines_source(paths: list[str]) -> Any:
    import io

    import pyarrow as pa
    from ray.data.datasource import FileBasedDatasource

    class LinesSource(FileBasedDatasource):
        """Each file's non-blank lines, split and decoded as :class:`InputFile` reads them,
        as a ``line`` column of bytes."""

        def _read_stream(self, f: Any, path: str) -> Any:
            text = io.TextIOWrapper(
                io.BytesIO(f.readall()), encoding="utf-8-sig", errors=DECODE_ERRORS
            )
            lines = [line.encode("utf-8", DECODE_ERRORS) for line in text if line.strip()]
            yield pa.table({"line": pa.array(lines, type=pa.binary())})

    return LinesSource(paths)


def _lines_sink(output: str) -> Any:
    import pyarrow.compute as pc
    from ray.data.datasource import BlockBasedFileDatasink

    class LinesSink(BlockBasedFileDatasink):
        """Writes each block's ``line`` column as one JSON Lines part file, and adds up the
        ``truncated`` column: each write task returns its blocks' sum, and the driver's copy
        of the sink totals them when the write completes."""

        def __init__(self, path: str) -> None:
            super().__init__(path, file_format=PART_SUFFIX.lstrip("."))
            self.truncated = 0

        def write(self, blocks: Iterable[Any], ctx: Any) -> int:  # type: ignore[override]
            from ray.data.block import BlockAccessor

            blocks = list(blocks)
            super().write(blocks, ctx)
            total = 0
            for block in blocks:
                table = BlockAccessor.for_block(block).to_arrow()
                # An empty block (every row of it done earlier) may reach the sink with the
                # columns of the step before the actors; it has nothing to count.
                if table.num_rows and "truncated" in table.column_names:
                    total += int(pc.sum(table.column("truncated")).as_py() or 0)
            return total

        def on_write_complete(self, write_result: Any) -> None:
            super().on_write_complete(write_result)
            self.truncated = sum(count or 0 for count in write_result.write_returns)

        def write_block_to_file(self, block: Any, file: Any) -> None:
            for line in block.to_arrow().column("line").to_pylist():
                file.write(line.encode("utf-8"))

    return LinesSink(output)
