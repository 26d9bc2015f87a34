"""Adapter folders uploaded as archives (``PUT /v1/adapters/{name}``): the body saved within
``max_adapter_bytes``, then unpacked safely into a folder the server chose.

Unpacking refuses, with a 422 that names the member: absolute paths, ``..``, links (symbolic
or hard), devices and other special files, a path given twice, and more than
:data:`MAX_MEMBERS` members; what the members unpack to is counted as it is written, and
stops with a 413 past ``max_adapter_bytes``. Only regular files and folders are written, with
the server's own permissions (never the archive's). The standard library's extraction is not
used: its filters allow links inside the folder, and it trusts the sizes headers declare.

This module imports no FastAPI.
"""

from __future__ import annotations

import functools
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from dialogsum.serve.inputs import Rejected

ArchiveKind = Literal["zip", "tar.gz"]

#: Content types of the archives ``PUT /v1/adapters/{name}`` takes.
ARCHIVE_TYPES: dict[str, ArchiveKind] = {
    "application/zip": "zip",
    "application/x-zip-compressed": "zip",
    "application/gzip": "tar.gz",
    "application/x-gzip": "tar.gz",
    "application/x-gtar": "tar.gz",
    "application/x-tar+gzip": "tar.gz",
}
#: Most members (files and folders) an adapter archive may hold.
MAX_MEMBERS = 1000
#: What an upload may be, for the errors that say what was sent is not one.
ARCHIVES = "a .zip or .tar.gz archive of the adapter's folder"

_DRIVE = re.compile(r"^[A-Za-z]:")


def archive_kind(content_type: str | None, head: bytes) -> ArchiveKind | None:
    """The kind of archive a body is: from its content type, else from its first bytes (a
    client that sends ``application/octet-stream`` or none, as ``curl -T`` does)."""
    declared = ARCHIVE_TYPES.get((content_type or "").split(";")[0].strip().lower())
    if declared is not None:
        return declared
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    return None


def unpack(archive: Path, kind: ArchiveKind, into: Path, limit: int) -> Path:
    """Unpack ``archive`` into the empty folder ``into``; returns the adapter's folder: ``into``,
    or the one folder it holds when the archive holds a folder rather than its files.

    Raises :class:`Rejected`: 422 for a damaged or unsafe archive, 413 past ``limit`` bytes.
    """
    budget = _Budget(limit)
    try:
        if kind == "zip":
            _unpack_zip(archive, into, budget)
        else:
            _unpack_tar(archive, into, budget)
    except OSError as exc:  # members that clash (a file where a folder is); no server path
        detail = exc.strerror or str(exc)  # a system error's text without its path
        raise Rejected(422, f"The {kind} archive cannot be unpacked: {detail}.") from None
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as exc:
        raise Rejected(422, f"The upload is not a readable {kind} archive: {exc}.") from None
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, or an unknown compression
        raise Rejected(422, f"The {kind} archive cannot be unpacked: {exc}.") from None
    entries = list(into.iterdir())
    if not entries:
        raise Rejected(422, f"The archive is empty; send {ARCHIVES}.")
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return into


class _Budget:
    """Bytes and members still allowed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = limit
        self.members = MAX_MEMBERS

    def member(self, name: str) -> None:
        self.members -= 1
        if self.members < 0:
            raise Rejected(
                422,
                f"The archive holds more than {MAX_MEMBERS} members; {ARCHIVES} holds a few files.",
            )

    def copy(self, source: IO[bytes], target: Path) -> None:
        """Copy ``source`` into the new file ``target``, counting what is written."""
        try:
            sink = target.open("xb")  # "x": a path given twice is refused, not overwritten
        except FileExistsError:
            raise Rejected(422, f"The archive holds {target.name!r} twice.") from None
        with sink:
            while chunk := source.read(1 << 20):
                self.bytes -= len(chunk)
                if self.bytes < 0:
                    raise Rejected(
                        413,
                        f"The archive unpacks to more than {self.limit} bytes (the server's "
                        f"max_adapter_bytes).",
                    )
                sink.write(chunk)


def _target(into: Path, name: str) -> Path | None:
    """Where member ``name`` goes under ``into`` (None for the archive's root itself), or a
    422 when the name would leave ``into``."""
    unsafe = (
        not name
        or "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or _DRIVE.match(name) is not None
    )
    parts = [part for part in PurePosixPath(name).parts if part not in ("", ".")]
    if unsafe or ".." in parts:
        raise Rejected(
            422,
            f"The archive member {name!r} would be written outside the adapter's folder "
            f"(an absolute path or '..'); refused. Send {ARCHIVES} with relative paths.",
        )
    return into.joinpath(*parts) if parts else None


def _special(name: str, what: str) -> Rejected:
    return Rejected(
        422,
        f"The archive member {name!r} is {what}; an adapter archive holds only files and "
        f"folders (links are refused, as they could point anywhere on the server).",
    )


def _unpack_zip(archive: Path, into: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            budget.member(info.filename)
            # The file type a Unix zip recorded, if any (other zips record none).
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                raise _special(info.filename, "a symbolic link")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _special(info.filename, "a special file")
            _place(into, info.filename, info.is_dir(), budget, functools.partial(bundle.open, info))


def _unpack_tar(archive: Path, into: Path, budget: _Budget) -> None:
    with tarfile.open(archive, "r:gz") as bundle:
        for member in bundle:
            budget.member(member.name)
            if member.issym() or member.islnk():
                raise _special(member.name, "a link")
            if not (member.isfile() or member.isdir()):
                raise _special(member.name, "a device or another special file")
            source = functools.partial(_member, bundle, member)
            _place(into, member.name, member.isdir(), budget, source)


def _place(
    into: Path,
    name: str,
    folder: bool,
    budget: _Budget,
    source: Callable[[], AbstractContextManager[IO[bytes]]],
) -> None:
    """Write member ``name`` under ``into``: a folder, or a file read from ``source()``."""
    target = _target(into, name)
    if target is None:
        return
    if folder:
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with source() as stream:
        budget.copy(stream, target)


@contextmanager
def _member(bundle: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[IO[bytes]]:
    source = bundle.extractfile(member)
    if source is None:  # not a regular file after all
        raise _special(member.name, "not a regular file")
    try:
        yield source
    finally:
        source.close()


def remove(folder: Path | None) -> None:
    """Remove an upload's folder (a failed upload leaves nothing behind)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
