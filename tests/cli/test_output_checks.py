"""Every command that writes checks that it can write each output before it loads a model:
a read-only folder, or a file where a folder should be, is a one-line error naming the path
and the reason, not a traceback once the work is done."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dialogsum import Summarizer
from dialogsum.cli import main


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder no file can be created in: immutable (``chattr +i``) for root, whom modes do
    not stop; mode 0555 for anyone else."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {made.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """A file where the outputs' folder should be."""
    path = tmp_path / "notes.txt"
    path.write_text("the user's notes\n")
    return path


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any command gets as far as loading a model."""

    def loaded(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the output was checked")

    monkeypatch.setattr(Summarizer, "from_pretrained", loaded)


@pytest.fixture
def dialogues(tmp_path: Path) -> Path:
    """Dialogues with references: input, training data or test data, as the command takes."""
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"id": 1, "dialogue": "#Person1#: Hi.\\n#Person2#: Hello.", "summary": "A greeting."}\n'
    )
    return path


Command = Callable[[Path, Path, Path], list[str]]

#: Each command that writes, with ``folder`` the folder to write into: (model, data, folder).
COMMANDS: dict[str, Command] = {
    "evaluate --predictions": lambda model, data, folder: [
        "evaluate", "--model", str(model), "--data", str(data), "--predictions",
        str(folder / "p.jsonl")],
    "train --output-dir": lambda model, data, folder: [
        "train", "--model", str(model), "--train", str(data), "--output-dir",
        str(folder / "run"), "--max-steps", "1"],
    "export --output": lambda model, data, folder: [
        "export", "--model", str(model), "--output", str(folder / "onnx")],
    "summarize --output": lambda model, data, folder: [
        "summarize", "--model", str(model), "--input", str(data), "--output",
        str(folder / "s.jsonl")],
    "batch --output": lambda model, data, folder: [
        "batch", "--model", str(model), "--input", str(data), "--output",
        str(folder / "out.jsonl")],
    "batch --rejects": lambda model, data, folder: [
        "batch", "--model", str(model), "--input", str(data), "--output",
        str(data.parent / "out.jsonl"), "--rejects", str(folder / "rejects.jsonl")],
    "compare --output": lambda model, data, folder: [
        "compare", "--model", str(model), "--model", str(model) + "/", "--data", str(data),
        "--output", str(folder / "comparison")],
    "quickstart --output": lambda model, data, folder: [
        "quickstart", "--model", str(model), "--output", str(folder / "demo")],
}  # fmt: skip


def refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command; it must fail with status 2 and one line naming the output."""
    status = main(argv)
    error = capsys.readouterr().err
    assert status == 2, error
    assert error.startswith(f"dialogsum {argv[0]}: error: Cannot write "), error
    assert error.count("\n") == 1, error
    return error


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_read_only_output_folder_is_refused_before_the_model_loads(
    command: str,
    read_only: Path,
    tiny_model_dir: Path,
    dialogues: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = refusal(COMMANDS[command](tiny_model_dir, dialogues, read_only), capsys)
    assert str(read_only) in error
    assert "Operation not permitted" in error or "Permission denied" in error
    assert list(read_only.iterdir()) == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_output_under_a_file_is_refused_before_the_model_loads(
    command: str,
    a_file: Path,
    tiny_model_dir: Path,
    dialogues: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = refusal(COMMANDS[command](tiny_model_dir, dialogues, a_file), capsys)
    assert f"{a_file} is a file, not a folder" in error
    assert a_file.read_text() == "the user's notes\n"
