"""Loading DialogSum-format data from files, folders, in-memory lists or the Hugging Face hub.

Every row becomes an :class:`Example` with its dialogue and *all* its reference summaries:
DialogSum's test split carries three (``summary1``..``summary3``) and evaluation uses them all.
A malformed row fails with its file and line and the field at fault; nothing is dropped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dialogsum.errors import DataError, clause, install_command, logger, near_miss

#: FLAN's own dialogue-summarization instruction, as used in the FLAN collection.
DEFAULT_PROMPT = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "

SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test",),
}
FILE_SUFFIXES = (".jsonl", ".json", ".csv")
_REFERENCE_FIELD = re.compile(r"^summary(\d*)$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class Example:
    """One dialogue and its reference summaries (none when only summarizing)."""

    dialogue: str
    references: tuple[str, ...] = ()
    #: The row's ``fname`` (DialogSum's id) or ``id``; a whole number stays a number, so ids
    #: written back (predictions, summaries) have the type the user gave.
    id: str | int | None = None

    @property
    def summary(self) -> str | None:
        """The first reference summary, if any."""
        return self.references[0] if self.references else None


DataSource = str | Path | Sequence[Example | Mapping[str, Any] | str]


@dataclass(frozen=True)
class DataProvenance:
    """Where a set of examples came from, for run records, model cards and comparison pages.

    Two runs trained on the same ``sha256`` saw the same examples, whatever file, format or
    list they were read from.
    """

    #: What was read: a data file, a folder's split file, a hub data set, or a list in memory.
    kind: Literal["file", "folder", "hub", "in-memory"]
    #: The path as given, made absolute; the hub id; None for a list in memory.
    location: str | None
    #: The split taken from a folder or the hub (as asked, e.g. ``dev``); None for a file or
    #: a list, which are read whole.
    split: str | None
    #: For a folder: the file that holds the split.
    file: str | None
    #: How many examples (rows) were read.
    rows: int
    #: SHA-256 of the examples as loaded (each one's id, dialogue and references, in order).
    sha256: str

    def describe(self) -> str:
        """One line for people: where the data came from, how many rows, and its hash."""
        facts = f"{self.rows:,} rows, sha256 {self.sha256[:12]}"
        if self.kind == "in-memory":
            return f"an in-memory list ({facts})"
        if self.kind == "hub":
            return f"{self.location} from the Hugging Face hub, split {self.split} ({facts})"
        if self.kind == "folder":
            name = Path(self.file).name if self.file else "?"
            return f"{self.location}, split {self.split} ({name}, {facts})"
        return f"{self.location} ({facts})"

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready mapping (what ``train_config.json`` records)."""
        return asdict(self)


def examples_digest(examples: Iterable[Example]) -> str:
    """SHA-256 of ``examples`` as loaded: the same rows give the same digest in any format."""
    hasher = hashlib.sha256()
    for example in examples:  # one at a time: no copy of the whole data set
        row = [example.id, example.dialogue, list(example.references)]
        hasher.update(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode())
        hasher.update(b"\n")
    return hasher.hexdigest()


class LoadedExamples(list[Example]):
    """The examples :func:`load_examples` read, with :attr:`provenance`: where they came from.

    A list like any other; passed on (to ``finetune``, ``estimate``) it keeps its provenance,
    so a run records the file the examples were read from, not just a list in memory.
    """

    def __init__(self, examples: Iterable[Example], provenance: DataProvenance) -> None:
        super().__init__(examples)
        self.provenance = provenance


class DataOptions(BaseModel):
    """How examples become model inputs: the prompt and the length limits."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        DEFAULT_PROMPT, description="Prompt template; '{dialogue}' is replaced by the dialogue."
    )
    max_source_length: int = Field(512, gt=0, description="Tokens kept of each prompted dialogue.")
    max_target_length: int = Field(128, gt=0, description="Tokens kept of each reference summary.")

    @field_validator("prompt")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if value.count("{dialogue}") != 1:
            raise ValueError(
                "the prompt must contain the placeholder '{dialogue}' exactly once, "
                f"got {value!r}"
            )
        return value

    def render(self, dialogue: str) -> str:
        """The model input for ``dialogue``."""
        # str.replace, not str.format: dialogues and prompts may contain braces.
        return self.prompt.replace("{dialogue}", dialogue)


def example_from_row(row: Any, where: str, *, require_references: bool = True) -> Example:
    """Build an :class:`Example` from one row, or fail naming ``where`` and the field at fault."""
    if isinstance(row, Example):
        if require_references and not row.references:
            raise DataError(f"{where}: the example has no reference summary.")
        return row
    if isinstance(row, str):
        row = {"dialogue": row}
    if not isinstance(row, Mapping):
        raise DataError(
            f"{where}: expected an object with a 'dialogue' field, got {type(row).__name__}."
        )
    dialogue = _text_field(row, "dialogue", where)
    references = tuple(
        _text_field(row, key, where)
        for key in sorted(
            (k for k in row if isinstance(k, str) and _REFERENCE_FIELD.match(k)),
            key=lambda k: int(k[len("summary") :] or 0),
        )
    )
    if require_references and not references:
        present = ", ".join(map(str, row)) or "none"
        raise DataError(
            f"{where}: no reference summary; expected field 'summary' (or 'summary1', "
            f"'summary2', ...). Fields present: {present}."
        )
    raw_id = row.get("fname", row.get("id"))
    if raw_id == "":  # an empty CSV cell: no id, so the row's position names it
        raw_id = None
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
        raw_id = str(raw_id)
    return Example(dialogue, references, raw_id)


def _text_field(row: Mapping[str, Any], key: str, where: str) -> str:
    if key not in row:
        present = ", ".join(map(str, row)) or "none"
        raise DataError(f"{where}: field '{key}' is missing. Fields present: {present}.")
    value = row[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{key}' must be a string, got {type(value).__name__}.")
    if not value.strip():
        raise DataError(f"{where}: field '{key}' is empty.")
    return value


def load_examples(
    source: DataSource, split: str = "train", *, require_references: bool = True
) -> LoadedExamples:
    """Load examples from any supported source, with where they came from (``.provenance``).

    ``source`` is a ``.jsonl``/``.json``/``.csv`` file, a folder holding ``<split>.jsonl`` (or
    ``.json``/``.csv``) files, a list of :class:`Example`, dicts or dialogue strings, or a Hugging
    Face datasets id such as ``knkarthick/dialogsum`` (needs ``pip install 'dialogsum[hub]'`` and a
    connection). ``split`` picks the file in a folder (``dev`` and ``val`` find ``validation``)
    and the split on the hub. Examples loaded before keep their provenance.
    """
    rows: Iterable[tuple[str, Any]]
    kind: Literal["file", "folder", "hub", "in-memory"]
    location: str | None = None
    chosen: Path | None = None
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        kind = "file"
        if path.is_dir():
            kind, chosen = "folder", split_file(path, split)
        if (chosen or path).is_file():
            location = str(path.resolve())
            rows = read_rows(chosen or path)
        elif (
            isinstance(source, str)
            and _HUB_ID.match(source)
            and not path.exists()
            # 'data/test.jsonl' is a missing file, not a datasets id; nor is 'data/dialogsm'
            # where 'data' is a local folder: a mistyped path
            and path.suffix.lower() not in (".jsonl", ".json", ".csv")
            and not path.parent.is_dir()
        ):
            kind, location = "hub", source
            rows = _hub_rows(source, split)
        else:
            raise DataError(
                f"No such data file or folder: {path}{near_miss(path)} Give a .jsonl, .json or "
                f".csv file, a folder with train/validation/test files, or a Hugging Face "
                f"datasets id."
            )
    elif isinstance(source, Sequence):
        kind = "in-memory"
        rows = ((f"item {index}", row) for index, row in enumerate(source))
    else:
        raise DataError(
            f"Cannot read data from a {type(source).__name__}; give a path, a hub id or a list."
        )
    examples = [
        example_from_row(row, where, require_references=require_references) for where, row in rows
    ]
    if not examples:
        where = f" (split '{split}')" if kind in ("folder", "hub") else ""
        raise DataError(f"{source}: no examples found{where}; the input is empty.")
    digest = examples_digest(examples)
    if isinstance(source, LoadedExamples) and source.provenance.sha256 == digest:
        return LoadedExamples(examples, source.provenance)  # unchanged since it was loaded
    provenance = DataProvenance(
        kind=kind,
        location=location,
        split=split if kind in ("folder", "hub") else None,
        file=str(chosen.resolve()) if chosen is not None else None,
        rows=len(examples),
        sha256=digest,
    )
    return LoadedExamples(examples, provenance)


def read_dialogues(source: str | Path, split: str = "test") -> list[Example]:
    """Dialogues to summarize, references optional: a file, a folder's ``split``, or ``-``.

    ``-`` reads JSON Lines from standard input (objects with ``dialogue``, or JSON strings);
    anything else goes through :func:`load_examples`, so every format and error message is the
    same as for training data. An input with no dialogue is an error, never a silent no-op.
    """
    if str(source) == "-":
        import sys

        rows = ((f"<stdin>:{number}", row) for number, row in json_lines(sys.stdin, "<stdin>"))
        examples = [example_from_row(row, where, require_references=False) for where, row in rows]
        if not examples:
            raise DataError("<stdin>: no dialogues to summarize (the input is empty).")
        return examples
    examples = load_examples(source, split, require_references=False)
    chosen = examples.provenance.file
    if chosen is not None:  # a folder: say which of its files was read
        logger.info("reading the %s split of %s: %s", split, source, chosen)
    return examples


def split_file(folder: Path, split: str) -> Path:
    """The file in ``folder`` that holds ``split``; an alias finds its split's file under any
    of its names (``dev`` finds ``validation.jsonl``, ``validation`` finds ``dev.jsonl``)."""
    aliases = next((names for names in SPLIT_ALIASES.values() if split in names), ())
    names = (split, *(name for name in aliases if name != split))
    for name in names:
        for suffix in FILE_SUFFIXES:
            for candidate in (folder / f"{name}{suffix}", folder / f"dialogsum.{name}{suffix}"):
                if candidate.is_file():
                    return candidate
    present = ", ".join(sorted(p.name for p in folder.iterdir() if p.suffix in FILE_SUFFIXES))
    looked = ", ".join(f"{name}.jsonl" for name in names)
    raise DataError(
        f"{folder}: no file for split '{split}' (looked for {looked}, or .json or .csv). "
        f"Data files present: {present or 'none'}."
    )


def read_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ``(where, row)`` pairs from a JSON Lines, JSON or CSV file; ``where`` is file:line."""
    try:
        yield from _read_rows(path)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save the file as UTF-8."
        ) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}).") from None


def _read_rows(path: Path) -> Iterator[tuple[str, Any]]:
    if path.suffix.lower() == ".csv":
        return _csv_rows(path)
    if path.suffix.lower() == ".json":
        text = path.read_text(encoding="utf-8-sig")
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            return _json_lines(path)  # a .json file holding JSON Lines
        if isinstance(whole, list):
            return ((f"{path}: item {index}", row) for index, row in enumerate(whole))
        if isinstance(whole, dict) and isinstance(whole.get("data"), list):
            return ((f"{path}: data[{index}]", row) for index, row in enumerate(whole["data"]))
        if isinstance(whole, dict) and "dialogue" in whole:
            return iter([(f"{path}", whole)])  # one row, as the same line in a .jsonl file is
        held = (
            f" It holds one object, with no 'dialogue' field (its fields: "
            f"{', '.join(map(str, list(whole)[:8])) or 'none'}): give objects with 'dialogue' "
            f"(and 'summary' to train or score), in a list or one per line."
            if isinstance(whole, dict)
            else ""
        )
        raise DataError(f"{path}: expected a JSON list of objects or JSON Lines.{held}")
    return _json_lines(path)


def _json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, row in json_lines(handle, str(path)):
            yield f"{path}:{number}", row


def json_lines(handle: IO[str], name: str) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line of JSON Lines text in ``handle``.

    ``name`` (a path, or ``<stdin>``) goes into errors: ``name:line: invalid JSON``.
    """
    lines = iter(handle)
    number = 0
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}: not UTF-8 text ({exc.reason}); save it as UTF-8.") from None
        number += 1
        if not line.strip():
            continue
        try:
            # Without its line ending: inside a string left open, the newline would be reported
            # as a control character at the line's end instead of where the string starts.
            yield number, json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            suffix = Path(name).suffix.lower()
            # A .txt or .md file is read as JSON Lines (many are): say so when it is not.
            read_as = (
                f" A {suffix or 'suffix-less'} file is read as JSON Lines; give a .jsonl, .json "
                f"or .csv file."
                if suffix not in (".jsonl", ".json", ".ndjson") and not name.startswith("<")
                else ""
            )
            raise DataError(
                f"{name}:{number}: invalid JSON ({exc.msg.removesuffix(' at')}, column "
                f"{exc.colno}). Each line is one JSON value: an object such as "
                f'{{"dialogue": "#Person1#: ..."}}, or a JSON string.{read_as}'
            ) from None


def _csv_rows(path: Path) -> Iterator[tuple[str, Any]]:
    # utf-8-sig: spreadsheets save "CSV UTF-8" with a byte-order mark, which would otherwise
    # stick to the first column's name.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise DataError(f"{path}: the CSV file is empty; expected a header with 'dialogue'.")
        start = reader.line_num + 1
        for row in reader:
            if None in row:
                raise DataError(f"{path}:{start}: the row has more cells than the header.")
            yield f"{path}:{start}", row
            start = reader.line_num + 1


def _hub_rows(dataset_id: str, split: str) -> Iterable[tuple[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"'{dataset_id}' is not a local file or folder; loading it from the Hugging Face hub "
            f"needs the datasets package: {install_command('hub')}."
        ) from None
    try:
        dataset = datasets.load_dataset(dataset_id, split=split)
    except Exception as exc:
        raise DataError(
            f"Could not load '{dataset_id}' (split '{split}') from the Hugging Face hub: "
            f"{type(exc).__name__}: {clause(exc)}. Check the id and your connection, or give a "
            f"local file."
        ) from exc
    return ((f"{dataset_id}[{split}] row {index}", row) for index, row in enumerate(dataset))


def group_references(examples: Iterable[Example]) -> list[Example]:
    """Merge examples that share a dialogue into one carrying all their references.

    The hub mirror of DialogSum flattens each test dialogue into three rows with one reference
    each; scoring those rows separately would count each dialogue three times against a single
    reference. Order of first appearance is kept.
    """
    merged: dict[str, Example] = {}
    for example in examples:
        known = merged.get(example.dialogue)
        if known is None:
            merged[example.dialogue] = example
        else:
            references = known.references + example.references
            merged[example.dialogue] = Example(known.dialogue, references, known.id)
    return list(merged.values())


#: The splits of DialogSum, and of the sample shipped in ``dialogsum/sample/``.
SPLITS: tuple[str, str, str] = ("train", "validation", "test")


def sample_path(split: str) -> Path:
    """The file of the DialogSum sample shipped inside the package for ``split``.

    ``dialogsum/sample/<split>.jsonl``: 200 train, 40 validation and 40 test dialogues
    (CC BY-NC-SA 4.0, see its README). Raises :class:`DataError` for an unknown split or when
    the package was installed without its sample.
    """
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}; the sample has {', '.join(SPLITS)}.")
    # One step at a time: Python 3.11's namespace-package reader takes a single name per step.
    path = Path(str(resources.files("dialogsum") / "sample" / f"{split}.jsonl"))
    if not path.is_file():
        raise DataError(
            f"The DialogSum sample file {path} is missing; reinstall dialogsum (pip install "
            f"--force-reinstall dialogsum) or give a data file of your own."
        )
    return path


def sample_rows(split: str = "train") -> list[dict[str, Any]]:
    """The rows of one split of the shipped sample, as stored (``fname``, ``dialogue``, ...)."""
    with sample_path(split).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
