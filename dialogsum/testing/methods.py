"""``MethodContract``: the battery every fine-tuning method passes, built-in or a plugin's."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any, ClassVar

import pytest

from dialogsum import ConfigError, Example, Summarizer
from dialogsum.plugin_api import FinetuneMethod
from dialogsum.plugins import DialogsumPluginManager
from dialogsum.registry import get_registry
from dialogsum.testing.contract import ContractBase

__all__ = ["LEARNING_RATE_FACTOR", "BaseSnapshot", "MethodContract", "greedy_tokens"]

#: With ``learning_rate = None`` the battery trains at this multiple of the method's
#: ``default_learning_rate``. Defaults suit a pretrained FLAN-T5; a tiny randomly initialised
#: model needs larger steps to move within ``max_steps``. Checked for full, lora, prompt_tuning
#: and ia3 with their default options: the loss falls by 68%, 53%, 7% and 17%.
LEARNING_RATE_FACTOR = 10

#: Short inputs train fast; most of the eight rows are cut to fit, which only shortens them.
DATA_OPTIONS: dict[str, Any] = {"max_source_length": 128, "max_target_length": 32}
#: Greedy decoding, short: deterministic, so a reload must reproduce it token for token.
GREEDY: dict[str, Any] = {"num_beams": 1, "do_sample": False, "max_new_tokens": 16}
_METHOD_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


def greedy_tokens(summarizer: Summarizer, dialogues: list[str]) -> list[list[int]]:
    """Greedy generation's token ids for each prompted dialogue, one at a time (no padding)."""
    import torch

    model, tokenizer, data = summarizer.model, summarizer.tokenizer, summarizer.manifest.data
    model.eval()
    tokens = []
    for dialogue in dialogues:
        encoded = tokenizer([data.render(dialogue)], return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(**encoded, **GREEDY)
        tokens.append(output[0].tolist())
    return tokens


def _misspelt(fields: list[str]) -> str:
    """An option name one typo away from a real one (or a plain unknown one)."""
    for field in fields:
        typo = field[:-1] if len(field) > 2 else field + field[-1]
        if typo not in fields:
            return typo
    return "rank"


@dataclass(frozen=True)
class BaseSnapshot:
    """The base model's weights and greedy tokens before any fine-tuning."""

    state: dict[str, Any]
    tokens: list[list[int]]


class MethodContract(ContractBase):
    """What every fine-tuning method promises, as tests; subclass it as ``Test<Name>Contract``.

    Set :attr:`method` (and :attr:`options` or :attr:`learning_rate` where the defaults do not
    fit). Overridable class-scoped fixtures: ``method_name`` (parametrize it to cover several
    methods) and ``contract_plugin_manager`` (register an uninstalled plugin in-process). Needs
    the kit's fixtures: ``pytest_plugins = ["dialogsum.testing"]`` in your root conftest.
    """

    #: The registered method name under test.
    method: ClassVar[str]
    #: The method's options for the run (default: its own defaults).
    options: ClassVar[dict[str, Any]] = {}
    #: None: :data:`LEARNING_RATE_FACTOR` times the method's ``default_learning_rate``.
    learning_rate: ClassVar[float | None] = None
    #: Training steps (batches of 4); the tiny model takes about 0.5 s for 24 on one CPU thread.
    max_steps: ClassVar[int] = 24
    #: The mean of the last 4 logged losses must be this share below the mean of the first 4.
    #: Four steps of 4 are one pass over the 16 training rows, so both means cover the same
    #: data: a method that learns nothing stays within 0.1% (measured), well inside 3%.
    min_loss_drop: ClassVar[float] = 0.03
    #: Dialogues generated from before and after tuning, saving and reloading.
    probe: ClassVar[list[str]] = [
        "#Person1#: Where is the station?\n#Person2#: Two blocks north, next to the bank.",
        "#Person1#: Can I pay by card?\n#Person2#: Sorry, we only take cash.",
    ]

    @pytest.fixture(scope="class")
    @classmethod
    def method_name(cls) -> str:
        """The method under test: :attr:`method`."""
        name = getattr(cls, "method", None)
        if not isinstance(name, str):
            pytest.fail(f"{cls.__name__} must set method = '<registered method name>'.")
        return name

    @pytest.fixture(scope="class")
    @classmethod
    def base_summarizer(
        cls, tiny_model_dir: Path, contract_plugin_manager: DialogsumPluginManager
    ) -> Summarizer:
        """The tiny base model, loaded with the ``torch`` backend."""
        return Summarizer.from_pretrained(
            tiny_model_dir, backend_options={"progress": False}, plugins=contract_plugin_manager
        )

    @pytest.fixture(scope="class")
    @classmethod
    def base_snapshot(cls, base_summarizer: Summarizer) -> BaseSnapshot:
        """The base model's weights and greedy tokens, taken before it is fine-tuned."""
        state = {k: v.detach().clone() for k, v in base_summarizer.model.state_dict().items()}
        return BaseSnapshot(state, greedy_tokens(base_summarizer, cls.probe))

    @pytest.fixture(scope="class")
    @classmethod
    def tuned(
        cls,
        base_summarizer: Summarizer,
        base_snapshot: BaseSnapshot,  # taken first, so it sees the base before any tuning
        few_examples: list[Example],
        method_name: str,
        contract_plugin_manager: DialogsumPluginManager,
    ) -> Summarizer:
        """The base model fine-tuned with the method for :attr:`max_steps` steps."""
        rate = cls.learning_rate
        if rate is None:
            method = get_registry(contract_plugin_manager).method(method_name)
            rate = LEARNING_RATE_FACTOR * method.default_learning_rate
        training = {
            "max_steps": cls.max_steps,
            "batch_size": 4,
            "learning_rate": rate,
            "logging_steps": 1,
            "eval_strategy": "no",
            "save_strategy": "no",
            "progress": False,
            "seed": 0,
        }
        return base_summarizer.finetune(
            few_examples * 2,
            method=method_name,
            options=cls.options,
            training=training,
            data=DATA_OPTIONS,
        )

    def test_method_is_registered_with_a_valid_name_and_learning_rate(
        self, method_name: str, contract_plugin_manager: DialogsumPluginManager
    ) -> None:
        registry = get_registry(contract_plugin_manager)
        assert method_name in registry.methods, (
            f"method {method_name!r} is not registered; registered: {sorted(registry.methods)}"
        )
        method = registry.method(method_name)
        assert isinstance(method, FinetuneMethod)
        assert method.name == method_name and _METHOD_NAME.match(method_name)
        rate = method.default_learning_rate
        assert not isinstance(rate, bool) and isinstance(rate, (int, float))
        assert math.isfinite(rate) and rate > 0, f"default_learning_rate {rate!r}"
        options = registry.method_options(method_name, self.options)
        assert isinstance(options, method.Options)
        assert method.Options.model_config.get("extra") == "forbid"

    def test_finetune_lowers_the_loss(self, tuned: Summarizer, method_name: str) -> None:
        assert tuned.method == method_name
        assert tuned.training is not None
        losses = tuned.training.losses
        assert len(losses) >= min(self.max_steps, 8), losses
        first, last = fmean(losses[:4]), fmean(losses[-4:])
        assert last < first * (1 - self.min_loss_drop), f"the loss did not fall: {losses}"

    def test_finetune_leaves_the_original_untouched(
        self, base_summarizer: Summarizer, base_snapshot: BaseSnapshot, tuned: Summarizer
    ) -> None:
        import torch

        assert base_summarizer.method is None
        assert not hasattr(base_summarizer.model, "peft_config")
        state = base_summarizer.model.state_dict()
        assert set(state) == set(base_snapshot.state)
        changed = [k for k, v in base_snapshot.state.items() if not torch.equal(v, state[k])]
        assert not changed, f"fine-tuning changed the original's weights: {changed[:5]}"
        assert greedy_tokens(base_summarizer, self.probe) == base_snapshot.tokens

    def test_save_and_reload_keep_the_method_and_greedy_tokens(
        self,
        tuned: Summarizer,
        method_name: str,
        contract_plugin_manager: DialogsumPluginManager,
        tmp_path: Path,
    ) -> None:
        folder = tuned.save(tmp_path / "saved")
        assert folder.is_dir() and any(folder.iterdir())
        assert [p.name for p in tmp_path.iterdir()] == ["saved"]  # no staging folder left
        reloaded = Summarizer.from_pretrained(
            folder, backend_options={"progress": False}, plugins=contract_plugin_manager
        )
        assert reloaded.method == method_name
        assert greedy_tokens(reloaded, self.probe) == greedy_tokens(tuned, self.probe)
        assert reloaded.summarize(self.probe, **GREEDY) == tuned.summarize(self.probe, **GREEDY)

    def test_misspelt_option_is_a_config_error_naming_method_and_field(
        self,
        base_summarizer: Summarizer,
        few_examples: list[Example],
        method_name: str,
        contract_plugin_manager: DialogsumPluginManager,
    ) -> None:
        fields = list(
            get_registry(contract_plugin_manager).method(method_name).Options.model_fields
        )
        typo = _misspelt(fields)
        with pytest.raises(ConfigError) as error:
            base_summarizer.finetune(
                few_examples,
                method=method_name,
                options={**self.options, typo: 1},
                training={"max_steps": 1, "progress": False, "save_strategy": "no"},
            )
        assert f"method '{method_name}'" in str(error.value)
        assert typo in str(error.value)
