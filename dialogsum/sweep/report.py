"""The sweep report: ``report.md``, ``report.html`` and ``plots/*.png`` beside ``sweep.json``.

Both pages are rendered from one description (summary lines, the trials table, the space, the
plots), so they always agree. Everything shown is read from the summary alone, never from the
clock, so the same summary gives byte-identical pages: a report can be rewritten after every
trial and diffed.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple

from dialogsum.files import write_text
from dialogsum.training.estimates import format_duration

LEARNING_RATE = "training.learning_rate"
STATES = ("finished", "pruned", "interrupted", "stopped", "paused", "running")
#: A marker per trial state, so pruned and stopped trials read apart from finished ones.
MARKERS = {
    "finished": "o",
    "pruned": "x",
    "interrupted": "v",
    "stopped": "s",
    "paused": "d",
    "running": "^",
}

Trial = Mapping[str, Any]
Table = tuple[list[str], list[list[str]], int | None]  # headers, rows, the best row's index


class _Page(NamedTuple):
    title: str
    lines: list[tuple[str, str]]
    trials: Table
    space: Table
    plots: list[tuple[str, str]]  # file name in plots/, caption


def write_report(folder: Path, summary: Mapping[str, Any]) -> list[Path]:
    """Write ``report.md``, ``report.html`` and the plots (``plots/*.png``) into ``folder``.

    ``summary`` is what the sweep writes to ``sweep.json``. A plot without data (no trial
    scored, no learning rate swept, no importances) is left out of both pages, and removed
    from ``plots/`` if an earlier report drew it, so the folder matches the pages. Returns
    the paths written: the two pages, then the plots.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trials = sorted(summary.get("trials") or [], key=lambda t: t["number"])
    best = _best(summary, trials)
    plots: list[tuple[str, str]] = []
    for name, caption, draw in PLOTS:
        if draw(summary, trials, folder / "plots" / name):
            plots.append((name, caption))
        else:
            (folder / "plots" / name).unlink(missing_ok=True)
    page = _Page(
        f"Sweep of {summary.get('method', '?')}: {_metric(summary)}",
        _summary_lines(summary, trials, best),
        _trials_table(summary, trials, best),
        _space_table(summary),
        plots,
    )
    return [
        write_text(folder / "report.md", _markdown(page)),
        write_text(folder / "report.html", _html(page, folder)),
        *(folder / "plots" / name for name, _ in plots),
    ]


# -- reading the summary --------------------------------------------------------------------------


def _metric(summary: Mapping[str, Any]) -> str:
    return str((summary.get("objective") or {}).get("metric", "score"))


def _minimize(summary: Mapping[str, Any]) -> bool:
    direction = (summary.get("objective") or {}).get("direction")
    return direction == "minimize" or (direction is None and _metric(summary) == "loss")


def _last_score(trial: Trial) -> float | None:
    """The final score, else the last one reported: where a pruned or stopped trial ended."""
    if trial.get("score") is not None:
        return float(trial["score"])
    rungs = trial.get("rungs") or []
    return float(rungs[-1][1]) if rungs else None


def _best(summary: Mapping[str, Any], trials: Sequence[Trial]) -> Mapping[str, Any] | None:
    """The sweep's own best; else the best finished trial (ties go to the earlier one)."""
    if summary.get("best"):
        return summary["best"]
    scored = [t for t in trials if t.get("state") == "finished" and t.get("score") is not None]
    sign = 1.0 if _minimize(summary) else -1.0
    return min(scored, key=lambda t: (sign * t["score"], t["number"]), default=None)


def _value(name: str, value: Any) -> str:
    """A parameter as a person reads it: learning rates and tiny numbers in ``3.0e-04`` form."""
    if isinstance(value, float):
        if "learning_rate" in name or (value and not 1e-3 <= abs(value) < 1e5):
            return f"{value:.1e}"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):  # strings quoted: a choice may hold a comma ("q,v")
        return ", ".join(json.dumps(v) if isinstance(v, str) else _value(name, v) for v in value)
    return str(value)


def _score(summary: Mapping[str, Any], score: float | None) -> str:
    if score is None:
        return "-"
    return f"{score:.4f}" if _metric(summary) == "loss" else f"{score:.2f}"  # ROUGE is percent


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def _cost(cost: float | None) -> str:
    return "-" if cost is None else f"{cost:.2f}" if cost >= 1 else f"{cost:.3g}"


# -- the description both pages render ------------------------------------------------------------


def trial_counts(trials: Sequence[Trial]) -> tuple[int, str]:
    """The trials that count (a trial interrupted or stopped, then rerun, is its rerun) and
    their states, as ``6 finished, 6 pruned; 1 interrupted and rerun`` (finished even at 0).
    A trial whose rerun has not started yet still counts as itself."""
    numbers = {t.get("number") for t in trials}
    replaced = [t for t in trials if t.get("rerun_as") is not None and t["rerun_as"] in numbers]
    gone = {t["number"] for t in replaced}
    counting = [t for t in trials if t.get("number") not in gone]
    counts = {state: sum(t.get("state") == state for t in counting) for state in STATES}
    shown = ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s] or s == "finished")
    for state in STATES:
        rerun = sum(t.get("state") == state for t in replaced)
        if rerun:
            shown += f"; {rerun} {state} and rerun"
    return len(counting), shown


def _summary_lines(
    summary: Mapping[str, Any], trials: Sequence[Trial], best: Mapping[str, Any] | None
) -> list[tuple[str, str]]:
    metric, minimize = _metric(summary), _minimize(summary)
    counted, shown = trial_counts(trials)
    state = str(summary.get("state", "?"))
    if summary.get("stop_reason"):
        state += f": {summary['stop_reason']}"
    lines = [
        ("Objective", f"{metric}, {'lower' if minimize else 'higher'} is better"),
        ("Engine", f"{summary.get('engine', '?')}, seed {summary.get('seed', '-')}"),
        ("Trials", f"{counted} of {summary.get('trials_asked') or '?'} asked: {shown}"),
        ("State", state),
    ]
    if best is None:
        lines.append(("Best trial", "none yet: no trial has finished"))
    else:
        params = ", ".join(f"{k}={_value(k, v)}" for k, v in (best.get("params") or {}).items())
        text = f"trial {best['number']}: {metric} {_score(summary, best['score'])} ({params})"
        if best.get("folder"):
            text += f"; its model is in {best['folder']}/"
        lines.append(("Best trial", text))
    default = summary.get("default_score")
    if default is not None:
        text = f"{metric} {_score(summary, default)} before any training"
        if best is not None and best.get("score") is not None:
            gain = (default - best["score"]) if minimize else (best["score"] - default)
            if gain:
                word = "better" if gain > 0 else "worse"
                text += f"; the best trial is {_score(summary, abs(gain))} {word}"
            else:
                text += "; the best trial scores the same"
        lines.append(("Untuned model", text))
    # A sweep continued after a budget stop ran in several runs of the command: the wall
    # time is over those that wrote results (a killed run's is not known), the trials' over
    # all of them.
    trained = [t["seconds"] for t in trials if t.get("seconds") is not None]
    wall = f"{_duration(summary.get('seconds'))} (the runs of the sweep that ended)"
    if trained:
        wall += f"; its trials trained and scored for {_duration(sum(trained))} over all runs"
    lines.append(("Wall time", wall))
    if summary.get("cost") is not None:
        hourly = summary.get("hourly_cost")
        at = f" (at {hourly:g} per hour)" if hourly is not None else ""
        lines.append(("Cost", _cost(summary["cost"]) + at))
    starts = [t["started"] for t in trials if t.get("started") is not None]
    if starts:  # the summary's own time, never now: a rewrite must give the same page
        when = datetime.fromtimestamp(min(starts), tz=timezone.utc)
        lines.append(("Started", when.strftime("%Y-%m-%d %H:%M:%S UTC")))
    return lines


def _trials_table(
    summary: Mapping[str, Any], trials: Sequence[Trial], best: Mapping[str, Any] | None
) -> Table:
    space = list(summary.get("space") or {})
    params = space + sorted({k for t in trials for k in t.get("params") or {}} - set(space))
    steps = sorted(
        {int(s) for s in summary.get("rungs") or []}
        | {int(step) for t in trials for step, _ in t.get("rungs") or []}
    )
    headers = ["trial", *params, *(f"step {s}" for s in steps), _metric(summary)]
    headers += ["steps", "time", "cost", "state"]
    rows, best_row = [], None
    for index, trial in enumerate(trials):
        is_best = best is not None and trial["number"] == best["number"]
        best_row = index if is_best else best_row
        at = {int(step): score for step, score in trial.get("rungs") or []}
        state = str(trial.get("state", "?"))
        if trial.get("rerun_as") is not None:
            state += f" (rerun as {trial['rerun_as']})"
        if trial.get("rerun_of") is not None:
            state += f" (rerun of {trial['rerun_of']})"
        if trial.get("resumed_from") is not None:
            state += f" (resumed at step {trial['resumed_from']})"
        given = trial.get("params") or {}
        rows.append(
            [
                f"{trial['number']} (best)" if is_best else str(trial["number"]),
                *(_value(p, given[p]) if p in given else "-" for p in params),
                *(_score(summary, at.get(s)) for s in steps),
                _score(summary, trial.get("score")),
                str(trial["steps"]) if trial.get("steps") is not None else "-",
                _duration(trial.get("seconds")),
                _cost(trial.get("cost")),
                state,
            ]
        )
    return headers, rows, best_row


def _space_table(summary: Mapping[str, Any]) -> Table:
    importances = summary.get("importances") or {}
    rows = []
    for name, spec in (summary.get("space") or {}).items():
        if "choices" in spec:
            values = "one of " + _value(name, list(spec["choices"]))
        else:
            values = f"{_value(name, spec.get('low'))} to {_value(name, spec.get('high'))}"
            values += f", step {_value(name, spec['step'])}" if spec.get("step") else ""
            values += ", log scale" if spec.get("log") else ""
        importance = [f"{importances[name]:.2f}" if name in importances else "-"]
        rows.append([name, values, *(importance if importances else [])])
    return ["parameter", "values", *(["importance"] if importances else [])], rows, None


# -- rendering ------------------------------------------------------------------------------------


def _md(text: str) -> str:
    """Text for Markdown: a pipe would split a table cell, a raw tag would render as HTML."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def _markdown_table(table: Table, empty: str) -> list[str]:
    headers, rows, best = table
    if not rows:
        return [empty]
    lines = ["| " + " | ".join(_md(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    for index, row in enumerate(rows):
        cells = [f"**{_md(c)}**" if index == best else _md(c) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _markdown(page: _Page) -> str:
    out = [f"# {_md(page.title)}", ""]
    out += [f"- **{label}:** {_md(text)}" for label, text in page.lines]
    out += ["", "## Trials", "", *_markdown_table(page.trials, "No trials yet.")]
    out += ["", "## Search space", "", *_markdown_table(page.space, "No parameters are swept.")]
    out += ["", "## Plots", ""] if page.plots else []
    for name, caption in page.plots:
        out += [f"![{_md(caption)}](plots/{name})", "", f"*{_md(caption)}*", ""]
    return "\n".join(out).rstrip("\n") + "\n"


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f2f2f2; }
tr.best td { background: #e6f4e6; font-weight: bold; }
figure { margin: 1.5em 0; }
img { max-width: 100%; }
"""


def _html_table(table: Table, css_class: str, empty: str) -> str:
    headers, rows, best = table
    if not rows:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    out = [f'<table class="{css_class}">', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for index, row in enumerate(rows):
        cells = "".join(f"<td>{html.escape(c)}</td>" for c in row)
        out.append(f'<tr class="best">{cells}</tr>' if index == best else f"<tr>{cells}</tr>")
    return "\n".join([*out, "</tbody>", "</table>"])


def _html(page: _Page, folder: Path) -> str:
    """The page, its plots inside it (a page mailed or moved on its own keeps them)."""
    title = html.escape(page.title)
    out = ["<!DOCTYPE html>", '<html lang="en">', '<head><meta charset="utf-8">']
    out += [f"<title>{title}</title>", f"<style>{CSS}</style>", "</head>", "<body>"]
    out += [f"<h1>{title}</h1>", '<table class="summary">']
    out += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in page.lines]
    out += ["</table>", "<h2>Trials</h2>", _html_table(page.trials, "trials", "No trials yet.")]
    out += ["<h2>Search space</h2>", _html_table(page.space, "space", "No parameters are swept.")]
    out += ["<h2>Plots</h2>"] if page.plots else []
    for name, caption in page.plots:
        data = base64.b64encode((folder / "plots" / name).read_bytes()).decode("ascii")
        src, text = f"data:image/png;base64,{data}", html.escape(caption)
        out.append(f'<figure><img src="{src}" alt="{text}"><figcaption>{text}</figcaption>')
        out.append("</figure>")
    return "\n".join([*out, "</body>", "</html>", ""])


# -- plots ----------------------------------------------------------------------------------------


def _figure(height: float = 3.6) -> tuple[Any, Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, safe on servers
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, height))
    return plt, figure, axis


def _scatter(axis: Any, points: Sequence[tuple[float, float, str]]) -> None:
    """``(x, score, state)`` points, one marker (and legend entry) per state."""
    for state in STATES:
        chosen = [(x, score) for x, score, s in points if s == state]
        if chosen:
            axis.scatter(*zip(*chosen, strict=True), marker=MARKERS[state], label=state)


def _save(
    plt: Any, figure: Any, axis: Any, path: Path, legend: bool = True, beside: bool = False
) -> bool:
    if legend and beside:
        axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    elif legend:
        axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def _plot_over_time(summary: Mapping[str, Any], trials: Sequence[Trial], path: Path) -> bool:
    starts = [t["started"] for t in trials if t.get("started") is not None]
    points = sorted(
        (float(t["finished"]), score, str(t.get("state")))
        for t in trials
        if t.get("finished") is not None and (score := _last_score(t)) is not None
    )
    if not starts or not points:
        return False
    # Minutes read better for a long sweep, seconds for a short one.
    scale, unit = (60.0, "min") if points[-1][0] - min(starts) >= 120 else (1.0, "s")
    points = [((when - min(starts)) / scale, score, state) for when, score, state in points]
    plt, figure, axis = _figure()
    _scatter(axis, points)
    # Only finished trials can be the best: a pruned one's last score is mid-training.
    done = [(x, score) for x, score, state in points if state == "finished"]
    if done:
        best = list(accumulate((s for _, s in done), min if _minimize(summary) else max))
        xs = [x for x, _ in done] + [points[-1][0]]  # held to the last trial's end
        axis.step(xs, [*best, best[-1]], where="post", color="black", label="best so far")
    if summary.get("default_score") is not None:
        axis.axhline(summary["default_score"], color="grey", linestyle=":", label="untuned")
    axis.set_xlabel(f"finished ({unit} after the sweep's first start)")
    axis.set_ylabel(_metric(summary))
    return _save(plt, figure, axis, path)


def _plot_learning_rate(summary: Mapping[str, Any], trials: Sequence[Trial], path: Path) -> bool:
    points = [
        (float(t["params"][LEARNING_RATE]), score, str(t.get("state")))
        for t in trials
        if LEARNING_RATE in (t.get("params") or {}) and (score := _last_score(t)) is not None
    ]
    if LEARNING_RATE not in (summary.get("space") or {}) or not points:
        return False
    plt, figure, axis = _figure()
    _scatter(axis, points)
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel(_metric(summary))
    return _save(plt, figure, axis, path)


def _plot_curves(summary: Mapping[str, Any], trials: Sequence[Trial], path: Path) -> bool:
    curves = [t for t in trials if t.get("rungs")]
    if not curves:
        return False
    plt, figure, axis = _figure()
    colours = plt.get_cmap("tab20").colors  # matplotlib's default cycle repeats after ten
    for index, trial in enumerate(curves):
        steps, scores = zip(*trial["rungs"], strict=True)
        style = "--" if trial.get("state") == "pruned" else "-"
        colour = colours[index % len(colours)]
        axis.plot(steps, scores, style, marker=".", color=colour, label=f"trial {trial['number']}")
    axis.set_xlabel("step")
    axis.set_ylabel(_metric(summary))
    # Beyond a dozen curves a legend hides the lines it names; beside the plot, it hides none.
    return _save(plt, figure, axis, path, legend=len(curves) <= 12, beside=True)


def _plot_importances(summary: Mapping[str, Any], trials: Sequence[Trial], path: Path) -> bool:
    importances = summary.get("importances") or {}
    if not importances:
        return False
    ranked = sorted(importances.items(), key=lambda item: (item[1], item[0]))  # largest on top
    plt, figure, axis = _figure(height=0.9 + 0.4 * len(ranked))
    axis.barh([name for name, _ in ranked], [value for _, value in ranked])
    axis.set_xlabel("importance")
    return _save(plt, figure, axis, path, legend=False)


#: Each plot's file, caption and maker; a maker draws nothing, and says so, without data.
PLOTS: tuple[tuple[str, str, Callable[[Mapping[str, Any], Sequence[Trial], Path], bool]], ...] = (
    (
        "scores_over_time.png",
        "Each trial's score when it ended (a pruned or stopped trial's last score); "
        "the line is the best so far",
        _plot_over_time,
    ),
    ("score_vs_learning_rate.png", "Score against learning rate", _plot_learning_rate),
    ("intermediate_curves.png", "Score at each reported step (pruned dashed)", _plot_curves),
    ("importances.png", "How much each parameter mattered to the score", _plot_importances),
)
