"""``dialogsum batch``: every row exactly once, in order, after crashes; bad rows named; the
local engine's worker pool and the Ray engine give the same summaries as ``summarize()``."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from dialogsum import Summarizer
from dialogsum.cli import main
from dialogsum.data import sample_path

#: Short greedy summaries: the tests check bookkeeping, not quality, on the bundled model.
DECODING = ["--num-beams", "1", "--max-new-tokens", "12", "--no-progress"]
ROWS = 40


def rows() -> list[dict[str, object]]:
    with sample_path("test").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()][:ROWS]


def write_rows(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_output(path: Path) -> list[dict[str, object]]:
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    return [json.loads(line) for file in files for line in file.read_text().splitlines()]


def batch(*args: str) -> int:
    return main(["batch", "--model", "dialogsum-tiny", *DECODING, *args])


class Truncations(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += getattr(record, "truncated", 0)


@dataclass(frozen=True)
class Offline:
    summaries: dict[object, str]
    truncated: int


@pytest.fixture(scope="module")
def offline() -> Offline:
    """What ``summarize()`` gives for each row, the answer every engine must reproduce."""
    summarizer = Summarizer.from_pretrained("dialogsum-tiny", backend_options={"progress": False})
    records = rows()
    counter = Truncations()
    logging.getLogger("dialogsum").addHandler(counter)
    try:
        summaries = summarizer.summarize(
            [str(r["dialogue"]) for r in records], num_beams=1, max_new_tokens=12
        )
    finally:
        logging.getLogger("dialogsum").removeHandler(counter)
    assert counter.count > 0  # the sample has dialogues over dialogsum-tiny's 256 tokens
    return Offline({r["fname"]: s for r, s in zip(records, summaries, strict=True)}, counter.count)


@pytest.fixture(scope="module")
def complete(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted local run over the rows."""
    folder = tmp_path_factory.mktemp("complete")
    data = write_rows(folder / "in.jsonl", rows())
    assert (
        batch("--input", str(data), "--output", str(folder / "out.jsonl"), "--chunk-size", "8") == 0
    )
    return folder / "out.jsonl"


def test_local_engine_writes_every_row_once_in_input_order(
    complete: Path, offline: Offline
) -> None:
    written = read_output(complete)
    assert [r["id"] for r in written] == [r["fname"] for r in rows()]
    assert {r["id"]: r["summary"] for r in written} == offline.summaries


def test_a_pool_of_workers_writes_the_same_file_and_counts_truncation(
    tmp_path: Path,
    complete: Path,
    offline: Offline,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = write_rows(tmp_path / "in.jsonl", rows())
    output = tmp_path / "out.jsonl"
    assert (
        batch("--input", str(data), "--output", str(output), "--chunk-size", "8", "--workers", "2")
        == 0
    )
    assert output.read_bytes() == complete.read_bytes()
    # One total for the job, not a warning per chunk.
    assert json.loads(capsys.readouterr().out)["truncated"] == offline.truncated
    warnings = [r for r in caplog.records if "max_source_length" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].getMessage().startswith(
        f"{offline.truncated} of {ROWS}"
    )


def test_kill_9_then_rerun_gives_every_row_exactly_once(tmp_path: Path, complete: Path) -> None:
    data = write_rows(tmp_path / "in.jsonl", rows())
    output = tmp_path / "out.jsonl"
    command = [
        sys.executable,
        "-m",
        "dialogsum",
        "batch",
        "--model",
        "dialogsum-tiny",
        "--input",
        str(data),
        "--output",
        str(output),
        "--chunk-size",
        "4",
        *DECODING,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if output.exists() and output.read_bytes().count(b"\n") >= 8:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed_at = output.read_bytes().count(b"\n")
    assert 8 <= killed_at < ROWS
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads(rerun.stdout)
    assert report["already_done"] == killed_at
    assert report["summarized"] == ROWS - killed_at
    assert output.read_bytes() == complete.read_bytes()


def test_a_line_cut_short_is_removed_and_summarized_again(
    tmp_path: Path, complete: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_rows(tmp_path / "in.jsonl", rows())
    output = tmp_path / "out.jsonl"
    lines = complete.read_text().splitlines(keepends=True)
    output.write_text("".join(lines[:5]) + lines[5][:20])
    assert batch("--input", str(data), "--output", str(output)) == 0
    assert output.read_bytes() == complete.read_bytes()
    assert json.loads(capsys.readouterr().out)["already_done"] == 5


def test_a_finished_output_is_left_as_it_is(
    tmp_path: Path, complete: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_rows(tmp_path / "in.jsonl", rows())
    output = tmp_path / "out.jsonl"
    output.write_bytes(complete.read_bytes())
    assert batch("--input", str(data), "--output", str(output)) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["already_done"], report["summarized"]) == (ROWS, 0)
    assert output.read_bytes() == complete.read_bytes()


def test_a_malformed_row_fails_the_job_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "in.jsonl"
    good = [json.dumps(r) for r in rows()[:3]]
    data.write_text("\n".join([good[0], good[1], '{"dialogue": ', good[2]]) + "\n")
    output = tmp_path / "out.jsonl"
    assert batch("--input", str(data), "--output", str(output)) == 2
    error = capsys.readouterr().err
    assert f"{data}:3: invalid JSON" in error and "--rejects" in error
    assert not output.exists()  # checked before any model loads or anything is written


def test_an_unterminated_string_is_placed_where_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a", "dialogue": "#Person1#: Hi.\n')  # its closing quote lost
    assert batch("--input", str(data), "--output", str(tmp_path / "out.jsonl")) == 2
    error = capsys.readouterr().err
    assert f"{data}:1: invalid JSON (Unterminated string starting, column 25)" in error


def test_rejects_set_malformed_rows_aside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "in.jsonl"
    good = [json.dumps(r) for r in rows()[:3]]
    data.write_text("\n".join([good[0], "not json", '{"summary": "x"}', good[1], good[2]]) + "\n")
    output, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    assert batch("--input", str(data), "--output", str(output), "--rejects", str(rejects)) == 0
    assert json.loads(capsys.readouterr().out)["rejected"] == 2
    assert [r["id"] for r in read_output(output)] == [r["fname"] for r in rows()[:3]]
    set_aside = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["where"] for r in set_aside] == [f"{data}:2", f"{data}:3"]
    assert set_aside[0]["text"] == "not json"
    assert "field 'dialogue' is missing" in set_aside[1]["error"]


def test_rows_without_ids_are_numbered_by_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    dialogues = [{"dialogue": str(r["dialogue"])} for r in rows()[:3]]
    write_rows(folder / "a.jsonl", dialogues[:2])
    (folder / "b.jsonl").write_text("\n" + json.dumps(dialogues[2]) + "\n")
    output = tmp_path / "out.jsonl"
    assert batch("--input", str(folder), "--output", str(output)) == 0
    assert [r["id"] for r in read_output(output)] == ["a.jsonl:1", "a.jsonl:2", "b.jsonl:2"]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [{"id": 1, "dialogue": "A: hi"}, {"id": 1, "dialogue": "B: hello"}],
            ":2: id 1 is used by an earlier row too",
        ),
        ([], "no rows to summarize"),
    ],
)
def test_bad_inputs_are_refused_before_any_model_loads(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    records: list[dict[str, object]],
    message: str,
) -> None:
    data = write_rows(tmp_path / "in.jsonl", records)
    assert batch("--input", str(data), "--output", str(tmp_path / "out.jsonl")) == 2
    assert message in capsys.readouterr().err


def test_bad_outputs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_rows(tmp_path / "in.jsonl", rows()[:2])
    assert batch("--input", str(data), "--output", str(tmp_path)) == 2
    assert "is a folder; the local engine writes one JSON Lines file" in capsys.readouterr().err
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "elsewhere_1", "summary": "x"}) + "\n")
    assert batch("--input", str(data), "--output", str(other)) == 2
    assert "ids are not in" in capsys.readouterr().err
    assert other.read_text().startswith('{"id": "elsewhere_1"')  # never edited
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text("a text file\n")
    assert batch("--input", str(data), "--output", str(foreign)) == 2
    assert f"{foreign}:1: not a line dialogsum batch writes" in capsys.readouterr().err
    # The input as the output, with --overwrite too: refused before the input is touched.
    before = data.read_bytes()
    for more in ([], ["--overwrite"]):
        assert batch("--input", str(data), "--output", str(data), *more) == 2
        assert "is this job's input file" in capsys.readouterr().err
        assert data.read_bytes() == before
    assert batch("--input", str(data), "--output", str(other), "--overwrite") == 0
    assert [r["id"] for r in read_output(other)] == [r["fname"] for r in rows()[:2]]


def test_ray_engine_needs_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_rows(tmp_path / "in.jsonl", [{"dialogue": "A: hi"}])
    assert batch("--engine", "ray", "--input", str(data), "--output", str(tmp_path / "out")) == 2
    assert ":1: the row has no 'id'" in capsys.readouterr().err


def test_ray_engine_gives_the_same_summaries_and_resumes(
    tmp_path: Path, offline: Offline, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray")
    data = write_rows(tmp_path / "in.jsonl", rows())
    output = tmp_path / "out"
    args = [
        "--engine",
        "ray",
        "--workers",
        "2",
        "--threads",
        "1",
        "--input",
        str(data),
        "--output",
        str(output),
        "--chunk-size",
        "8",
    ]
    assert batch(*args) == 0
    written = read_output(output)
    assert sorted(r["id"] for r in written) == sorted(offline.summaries)
    assert {r["id"]: r["summary"] for r in written} == offline.summaries
    # The actors' truncations, added up for the report as the local engine does.
    assert json.loads(capsys.readouterr().out)["truncated"] == offline.truncated
    # A crash mid-write: one part file lost, another cut short. The rerun fills in exactly those.
    parts = sorted(output.glob("*.jsonl"))
    assert len(parts) >= 2
    parts[0].unlink()
    cut = parts[1].read_text()
    parts[1].write_text(cut[: cut.index("\n") + 10])
    assert batch(*args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["already_done"] + report["summarized"] == ROWS
    assert report["summarized"] > 0
    rerun = read_output(output)
    assert sorted(r["id"] for r in rerun) == sorted(offline.summaries)  # exactly once
    assert {r["id"]: r["summary"] for r in rerun} == offline.summaries


def test_overwrite_keeps_the_output_when_the_input_is_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text('{"dialogue": \n')
    output = tmp_path / "out.jsonl"
    output.write_text(json.dumps({"id": 1, "summary": "kept"}) + "\n")
    assert batch("--input", str(data), "--output", str(output), "--overwrite") == 2
    assert "invalid JSON" in capsys.readouterr().err
    assert output.read_text() == json.dumps({"id": 1, "summary": "kept"}) + "\n"


def test_a_rerun_with_other_settings_is_refused(
    tmp_path: Path, complete: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_rows(tmp_path / "in.jsonl", rows())
    output = tmp_path / "out.jsonl"
    assert batch("--input", str(data), "--output", str(output)) == 0
    record = json.loads((tmp_path / "out.jsonl.job.json").read_text())
    assert record["model"] == "dialogsum-tiny" and record["decoding"]["num_beams"] == 1
    assert record["decoding"]["no_repeat_ngram_size"] == 3  # the model's default, in effect
    kept = "".join(complete.read_text().splitlines(keepends=True)[:5])
    output.write_text(kept)  # an interrupted run
    capsys.readouterr()
    other = [
        "--model",
        "dialogsum-tiny",
        "--num-beams",
        "2",
        "--max-new-tokens",
        "12",
        "--no-progress",
        "--input",
        str(data),
        "--output",
        str(output),
    ]
    assert main(["batch", *other]) == 2
    error = capsys.readouterr().err
    assert "was written with other settings (decoding.num_beams: 1 then, 2 now)" in error
    assert output.read_text() == kept  # nothing appended
    assert main(["batch", *other, "--overwrite"]) == 0
    assert len(read_output(output)) == ROWS


@pytest.mark.parametrize("which", ["input", "output", "a file of the user's"])
def test_rejects_never_replace_the_input_the_output_or_another_file(
    tmp_path: Path, which: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_rows(tmp_path / "in.jsonl", rows()[:3])
    output = tmp_path / "out.jsonl"
    output.write_text(json.dumps({"id": "x", "summary": "kept"}) + "\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    target = {"input": data, "output": output, "a file of the user's": notes}[which]
    before = target.read_bytes()
    assert batch("--input", str(data), "--output", str(output), "--rejects", str(target)) == 2
    error = capsys.readouterr().err
    assert "--rejects" in error and ("input or output" in error or "not a rejects file" in error)
    assert target.read_bytes() == before
    if which == "a file of the user's":
        output.unlink()
        args = ["--input", str(data), "--output", str(output), "--rejects", str(notes)]
        assert batch(*args, "--overwrite") == 0
        assert notes.read_text() == ""  # replaced, as asked, by the (empty) rejects
        assert notes.stat().st_mode & 0o044  # readable like any file the user writes
        assert batch(*args) == 0  # its own rejects file is rewritten on a rerun


def test_a_csv_input_is_refused_and_a_byte_order_mark_is_read_past(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "calls.csv"
    table.write_text("id,dialogue\n1,#Person1#: Hi.\n")
    assert batch("--input", str(table), "--output", str(tmp_path / "out.jsonl")) == 2
    assert "reads JSON Lines" in capsys.readouterr().err
    marked = tmp_path / "in.jsonl"
    marked.write_text(json.dumps(rows()[0]) + "\n", encoding="utf-8-sig")
    assert batch("--input", str(marked), "--output", str(tmp_path / "out.jsonl")) == 0


def test_output_and_rejects_inside_the_input_folder_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_rows(folder / "a.jsonl", rows()[:2])
    for extra in (
        ["--output", str(folder / "out.jsonl")],
        ["--output", str(tmp_path / "out.jsonl"), "--rejects", str(folder / "r.jsonl")],
    ):
        assert batch("--input", str(folder), *extra) == 2
        assert "is inside the input folder" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["a.jsonl"]
