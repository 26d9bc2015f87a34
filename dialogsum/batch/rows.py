"""The input of a batch job: which files, their rows in a fixed order, each row's id.

Rows are read as a stream (never the whole file in memory). A row is a JSON object with a
``dialogue`` (the same rules as every other dialogsum input); its id is its ``fname`` or ``id``,
else its place in the input (the line number for one file, ``"file.jsonl:12"`` in a folder).
Ids must be unique: they are how a rerun knows what is already done.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dialogsum.data import example_from_row
from dialogsum.errors import DataError, logger, near_miss, require

#: Files a folder input is read from, in sorted order.
INPUT_SUFFIXES = (".jsonl", ".json")
#: The fields of a line of the rejects file, in order.
REJECT_FIELDS = ("where", "error", "text")
#: How input is decoded: bytes that are not UTF-8 become lone surrogates (U+DC80..U+DCFF)
#: instead of failing the read, so lines are split and numbered exactly, and a bad line is
#: judged (and set aside) on its own.
DECODE_ERRORS = "surrogateescape"
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class InputFile:
    """One input file: a local path, or a URI pyarrow reads (``s3://``, ``gs://``, ...)."""

    location: str
    #: How ids of rows without one name this file (its path relative to a folder input).
    label: str

    def open(self) -> IO[str]:
        """The file as UTF-8 text (a byte-order mark is fine), bytes that are not UTF-8 kept
        as :data:`DECODE_ERRORS` says, for :func:`parse_row` to report by line."""
        if not is_uri(self.location):
            return Path(self.location).open(encoding="utf-8-sig", errors=DECODE_ERRORS)
        filesystem, path = _filesystem(self.location)
        stream = filesystem.open_input_stream(path)
        return io.TextIOWrapper(stream, encoding="utf-8-sig", errors=DECODE_ERRORS)


@dataclass(frozen=True)
class BatchRow:
    """A row to summarize."""

    id: str | int
    dialogue: str
    where: str
    #: True when the id is the row's place in the input (the row has no ``id``/``fname``).
    numbered: bool = False


@dataclass(frozen=True)
class Reject:
    """A row that cannot be summarized, with why and the text as it was."""

    where: str
    error: str
    text: str

    def as_json(self) -> str:
        """One line of the rejects file."""
        record = {field: getattr(self, field) for field in REJECT_FIELDS}
        return json.dumps(record, ensure_ascii=False) + "\n"


def is_uri(location: str) -> bool:
    """Whether ``location`` names a remote filesystem (``s3://...``) rather than a local path."""
    return "://" in location and not location.startswith("file://")


def _filesystem(location: str) -> tuple[Any, str]:
    require(("pyarrow",), extra="ray", purpose=f"reading {location}")
    from pyarrow import fs

    return fs.FileSystem.from_uri(location)


def input_files(source: str | Path) -> list[InputFile]:
    """The files of ``source``: one file, or a folder's ``*.jsonl``/``*.json`` files (sorted,
    subfolders included)."""
    location = str(source)
    if is_uri(location):
        return _remote_files(location)
    path = Path(location.removeprefix("file://")).expanduser()
    if path.is_file():
        if path.suffix.lower() in (".csv", ".tsv"):
            raise DataError(
                f"{path}: dialogsum batch reads JSON Lines (.jsonl, or .json holding JSON "
                f'Lines), one {{"dialogue": ..., "id": ...}} object a line. Convert it first, '
                f"e.g. pandas.read_csv(...).to_json(OUT, orient='records', lines=True)."
            )
        return [InputFile(str(path), path.name)]
    if path.is_dir():
        every = [p for p in path.rglob("*") if p.is_file()]
        files = sorted(p for p in every if p.suffix.lower() in INPUT_SUFFIXES)
        skipped = len(every) - len(files)
        if skipped and files:
            logger.warning(
                "%s: %d files that are not .jsonl or .json are not read (e.g. %s).",
                path,
                skipped,
                next(p for p in every if p.suffix.lower() not in INPUT_SUFFIXES).name,
            )
        if not files:
            raise DataError(
                f"{path}: no .jsonl or .json files in this folder; give a JSON Lines file or a "
                f"folder of them."
            )
        return [InputFile(str(p), p.relative_to(path).as_posix()) for p in files]
    # near_miss ends the sentence: the likeliest file meant, or what the folder holds.
    raise DataError(f"No such input file or folder: {path}{near_miss(path)}")


def _remote_files(location: str) -> list[InputFile]:
    from pyarrow import fs

    filesystem, root = _filesystem(location)
    scheme = location.split("://", 1)[0]
    info = filesystem.get_file_info(root)
    if info.type == fs.FileType.File:
        return [InputFile(location, root.rsplit("/", 1)[-1])]
    if info.type != fs.FileType.Directory:
        raise DataError(f"No such input file or folder: {location}.")
    selector = fs.FileSelector(root, recursive=True)
    found = sorted(
        entry.path
        for entry in filesystem.get_file_info(selector)
        if entry.type == fs.FileType.File and entry.path.lower().endswith(INPUT_SUFFIXES)
    )
    if not found:
        raise DataError(f"{location}: no .jsonl or .json files in this folder.")
    return [InputFile(f"{scheme}://{path}", path[len(root) :].lstrip("/")) for path in found]


def read_rows(files: Iterable[InputFile]) -> Iterator[BatchRow | Reject]:
    """Every non-blank line of ``files``, in order, as a row or as a reject (bad JSON, no
    dialogue, ...). A repeated id is a :class:`DataError`: the output could not say which row
    a summary belongs to."""
    files = list(files)
    several = len(files) > 1
    seen: set[str | int] = set()
    for file in files:
        for number, line in _lines(file):
            where = f"{file.location}:{number}"
            try:
                row = parse_row(line, where)
            except DataError as exc:
                yield Reject(where, str(exc), printable(line.rstrip("\n")))
                continue
            if row.id is None:
                row_id: str | int = f"{file.label}:{number}" if several else number
            else:
                row_id = row.id
            if row_id in seen:
                raise DataError(
                    f"{where}: id {row_id!r} is used by an earlier row too. Ids must be unique, "
                    f"so that every summary names its row and a rerun can skip what is done; "
                    f"give each row its own 'id' (or 'fname')."
                )
            seen.add(row_id)
            yield BatchRow(row_id, row.dialogue, where, numbered=row.id is None)


@dataclass(frozen=True)
class _Parsed:
    id: str | int | None
    dialogue: str


def parse_row(line: str, where: str) -> _Parsed:
    """One JSON Lines row, checked like every dialogsum input; :class:`DataError` if malformed
    (not UTF-8 included: ``line`` is decoded with :data:`DECODE_ERRORS`)."""
    _check_utf8(line, where)
    try:
        # Without its line ending: inside a string left open, the newline would be reported
        # as a control character at the line's end instead of where the string starts.
        value = json.loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{where}: invalid JSON ({exc.msg.removesuffix(' at')}, column {exc.colno})."
        ) from None
    example = example_from_row(value, where, require_references=False)
    return _Parsed(example.id, example.dialogue)


def _check_utf8(line: str, where: str) -> None:
    if _NOT_UTF8.search(line) is None:
        return
    try:
        line.encode("utf-8", DECODE_ERRORS).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start + 1} of the line); "
            f"save the file as UTF-8."
        ) from None


def printable(line: str) -> str:
    """``line`` with the bytes that are not UTF-8 shown as ``\\xNN`` escapes, so a rejected
    row can be written to the rejects file as it was."""
    return line.encode("utf-8", DECODE_ERRORS).decode("utf-8", "backslashreplace")


def _lines(file: InputFile) -> Iterator[tuple[int, str]]:
    number = 0
    try:
        with file.open() as handle:
            for line in handle:
                number += 1
                if line.strip():
                    yield number, line
    except OSError as exc:
        raise DataError(f"{file.location}: cannot be read ({exc.strerror or exc}).") from None
