"""Rows that ask for different adapters: each adapter's rows run together, answers in row
order, and a backend that answers the wrong number of rows is named, not zip()'s error."""

from __future__ import annotations

import pytest

from dialogsum.adapter_serving import run_grouped
from dialogsum.errors import PluginError


def test_rows_run_one_adapter_at_a_time_and_come_back_in_row_order() -> None:
    calls: list[tuple[str | None, list[int]]] = []
    reported: list[tuple[int, str]] = []

    def run(name: str | None, rows: list[int], report: object) -> list[str]:
        calls.append((name, rows))
        answers = [f"{name}:{row}" for row in rows]
        report(0, answers[0])  # type: ignore[operator]
        return answers

    adapters = ["a", None, "a", "b"]
    summaries = run_grouped(adapters, run, lambda row, text: reported.append((row, text)))
    assert summaries == ["a:0", "None:1", "a:2", "b:3"]
    assert calls == [("a", [0, 2]), (None, [1]), ("b", [3])]
    assert reported == [(0, "a:0"), (1, "None:1"), (3, "b:3")]  # positions mapped to rows


def test_a_backend_that_answers_too_few_rows_is_a_plugin_error() -> None:
    with pytest.raises(
        PluginError,
        match=r"summarize_each\(\) of 2 dialogues \(adapter 'a'\) "
        r"returned 1 items",
    ):
        run_grouped(["a", "a"], lambda name, rows, report: ["one"], None)
