"""Uploaded adapter archives are unpacked safely: files and folders only, inside the folder the
server chose, bounded in bytes and members; a damaged or hostile archive is refused, naming why."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from dialogsum.serve.inputs import Rejected
from dialogsum.serve.uploads import archive_kind, unpack


def zip_bytes(files: dict[str, bytes], *, link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            bundle.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def tar_bytes(files: dict[str, bytes], *, extra: tarfile.TarInfo | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
        if extra is not None:
            bundle.addfile(extra)
    return buffer.getvalue()


def unpacked(tmp_path: Path, data: bytes, kind: str, limit: int = 10_000) -> Path:
    tmp_path.mkdir(exist_ok=True)
    archive = tmp_path / "archive"
    archive.write_bytes(data)
    into = tmp_path / "into"
    into.mkdir()
    return unpack(archive, kind, into, limit)  # type: ignore[arg-type]


ADAPTER = {"dialogsum.json": b"{}", "tag.txt": b"S"}


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_folder_or_its_files_unpack_to_the_adapter_folder(tmp_path: Path, kind: str) -> None:
    make = zip_bytes if kind == "zip" else tar_bytes
    flat = unpacked(tmp_path / "flat", make(ADAPTER), kind)
    assert sorted(p.name for p in flat.iterdir()) == ["dialogsum.json", "tag.txt"]
    nested = unpacked(
        tmp_path / "nested", make({f"support/{k}": v for k, v in ADAPTER.items()}), kind
    )
    assert nested.name == "support" and (nested / "tag.txt").read_bytes() == b"S"


@pytest.mark.parametrize(
    ("data", "kind", "needle"),
    [
        (zip_bytes({"../evil.txt": b"x"}), "zip", "outside the adapter's folder"),
        (zip_bytes({"/tmp/evil.txt": b"x"}), "zip", "outside the adapter's folder"),
        (zip_bytes({"a/../../evil.txt": b"x"}), "zip", "outside the adapter's folder"),
        (zip_bytes({"C:/evil.txt": b"x"}), "zip", "outside the adapter's folder"),
        (zip_bytes(ADAPTER, link="tag-link"), "zip", "symbolic link"),
        (tar_bytes({"../evil.txt": b"x"}), "tar.gz", "outside the adapter's folder"),
        (b"PK\x03\x04 not really a zip", "zip", "not a readable zip archive"),
        (b"\x1f\x8b not really gzip", "tar.gz", "not a readable tar.gz archive"),
        (zip_bytes({}), "zip", "empty"),
    ],
)
def test_hostile_or_damaged_archives_are_refused(
    tmp_path: Path, data: bytes, kind: str, needle: str
) -> None:
    with pytest.raises(Rejected) as refused:
        unpacked(tmp_path, data, kind)
    assert refused.value.status == 422 and needle in refused.value.message
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


@pytest.mark.parametrize(
    "kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]
)
def test_links_and_special_files_in_a_tar_are_refused(tmp_path: Path, kind: bytes) -> None:
    member = tarfile.TarInfo("tag-link")
    member.type = kind
    member.linkname = "/etc/passwd"
    with pytest.raises(Rejected) as refused:
        unpacked(tmp_path, tar_bytes(ADAPTER, extra=member), "tar.gz")
    assert refused.value.status == 422 and "tag-link" in refused.value.message


def test_what_an_archive_unpacks_to_is_bounded(tmp_path: Path) -> None:
    bomb = zip_bytes({"weights.bin": b"\0" * 50_000})  # a few hundred bytes, packed
    assert len(bomb) < 1_000
    with pytest.raises(Rejected) as refused:
        unpacked(tmp_path / "bomb", bomb, "zip", limit=10_000)
    assert refused.value.status == 413 and "max_adapter_bytes" in refused.value.message
    many = zip_bytes({f"f{n}": b"" for n in range(1001)})
    with pytest.raises(Rejected, match="more than 1000 members"):
        unpacked(tmp_path / "many", many, "zip")


def test_the_kind_comes_from_the_content_type_else_the_first_bytes() -> None:
    assert archive_kind("application/zip", b"") == "zip"
    assert archive_kind("application/gzip; charset=binary", b"") == "tar.gz"
    assert archive_kind("application/octet-stream", b"PK\x03\x04") == "zip"
    assert archive_kind(None, b"\x1f\x8b\x08\x00") == "tar.gz"
    assert archive_kind("text/plain", b"hello") is None
