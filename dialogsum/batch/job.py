"""A whole batch job: check the input and the output, pick the engine, prove exactly-once.

Order of work: the input is found and the engine's dependencies checked before anything is
written; every row is checked (a malformed row fails the job before any model loads, naming its
file and line, unless rejects are being set aside), then the output is read for what an earlier
run finished; the model loads, the job is recorded beside the output, and the engine summarizes
the rest. At the end the output is
read again: every input row must be in it exactly once, or the job fails saying which are not.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dialogsum.batch.local import Loader, Summarizes, Work, run_local
from dialogsum.batch.output import (
    LineWriter,
    check_job,
    check_output,
    job_file,
    record_job,
    remove_output,
    written_ids,
)
from dialogsum.batch.rows import (
    REJECT_FIELDS,
    BatchRow,
    InputFile,
    input_files,
    is_uri,
    read_rows,
)
from dialogsum.batch.settings import BatchSettings
from dialogsum.errors import BackendError, ConfigError, DataError, logger
from dialogsum.files import check_can_write


@dataclass
class BatchReport:
    """What a batch job did."""

    engine: str
    output: str
    rows: int
    already_done: int
    summarized: int
    rejected: int
    #: Dialogues longer than the model's input length, summarized from their beginning.
    truncated: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Rows summarized by this run per second of its wall time."""
        return self.summarized / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 3)}


@dataclass
class _Scan:
    """The checked input: its files, the ids of its rows, the rows set aside."""

    files: list[InputFile]
    ids: set[str | int]
    rejected: int
    #: The rejects file, written whole under a temporary name until the job starts (None
    #: without --rejects, and once it is published under its own name).
    staged: Path | None = None
    rejects: Path | None = None


def run_batch(
    source: str | Path,
    output: str | Path,
    load: Loader,
    generation: Mapping[str, Any],
    settings: BatchSettings,
    *,
    overwrite: bool = False,
    job: Mapping[str, Any] | None = None,
) -> BatchReport:
    """Summarize every row of ``source`` (a JSON Lines file or a folder of them) into
    ``output``; a rerun goes on where an earlier one stopped.

    ``load`` builds the model (it runs once here, to fail early, and once per worker);
    ``generation`` holds :class:`~dialogsum.generation.GenerationOptions` fields. ``job``
    names what else makes the summaries (the model, its backend and options): it is recorded
    beside the output with ``generation``, and a rerun with other settings is refused.
    """
    started = time.perf_counter()
    # Nothing is written before the input is found and the engine can run: a failed start
    # must leave no output (or record of one) that a later command would stumble on.
    files = input_files(source)
    if settings.engine == "ray":
        from dialogsum.batch.ray_engine import require_ray

        require_ray()
    if is_uri(str(output)):
        raise ConfigError(
            f"Output {output}: dialogsum batch writes to a local (or mounted) path, where it "
            f"can read back what is done; inputs may be remote."
        )
    target = Path(output).expanduser()
    if settings.engine == "local" and str(output).endswith(("/", os.sep)):
        # A trailing slash names a folder (which Path would silently drop): never a file.
        raise ConfigError(
            f"Output {output} names a folder (it ends with '/'); the local engine writes one "
            f"JSON Lines file. Give a file name such as {target / 'summaries.jsonl'} (the ray "
            f"engine writes a folder of part files)."
        )
    _check_not_an_input(files, target)
    check_output(target, engine=settings.engine)
    _check_outside_input(source, target, settings)
    _check_rejects(settings, files, target, overwrite=overwrite)
    scan = _scan(files, settings)
    try:
        return _run(
            scan,
            target,
            load,
            generation,
            settings,
            source=source,
            overwrite=overwrite,
            job=job,
            started=started,
        )
    finally:
        # A job refused at its start leaves no rejects file behind (once published, the
        # staging file is gone and this does nothing).
        if scan.staged is not None:
            scan.staged.unlink(missing_ok=True)


def _run(
    scan: _Scan,
    target: Path,
    load: Loader,
    generation: Mapping[str, Any],
    settings: BatchSettings,
    *,
    source: str | Path,
    overwrite: bool,
    job: Mapping[str, Any] | None,
    started: float,
) -> BatchReport:
    """The job once its input is scanned: the checks that read the output, the model, the
    engine; then, and only then, the first write."""
    # With --overwrite the earlier output is not read (it is removed once the job starts); a
    # refusal before that keeps it as it was.
    done = set() if overwrite else written_ids(target)
    stray = done - scan.ids
    if stray:
        example = next(iter(stray))
        raise ConfigError(
            f"{target} holds {len(stray)} summaries whose ids are not in {source} (e.g. "
            f"{example!r}): it is the output of another input. Give another --output, or "
            f"--overwrite to start it again."
        )
    record: dict[str, object] = dict(job) if job else {"generation": dict(generation)}
    check_job(target, record, resuming=bool(done))
    if done:
        logger.info(
            "%s already has %d of %d rows; summarizing the other %d.",
            target,
            len(done),
            len(scan.ids),
            len(scan.ids) - len(done),
        )
    summarized = truncated = 0
    to_do = len(done) < len(scan.ids)
    # Loaded here first: a bad model fails with its own message, before any worker starts and
    # before the job is recorded. Only the in-process worker keeps it; other workers load
    # their own copies.
    loaded: Summarizes | None = load() if to_do else None
    if loaded is not None:
        # The options against the loaded model: an adapter it does not serve fails here, with
        # the adapters it does, before the job is recorded and before any worker starts.
        loaded.generation_options(**generation)
    # The engine comes up (Ray joined or started) before the first write: a cluster that
    # cannot be reached fails a job that has written nothing.
    with _engine(settings, to_do):
        if overwrite:
            remove_output(target)
        _publish_rejects(scan)
        if settings.engine == "ray":
            target.mkdir(exist_ok=True)
        record_job(target, record, resuming=bool(done))
        if to_do:
            if settings.engine == "ray" or settings.workers > 1:
                loaded = None
            work = Work(load, dict(generation), settings.worker_threads())
            summarized, truncated = _summarize(
                scan.files, done, target, work, loaded, settings, len(scan.ids)
            )
    if truncated:
        logger.warning(
            "%d of %d dialogues were longer than the model's max_source_length and were "
            "summarized from their beginning.",
            truncated,
            summarized,
        )
    _check_exactly_once(target, scan.ids)
    return BatchReport(
        engine=settings.engine,
        output=str(target),
        rows=len(scan.ids),
        already_done=len(done),
        summarized=summarized,
        rejected=scan.rejected,
        truncated=truncated,
        seconds=time.perf_counter() - started,
    )


def _summarize(
    files: list[InputFile],
    done: set[str | int],
    target: Path,
    work: Work,
    loaded: Summarizes | None,
    settings: BatchSettings,
    total: int,
) -> tuple[int, int]:
    """Rows summarized and rows truncated."""
    if settings.engine == "ray":
        from dialogsum.batch.ray_engine import run_ray

        truncated = run_ray(files, done, str(target), work, settings)
        return total - len(done), truncated
    from tqdm.auto import tqdm

    rows = (row for row in read_rows(files) if isinstance(row, BatchRow) and row.id not in done)
    bar = tqdm(total=total, initial=len(done), unit="dialogue", disable=not settings.progress)
    writer = LineWriter(target)
    try:
        progress = run_local(
            rows,
            writer,
            work,
            workers=settings.workers,
            chunk_size=settings.chunk_size,
            advance=bar.update,
            loaded=loaded,
        )
        return progress.written, progress.truncated
    finally:
        writer.close()
        bar.close()


def _check_not_an_input(files: list[InputFile], target: Path) -> None:
    """The output may not be an input file: --overwrite would empty the input before reading
    it, and no rerun could recover it. Refused first, whatever else is given."""
    resolved = target.resolve()
    for one in files:
        if not is_uri(one.location) and Path(one.location).expanduser().resolve() == resolved:
            raise ConfigError(
                f"--output {target} is this job's input file; the summaries need a file of "
                f"their own (the input is never written). Give another --output."
            )


def _check_outside_input(source: str | Path, target: Path, settings: BatchSettings) -> None:
    """The output and the rejects may not be written inside an input folder: a rerun would
    read them (and the job's record) as input rows."""
    if is_uri(str(source)) or not Path(source).expanduser().is_dir():
        return
    folder = Path(source).expanduser().resolve()
    for flag, path in (("--output", target), ("--rejects", settings.rejects)):
        if path and folder in Path(path).expanduser().resolve().parents:
            raise ConfigError(
                f"{flag} {path} is inside the input folder {source}, whose files a rerun would "
                f"read as input. Write it outside that folder."
            )


def _check_rejects(
    settings: BatchSettings, files: list[InputFile], target: Path, *, overwrite: bool
) -> None:
    """The rejects file is written whole on every run: refuse a path that holds anything else
    (an input, the output, the job's record, a file of the user's) unless ``--overwrite``."""
    if not settings.rejects:
        return
    path = Path(settings.rejects).expanduser().resolve()
    taken = {Path(f.location).expanduser().resolve() for f in files if not is_uri(f.location)}
    taken |= {target.resolve(), job_file(target).resolve()}
    if path in taken or target.resolve() in path.parents:
        raise ConfigError(
            f"--rejects {settings.rejects} is this job's input or output; give the rejects "
            f"their own file."
        )
    if path.is_dir():
        raise ConfigError(f"--rejects {settings.rejects} is a folder; give a file name.")
    if path.exists() and not overwrite and not _is_rejects_file(path):
        raise ConfigError(
            f"--rejects {settings.rejects} exists and is not a rejects file of dialogsum batch; "
            f"it would be replaced. Give another file, or --overwrite to replace it."
        )
    check_can_write(Path(settings.rejects).expanduser())


def _is_rejects_file(path: Path) -> bool:
    """Whether every line of ``path`` is one a rejects file holds (an empty file is one)."""
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                if not isinstance(record, dict) or set(record) != set(REJECT_FIELDS):
                    return False
    except (OSError, ValueError):
        return False
    return True


def _scan(files: list[InputFile], settings: BatchSettings) -> _Scan:
    """Check every row; set malformed ones aside in the rejects file, or fail on the first."""
    ids: set[str | int] = set()
    rejected = 0
    rejects = None
    if settings.rejects:
        rejects_path = Path(settings.rejects).expanduser()
        if not rejects_path.parent.is_dir():
            raise ConfigError(
                f"Cannot write the rejects file {rejects_path}: its folder does not exist; "
                f"create it first."
            )
        handle, staging = tempfile.mkstemp(
            prefix=f".{rejects_path.name}.", suffix=".partial", dir=rejects_path.parent
        )
        rejects = os.fdopen(handle, "w", encoding="utf-8")
    try:
        for row in read_rows(files):
            if isinstance(row, BatchRow):
                if row.numbered and settings.engine == "ray":
                    raise DataError(
                        f"{row.where}: the row has no 'id' (or 'fname'). The ray engine needs "
                        f"one on every row, since its output is not in input order; add ids, "
                        f"or use --engine local, which numbers rows by their line."
                    )
                ids.add(row.id)
                continue
            if rejects is None:
                raise DataError(
                    f"{row.error} Fix the row, or pass --rejects FILE to set malformed rows "
                    f"aside and summarize the rest."
                )
            rejects.write(row.as_json())
            rejected += 1
    except BaseException:
        if rejects is not None:
            rejects.close()
            Path(staging).unlink(missing_ok=True)
        raise
    if rejects is None:
        return _checked(_Scan(files, ids, rejected))
    rejects.close()
    return _checked(_Scan(files, ids, rejected, Path(staging), rejects_path))


def _checked(scan: _Scan) -> _Scan:
    """``scan``, unless the input has no row to summarize (its staged rejects are removed)."""
    if not scan.ids:
        if scan.staged is not None:
            scan.staged.unlink(missing_ok=True)
        raise DataError("The input has no rows to summarize.")
    return scan


def _publish_rejects(scan: _Scan) -> None:
    """Give the staged rejects file its name, once the job has started."""
    if scan.staged is None or scan.rejects is None:
        return
    os.chmod(scan.staged, 0o666 & ~_umask())  # mkstemp's file is private; a plain file is not
    os.replace(scan.staged, scan.rejects)
    scan.staged = None
    if scan.rejected:
        logger.warning("%d malformed rows set aside in %s.", scan.rejected, scan.rejects)


def _engine(settings: BatchSettings, to_do: bool) -> AbstractContextManager[object]:
    """What the engine needs up while the job runs: for the Ray engine with rows to do, Ray
    (joined or started, and stopped after if started here); nothing for the local engine."""
    if settings.engine == "ray" and to_do:
        from dialogsum.batch.ray_engine import connected

        return connected(settings)
    return nullcontext()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_exactly_once(target: Path, ids: set[str | int]) -> None:
    """Every input row is in the output (``written_ids`` already refuses a repeated id)."""
    missing = ids - written_ids(target)
    if missing:
        example = next(iter(missing))
        raise BackendError(
            f"{len(missing)} rows have no summary in {target} (e.g. id {example!r}); rerun the "
            f"same command to summarize them."
        )
