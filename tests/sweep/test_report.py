"""The sweep report: report.md, report.html and plots, from a summary as ``sweep.json`` holds it."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import pytest

from dialogsum.sweep.report import write_report

PLOTS = (
    "scores_over_time.png",
    "score_vs_learning_rate.png",
    "intermediate_curves.png",
    "importances.png",
)
START = 1733350000.0


def trial(
    number: int, state: str, rate: float, r: int, modules: str, **rest: Any
) -> dict[str, Any]:
    rungs = rest.pop("rungs", [])
    entry = {
        "number": number,
        "params": {
            "training.learning_rate": rate,
            "options.r": r,
            "options.target_modules": modules,
        },
        "state": state,
        "rungs": rungs,
        "score": None,
        "steps": rungs[-1][0] if rungs else 0,
        "seconds": 12.5,
        "cost": 0.01,
        "started": START + 20 * number,
        "finished": START + 20 * number + 12.5,
        "rerun_of": None,
        "rerun_as": None,
    }
    entry.update(rest)
    return entry


def make_summary() -> dict[str, Any]:
    best_params = {
        "training.learning_rate": 0.0005,
        "options.r": 16,
        "options.target_modules": "<script>",
    }
    return {
        "objective": {"metric": "rouge1", "direction": "maximize"},
        "engine": "optuna",
        "method": "lora",
        "seed": 0,
        "trials_asked": 12,
        "state": "stopped",
        "stop_reason": "the time budget of 10m was reached",
        "seconds": 123.4,
        "cost": 0.05,
        "hourly_cost": 1.5,
        "default_score": 29.0,
        "space": {
            "training.learning_rate": {"low": 1e-5, "high": 1e-2, "log": True},
            "options.r": {"choices": [4, 8, 16]},
            "options.target_modules": {"choices": ["q,v", "<script>"]},
        },
        "rungs": [20, 60, 180],
        "trials": [
            # Out of order on purpose: the table is by trial number.
            trial(
                3,
                "finished",
                0.0005,
                16,
                "<script>",
                rungs=[[20, 26.4], [60, 30.1], [180, 31.0]],
                score=31.0,
            ),
            trial(
                0,
                "finished",
                0.0003,
                8,
                "q,v",
                rungs=[[20, 25.1], [60, 29.3], [180, 30.2]],
                score=30.2,
            ),
            trial(1, "pruned", 0.01, 4, "q,v", rungs=[[20, 12.5]]),
            trial(
                2, "interrupted", 0.001, 16, "q,v", rungs=[[20, 26.0]], finished=None, rerun_as=4
            ),
            trial(4, "stopped", 0.001, 16, "q,v", rungs=[[20, 26.5], [60, 28.0]], rerun_of=2),
        ],
        "best": {"number": 3, "score": 31.0, "params": best_params, "folder": "best"},
        "importances": {
            "training.learning_rate": 0.8,
            "options.r": 0.15,
            "options.target_modules": 0.05,
        },
    }


def table(markdown: str, heading: str) -> list[dict[str, str]]:
    """The Markdown table under ``## heading`` as one dict per row (bold marks removed)."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]

    def cells(line: str) -> list[str]:
        return [cell.strip().strip("*") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]

    header = cells(lines[0])
    assert set(lines[1]) <= {"|", "-"}
    return [dict(zip(header, cells(line), strict=True)) for line in lines[2:]]


def test_writes_both_pages_and_every_plot(tmp_path: Path) -> None:
    written = write_report(tmp_path, make_summary())
    expected = [
        tmp_path / "report.md",
        tmp_path / "report.html",
        *(tmp_path / "plots" / p for p in PLOTS),
    ]
    assert written == expected
    for path in expected[2:]:
        assert path.read_bytes().startswith(b"\x89PNG"), path
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    markdown = (tmp_path / "report.md").read_text()
    for name in PLOTS:
        # The page holds its plots (it is one file); the Markdown links the PNGs beside it.
        data = base64.b64encode((tmp_path / "plots" / name).read_bytes()).decode("ascii")
        assert f'<img src="data:image/png;base64,{data}"' in page
        assert f"(plots/{name})" in markdown


def test_trials_table_has_a_row_per_trial_with_states_and_the_best_marked(tmp_path: Path) -> None:
    write_report(tmp_path, make_summary())
    rows = table((tmp_path / "report.md").read_text(), "Trials")
    assert [row["trial"] for row in rows] == ["0", "1", "2", "3 (best)", "4"]
    assert [row["state"] for row in rows] == [
        "finished",
        "pruned",
        "interrupted (rerun as 4)",
        "finished",
        "stopped (rerun of 2)",
    ]
    best = rows[3]
    assert best["training.learning_rate"] == "5.0e-04" and best["options.r"] == "16"
    assert (best["step 20"], best["step 60"], best["step 180"], best["rouge1"]) == (
        "26.40",
        "30.10",
        "31.00",
        "31.00",
    )
    assert rows[1]["step 60"] == "-" and rows[1]["rouge1"] == "-" and rows[1]["steps"] == "20"
    assert rows[0]["time"] == "12 s" and rows[0]["cost"] == "0.01"
    page = (tmp_path / "report.html").read_text()
    assert page.count('<tr class="best">') == 1
    assert re.search(r'<tr class="best">\s*<td>3 \(best\)</td>', page)


def test_summary_values_appear(tmp_path: Path) -> None:
    write_report(tmp_path, make_summary())
    markdown = (tmp_path / "report.md").read_text()
    for needle in (
        "rouge1, higher is better",
        # Trial 2 was interrupted and rerun as trial 4: one trial, counted once.
        "4 of 12 asked: 2 finished, 1 pruned, 1 stopped; 1 interrupted and rerun",
        "trial 3: rouge1 31.00 (training.learning_rate=5.0e-04, options.r=16",
        "rouge1 29.00 before any training; the best trial is 2.00 better",
        "stopped: the time budget of 10m was reached",
        "2 min 3 s (the runs of the sweep that ended)",  # 123.4 s of wall time
        "its trials trained and scored for 1 min 2 s over all runs",  # 5 trials of 12.5 s
        "0.05 (at 1.5 per hour)",
        "2024-12-04 22:06:40 UTC",  # the first trial's start, not the time of writing
        "3.0e-04",
    ):
        assert needle in markdown, needle
    space = {row["parameter"]: row for row in table(markdown, "Search space")}
    assert space["training.learning_rate"]["values"] == "1.0e-05 to 1.0e-02, log scale"
    assert space["options.r"]["values"] == "one of 4, 8, 16"
    assert space["training.learning_rate"]["importance"] == "0.80"


def test_every_value_is_escaped_in_the_html(tmp_path: Path) -> None:
    summary = make_summary()
    summary["stop_reason"] = 'budget "a" & <b>'
    write_report(tmp_path, summary)
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page
    assert "budget &quot;a&quot; &amp; &lt;b&gt;" in page
    # Markdown renders raw tags as HTML too.
    assert "<script>" not in (tmp_path / "report.md").read_text()


def test_an_empty_sweep_still_gets_a_report(tmp_path: Path) -> None:
    summary = make_summary() | {"trials": [], "best": None, "importances": {}, "state": "running"}
    summary["stop_reason"] = None
    written = write_report(tmp_path, summary)
    assert written == [tmp_path / "report.md", tmp_path / "report.html"]
    markdown = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    assert "No trials yet." in markdown and "No trials yet." in page
    assert "none yet" in markdown and "0 of 12 asked" in markdown
    assert ".png" not in markdown and ".png" not in page and "Plots" not in page
    assert not any((tmp_path / "plots").glob("*.png"))


def test_an_all_pruned_sweep_drops_the_plots_it_has_no_data_for(tmp_path: Path) -> None:
    write_report(tmp_path, make_summary())  # an earlier report drew every plot
    summary = make_summary() | {"best": None, "importances": {}}
    for entry in summary["trials"]:
        entry.update(state="pruned", score=None, rerun_of=None, rerun_as=None)
    written = write_report(tmp_path, summary)
    names = [path.name for path in written]
    assert names == [
        "report.md",
        "report.html",
        "scores_over_time.png",
        "score_vs_learning_rate.png",
        "intermediate_curves.png",
    ]
    assert not (tmp_path / "plots" / "importances.png").exists()
    markdown = (tmp_path / "report.md").read_text()
    assert (
        "importances.png" not in markdown
        and "importances.png" not in (tmp_path / "report.html").read_text()
    )
    assert "(best)" not in markdown and "Best trial:** none yet" in markdown
    assert [row["state"] for row in table(markdown, "Trials")] == ["pruned"] * 5


def test_the_learning_rate_plot_needs_a_swept_learning_rate(tmp_path: Path) -> None:
    summary = make_summary()
    del summary["space"]["training.learning_rate"]  # fixed, though each trial's params name it
    names = [path.name for path in write_report(tmp_path, summary)]
    assert "score_vs_learning_rate.png" not in names and "scores_over_time.png" in names
    assert (
        "learning_rate"
        not in table((tmp_path / "report.md").read_text(), "Search space")[0]["parameter"]
    )
    assert not (tmp_path / "plots" / "score_vs_learning_rate.png").exists()


@pytest.mark.parametrize(
    ("metric", "direction", "best"), [("loss", "minimize", "1"), ("rouge2", "maximize", "0")]
)
def test_the_direction_decides_the_best(
    tmp_path: Path, metric: str, direction: str, best: str
) -> None:
    summary = make_summary() | {
        "objective": {"metric": metric, "direction": direction},
        "best": None,
    }
    summary["default_score"] = 2.5
    summary["trials"] = [
        trial(0, "finished", 0.0003, 8, "q,v", rungs=[[20, 2.4], [180, 2.1]], score=2.1),
        trial(1, "finished", 0.0005, 8, "q,v", rungs=[[20, 2.2], [180, 1.7]], score=1.7),
        trial(2, "finished", 0.001, 8, "q,v", rungs=[[20, 2.3], [180, 1.9]], score=1.9),
        trial(3, "pruned", 0.01, 8, "q,v", rungs=[[20, 0.5 if metric == "loss" else 9.0]]),
    ]
    write_report(tmp_path, summary)
    markdown = (tmp_path / "report.md").read_text()
    rows = table(markdown, "Trials")
    assert [row["trial"] for row in rows if "(best)" in row["trial"]] == [f"{best} (best)"]
    if metric == "loss":
        assert rows[1][metric] == "1.7000"
        assert "loss, lower is better" in markdown
        assert "the best trial is 0.8000 better" in markdown
    else:
        assert "the best trial is 0.40 worse" in markdown


def test_the_same_summary_gives_the_same_bytes(tmp_path: Path) -> None:
    summary = make_summary()
    write_report(tmp_path / "a", copy.deepcopy(summary))
    write_report(tmp_path / "b", summary)
    write_report(tmp_path / "b", summary)  # a rewrite in place too
    for name in ("report.md", "report.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert summary == make_summary()  # the summary is read, never changed


def test_the_command_s_lines_count_an_interrupted_and_rerun_trial_once() -> None:
    from dialogsum.cli.sweep import describe

    lines = describe(make_summary(), "sweeps/lora").splitlines()
    assert lines[0] == (
        "Sweep in sweeps/lora: 4 trials (2 finished, 1 pruned, 1 stopped; 1 interrupted and rerun)."
    )
    assert lines[-1] == "Report: sweeps/lora/report.html"


def test_a_rerun_trial_counts_once_whatever_ended_it_and_a_waiting_rerun_not_at_all() -> None:
    from dialogsum.sweep.report import trial_counts

    trials = [
        trial(0, "finished", 1e-3, 4, "q,v"),
        trial(1, "stopped", 1e-3, 8, "q,v", rerun_as=3),  # at a budget, then rerun
        trial(2, "interrupted", 1e-3, 8, "q,v", rerun_as=4),  # killed, rerun
        trial(3, "finished", 1e-3, 8, "q,v", rerun_of=1),
        trial(4, "pruned", 1e-3, 8, "q,v", rerun_of=2),
        trial(5, "stopped", 1e-3, 16, "q,v", rerun_as=6),  # its rerun waits: no record yet
    ]
    assert trial_counts(trials) == (
        4,
        "2 finished, 1 pruned, 1 stopped; 1 interrupted and rerun; 1 stopped and rerun",
    )
