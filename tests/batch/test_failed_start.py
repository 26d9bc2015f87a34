"""``dialogsum batch`` that cannot start writes nothing, and says first what is wrong with the
input: a job refused for a missing extra leaves no output folder or record behind for a later
command to trip over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dialogsum.cli import main
from dialogsum.errors import install_command

from ..without_modules import cli_without

#: Runs the command line in a process where ``ray`` cannot be imported, as in an install
#: without the ``ray`` extra (Ray is installed in the development environment).
WITHOUT_RAY = cli_without("ray")


def test_the_ray_engine_without_ray_writes_nothing_and_names_the_extra(tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"id": "a", "dialogue": "#Person1#: Hi.\n#Person2#: Hello."}) + "\n")
    output, rejects = tmp_path / "x.jsonl", tmp_path / "rejects.jsonl"
    command = [
        sys.executable,
        "-c",
        WITHOUT_RAY,
        "batch",
        "--model",
        "dialogsum-tiny",
        "--engine",
        "ray",
        "--input",
        str(data),
        "--output",
        str(output),
        "--rejects",
        str(rejects),
        "--no-progress",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert install_command("ray") in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(tmp_path.iterdir()) == [data]  # no output folder, job record or rejects


def test_a_missing_input_is_named_before_any_output_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leftover = tmp_path / "x.jsonl"  # a folder where the local engine wants a file
    leftover.mkdir()
    missing = tmp_path / "missing.jsonl"
    status = main(["batch", "--input", str(missing), "--output", str(leftover), "--no-progress"])
    assert status == 2
    error = capsys.readouterr().err
    assert f"No such input file or folder: {missing}" in error
    assert "is a folder" not in error


def test_an_output_ending_in_a_slash_names_a_folder_never_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"id": "a", "dialogue": "#Person1#: Hi.\n#Person2#: Hello."}) + "\n")
    status = main(
        ["batch", "--input", str(data), "--output", f"{tmp_path / 'outdir'}/", "--no-progress"]
    )
    assert status == 2
    error = capsys.readouterr().err
    assert "names a folder (it ends with '/')" in error
    assert str(tmp_path / "outdir" / "summaries.jsonl") in error
    assert sorted(tmp_path.iterdir()) == [data]  # no file named 'outdir'


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _with_a_malformed_row(path: Path) -> Path:
    good = json.dumps({"id": "a", "dialogue": "#Person1#: Hi.\n#Person2#: Hello."})
    path.write_text(good + "\nnot json\n")
    return path


def test_an_unreachable_ray_cluster_leaves_no_output_record_or_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray")
    data = _with_a_malformed_row(tmp_path / "in.jsonl")
    output, rejects = tmp_path / "out", tmp_path / "rejects.jsonl"
    address = f"127.0.0.1:{_closed_port()}"
    status = main(
        [
            "batch",
            "--engine",
            "ray",
            "--ray-address",
            address,
            "--input",
            str(data),
            "--output",
            str(output),
            "--rejects",
            str(rejects),
            "--no-progress",
        ]
    )
    assert status == 2
    assert f"Cannot join the Ray cluster at '{address}'" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == [data]  # no output folder, job.json or rejects


def test_a_refused_resume_leaves_no_rejects_and_keeps_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _with_a_malformed_row(tmp_path / "in.jsonl")
    output, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    other = json.dumps({"id": "elsewhere_1", "summary": "x"}) + "\n"
    output.write_text(other)  # another input's output
    flags = ["--input", str(data), "--output", str(output), "--rejects", str(rejects)]
    assert main(["batch", *flags, "--no-progress"]) == 2
    assert "ids are not in" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == [data, output]  # no rejects, nor its staging file
    assert output.read_text() == other


def test_overwrite_keeps_the_output_when_the_model_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _with_a_malformed_row(tmp_path / "in.jsonl")
    output, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    earlier = json.dumps({"id": "a", "summary": "kept"}) + "\n"
    output.write_text(earlier)
    empty = tmp_path / "model"
    empty.mkdir()  # a folder, but no model in it: found, then fails to load
    flags = ["--input", str(data), "--output", str(output), "--rejects", str(rejects)]
    status = main(["batch", "--model", str(empty), *flags, "--overwrite", "--no-progress"])
    assert status == 2
    assert f"{empty} is not a model folder" in capsys.readouterr().err
    # Replaced only once the job starts: a start that fails keeps the earlier output.
    assert output.read_text() == earlier
    assert sorted(tmp_path.iterdir()) == [data, empty, output]


def test_a_mistyped_input_is_told_the_file_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "calls.jsonl").write_text(json.dumps({"id": "a", "dialogue": "A: hi"}) + "\n")
    mistyped = tmp_path / "clals.jsonl"
    status = main(
        ["batch", "--input", str(mistyped), "--output", str(tmp_path / "o.jsonl"), "--no-progress"]
    )
    assert status == 2
    error = capsys.readouterr().err
    assert (
        f"No such input file or folder: {mistyped}. Did you mean {tmp_path / 'calls.jsonl'}?"
        in error
    )
