"""Side-by-side comparison of models: human summary vs each model's, with ROUGE per model."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dialogsum.data import DataProvenance, Example
from dialogsum.evaluate import ROUGE_TYPES, rouge


@dataclass
class Comparison:
    """Predictions of several models on the same examples, and their ROUGE."""

    examples: list[Example]
    predictions: dict[str, list[str]]
    scores: dict[str, dict[str, float]]
    #: Where the examples came from (path or hub id, split, rows, hash), when known.
    data: DataProvenance | None = None
    #: Dialogues in the data before a limit took the first ``len(examples)``, when known.
    available: int | None = None


def compare(
    models: Mapping[str, Any],
    examples: Sequence[Example],
    *,
    data: DataProvenance | None = None,
    available: int | None = None,
    **generation: Any,
) -> Comparison:
    """Summarize ``examples`` with every model (name -> Summarizer) and score each.

    ``data`` says where the examples came from and ``available`` how many dialogues it holds
    (when ``examples`` are the first of them); the pages name both.
    """
    dialogues = [e.dialogue for e in examples]
    references = [e.references for e in examples]
    predictions = {name: model.summarize(dialogues, **generation) for name, model in models.items()}
    scores = {name: rouge(texts, references) for name, texts in predictions.items()}
    return Comparison(list(examples), predictions, scores, data, available)


def data_line(comparison: Comparison) -> str | None:
    """Which data the comparison scored, and how much of it; None when not known."""
    if comparison.data is None:
        return None
    line = f"Data: {comparison.data.describe()}"
    scored, available = len(comparison.examples), comparison.available
    if available is not None and scored < available:
        line += f"; scored the first {scored:,} of its {available:,} dialogues"
    return line + "."


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def to_markdown(comparison: Comparison, show: int = 3) -> str:
    """ROUGE table, then ``show`` dialogues side by side (human baseline first)."""
    names = list(comparison.predictions)
    lines = [
        f"## ROUGE on {len(comparison.examples)} dialogues "
        "(percent, stemmed, mean over references)",
        "",
        "| model | " + " | ".join(ROUGE_TYPES) + " |",
        "|---|" + "---|" * len(ROUGE_TYPES),
    ]
    source = data_line(comparison)
    if source is not None:
        lines[1:1] = ["", source]
    for name in names:
        values = " | ".join(f"{comparison.scores[name][key]:.2f}" for key in ROUGE_TYPES)
        lines.append(f"| {_cell(name)} | {values} |")
    for index, example in enumerate(comparison.examples[:show]):
        lines += [
            "",
            f"### {example.id if example.id is not None else f'dialogue {index + 1}'}",
            "",
            "```",
            example.dialogue,
            "```",
            "",
        ]
        lines += ["| | summary |", "|---|---|"]
        lines.append(f"| human baseline | {_cell(example.references[0])} |")
        for name in names:
            lines.append(f"| {_cell(name)} | {_cell(comparison.predictions[name][index])} |")
    return "\n".join(lines) + "\n"


def to_html(comparison: Comparison, show: int = 3) -> str:
    """The same report as a standalone HTML page."""
    names = list(comparison.predictions)
    escape = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>dialogsum comparison</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}td,th{border:1px solid #ccc;"
        "padding:.3em .6em;vertical-align:top}table{border-collapse:collapse}"
        "pre{white-space:pre-wrap;background:#f6f6f6;padding:.6em}</style></head><body>",
        f"<h2>ROUGE on {len(comparison.examples)} dialogues</h2>",
        *([f"<p>{escape(line)}</p>"] if (line := data_line(comparison)) else []),
        "<table><tr><th>model</th>",
        *(f"<th>{key}</th>" for key in ROUGE_TYPES),
        "</tr>",
    ]
    for name in names:
        cells = "".join(f"<td>{comparison.scores[name][key]:.2f}</td>" for key in ROUGE_TYPES)
        parts.append(f"<tr><td>{escape(name)}</td>{cells}</tr>")
    parts.append("</table>")
    for index, example in enumerate(comparison.examples[:show]):
        title = str(example.id) if example.id is not None else f"dialogue {index + 1}"
        parts.append(f"<h3>{escape(title)}</h3>")
        parts.append(f"<pre>{escape(example.dialogue)}</pre><table>")
        parts.append(f"<tr><th>human baseline</th><td>{escape(example.references[0])}</td></tr>")
        for name in names:
            parts.append(
                f"<tr><th>{escape(name)}</th><td>{escape(comparison.predictions[name][index])}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
