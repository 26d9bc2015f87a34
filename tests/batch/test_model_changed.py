"""A resumed ``dialogsum batch`` refuses a model whose files changed since the output was
started (retrained or exported again to the same path), so one output never mixes the summaries
of two models; an output recorded before fingerprints were kept still resumes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from dialogsum.batch.fingerprint import model_fingerprints
from dialogsum.batch.output import FINGERPRINTS, job_file
from dialogsum.cli import main
from dialogsum.data import sample_path
from dialogsum.modeling import bundled_model_dir

ROWS = 4


@pytest.fixture
def model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model that a test may change."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def _job(model: Path, folder: Path, *more: str) -> list[str]:
    with sample_path("test").open(encoding="utf-8") as handle:
        rows = [line for line in handle if line.strip()][:ROWS]
    data = folder / "in.jsonl"
    data.write_text("".join(rows))
    flags = ["--input", str(data), "--output", str(folder / "out.jsonl"), "--chunk-size", "2"]
    decoding = ["--num-beams", "1", "--max-new-tokens", "8", "--no-progress"]
    return ["batch", "--model", str(model), *flags, *decoding, *more]


def _interrupted(output: Path) -> str:
    """Cut ``output`` to its first two lines, as a run killed half-way leaves it."""
    kept = "".join(output.read_text().splitlines(keepends=True)[:2])
    output.write_text(kept)
    return kept


def test_a_model_retrained_to_the_same_path_is_refused(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = _job(model, tmp_path)
    assert main(command) == 0
    output = tmp_path / "out.jsonl"
    kept = _interrupted(output)
    # New weights under the old name, with the old time too: the content tells.
    weights = model / "model.safetensors"
    times = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-4] ^= 1  # the lowest bit of one weight
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(times.st_atime_ns, times.st_mtime_ns))
    capsys.readouterr()
    assert main(command) == 2
    error = capsys.readouterr().err
    assert (
        f"{output} was written with other settings (the model at {model.resolve()} changed "
        f"since the output was started" in error
    )
    assert "--overwrite" in error and "another --output" in error
    assert output.read_text() == kept  # nothing appended
    assert main([*command, "--overwrite"]) == 0
    assert len(output.read_text().splitlines()) == ROWS


def test_an_output_recorded_without_fingerprints_still_resumes(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = _job(model, tmp_path)
    assert main(command) == 0
    output = tmp_path / "out.jsonl"
    record = job_file(output)
    written = json.loads(record.read_text())
    assert list(written[FINGERPRINTS]) == [str(model.resolve())]
    del written[FINGERPRINTS]  # as an earlier dialogsum wrote it
    record.write_text(json.dumps(written))
    _interrupted(output)
    capsys.readouterr()
    assert main(command) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["already_done"], report["summarized"]) == (2, ROWS - 2)


def test_what_is_fingerprinted(model: Path) -> None:
    bundled = bundled_model_dir("dialogsum-tiny")
    assert bundled is not None
    assert list(model_fingerprints("dialogsum-tiny", {})) == [str(bundled.resolve())]
    assert model_fingerprints("google/flan-t5-base", {"threads": 2}) == {}  # a hub id: none
    before = model_fingerprints(str(model), {})
    (model / "tokenizer_config.json").write_text("{}")
    assert model_fingerprints(str(model), {}) != before
