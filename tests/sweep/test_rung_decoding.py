"""rung_decoding greedy: rungs where trials are compared decode greedily; a trial's own score
is its model's own decoding."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dialogsum import Summarizer
from dialogsum.data import load_examples
from dialogsum.errors import ConfigError
from dialogsum.sweep.budget import project_sweep
from dialogsum.sweep.job import SweepContext
from dialogsum.sweep.options import SweepOptions
from dialogsum.sweep.study import open_study
from dialogsum.sweep.trials import Scorer

pytest.importorskip("optuna")


def test_a_real_sweep_scores_rungs_greedily_and_trials_as_evaluate_does(
    sample_dir: Path, tmp_path: Path
) -> None:
    # dialogsum-tiny summarizes for real (a random model's ROUGE is 0 both ways) and decodes
    # with 4 beams by default. Trials of 3 steps end on a rung where 9-step trials go on.
    base = Summarizer.from_pretrained("dialogsum-tiny", backend="torch")
    validation = load_examples(sample_dir / "validation.jsonl")[:4]
    _, sweep = base.sweep(
        sample_dir / "train.jsonl",
        validation,
        space={"max_steps": [3, 9], "learning_rate": [1e-3, 3e-3]},
        training={"batch_size": 4},
        output_dir=tmp_path / "sweep",
        sweep={
            "trials": 2,
            "seed": 2,
            "pruner": "none",
            "rung_decoding": "greedy",
            "progress": False,
            "keep_models": True,
        },
    )
    summary = json.loads((sweep.folder / "sweep.json").read_text())
    assert summary["rungs"] == [1, 3, 9]
    finished = [t for t in summary["trials"] if t["state"] == "finished"]
    assert sorted(t["steps"] for t in finished) == [3, 9], summary["trials"]
    for trial in finished:
        model = Summarizer.from_pretrained(sweep.folder / "trials" / f"{trial['number']:04d}")
        own = model.evaluate(validation)["rouge1"]
        greedy = model.evaluate(validation, num_beams=1)["rouge1"]
        assert own != greedy, "the sample must tell the two decodings apart"
        # The trial's score is what evaluate gives its model, with the model's own decoding.
        assert trial["score"] == pytest.approx(own)
        last_step, last_rung = trial["rungs"][-1]
        # Where other trials go on (step 3 of 9) the pruner compared the greedy score;
        # at the longest trial's end, nothing is compared and the rung is the trial's score.
        assert last_rung == pytest.approx(greedy if last_step == 3 else own)
    # The projection timed a greedy scoring for those rungs (how long it took is a benchmark's).
    assert summary["projection"]["seconds_per_rung_score"] > 0


class Recorder:
    """A predictor that answers each dialogue with its reference when greedy, else with a
    word of it: a greedy and a beam scoring give different ROUGE."""

    def __init__(self, examples: list[Any]) -> None:
        self.references = {e.dialogue: e.references[0] for e in examples}
        self.beams: list[int] = []

    def summarize(self, dialogues: list[str], options: Any) -> list[str]:
        self.beams.append(options.num_beams)
        answers = [self.references[d] for d in dialogues]
        return answers if options.num_beams == 1 else [a.split()[0] for a in answers]


def scorer(sample_dir: Path, rung_decoding: str = "greedy") -> tuple[Scorer, Recorder]:
    examples = load_examples(sample_dir / "validation.jsonl")[:3]
    recorder = Recorder(examples)
    manifest = Summarizer.from_pretrained("dialogsum-tiny", backend="torch").manifest
    context = SimpleNamespace(
        options=SweepOptions(rung_decoding=rung_decoding),
        eval=examples,
        manifest=manifest.model_copy(update={"generation": {"num_beams": 4}}),
        tokenizer=None,
        serve=lambda model: recorder,
        first_rung=2,
        longest_steps=18,
    )
    context.compared_at = lambda step: SweepContext.compared_at(context, step)  # type: ignore[arg-type]
    return Scorer(context, manifest.data), recorder  # type: ignore[arg-type]


def test_rungs_where_trials_are_compared_decode_greedily(sample_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    module = torch.nn.Linear(1, 1)
    score, recorder = scorer(sample_dir)
    compared, own = score.rung(module, 2, final=False)
    assert recorder.beams == [1] and compared == own == pytest.approx(100.0)
    assert module.training, "the module is left in the mode it was in"
    # A trial ending at step 6, where longer trials are compared: scored both ways.
    compared, own = score.rung(module, 6, final=True)
    assert recorder.beams == [1, 1, 4] and compared == pytest.approx(100.0) and own < 100.0
    # The longest trial's end (18) and a step no rung falls on (5): the model's own only.
    for step in (18, 5):
        compared, own = score.rung(module, step, final=True)
        assert recorder.beams[-1] == 4 and compared == own < 100.0
    assert recorder.beams == [1, 1, 4, 4, 4]
    # rung_decoding model (the default): every rung decodes as the model does.
    score, recorder = scorer(sample_dir, rung_decoding="model")
    score.rung(module, 2, final=False)
    score.rung(module, 6, final=True)
    assert recorder.beams == [4, 4]


def test_compared_rungs_are_the_first_rung_times_the_factor_short_of_the_end() -> None:
    context = SimpleNamespace(first_rung=2, longest_steps=54, options=SweepOptions())
    compared = [s for s in range(1, 60) if SweepContext.compared_at(context, s)]  # type: ignore[arg-type]
    assert compared == [2, 6, 18]


def test_the_projection_times_greedy_rungs_and_the_last_rung_apart() -> None:
    options = SweepOptions(trials=9, rung_decoding="greedy")
    projection = project_sweep(
        options, trials=9, total_steps=18, first_rung=2, seconds_per_step=1.0,
        seconds_per_score=10.0, seconds_per_start=0.0, seconds_per_rung_score=2.0,
    )  # fmt: skip
    # Rungs at 2, 6 and 18 steps, reached by 9, 3 and 1 trials.
    assert [r.seconds for r in projection.rungs] == [9 * (2 + 2), 3 * (4 + 2), 1 * (12 + 10)]
    assert "2.00 s greedy" in projection.message()
    assert projection.as_dict()["seconds_per_rung_score"] == 2.0


def test_a_sweep_folder_from_before_rung_decoding_continues_as_it_ran(tmp_path: Path) -> None:
    earlier = {"seed": 0, "trials": 4}  # what an earlier version recorded: no rung_decoding
    open_study(tmp_path, SweepOptions(), earlier, 1)
    now = {**earlier, "rung_decoding": "model", "schedule": "async"}  # what it ran as
    same = open_study(tmp_path, SweepOptions(), now, 1)
    assert same.user_attrs["settings"] == earlier
    same.ask()  # a trial started: other settings are another sweep (none: any are taken)
    with pytest.raises(ConfigError, match=r"rung_decoding: 'model' there, 'greedy' here"):
        open_study(tmp_path, SweepOptions(), {**now, "rung_decoding": "greedy"}, 1)
    with pytest.raises(ConfigError, match=r"schedule: 'async' there, 'sync' here"):
        open_study(tmp_path, SweepOptions(), {**now, "schedule": "sync"}, 1)


def test_greedy_rungs_are_asked_for_and_never_apply_to_loss() -> None:
    assert not SweepOptions().greedy_rungs
    assert SweepOptions(rung_decoding="greedy").greedy_rungs
    assert not SweepOptions(rung_decoding="greedy", objective="loss").greedy_rungs
