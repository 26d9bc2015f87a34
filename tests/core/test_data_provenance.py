"""Where loaded examples came from: path or hub id, split, file, row count and a content hash."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dialogsum.data import examples_digest, load_examples

ROWS = [
    {"fname": "a", "dialogue": "#Person1#: Hi.\n#Person2#: Hello.", "summary": "They greet."},
    {"fname": "b", "dialogue": "#Person1#: Bye.", "summary": "#Person1# leaves."},
]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_file_records_its_absolute_path_rows_and_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_jsonl(tmp_path / "small" / "train.jsonl", ROWS)
    monkeypatch.chdir(tmp_path)
    loaded = load_examples("small/train.jsonl")  # relative, as a user types it
    provenance = loaded.provenance
    assert provenance.kind == "file"
    assert provenance.location == str((tmp_path / "small" / "train.jsonl").resolve())
    assert provenance.split is None and provenance.file is None
    assert provenance.rows == 2 and provenance.sha256 == examples_digest(loaded)
    assert provenance.describe() == (
        f"{provenance.location} (2 rows, sha256 {provenance.sha256[:12]})"
    )


def test_a_folder_records_the_split_and_the_file_it_read(tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "data" / "validation.jsonl", ROWS)
    provenance = load_examples(tmp_path / "data", "validation").provenance
    assert (provenance.kind, provenance.split) == ("folder", "validation")
    assert provenance.location == str((tmp_path / "data").resolve())
    assert provenance.file == str(file.resolve())
    assert "split validation (validation.jsonl, 2 rows" in provenance.describe()


def test_the_same_examples_hash_the_same_in_any_format(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    with (tmp_path / "rows.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    from_jsonl = load_examples(jsonl).provenance
    from_csv = load_examples(tmp_path / "rows.csv").provenance
    in_memory = load_examples(ROWS).provenance
    assert from_jsonl.sha256 == from_csv.sha256 == in_memory.sha256
    assert (in_memory.kind, in_memory.location, in_memory.rows) == ("in-memory", None, 2)
    assert in_memory.describe().startswith("an in-memory list (2 rows, sha256 ")
    changed = load_examples([ROWS[0], {**ROWS[1], "summary": "Another summary."}]).provenance
    assert changed.sha256 != in_memory.sha256


def test_loaded_examples_passed_on_keep_where_they_came_from(tmp_path: Path) -> None:
    loaded = load_examples(write_jsonl(tmp_path / "train.jsonl", ROWS))
    again = load_examples(loaded)  # what finetune does with the examples the CLI loaded
    assert again.provenance == loaded.provenance
    # A list changed after loading is no longer the file's content: named as in memory.
    edited = list(loaded)[:1]
    assert load_examples(edited).provenance.kind == "in-memory"
