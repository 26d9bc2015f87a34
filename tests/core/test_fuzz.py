"""Property-based fuzzing of every parser a user feeds: data files, config files, command-line
options, generation options and model manifests.

The property is the same everywhere: the input parses to a valid result, or dialogsum raises a
DialogsumError with a message. Never another exception type, never a hang (each example has a
deadline). Examples are bounded so the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import shlex
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialogsum.cli import build_parser
from dialogsum.cli.config import (
    CompareConfig,
    EvaluateConfig,
    ExportConfig,
    QuickstartConfig,
    SummarizeConfig,
    TrainConfig,
    build_config,
    flags_to_settings,
)
from dialogsum.data import Example, load_examples, read_dialogues
from dialogsum.errors import DialogsumError
from dialogsum.generation import GenerationOptions, parse_generation
from dialogsum.modeling import ModelManifest, read_manifest

FUZZ = settings(
    max_examples=120,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples in every run: CI is reproducible
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
#: Field values: mostly text (so rows get past the first check), sometimes anything.
field_values = st.one_of(
    st.text(max_size=40),
    st.text(min_size=1, max_size=40),
    st.sampled_from(["", " ", "\n", "#Person1#: Hi.", "0"]),  # the edges, often
    json_values,
)
#: Rows that look like DialogSum, with every field sometimes missing or wrong.
rows = st.fixed_dictionaries(
    {},
    optional={
        key: field_values
        for key in ("dialogue", "summary", "summary1", "summary2", "fname", "id", "topic")
    },
)


def _write(data: bytes, suffix: str) -> Path:
    with tempfile.NamedTemporaryFile(delete=False, suffix=suffix) as handle:
        handle.write(data)
    return Path(handle.name)


def _loads_or_errs(path: Path, *, references: bool) -> None:
    try:
        examples = load_examples(path, require_references=references)
    except DialogsumError as exc:
        assert str(exc)
        return
    finally:
        path.unlink(missing_ok=True)
    assert examples and all(isinstance(e, Example) and e.dialogue.strip() for e in examples)
    if references:
        assert all(e.references for e in examples)


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".json", ".csv"]))
def test_arbitrary_bytes_as_a_data_file(data: bytes, suffix: str) -> None:
    _loads_or_errs(_write(data, suffix), references=True)


@FUZZ
@given(lines=st.lists(rows | json_values, max_size=6), references=st.booleans())
def test_json_lines_of_any_shape(lines: list[Any], references: bool) -> None:
    text = "\n".join(json.dumps(line) for line in lines)
    _loads_or_errs(_write(text.encode(), ".jsonl"), references=references)


@FUZZ
@given(row=rows, references=st.booleans(), suffix=st.sampled_from([".jsonl", ".json"]))
def test_one_row_of_any_shape(row: dict[str, Any], references: bool, suffix: str) -> None:
    text = json.dumps([row] if suffix == ".json" else row)
    _loads_or_errs(_write(text.encode(), suffix), references=references)


@FUZZ
@given(document=st.lists(rows, max_size=5) | json_values)
def test_a_json_document_of_any_shape(document: Any) -> None:
    _loads_or_errs(_write(json.dumps(document).encode(), ".json"), references=True)


@FUZZ
@given(
    header=st.lists(st.sampled_from(["dialogue", "summary", "fname", "x", ""]), max_size=4),
    cells=st.lists(st.lists(st.text(max_size=20), max_size=5), max_size=5),
)
def test_csv_of_any_shape(header: list[str], cells: list[list[str]]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(cells)
    _loads_or_errs(_write(buffer.getvalue().encode(), ".csv"), references=False)


@FUZZ
@given(lines=st.lists(rows | json_values, max_size=5))
def test_dialogues_to_summarize_from_stdin(lines: list[Any], monkeypatch_stdin: Any) -> None:
    monkeypatch_stdin("\n".join(json.dumps(line) for line in lines))
    try:
        examples = read_dialogues("-")
    except DialogsumError as exc:
        assert str(exc)
        return
    assert examples and all(e.dialogue.strip() for e in examples)


@pytest.fixture
def monkeypatch_stdin(monkeypatch: pytest.MonkeyPatch) -> Any:
    import io
    import sys

    def feed(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    return feed


CONFIGS = [
    TrainConfig,
    EvaluateConfig,
    SummarizeConfig,
    ExportConfig,
    CompareConfig,
    QuickstartConfig,
]


@FUZZ
@given(
    text=st.text(max_size=200) | st.builds(json.dumps, json_values),
    suffix=st.sampled_from([".yaml", ".json"]),
    model=st.sampled_from(CONFIGS),
)
def test_a_config_file_of_any_text(text: str, suffix: str, model: Any) -> None:
    path = _write(text.encode("utf-8", "surrogatepass"), suffix)
    try:
        build_config(model, str(path), {})
    except DialogsumError as exc:
        assert str(exc)
    finally:
        path.unlink(missing_ok=True)


@FUZZ
@given(
    document=st.dictionaries(
        st.sampled_from(
            [
                "train",
                "output_dir",
                "training",
                "data",
                "max_steps",
                "epochs",
                "options",
                "method",
                "model",
                "generation",
                "num_beams",
                "prompt",
            ]
        ),
        json_values,
        max_size=6,
    )
)
def test_a_config_mapping_of_any_shape(document: dict[str, Any]) -> None:
    path = _write(json.dumps(document).encode(), ".json")
    try:
        for model in CONFIGS:
            try:
                build_config(model, str(path), {})
            except DialogsumError as exc:
                assert str(exc)
    finally:
        path.unlink(missing_ok=True)


FLAG_VALUES = st.text(alphabet=string.ascii_letters + string.digits + "-_.[],{}: '\"", max_size=12)


@FUZZ
@given(
    command=st.sampled_from(["train", "evaluate", "summarize", "export", "compare", "quickstart"]),
    flags=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "--max-steps",
                    "--epochs",
                    "--num-beams",
                    "--batch-size",
                    "--max-source-length",
                    "--prompt",
                    "--option",
                    "--backend-option",
                    "--eval-strategy",
                    "--precision",
                    "--report-to",
                    "--limit",
                    "--resume-from-checkpoint",
                    "--learning-rate",
                    "--length-penalty",
                    "--quantize",
                    "--show",
                    "--train-samples",
                    "--top-p",
                ]
            ),
            FLAG_VALUES,
        ),
        max_size=4,
    ),
)
def test_command_line_options_of_any_value(command: str, flags: list[tuple[str, str]]) -> None:
    parser = build_parser()
    argv = [command, *[part for pair in flags for part in pair]]
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # argparse's own usage error, printed with the usage line
        return
    model = {
        "train": TrainConfig,
        "evaluate": EvaluateConfig,
        "summarize": SummarizeConfig,
        "export": ExportConfig,
        "compare": CompareConfig,
        "quickstart": QuickstartConfig,
    }[command]
    try:
        build_config(model, None, flags_to_settings(args))
    except DialogsumError as exc:
        assert str(exc), shlex.join(argv)


@FUZZ
@given(
    options=st.dictionaries(
        st.sampled_from([*GenerationOptions.model_fields, "max_tokens", "beams"]),
        json_values,
        max_size=5,
    ),
    defaults=st.dictionaries(
        st.sampled_from(list(GenerationOptions.model_fields)), json_values, max_size=3
    ),
)
def test_generation_options_of_any_value(options: dict[str, Any], defaults: dict[str, Any]) -> None:
    try:
        parsed = parse_generation(options, defaults)
    except DialogsumError as exc:
        assert str(exc)
        return
    assert isinstance(parsed, GenerationOptions) and parsed.num_beams >= 1


@FUZZ
@given(
    manifest=st.dictionaries(
        st.sampled_from(
            [
                "format",
                "method",
                "base_model",
                "peft",
                "generation",
                "export",
                "data",
                "merged",
                "dialogsum_version",
            ]
        ),
        json_values,
        max_size=6,
    )
    | json_values,
    raw=st.none() | st.binary(max_size=80),
)
def test_a_manifest_of_any_content(manifest: Any, raw: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dialogsum.json"
        path.write_bytes(raw if raw is not None else json.dumps(manifest).encode())
        try:
            loaded = read_manifest(Path(folder))
        except DialogsumError as exc:
            assert str(exc)
            return
        assert isinstance(loaded, ModelManifest)
