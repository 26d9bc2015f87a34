"""``dialogsum batch`` and input that is not UTF-8: the bad row is named by its own line (not
the last line the reader had decoded), and ``--rejects`` sets it aside like any other bad row
while the rest is summarized, in both engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialogsum.cli import main

#: Short greedy summaries: these tests check which rows go where, not summaries.
DECODING = ["--num-beams", "1", "--max-new-tokens", "4", "--no-progress"]
#: The bad row's line: after several good rows and one longer than the text reader's chunk, so
#: that the byte is met while decoding a chunk that starts lines earlier.
BAD_LINE = 9


def row(number: int, turns: int = 1) -> bytes:
    dialogue = "\n".join(f"#Person1#: Line {n} of dialogue {number}." for n in range(turns))
    return json.dumps({"id": f"d{number}", "dialogue": dialogue}).encode("utf-8") + b"\n"


def write_input(path: Path) -> list[str]:
    """Writes the input; returns the ids of its good rows, in order."""
    good = [row(n) for n in range(1, 8)] + [row(8, turns=2000)]  # line 8: about 70 kB
    assert len(good[-1]) > 64 * 1024
    bad = b'{"id": "latin1", "dialogue": "#Person1#: Caf\xe9 at nine?"}\n'  # cp1252, not UTF-8
    after = [row(10), row(11)]
    path.write_bytes(b"".join([*good, bad, *after]))
    return [f"d{n}" for n in (*range(1, 9), 10, 11)]


def batch(*args: str) -> int:
    return main(["batch", "--model", "dialogsum-tiny", *DECODING, *args])


def test_a_row_that_is_not_utf8_fails_the_job_naming_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "in.jsonl"
    write_input(data)
    output = tmp_path / "out.jsonl"
    assert batch("--input", str(data), "--output", str(output)) == 2
    error = capsys.readouterr().err
    assert f"{data}:{BAD_LINE}: not UTF-8 text" in error
    assert "--rejects" in error
    assert not output.exists()  # refused before any model loads


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_rejects_take_a_row_that_is_not_utf8_and_the_rest_is_summarized(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], engine: str
) -> None:
    if engine == "ray":
        pytest.importorskip("ray")
    data = tmp_path / "in.jsonl"
    good = write_input(data)
    output = tmp_path / ("out" if engine == "ray" else "out.jsonl")
    rejects = tmp_path / "rejects.jsonl"
    assert (
        batch(
            "--engine",
            engine,
            "--input",
            str(data),
            "--output",
            str(output),
            "--rejects",
            str(rejects),
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert (report["rows"], report["rejected"]) == (len(good), 1)
    files = sorted(output.glob("*.jsonl")) if output.is_dir() else [output]
    written = [json.loads(line)["id"] for file in files for line in file.read_text().splitlines()]
    assert sorted(written) == sorted(good)
    if engine == "local":
        assert written == good  # in input order
    set_aside = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert len(set_aside) == 1
    assert set_aside[0]["where"] == f"{data}:{BAD_LINE}"
    assert "not UTF-8" in set_aside[0]["error"]
    assert set_aside[0]["text"] == '{"id": "latin1", "dialogue": "#Person1#: Caf\\xe9 at nine?"}'
