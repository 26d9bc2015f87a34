"""``dialogsum batch --adapter``: every row summarized with the adapter, on the local engine and
by the Ray engine's actors; an adapter the model does not serve stops the job before anything
is written, in one line naming those it does."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from dialogsum.batch.local import Work
from dialogsum.batch.output import job_file
from dialogsum.cli import main
from dialogsum.cli.batch import load_model

from ..adapter_backend import TAG_FILE
from .conftest import Tagging

ROWS = [
    {"id": "a", "dialogue": "#Person1#: Is the shop open?\n#Person2#: Until nine tonight."},
    {"id": "b", "dialogue": "#Person1#: Did you call Anna?\n#Person2#: She did not answer."},
    {"id": "c", "dialogue": "#Person1#: Tea or coffee?\n#Person2#: Tea, no sugar."},
]


def write_rows(path: Path) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def test_the_local_engine_summarizes_every_row_with_the_adapter(
    tagging: Tagging, tmp_path: Path
) -> None:
    source, output = write_rows(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    flags = ["--input", str(source), "--output", str(output), "--no-progress", "--chunk-size", "2"]
    assert main(["batch", *tagging.flags, *flags, "--adapter", "support"]) == 0
    written = {r["id"]: r["summary"] for r in map(json.loads, output.read_text().splitlines())}
    expected = tagging.summarizer.summarize([r["dialogue"] for r in ROWS], adapter="support")
    assert written == dict(zip([r["id"] for r in ROWS], expected, strict=True))
    assert all(summary.startswith("[S] ") for summary in written.values())
    record = json.loads(job_file(output).read_text())
    assert record["decoding"]["adapter"] == "support"  # a rerun with another is refused


def test_a_resume_after_the_adapter_s_files_changed_is_refused(
    tagging: Tagging, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = write_rows(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    flags = ["--input", str(source), "--output", str(output), "--no-progress", "--chunk-size", "2"]
    command = ["batch", *tagging.flags, *flags, "--adapter", "support"]
    assert main(command) == 0
    kept = output.read_text().splitlines(keepends=True)[0]
    output.write_text(kept)  # a run stopped after its first row
    adapter = tmp_path / "support"
    (adapter / TAG_FILE).write_text("T")  # the adapter tuned again, under the same name
    capsys.readouterr()
    assert main(command) == 2
    error = capsys.readouterr().err
    assert f"(the model at {adapter.resolve()} changed since the output was started" in error
    assert output.read_text() == kept


def test_the_ray_engine_s_actors_summarize_with_the_adapter(
    tagging: Tagging, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    import numpy as np

    from dialogsum.batch.ray_engine import _SummarizeActor

    # The actor Ray would start, run here: it loads the model as the job's loader says and
    # summarizes a batch with the job's generation options (the tagging plugin is registered in
    # this process only, not in a Ray worker's).
    options = {"adapters": {"support": tagging.summarizer.adapter("support").source}}
    load = functools.partial(load_model, tagging.flags[1], "tagging", options)
    actor = _SummarizeActor(Work(load, {"adapter": "support"}, threads=1))
    batch = {
        "id": np.array([json.dumps(r["id"]) for r in ROWS]),
        "dialogue": np.array([r["dialogue"] for r in ROWS]),
    }
    lines = [json.loads(line) for line in actor(batch)["line"]]
    expected = tagging.summarizer.summarize([r["dialogue"] for r in ROWS], adapter="support")
    assert [line["summary"] for line in lines] == expected


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_an_adapter_not_served_stops_the_job_before_anything_is_written(
    tagging: Tagging, tmp_path: Path, capsys: pytest.CaptureFixture[str], engine: str
) -> None:
    if engine == "ray":
        pytest.importorskip("ray")
    source = write_rows(tmp_path / "in.jsonl")
    output = tmp_path / ("out.jsonl" if engine == "local" else "out")
    flags = ["--input", str(source), "--output", str(output), "--engine", engine]
    assert main(["batch", *tagging.flags, *flags, "--adapter", "billing", "--no-progress"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        "dialogsum batch: error: No adapter named 'billing' is loaded; loaded: support (or none "
        "for the base model)."
    ]
    assert not output.exists() and not job_file(output).exists()
