"""Run reports: the loss curve and a Hugging Face model card written into every run folder."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dialogsum.errors import logger
from dialogsum.files import write_text

if TYPE_CHECKING:
    from dialogsum.data import DataProvenance
    from dialogsum.training.planning import RunPlan
    from dialogsum.training.trainer import TrainResult

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def hardware_description() -> str:
    """CPU model and cores, plus the GPU when one is used: what a run's numbers depend on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu} ({os.cpu_count()} cores)"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    except ImportError:
        pass
    return text


def plot_losses(log_history: list[dict[str, Any]], path: Path) -> bool:
    """Write the training (and evaluation) loss curve as a PNG; False when nothing was logged."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evaluation = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    if not train:
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, safe on servers
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.plot(*zip(*train, strict=True), label="training loss")
    if evaluation:
        axis.plot(*zip(*evaluation, strict=True), marker="o", label="validation loss")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def model_card(plan: RunPlan, result: TrainResult, hardware: str) -> str:
    """A model card (README.md with YAML front matter) in the Hugging Face format."""
    metrics = result.metrics
    seconds = float(metrics.get("wall_seconds", metrics.get("train_runtime", 0.0)))
    samples = metrics.get("train_samples_per_second")
    cost = plan.training.hourly_cost
    scores = {key: metrics[f"eval_{key}"] for key in ROUGE_KEYS if f"eval_{key}" in metrics}
    tags = ["dialogsum", "summarization", "dialogue-summarization", plan.method]
    lines = ["---", "library_name: dialogsum"]
    if plan.base_name:
        lines.append(f"base_model: {plan.base_name}")
    lines += ["pipeline_tag: summarization", "tags:", *(f"- {tag}" for tag in tags)]
    if scores:
        lines += [
            "model-index:",
            "- name: dialogsum model",
            "  results:",
            "  - task: {type: summarization, name: Dialogue summarization}",
            f"    dataset: {_dataset(plan.eval_data)}",
            "    metrics:",
            *(f"    - {{type: {key}, value: {value:.2f}}}" for key, value in scores.items()),
        ]
    lines += ["---", "", f"# {plan.method} fine-tune of {plan.base_name or 'a local model'}", ""]
    budget = metrics.get("budget") if isinstance(metrics.get("budget"), dict) else None
    if metrics.get("stopped") == "budget" and budget is not None:
        lines += [f"**Partial model.** {budget.get('message', 'Stopped by its budget.')}", ""]
    lines += [
        f"Fine-tuned with [dialogsum](https://pypi.org/project/dialogsum/) using the "
        f"`{plan.method}` method.",
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        f"| base model | {plan.base_name or 'in-memory model'} |",
        f"| method | `{plan.method}` {_options(plan.method_options.model_dump())} |",
        f"| training data | {plan.train_data.describe()}; {len(plan.train_features):,} pairs |",
        *(
            [f"| validation data | {plan.eval_data.describe()} |"]
            if plan.eval_data is not None
            else []
        ),
        f"| truncated | {plan.truncation.dialogues_truncated} dialogues, "
        f"{plan.truncation.summaries_truncated} summaries |",
        _length(plan, metrics),
        f"| learning rate | {plan.learning_rate:g} |",
        f"| batch size | {plan.training.batch_size} x {plan.training.gradient_accumulation_steps} "
        f"accumulation |",
        f"| prompt | `{plan.data.prompt!r}` |",
        f"| max lengths | source {plan.data.max_source_length}, "
        f"target {plan.data.max_target_length} |",
        f"| wall time | {seconds / 60:.1f} min |",
        f"| samples/s | {samples:.2f} |" if isinstance(samples, float) else "| samples/s | - |",
        f"| hardware | {hardware} |",
    ]
    if cost is not None:
        lines.append(f"| cost | {seconds / 3600 * cost:.2f} (at {cost:g} per hour) |")
    if budget is not None:
        lines.append(_budget_row(budget))
    lines += ["", "## Evaluation", ""]
    if metrics.get("stopped") == "budget":
        lines.append("Not scored: training stopped at its budget. Resume the run to finish it.")
    elif scores:
        lines += [
            f"ROUGE on {_validation_name(plan)} (rouge-score, stemmed; percent; with several "
            f"references, the mean over references):",
            "",
            "| " + " | ".join(scores) + " |",
            "|" + "---|" * len(scores),
            "| " + " | ".join(f"{value:.2f}" for value in scores.values()) + " |",
        ]
    else:
        lines.append("No validation data was given; run `dialogsum evaluate` to score it.")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from dialogsum import Summarizer",
        'Summarizer.from_pretrained("path/to/this/folder").summarize(["#Person1#: ..."])',
        "```",
        "",
    ]
    return "\n".join(lines)


def _dataset(data: DataProvenance | None) -> str:
    """The model index's dataset entry (YAML flow; the name quoted, as paths hold colons)."""
    name = "validation data" if data is None else (data.location or "in-memory examples")
    entry = f"name: {json.dumps(name)}, type: dialogsum"
    if data is not None and data.split is not None:
        entry += f", split: {json.dumps(data.split)}"
    return "{" + entry + "}"


def _validation_name(plan: RunPlan) -> str:
    data = plan.eval_data
    if data is None:
        return "the validation data"
    if data.kind == "in-memory":
        return f"{data.rows:,} in-memory validation examples"
    return f"{data.location}" + (f" (split {data.split})" if data.split else "")


def _length(plan: RunPlan, metrics: dict[str, Any]) -> str:
    steps = metrics.get("global_step", "-")
    if plan.training.max_steps:  # max_steps overrides epochs: the card says what ran
        epochs = metrics.get("epoch")
        ran = f" ({epochs:.2f} epochs)" if isinstance(epochs, float) else ""
        return f"| steps | {steps} of max_steps {plan.training.max_steps}{ran} |"
    return f"| epochs / steps | {plan.training.epochs:g} / {steps} |"


def _budget_row(budget: dict[str, Any]) -> str:
    limits = []
    if budget.get("max_time") is not None:
        limits.append(f"max_time {budget['max_time']:g} s")
    if budget.get("max_cost") is not None:
        limits.append(f"max_cost {budget['max_cost']:g}")
    stopped = budget.get("stopped")
    if stopped:
        outcome = (
            f"reached ({stopped['limit']}): stopped at step {stopped['step']} of "
            f"{stopped['total_steps']} after {stopped['seconds']:.1f} s"
        )
    else:
        outcome = f"not reached ({budget['seconds']:.1f} s used)"
    return f"| budget | {', '.join(limits)}; {outcome} |"


def _options(options: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")" if options else ""


def write_run_report(run_dir: Path, plan: RunPlan, result: TrainResult) -> None:
    """Write ``loss_curve.png`` and the model card (into the run and its ``model/`` folder)."""
    if plot_losses(result.log_history, run_dir / "loss_curve.png"):
        logger.info("wrote %s", run_dir / "loss_curve.png")
    card = model_card(plan, result, hardware_description())
    write_text(run_dir / "README.md", card)
    if (run_dir / "model").is_dir():
        write_text(run_dir / "model" / "README.md", card)
