"""The test kit itself: its fixtures give what they promise, and its battery catches real bugs.

The battery runs in a pytest subprocess against plugins registered in-process that each break
one promise; the right tests must fail, and only those. (Not pytester's in-process run: it
unloads the modules the inner session imported, and torch refuses to register its operators
twice.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dialogsum.data import Example, load_examples, sample_path
from dialogsum.plugins import get_plugin_manager
from dialogsum.registry import get_registry

SUBPROCESS_TIMEOUT = 300

BROKEN_PLUGINS = '''
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dialogsum import FinetuneMethod, InferenceBackend, Predictor, Summarizer, hookimpl
from dialogsum.plugin_api import ModelManifest
from dialogsum.plugins import make_plugin_manager
from dialogsum.testing import BackendContract, MethodContract


class CarelessBackend(InferenceBackend):
    """Checks nothing, ignores generation options, loads lazily, reverses batches."""

    name = "careless"

    def load(self, model_dir, options):
        return CarelessPredictor(model_dir)


class CarelessPredictor(Predictor):
    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.manifest = ModelManifest()  # without reading the folder's
        self.inner = None

    def summarize(self, dialogues, options):
        if not dialogues:
            return [""]
        if self.inner is None:
            self.inner = Summarizer.from_pretrained(self.model_dir, backend_options={"progress": False})
        texts = [text if isinstance(text, str) and text.strip() else "?" for text in dialogues]
        return [self.inner.summarize([text], max_new_tokens=8)[0] for text in texts][::-1]


class ForgetfulMethod(FinetuneMethod):
    """Trains every weight but changes the model in a way save() cannot keep: a forward hook."""

    name = "forgetful"
    default_learning_rate = 3e-4

    def prepare(self, model, options, *, tokenizer):
        model.lm_head.register_forward_hook(lambda module, inputs, output: output.flip(-1))
        return model


class Plugin:
    @hookimpl
    def register_methods(self, register):
        register(ForgetfulMethod())

    @hookimpl
    def register_backends(self, register):
        register(CarelessBackend())


class WithBrokenPlugins:
    @pytest.fixture(scope="class")
    @classmethod
    def contract_plugin_manager(cls):
        manager = make_plugin_manager()
        manager.register(Plugin())
        return manager


class TestCarelessBackend(WithBrokenPlugins, BackendContract):
    backend = "careless"


class TestForgetfulMethod(WithBrokenPlugins, MethodContract):
    method = "forgetful"


class TestFullAtATinyRate(MethodContract):
    method = "full"
    learning_rate = 1e-9


class TestNameless(MethodContract):
    pass
'''


@pytest.fixture(scope="module")
def battery_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Outcome (PASSED, FAILED, ERROR) of each ``Class::test`` of the battery over BROKEN_PLUGINS."""
    folder = tmp_path_factory.mktemp("battery")
    (folder / "conftest.py").write_text('pytest_plugins = ["dialogsum.testing"]\n')
    (folder / "test_broken.py").write_text(BROKEN_PLUGINS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q", folder.name],
        cwd=folder.parent,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    pattern = r"^(PASSED|FAILED|ERROR|SKIPPED) \S*test_broken\.py::(\S+)"
    outcomes = {m.group(2): m.group(1) for m in re.finditer(pattern, result.stdout, re.M)}
    assert outcomes, result.stdout[-3000:] + result.stderr[-3000:]
    outcomes["output"] = result.stdout
    return outcomes


def of_class(outcomes: dict[str, str], name: str) -> dict[str, str]:
    """The outcomes of class ``name``'s tests, keyed by test name."""
    return {
        test.split("::", 1)[1]: outcome
        for test, outcome in outcomes.items()
        if test.startswith(f"{name}::")
    }


def test_the_backend_battery_catches_every_broken_promise(
    battery_outcomes: dict[str, str],
) -> None:
    assert of_class(battery_outcomes, "TestCarelessBackend") == {
        "test_backend_is_registered_with_a_valid_name_and_options": "PASSED",
        "test_load_returns_a_predictor": "PASSED",
        "test_summaries_come_back_one_per_dialogue_in_input_order": "FAILED",
        # It does not stream: the Summarizer reports its summaries when the call ends.
        "test_each_summary_is_reported_once_as_returned": "PASSED",
        # Summarizer.summarize answers [] for no dialogues without asking the backend, so the
        # careless [""] never reaches a user.
        "test_no_dialogues_give_no_summaries": "PASSED",
        # Summarizer.summarize checks the dialogues before any backend sees them, so a
        # backend that checks nothing still refuses bad ones with a DataError.
        "test_bad_dialogues_are_a_data_error[a-single-string]": "PASSED",
        "test_bad_dialogues_are_a_data_error[an-empty-dialogue]": "PASSED",
        "test_bad_dialogues_are_a_data_error[a-blank-dialogue]": "PASSED",
        "test_bad_dialogues_are_a_data_error[a-non-string]": "PASSED",
        # The Summarizer validates the generation options once, before the predictor gets
        # them as a GenerationOptions, so a backend that ignores them cannot accept a typo.
        "test_unknown_generation_option_is_a_config_error": "PASSED",
        "test_missing_model_folder_is_a_dialogsum_error": "FAILED",
        # It cannot export: the export tests are skipped (not listed by -rA's summary lines).
    }


def test_the_method_battery_catches_a_lost_change_and_a_loss_that_stays(
    battery_outcomes: dict[str, str],
) -> None:
    battery = [
        "test_method_is_registered_with_a_valid_name_and_learning_rate",
        "test_finetune_lowers_the_loss",
        "test_finetune_leaves_the_original_untouched",
        "test_save_and_reload_keep_the_method_and_greedy_tokens",
        "test_misspelt_option_is_a_config_error_naming_method_and_field",
    ]
    forgetful = dict.fromkeys(battery, "PASSED")
    forgetful["test_save_and_reload_keep_the_method_and_greedy_tokens"] = "FAILED"
    assert of_class(battery_outcomes, "TestForgetfulMethod") == forgetful
    # The class's own learning_rate is used (1e-9): nothing moves.
    tiny_rate = dict.fromkeys(battery, "PASSED")
    tiny_rate["test_finetune_lowers_the_loss"] = "FAILED"
    assert of_class(battery_outcomes, "TestFullAtATinyRate") == tiny_rate


def test_a_contract_without_a_name_says_what_to_set(battery_outcomes: dict[str, str]) -> None:
    assert set(of_class(battery_outcomes, "TestNameless").values()) == {"ERROR"}
    assert "TestNameless must set method = '<registered method name>'" in battery_outcomes["output"]


def test_tiny_model_and_tokenizer_match_the_saved_folder(
    tiny_model: Any, tiny_tokenizer: Any, tiny_model_dir: Path
) -> None:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    saved = AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir).state_dict()
    fresh = tiny_model.state_dict()
    assert set(saved) <= set(fresh)
    assert all(torch.equal(saved[name], fresh[name]) for name in saved)
    assert tiny_tokenizer.get_vocab() == AutoTokenizer.from_pretrained(tiny_model_dir).get_vocab()
    assert tiny_tokenizer.pad_token_id == 0 and tiny_tokenizer.eos_token_id == 1


def test_plugin_manager_is_fresh_and_holds_the_installed_plugins(plugin_manager: Any) -> None:
    assert plugin_manager is not get_plugin_manager()
    assert {"full", "lora", "prompt_tuning", "ia3"} <= set(get_registry(plugin_manager).methods)
    assert {"torch", "onnxruntime"} <= set(get_registry(plugin_manager).backends)


def test_few_examples_are_the_shortest_training_examples(few_examples: list[Example]) -> None:
    shortest = sorted(len(e.dialogue) for e in load_examples(sample_path("train")))[:8]
    assert [len(e.dialogue) for e in few_examples] == shortest
    assert all(e.references for e in few_examples)
