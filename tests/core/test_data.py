"""Loading DialogSum-format data: formats, every reference kept, and errors with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialogsum.data import DataOptions, Example, group_references, load_examples
from dialogsum.errors import ConfigError, DataError
from dialogsum.training.planning import parse_data


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_train_rows(sample_dir: Path) -> None:
    examples = load_examples(sample_dir / "train.jsonl")
    assert len(examples) == 200
    assert examples[0].id == "train_0"
    assert examples[0].dialogue.startswith("#Person1#:")
    assert len(examples[0].references) == 1


def test_test_split_keeps_all_three_references(sample_dir: Path) -> None:
    examples = load_examples(sample_dir, "test")
    assert len(examples) == 40
    assert all(len(e.references) == 3 for e in examples)
    raw = json.loads((sample_dir / "test.jsonl").read_text().splitlines()[0])
    assert examples[0].references == (raw["summary1"], raw["summary2"], raw["summary3"])


def test_folder_split_aliases(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "dev.jsonl", [{"dialogue": "a", "summary": "b"}])
    assert load_examples(tmp_path, "validation") == [Example("a", ("b",))]


def test_csv_with_same_columns(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text('dialogue,summary\n"#Person1#: Hi.\n#Person2#: Hello.",They greet.\n')
    [example] = load_examples(path)
    assert example.dialogue == "#Person1#: Hi.\n#Person2#: Hello."
    assert example.references == ("They greet.",)


@pytest.mark.parametrize("name", ["data.csv", "data.jsonl", "data.json"])
def test_a_byte_order_mark_is_read_past(tmp_path: Path, name: str) -> None:
    # Spreadsheets save "CSV UTF-8" with one; it must not stick to the first field's name.
    path = tmp_path / name
    row = {"dialogue": "#Person1#: Hi.", "summary": "They greet."}
    text = (
        'dialogue,summary\n"#Person1#: Hi.",They greet.\n'
        if name.endswith(".csv")
        else (json.dumps([row]) if name.endswith(".json") else json.dumps(row) + "\n")
    )
    path.write_text(text, encoding="utf-8-sig")
    [example] = load_examples(path)
    assert (example.dialogue, example.references) == ("#Person1#: Hi.", ("They greet.",))


def test_in_memory_list_of_dicts_and_examples() -> None:
    examples = load_examples([{"dialogue": "d1", "summary": "s1"}, Example("d2", ("s2",))])
    assert [e.dialogue for e in examples] == ["d1", "d2"]


def test_json_array_file(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"dialogue": "d", "summary": "s"}]))
    assert load_examples(path)[0].references == ("s",)


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"dialogue": "a", "summary": "b"}\n{"dialogue": "a", \n')
    with pytest.raises(DataError, match=rf"{path}:2: invalid JSON") as info:
        load_examples(path)
    assert 'an object such as {"dialogue": ' in str(info.value)  # what a line should be
    path.write_text('{"dialogue": "unterminated\tstring}\n')
    with pytest.raises(DataError, match=r"Invalid control character, column") as info:
        load_examples(path)
    assert " at at " not in str(info.value)
    path.write_text('{"dialogue": "#Person1#: Hi.\n')  # its closing quote lost
    with pytest.raises(DataError, match=r"Unterminated string starting, column 14"):
        load_examples(path)


def test_a_file_of_another_kind_and_a_single_object(tmp_path: Path) -> None:
    notes = tmp_path / "dialogue.txt"
    notes.write_text("#Person1#: Hi.\n")
    with pytest.raises(DataError, match=r"dialogue.txt:1: invalid JSON") as info:
        load_examples(notes)
    assert "A .txt file is read as JSON Lines; give a .jsonl, .json or .csv file." in str(
        info.value
    )
    # One object in a .json file is one row, as the same line is in a .jsonl file.
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"dialogue": "d", "summary": "s"}))
    assert load_examples(one)[0].references == ("s",)
    one.write_text(json.dumps({"text": "d"}))
    with pytest.raises(DataError, match=r"one object, with no 'dialogue' field \(its fields: text"):
        load_examples(one)


def test_an_empty_file_and_an_empty_csv_id(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty.jsonl: no examples found; the input is empty"):
        load_examples(empty)
    table = tmp_path / "data.csv"
    table.write_text("id,dialogue,summary\n,#Person1#: Hi.,Greeting.\n")
    assert load_examples(table)[0].id is None  # not "": the row's place names it


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "train.jsonl", [{"dialogue": "a", "summary": "b"}, {"text": "x", "summary": "y"}]
    )
    with pytest.raises(
        DataError,
        match=r"train.jsonl:2: field 'dialogue' is missing. Fields present: text, summary",
    ):
        load_examples(path)


def test_empty_dialogue_rejected(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"dialogue": "   ", "summary": "b"}])
    with pytest.raises(DataError, match=r"train.jsonl:1: field 'dialogue' is empty"):
        load_examples(path)


def test_non_string_field_rejected() -> None:
    with pytest.raises(DataError, match=r"item 0: field 'summary' must be a string, got int"):
        load_examples([{"dialogue": "a", "summary": 3}])


def test_training_rows_need_a_reference() -> None:
    with pytest.raises(DataError, match=r"item 0: no reference summary"):
        load_examples([{"dialogue": "a"}])
    assert load_examples(["just a dialogue"], require_references=False)[0].references == ()


def test_csv_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text('dialogue,summary\nok,fine\n"",empty dialogue\n')
    with pytest.raises(DataError, match=rf"{path}:3: field 'dialogue' is empty"):
        load_examples(path)


def test_missing_path_and_missing_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="No such data file or folder"):
        load_examples(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="No such data file or folder"):  # not a hub id
        load_examples("nope/test.jsonl")
    # 'owner/name' reads as a datasets id, but where 'owner' is a local folder it is a
    # mistyped path: no advice to install the hub extra, the likeliest entry meant instead.
    (tmp_path / "data" / "dialogsum").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as mistyped:
        load_examples("data/dialogsm")
    assert "No such data file or folder: data/dialogsm. Did you mean data/dialogsum?" in str(
        mistyped.value
    )
    assert "pip install" not in str(mistyped.value)
    write_jsonl(tmp_path / "train.jsonl", [{"dialogue": "a", "summary": "b"}])
    with pytest.raises(DataError, match=r"no file for split 'test'.*train.jsonl"):
        load_examples(tmp_path, "test")


def test_hub_id_without_network_fails_clearly() -> None:
    with pytest.raises(DataError, match=r"knkarthick/dialogsum"):
        load_examples("knkarthick/dialogsum", "test")


def test_group_references_merges_flattened_rows() -> None:
    rows = [
        Example("d", ("r1",)),
        Example("e", ("x",)),
        Example("d", ("r2",)),
        Example("d", ("r3",)),
    ]
    grouped = group_references(rows)
    assert [(g.dialogue, g.references) for g in grouped] == [
        ("d", ("r1", "r2", "r3")),
        ("e", ("x",)),
    ]


def test_prompt_template_default_and_braces() -> None:
    options = DataOptions()
    assert options.render("X") == "Summarize the following conversation.\n\nX\n\nSummary: "
    assert DataOptions(prompt="{dialogue} => TL;DR").render("a {b}") == "a {b} => TL;DR"


def test_prompt_without_placeholder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"Invalid options for data: prompt: .*'\{dialogue\}'"):
        parse_data({"prompt": "Summarize this"})
    with pytest.raises(ConfigError, match=r"max_source_length"):
        parse_data({"max_source_length": 0})


def test_non_utf8_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"dialogue": "caf\xe9", "summary": "s"}\n')
    with pytest.raises(DataError, match=r"train.jsonl: not UTF-8 text"):
        load_examples(path)
