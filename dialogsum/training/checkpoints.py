"""Run folders and their checkpoints: start fresh, or resume from the last checkpoint that is whole.

A run killed mid-save (kill -9, a full disk, Ctrl-C) can leave its newest checkpoint truncated.
Resuming checks each checkpoint's files before the Trainer reads them, skips damaged ones with a
warning that names them, and says which checkpoint the run continues from.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

from dialogsum.errors import ConfigError, logger
from dialogsum.files import check_can_write, check_writable
from dialogsum.validation import changes_since

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

#: Written next to the Trainer's files in every checkpoint: what dialogsum needs to continue
#: exactly (the summed training loss, so ``train_loss`` covers the whole run after a resume).
STATE_FILE = "dialogsum_state.json"


def checkpoints(folder: Path) -> list[Path]:
    """The ``checkpoint-N`` folders in ``folder``, oldest (smallest N) first."""
    if not folder.is_dir():
        return []
    found = [
        (int(match.group(1)), path)
        for path in folder.iterdir()
        if path.is_dir() and (match := _CHECKPOINT.match(path.name))
    ]
    return [path for _, path in sorted(found)]


def damage(checkpoint: Path, *, expect_state: bool = False) -> str | None:
    """What is wrong with ``checkpoint`` (a truncated or unreadable file), or None when whole.

    With ``expect_state`` (the run wrote dialogsum's state with its other checkpoints), a
    checkpoint without it is unfinished: the Trainer writes its files first and dialogsum's
    state last, so a run killed in between left the Trainer's files whole and the summed
    loss missing, and a resume from there reported a ``train_loss`` without the steps before.
    """
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"trainer_state.json is unreadable ({exc})"
    from safetensors import safe_open

    for weights in sorted(checkpoint.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 - safe_open has keys(), no iteration
                    handle.get_tensor(key)
        except Exception as exc:  # safetensors raises its own SafetensorError, or OSError
            return f"{weights.name} is truncated or corrupt ({type(exc).__name__}: {exc})"
    # torch.save writes zip archives: a truncated one fails the archive's own check.
    for archive in sorted([*checkpoint.glob("*.pt"), *checkpoint.glob("*.pth")]):
        try:
            with zipfile.ZipFile(archive) as handle:
                broken = handle.testzip()
        except (OSError, zipfile.BadZipFile) as exc:
            return f"{archive.name} is truncated or corrupt ({exc})"
        if broken is not None:
            return f"{archive.name} is corrupt (member {broken})"
    if expect_state and not (checkpoint / STATE_FILE).is_file():
        return f"{STATE_FILE} is missing (the run stopped while saving this checkpoint)"
    return None


def resume_point(checkpoint_dir: Path, resume: bool | str) -> Path | None:
    """The checkpoint to resume from, checked whole; None when not resuming.

    ``resume=True`` takes the newest whole checkpoint in ``checkpoint_dir`` (damaged newer ones
    are skipped with a warning); a path must name a whole checkpoint.
    """
    if resume is False:
        return None
    if resume is not True:
        chosen = Path(resume).expanduser()
        if not chosen.is_dir():
            raise ConfigError(
                f"Cannot resume: {chosen} is not a checkpoint folder. Checkpoints of this run "
                f"are in {checkpoint_dir}; pass resume_from_checkpoint=True to take the newest."
            )
        problem = damage(chosen)
        if problem:
            raise ConfigError(
                f"Cannot resume from {chosen}: {problem}. Pass resume_from_checkpoint=True to "
                f"continue from the newest whole checkpoint instead."
            )
        logger.info("resuming from %s", chosen)
        return chosen
    found = checkpoints(checkpoint_dir)
    if not found:
        raise ConfigError(
            f"Cannot resume: there is no checkpoint in {checkpoint_dir}. Start without resuming "
            f"(it saves checkpoints as it goes: save_strategy 'epoch' or 'steps')."
        )
    # Checkpoints of a dialogsum run carry its state; ones written before it existed do not.
    expect_state = any((candidate / STATE_FILE).is_file() for candidate in found)
    for candidate in reversed(found):
        problem = damage(candidate, expect_state=expect_state)
        if problem is None:
            logger.info("resuming from %s", candidate)
            return candidate
        logger.warning("skipping damaged checkpoint %s: %s", candidate, problem)
    raise ConfigError(
        f"Cannot resume: every checkpoint in {checkpoint_dir} is damaged (the newest, "
        f"{found[-1].name}: {damage(found[-1], expect_state=expect_state)}). Start again with "
        f"overwrite=True (CLI: --overwrite)."
    )


def check_run_folder(run_dir: Path, *, overwrite: bool, resume: bool | str) -> None:
    """Fail when a run may not write ``run_dir`` (it changes nothing).

    A folder holding checkpoints of a run that never finished (killed, interrupted) is refused
    with the advice to resume it, not to throw it away. ``overwrite`` with ``resume`` is a
    contradiction, refused; a folder that cannot be written is refused either way.
    """
    if resume is not False:
        if overwrite:
            # Resuming used to win silently, and the user who asked to start over did not.
            raise ConfigError(
                f"overwrite=True and resume_from_checkpoint (CLI: --overwrite and "
                f"--resume-from-checkpoint) contradict each other for {run_dir}: overwrite "
                f"starts the run over and removes its checkpoints, resuming continues from "
                f"one. Give one of them, not both."
            )
        check_can_write(run_dir, in_place=True, create_parents=True)
        return
    existing = checkpoints(run_dir / "checkpoints")
    unfinished = not (run_dir / "model").is_dir() or stopped_early(run_dir)
    if not overwrite and existing and unfinished:
        raise ConfigError(
            f"{run_dir} holds checkpoints of a run that did not finish (newest: "
            f"{existing[-1].name}). To continue it, resume: resume_from_checkpoint=True (CLI: "
            f"--resume-from-checkpoint). To discard it and start over: overwrite=True "
            f"(CLI: --overwrite)."
        )
    check_writable(run_dir, overwrite=overwrite, in_place=True)


def check_resume_within(checkpoint: Path, step: int, total_steps: int, *, epochs: bool) -> None:
    """Refuse to resume from ``checkpoint`` (at ``step``) when it is past the run's last step.

    The Trainer trained on past such a checkpoint and the run reported a ``train_loss`` of
    steps it never had; continuing the run needs at least as many steps as it already took.
    """
    if step <= total_steps:
        return
    limit = f"the {total_steps} steps of its epochs" if epochs else f"max_steps {total_steps}"
    raise ConfigError(
        f"Cannot resume from {checkpoint}: it is at step {step}, past this run's {limit}. To "
        f"continue the run, resume with max_steps {step} or more (CLI: --max-steps {step}); "
        f"for a shorter run, start over in another folder or with overwrite=True (CLI: "
        f"--overwrite)."
    )


def stopped_early(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` stopped before its end (its budget was reached)."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and metrics.get("stopped") is not None


def prepare_run_folder(run_dir: Path, *, overwrite: bool, resume: bool | str) -> None:
    """:func:`check_run_folder`, then, with ``overwrite``, drop the old run's checkpoints."""
    from dialogsum.training.distributed import is_main_process

    check_run_folder(run_dir, overwrite=overwrite, resume=resume)
    # In a distributed launch rank 0 alone removes them: two processes deleting one tree race.
    if resume is False and overwrite and is_main_process() and (run_dir / "checkpoints").exists():
        # Left in place, the old run's checkpoints would be what a later resume picks up.
        logger.info("removing the previous run's checkpoints in %s", run_dir / "checkpoints")
        shutil.rmtree(run_dir / "checkpoints")


#: Written in the checkpoints folder when a run starts: what decides the weights it trains.
RUN_RECORD = "run_config.json"

#: Training options a resumed run may change: how long it trains (to train on, as with a
#: larger budget), how it logs, saves, evaluates and is budgeted; not what it trains with.
#: Every other setting must be what the run started with.
RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "max_steps",
        "eval_batch_size",
        "logging_steps",
        "save_strategy",
        "save_steps",
        "save_total_limit",
        "eval_strategy",
        "eval_steps",
        "gradient_checkpointing",
        "resume_from_checkpoint",
        "report_to",
        "progress",
        "hourly_cost",
        "max_time",
        "max_cost",
        "force",
    }
)


def check_resumed_run(checkpoint_dir: Path, record: dict[str, object]) -> None:
    """Refuse to resume a run that started with other settings (recorded by
    :class:`dialogsum.training.callbacks.RecordRun` with its first checkpoint).

    A resume with another method, adapter size, learning rate, batch size or data loaded
    checkpoints into a model of another shape (a traceback) or silently continued another
    schedule. ``record`` holds the settings that decide the weights (the training options in
    :data:`RESUMABLE_CHANGES` left out) and a digest of the tokenized training data.
    """
    path = checkpoint_dir / RUN_RECORD
    if path.is_file():  # runs started before dialogsum recorded them are not checked
        try:
            changed = changes_since(path, record, upgrade=_one_learning_rate)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Cannot resume: {path} is unreadable ({exc}).") from None
        if changed:
            raise ConfigError(
                f"Cannot resume the run in {checkpoint_dir.parent}: it started with other "
                f"settings ({'; '.join(changed)}). Resume with the settings it started with, "
                f"or start over with the new ones: overwrite=True (CLI: --overwrite)."
            )


def _one_learning_rate(recorded: Any) -> Any:
    """A run record written before the plan kept one learning rate: it held the resolved rate
    beside the training options (whose own was None when the method's default applied)."""
    if isinstance(recorded, dict) and "learning_rate" in recorded:
        recorded = dict(recorded)
        rate = recorded.pop("learning_rate")
        training = recorded.get("training")
        if isinstance(training, dict):
            recorded["training"] = {**training, "learning_rate": rate}
    return recorded
