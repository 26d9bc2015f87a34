"""The output of a batch job: JSON Lines of ``{"id": ..., "summary": ...}``.

The local engine appends to one file in input order; the Ray engine writes a folder of part
files. Either way a rerun first reads what is there: the ids already written are skipped, and a
line cut short by a crash (the only thing a kill can leave half-written) is removed, so every row
ends up in the output exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from dialogsum.errors import ConfigError, DataError, logger
from dialogsum.files import check_can_write
from dialogsum.validation import changes_between

#: The suffix of the Ray engine's part files.
PART_SUFFIX = ".jsonl"


def summary_line(row_id: str | int, summary: str) -> str:
    """One output line."""
    return json.dumps({"id": row_id, "summary": summary}, ensure_ascii=False) + "\n"


def written_ids(path: Path) -> set[str | int]:
    """The ids in an output file (or a folder of part files), after removing a cut-short last
    line. A line that is not a summary line is a :class:`DataError`: the file is not one this
    command wrote, and it is never edited."""
    files = part_files(path) if path.is_dir() else [path] if path.exists() else []
    done: set[str | int] = set()
    for file in files:
        for row_id in _file_ids(file):
            if row_id in done:
                raise DataError(
                    f"{file}: id {row_id!r} is written twice in {path}; this output was "
                    f"changed by something else. Start again with --overwrite."
                )
            done.add(row_id)
    return done


def part_files(folder: Path) -> list[Path]:
    """The Ray engine's part files in ``folder`` (any other file is left alone)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == PART_SUFFIX)


def _file_ids(file: Path) -> Iterator[str | int]:
    with file.open("rb") as handle:
        data = handle.read()
    complete = data.rfind(b"\n") + 1
    if complete < len(data):
        logger.warning(
            "%s ends in a line cut short (an interrupted run); removing its %d bytes so that "
            "row is summarized again.",
            file,
            len(data) - complete,
        )
        with file.open("r+b") as handle:
            handle.truncate(complete)
    for number, raw in enumerate(data[:complete].splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            row_id = record["id"]
            if not isinstance(record.get("summary"), str) or not isinstance(row_id, (str, int)):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise DataError(
                f'{file}:{number}: not a line dialogsum batch writes ({{"id": ..., '
                f'"summary": ...}}). Give another --output, or --overwrite to replace it.'
            ) from None
        yield row_id


def check_output(path: Path, *, engine: str) -> None:
    """Fail before any work when ``path`` cannot hold this engine's output."""
    if engine == "local" and path.is_dir():
        raise ConfigError(
            f"Output {path} is a folder; the local engine writes one JSON Lines file. Give a "
            f"file name (the ray engine writes a folder of part files)."
        )
    if engine == "ray" and path.is_file():
        raise ConfigError(
            f"Output {path} is a file; the ray engine writes a folder of part files. Give a "
            f"folder name."
        )
    # The ray engine writes its part files into the folder; the local engine appends to the
    # file and writes the job's record beside it.
    check_can_write(path, in_place=engine == "ray")


def remove_output(path: Path) -> None:
    """Remove an earlier output (``--overwrite``): the file, or a folder's part files, and the
    record of the job that wrote it."""
    if path.is_dir():
        for part in part_files(path):
            part.unlink()
    elif path.exists():
        path.unlink()
    job_file(path).unlink(missing_ok=True)


def job_file(path: Path) -> Path:
    """Where the job that writes ``path`` is recorded: ``job.json`` in the Ray engine's
    folder, ``<output>.job.json`` beside the local engine's file."""
    return path / "job.json" if path.is_dir() else path.with_name(path.name + ".job.json")


#: The key of a job's record holding :func:`~dialogsum.batch.fingerprint.model_fingerprints`.
FINGERPRINTS = "fingerprints"


def check_job(path: Path, job: dict[str, object], *, resuming: bool) -> None:
    """When a rerun goes on with an earlier output at ``path``, fail if that output was written
    with other settings than ``job`` (what makes the summaries: model, backend, generation), or
    with a model whose files have changed since: one file must not mix summaries of two models
    or decodings. It reads, and writes nothing."""
    record = job_file(path)
    if not (resuming and record.exists()):
        return
    try:
        earlier = json.loads(record.read_text(encoding="utf-8"))
        # The fingerprints are compared apart, so that their message can say which changed.
        changed = changes_between(_without_fingerprints(earlier), _without_fingerprints(job))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{record} (the record of the job that wrote {path}) is unreadable ({exc}); "
            f"--overwrite starts the output again."
        ) from None
    if changed:
        raise ConfigError(
            f"{path} was written with other settings ({'; '.join(changed)}), and one "
            f"output must not mix their summaries. Rerun with the earlier settings to "
            f"finish it, give another --output, or --overwrite to start it again."
        )
    # A record written before fingerprints were kept has none: it resumes as it did then.
    then = earlier.get(FINGERPRINTS) if isinstance(earlier, dict) else None
    fingerprints = job.get(FINGERPRINTS)
    if not isinstance(then, dict) or not isinstance(fingerprints, dict):
        return
    moved = [where for where, print_ in fingerprints.items() if then.get(where, print_) != print_]
    if moved:
        models = " and ".join(f"the model at {where}" for where in moved)
        raise ConfigError(
            f"{path} was written with other settings ({models} changed since the output was "
            f"started: its files are not the ones the summaries written so far came from), and "
            f"one output must not mix the summaries of two models. Give another --output, or "
            f"--overwrite to start it again with the model as it is now."
        )


def _without_fingerprints(record: object) -> object:
    """A job's record without its fingerprints."""
    if not isinstance(record, dict):
        return record
    return {key: value for key, value in record.items() if key != FINGERPRINTS}


def record_job(path: Path, job: dict[str, object], *, resuming: bool) -> None:
    """Record ``job`` beside the output at ``path`` (in its folder for the Ray engine), unless
    a resumed output already has its record (which :func:`check_job` found the same)."""
    record = job_file(path)
    if resuming and record.exists():
        return
    record.write_text(json.dumps(job, indent=2, sort_keys=True) + "\n", encoding="utf-8")


class LineWriter:
    """Appends summary lines to the local engine's output file, flushed to disk per chunk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] = path.open("a", encoding="utf-8")

    def write(self, lines: Iterable[str]) -> None:
        """Append ``lines`` and make them durable before the next chunk starts."""
        self._handle.write("".join(lines))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close the file."""
        self._handle.close()
