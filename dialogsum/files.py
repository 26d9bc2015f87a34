"""Writes a user depends on, made safe: atomic, readable as the umask says, never clobbering.

Every folder dialogsum writes (a saved model, an export, a run's model) is built under a
temporary sibling name and renamed into place when complete; every file (metrics, predictions,
reports) is written to a temporary sibling and renamed. An interrupted or failed write (Ctrl-C,
kill, a full disk) therefore leaves the previous state as it was. Temporary folders are created
private (``mkdtemp`` makes them 0700); they are given the mode the user's umask asks for before
they become visible, so other users and service accounts can read what was written.

Every command checks first that it can write each output (:func:`check_can_write` creates and
removes a probe file where the output will go), so a read-only or impossible location fails
before a model loads, not after the work. Each temporary name is locked by its writer while
it lives; a writer killed outright (kill -9, a power cut) leaves its temporary behind, and the
next write of the same target removes it, since no live process holds its lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from dialogsum.errors import ConfigError, DialogsumError, logger


def current_umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_umask(path: Path) -> None:
    """Give ``path`` (and a folder's contents) the modes a plain ``mkdir``/``open`` would have."""
    mask = current_umask()
    folder_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    if path.is_dir():
        for root, folders, files in os.walk(path):
            os.chmod(root, folder_mode)
            for name in folders:
                os.chmod(os.path.join(root, name), folder_mode)
            for name in files:
                os.chmod(os.path.join(root, name), file_mode)
    else:
        os.chmod(path, file_mode)


def check_can_write(target: Path, *, in_place: bool = False, create_parents: bool = False) -> None:
    """Fail with a :class:`ConfigError` naming ``target`` and the reason unless it can be
    written: a probe file is created and removed where the write will go.

    ``target`` is written beside itself (a temporary sibling renamed into place) unless
    ``in_place`` (a run folder, whose files are written inside it): then an existing folder
    is probed inside. A folder to replace is probed too (its contents are removed). The folder
    that holds ``target`` must exist unless ``create_parents``: then the missing folders'
    nearest existing ancestor is probed, since they are created there.
    """
    target = Path(target).expanduser()
    if in_place and target.is_dir():
        _probe(target, target)
        return
    parent = target.parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"Cannot write {target}: {existing} is a file, not a folder; give a path in a folder."
        )
    if existing != parent and not create_parents:
        raise ConfigError(
            f"Cannot write {target}: its folder {parent} does not exist; create it first."
        )
    _probe(target, existing)
    if target.is_dir():
        _probe(target, target)


def _probe(target: Path, folder: Path) -> None:
    """Create and remove a file in ``folder``, or say why ``target`` cannot be written there."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".dialogsum-probe.", dir=folder)
    except OSError as exc:
        raise ConfigError(
            f"Cannot write {target}: a file cannot be created in {folder} "
            f"({exc.strerror or exc}); make it writable or choose another location. Nothing "
            f"was done."
        ) from None
    os.close(handle)
    os.unlink(probe)


def check_writable(target: Path, *, overwrite: bool, in_place: bool = False) -> None:
    """Refuse to replace an existing, non-empty folder unless ``overwrite`` is set, and a
    folder that holds the working directory even then (replacing it would delete the user's
    files, or fail half-way with 'device or resource busy'); then :func:`check_can_write`
    (missing parent folders are created)."""
    resolved = target.expanduser().resolve()
    if target.exists() and not target.is_dir():
        # Even with overwrite: it replaces a folder, and a file here is the user's, not an
        # earlier output (an export once deleted it; a run failed half-way on it).
        raise ConfigError(
            f"{target} is a file, not a folder; give a folder to write into (nothing was "
            f"written, and the file is kept)."
        )
    if resolved.is_dir() and resolved in (Path.cwd(), *Path.cwd().parents):
        raise ConfigError(
            f"{target} is the current folder or holds it; give a new folder to write into "
            f"(overwrite=True replaces a folder whole)."
        )
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ConfigError(
            f"{target} already exists and is not empty; choose another folder or pass "
            f"overwrite=True (CLI: --overwrite) to replace it."
        )
    check_can_write(target, in_place=in_place, create_parents=True)


def disk_full_error(target: Path, exc: OSError) -> DialogsumError:
    """The error for a write that ran out of space (or quota): nothing was replaced."""
    return DialogsumError(
        f"Writing {target} failed: {exc.strerror or exc} (the disk or your quota is full). "
        f"Nothing was replaced: what was there before is intact. Free some space and run again."
    )


@contextmanager
def _parent_lock(parent: Path) -> Iterator[None]:
    # Held only while a finished write is moved into place, so two writers into one folder
    # cannot both see it free and both report success for work one of them then loses.
    handle = os.open(parent, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)


def _claim(path: Path) -> int | None:
    """An open handle holding ``path``'s owner lock, or None while a live process holds it."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:  # gone meanwhile, or another user's
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(handle)
        return None
    return handle


@contextmanager
def owned_temporary(
    parent: Path, pattern: re.Pattern[str], make: Callable[[], str]
) -> Iterator[Path]:
    """The temporary file or folder ``make`` creates in ``parent``, locked while the block runs.

    The lock (``flock``) is what marks it as a live writer's: the kernel releases it when the
    process ends, however it ends. Earlier temporaries in ``parent`` whose names match
    ``pattern`` and whose lock is free were left by a process that died without cleaning up
    (kill -9, a power cut), and are removed first. Both happen under the parent's lock, so no
    other writer finds this one between its creation and its lock.
    """
    stale: list[tuple[Path, int]] = []
    with _parent_lock(parent):
        for path in parent.iterdir():
            if pattern.fullmatch(path.name) and (handle := _claim(path)) is not None:
                stale.append((path, handle))
        created = Path(make())
        owner = _claim(created)
    for path, handle in stale:  # claimed: no other writer removes it meanwhile
        logger.info("removing %s, left by a write that was killed", path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        os.close(handle)
    try:
        yield created
    finally:
        if owner is not None:
            os.close(owner)


def _partials(target: Path) -> re.Pattern[str]:
    """The names of ``target``'s temporary siblings: mkstemp's ``.NAME.<8 random>.partial``."""
    return re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.partial")


#: What to remove if SIGTERM ends the process (see :func:`removed_on_sigterm`).
_REMOVE_ON_SIGTERM: list[Path] = []


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    for path in list(_REMOVE_ON_SIGTERM):
        shutil.rmtree(path, ignore_errors=True)
    # Then end as SIGTERM ends a process: its exit status tells the sender what happened.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@contextmanager
def removed_on_sigterm(path: Path) -> Iterator[None]:
    """Remove ``path`` if SIGTERM ends the process while the block runs.

    Python's default action for SIGTERM ends the process without unwinding, so no ``finally``
    removes a temporary. This handler is installed only where SIGTERM has its default action
    (in the main thread): a program with its own handler (a server) keeps it, and the process
    still ends by SIGTERM afterwards.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, _on_sigterm):
        yield
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    _REMOVE_ON_SIGTERM.append(path)
    try:
        yield
    finally:
        _REMOVE_ON_SIGTERM.remove(path)
        if not _REMOVE_ON_SIGTERM and signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def temporary_folder(prefix: str) -> Iterator[Path]:
    """A private folder in the temporary directory (``TMPDIR``) for scratch work, removed on
    every way out: return, error, Ctrl-C, SIGTERM; one a killed process left (kill -9) is
    removed by the next block with the same ``prefix``."""
    parent = Path(tempfile.gettempdir())
    pattern = re.compile(rf"{re.escape(prefix)}[a-z0-9_]{{8}}")
    with owned_temporary(
        parent, pattern, lambda: tempfile.mkdtemp(prefix=prefix, dir=parent)
    ) as folder:
        try:
            with removed_on_sigterm(folder):
                yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def staged_folder(target: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary sibling folder to write into, moved to ``target`` when the block completes.

    On any error (SIGTERM included) the temporary folder is removed and ``target`` is left as
    it was; one left by a killed earlier write of ``target`` is removed first. Without
    ``overwrite``, a ``target`` that another process filled while this block ran is a
    :class:`ConfigError` (never a silent replacement); with it, the newest write wins.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        owned_temporary(
            target.parent,
            _partials(target),
            lambda: tempfile.mkdtemp(
                prefix=f".{target.name}.", suffix=".partial", dir=target.parent
            ),
        ) as staging,
        removed_on_sigterm(staging),
    ):
        try:
            yield staging
            apply_umask(staging)
            with _parent_lock(target.parent):
                if (
                    not overwrite
                    and target.exists()
                    and (not target.is_dir() or any(target.iterdir()))
                ):
                    raise ConfigError(
                        f"{target} was written by another process while this one was working; "
                        f"this result was not saved, so nothing of the other one is lost. "
                        f"Choose another folder, or pass overwrite=True (CLI: --overwrite) to "
                        f"replace it."
                    )
                replace_folder(staging, target)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full_error(target, exc) from exc
            raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def replace_folder(staging: Path, target: Path) -> None:
    """Move a completed ``staging`` folder to ``target``, replacing what was there."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        if target.exists():
            target.rmdir()  # an empty folder the user made for the result
        staging.rename(target)
        return
    # A unique name for the old folder: concurrent saves must not collide on it, and it is put
    # back if the new folder cannot be moved in, so a failed overwrite loses nothing.
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    old.rmdir()
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()


def write_text(path: Path, text: str, *, overwrite: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary sibling renamed into place).

    Without ``overwrite`` an existing file is a :class:`ConfigError`. A failed write (a full
    disk) leaves the previous file intact and says so.
    """
    path = Path(path).expanduser()
    if not overwrite and path.exists():
        raise ConfigError(f"{path} already exists; choose another name or allow overwriting it.")
    with owned_temporary(path.parent, _partials(path), lambda: _new_partial(path)) as temporary:
        _write_partial(path, temporary, text)
    return path


def _new_partial(path: Path) -> str:
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".partial", dir=path.parent
    )
    os.close(handle)
    return temporary


def _write_partial(path: Path, temporary: Path, text: str) -> None:
    """Fill ``temporary`` with ``text`` and move it to ``path``; removed on any error."""
    try:
        with temporary.open("w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        apply_umask(temporary)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full_error(path, exc) from exc
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
