"""The Summarizer facade: summarize inputs, evaluation, loading errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from dialogsum import Summarizer
from dialogsum.errors import BackendError, ConfigError, DataError, ModelError, PluginError
from dialogsum.modeling import DEFAULT_MODEL
from dialogsum.plugin_api import GenerationOptions, ModelManifest, Predictor

DIALOGUE = "#Person1#: Can I help you?\n#Person2#: I'd like a ticket to Boston, please."


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> Summarizer:
    return Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})


def test_batched_summaries_match_one_by_one(base: Summarizer) -> None:
    dialogues = [DIALOGUE, "#Person1#: Hi.", DIALOGUE + "\n#Person1#: Sure, one way or return?"]
    batched = base.summarize(dialogues, batch_size=2, max_new_tokens=10)
    single = [base.summarize([d], max_new_tokens=10)[0] for d in dialogues]
    assert batched == single
    assert base.summarize([], max_new_tokens=5) == []


def test_beam_search_and_options(base: Summarizer) -> None:
    [summary] = base.summarize([DIALOGUE], num_beams=3, max_new_tokens=8, no_repeat_ngram_size=2)
    assert isinstance(summary, str)


@pytest.mark.parametrize(
    ("dialogues", "message"),
    [
        (DIALOGUE, r"got a single string; wrap it"),
        ([DIALOGUE, ""], r"dialogues\[1\] is empty"),
        ([DIALOGUE, 42], r"dialogues\[1\] is a int"),
        # rows as load_examples reads them from a file: told to pass their text
        (
            [{"dialogue": DIALOGUE}],
            r"dialogues\[0\] is a dict.*pass each row's text: \[row\['dialogue'\] for row",
        ),
    ],
)
def test_bad_dialogues(base: Summarizer, dialogues: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        base.summarize(dialogues)  # type: ignore[arg-type]


def test_unknown_generation_option(base: Summarizer) -> None:
    with pytest.raises(
        ConfigError,
        match=r"generation: max_tokens: not a setting here.*Valid fields: max_new_tokens",
    ):
        base.summarize([DIALOGUE], max_tokens=5)
    with pytest.raises(ConfigError, match=r"num_beams: Input should be greater than or equal to 1"):
        base.summarize([DIALOGUE], num_beams=0)


def test_options_may_be_a_mapping_checked_like_keywords(base: Summarizer) -> None:
    # finetune() takes its options as a mapping; summarize(options={...}) failed in the backend
    as_keywords = base.summarize([DIALOGUE], max_new_tokens=4, num_beams=2)
    assert base.summarize([DIALOGUE], options={"max_new_tokens": 4, "num_beams": 2}) == as_keywords
    with pytest.raises(
        ConfigError, match=r"num_beam: not a setting here \(did you mean 'num_beams'"
    ):
        base.summarize([DIALOGUE], options={"num_beam": 2})
    with pytest.raises(ConfigError, match=r"got options=3 \(int\); give the options from"):
        base.summarize([DIALOGUE], options=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"summarize_rows\(\) got options='beam'"):
        base.summarize_rows([DIALOGUE], [None], "beam")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_new_tokens": 10**9}, r"max_new_tokens: Input should be less than or equal to 4096"),
        ({"num_beams": 1000}, r"num_beams: Input should be less than or equal to 64"),
        ({"min_new_tokens": 50, "max_new_tokens": 10}, r"min_new_tokens: .*50 is above max_new"),
    ],
)
def test_impossible_lengths_are_refused_before_decoding(
    base: Summarizer, options: dict[str, int], message: str
) -> None:
    # Unbounded, a typo allocated gigabytes; min above max decoded a cut-off summary.
    with pytest.raises(ConfigError, match=message):
        base.summarize([DIALOGUE], **options)


@pytest.mark.parametrize(
    "options",
    [
        {"length_penalty": float("nan")},
        {"length_penalty": float("-inf"), "num_beams": 2},
        {"repetition_penalty": float("inf")},
        {"temperature": float("nan")},
    ],
)
def test_a_float_option_that_is_not_finite_is_refused(
    base: Summarizer, options: dict[str, Any]
) -> None:
    # A NaN or infinite length_penalty decoded an empty summary without an error.
    name = next(iter(options))
    with pytest.raises(ConfigError, match=rf"{name}: Input should be a finite number"):
        base.summarize([DIALOGUE], **options)


def test_long_input_is_truncated_and_reported(
    base: Summarizer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dialogsum"):
        base.summarize([DIALOGUE * 80, DIALOGUE], max_new_tokens=4)
    assert "1 of 2 dialogues were longer than max_source_length=512" in caplog.text


def test_evaluate_uses_all_references(base: Summarizer, sample_dir: Path, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions.jsonl"
    scores = base.evaluate(sample_dir, "test", max_new_tokens=6, predictions_file=predictions)
    assert scores["n"] == 40 and scores["references"] == 120
    assert set(scores) >= {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 40 and len(rows[0]["references"]) == 3
    # An existing predictions file is kept, as save() and export() keep a folder.
    kept = predictions.read_text()
    few = [{"dialogue": DIALOGUE, "summary": "A ticket."}]
    with pytest.raises(ConfigError, match="overwrite"):
        base.evaluate(few, max_new_tokens=4, predictions_file=predictions)
    assert predictions.read_text() == kept
    base.evaluate(few, max_new_tokens=4, predictions_file=predictions, overwrite=True)
    assert len(predictions.read_text().splitlines()) == 1


def test_evaluate_merges_flattened_references(base: Summarizer) -> None:
    flat = [{"dialogue": DIALOGUE, "summary": s} for s in ("A ticket.", "Boston trip.", "Buying.")]
    scores = base.evaluate(flat, max_new_tokens=4)
    assert scores["n"] == 1 and scores["references"] == 3


def test_missing_model_folder() -> None:
    with pytest.raises(ModelError, match=r"No model folder at .*nowhere: it does not exist"):
        Summarizer.from_pretrained("./nowhere")


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match=r"neither config.json nor adapter_config.json"):
        Summarizer.from_pretrained(tmp_path)


def test_corrupt_weights(base: Summarizer, tmp_path: Path) -> None:
    folder = base.save(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match=r"Could not load the model"):
        Summarizer.from_pretrained(folder)


def test_manifest_from_newer_version(base: Summarizer, tmp_path: Path) -> None:
    folder = base.save(tmp_path / "m")
    manifest = json.loads((folder / "dialogsum.json").read_text())
    (folder / "dialogsum.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(ModelError, match=r"newer dialogsum.*upgrade"):
        Summarizer.from_pretrained(folder)


def test_unreachable_hub_id() -> None:
    with pytest.raises(
        ModelError, match=r"'google/flan-t5-nonexistent'.*not a local folder"
    ) as refused:
        Summarizer.from_pretrained("google/flan-t5-nonexistent")
    # The caller passed no local_files_only: the library's advice to change it is left out.
    assert "local_files_only" not in str(refused.value)
    assert str(refused.value).endswith(f"or a hub id such as {DEFAULT_MODEL} when online.")
    assert "Did you mean" not in str(refused.value)
    # A bundled model's name, mistyped, is told the one meant.
    with pytest.raises(ModelError, match=r"Did you mean the bundled 'dialogsum-tiny'\?"):
        Summarizer.from_pretrained("dialogsum-tinny")


def test_unknown_backend_and_bad_backend_option(tiny_model_dir: Path) -> None:
    with pytest.raises(
        PluginError,
        match=r"Unknown backend 'onnx'; did you mean 'onnxruntime'\? Available backends: .*torch",
    ):
        Summarizer.from_pretrained(tiny_model_dir, backend="onnx")
    with pytest.raises(
        ConfigError,
        match=r"backend 'torch': devise: not a setting here \(did you mean .device.\?\)",
    ):
        Summarizer.from_pretrained(tiny_model_dir, backend_options={"devise": "cpu"})


def test_predictions_file_in_a_missing_folder_fails_before_work(
    base: Summarizer, sample_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"its folder .*nowhere does not exist"):
        base.evaluate(sample_dir, "test", predictions_file=tmp_path / "nowhere" / "p.jsonl")


def test_overwrite_failure_keeps_the_old_model(
    base: Summarizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = base.save(tmp_path / "model")
    before = sorted(p.name for p in target.iterdir())
    real_rename = Path.rename

    def failing_rename(self: Path, destination: Path) -> Path:  # the new folder cannot move in
        if self.name.endswith(".partial"):
            raise OSError("disk went away")
        return real_rename(self, destination)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError, match="disk went away"):
        base.save(target, overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in target.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging or .old left behind


def test_saved_generation_defaults_apply_and_yield_to_the_caller(
    base: Summarizer, tmp_path: Path
) -> None:
    folder = base.save(tmp_path / "m", generation={"num_beams": 3, "max_new_tokens": 5})
    assert json.loads((folder / "dialogsum.json").read_text())["generation"] == {
        "num_beams": 3,
        "max_new_tokens": 5,
    }
    reloaded = Summarizer.from_pretrained(folder, backend_options={"progress": False})
    assert reloaded.summarize([DIALOGUE]) == base.summarize(
        [DIALOGUE], num_beams=3, max_new_tokens=5
    )
    assert reloaded.summarize([DIALOGUE], num_beams=1, max_new_tokens=7) == base.summarize(
        [DIALOGUE], max_new_tokens=7
    )
    with pytest.raises(ConfigError, match="num_beams"):
        base.save(tmp_path / "bad", generation={"num_beams": 0})


@pytest.mark.parametrize("name", [None, "", 3])
def test_a_model_name_that_is_not_one_is_refused(name: object) -> None:
    with pytest.raises(ConfigError, match="must name a model"):
        Summarizer.from_pretrained(name)  # type: ignore[arg-type]


def test_overwrite_never_replaces_the_folder_it_runs_in(
    base: Summarizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    for target in (".", ".."):
        with pytest.raises(ConfigError, match="is the current folder or holds it"):
            base.save(target, overwrite=True)
    assert (work / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)  # empty, so no overwrite is needed: still not replaced
    with pytest.raises(ConfigError, match="is the current folder or holds it"):
        base.save(empty)
    assert empty.is_dir() and Path.cwd() == empty


def test_a_file_where_a_folder_goes_is_kept_even_with_overwrite(
    base: Summarizer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="is a file, not a folder"):
            base.save(notes, overwrite=overwrite)
        with pytest.raises(ConfigError, match="is a file, not a folder"):
            base.export(notes, overwrite=overwrite)
    assert notes.read_text() == "mine"


# -- rows that each name their adapter ----------------------------------------------------------


class ByAdapter(Predictor):
    """Answers ``adapter:dialogue``; fails on a dialogue saying "boom"; answers one row
    short for an adapter named "short"."""

    manifest = ModelManifest()

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        self.calls.append((dialogues, options.adapter))
        if "boom" in dialogues:
            raise RuntimeError("boom")
        answers = [f"{options.adapter}:{dialogue}" for dialogue in dialogues]
        return answers[1:] if options.adapter == "short" else answers


def test_rows_run_one_call_per_adapter_and_come_back_in_row_order() -> None:
    predictor = ByAdapter()
    summarizer = Summarizer(predictor, backend="by-adapter")
    reported: list[tuple[int, str]] = []
    summaries = summarizer.summarize_rows(
        ["a", "b", "c"],
        ["x", None, "x"],
        summarizer.generation_options(),
        on_summary=lambda row, text: reported.append((row, text)),
    )
    assert summaries == ["x:a", "None:b", "x:c"]
    assert sorted(reported) == [(0, "x:a"), (1, "None:b"), (2, "x:c")]
    assert predictor.calls == [(["a", "c"], "x"), (["b"], None)]


def test_bad_rows_and_failing_backends_are_named() -> None:
    summarizer = Summarizer(ByAdapter(), backend="by-adapter")
    options = summarizer.generation_options()
    with pytest.raises(ConfigError, match="2 dialogues and 1 adapters"):
        summarizer.summarize_rows(["a", "b"], [None], options)
    with pytest.raises(BackendError, match="'by-adapter' backend failed: RuntimeError: boom"):
        summarizer.summarize_rows(["boom"], [None], options)
    with pytest.raises(PluginError, match="broke its contract"):
        summarizer.summarize_rows(["a", "b"], ["short", "short"], options)
    assert summarizer.summarize_rows([], [], options) == []
