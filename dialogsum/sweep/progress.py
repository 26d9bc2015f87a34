"""The sweep's progress bar: trials done out of the sweep's number, the trial and rung in
progress, and the best score so far."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from dialogsum.sweep.options import SweepOptions

#: Called after each rung and each trial (for the progress bar): (trial number, rung step).
Progress = Callable[[int, int | None], None]


class SweepProgress:
    """A tqdm bar over trials; called with (trial, rung step) after each rung, and with
    (trial, None) when a trial ends."""

    def __init__(self, options: SweepOptions, study: Any) -> None:
        from tqdm.auto import tqdm

        self.study = study
        self.options = options
        done = self._ended()
        self.bar = tqdm(
            total=options.trials,
            initial=min(done, options.trials),
            desc="sweep",
            unit="trial",
            disable=not options.progress,
        )

    def _ended(self) -> int:
        from optuna.trial import TrialState

        ended = (TrialState.COMPLETE, TrialState.PRUNED)
        return len(self.study.get_trials(deepcopy=False, states=ended))

    def __call__(self, trial: int, step: int | None) -> None:
        if step is not None:
            self.bar.set_postfix_str(f"trial {trial}, rung at step {step}{self._best()}")
            return
        self.bar.n = min(self._ended(), self.options.trials)
        self.bar.set_postfix_str(f"trial {trial} done{self._best()}")
        self.bar.refresh()

    def _best(self) -> str:
        from dialogsum.sweep.study import best_trial

        best = best_trial(self.study)
        return "" if best is None else f", best {best.value:.4g} (trial {best.number})"

    def __enter__(self) -> SweepProgress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.bar.close()
