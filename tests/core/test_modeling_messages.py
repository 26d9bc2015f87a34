"""Loading a model that is not there, or not whole: messages that name the folder and the files,
and that read as sentences (no doubled period where a quoted message already ends with one)."""

from __future__ import annotations

import shutil
import types
from pathlib import Path
from typing import Any

import pytest

import dialogsum
from dialogsum import Summarizer, hookimpl, make_plugin_manager
from dialogsum.errors import ConfigError, ModelError, PluginError, clause
from dialogsum.modeling import default_backend


def test_a_folder_without_its_tokenizer_names_the_missing_files(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "spiece.model"):  # fmt: skip
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ModelError) as caught:
        Summarizer.from_pretrained(folder)
    message = str(caught.value)
    assert f"{folder} has no tokenizer (missing: tokenizer.json, tokenizer_config.json" in message
    assert "model_file or model_proto" not in message
    assert "tokenizer.save_pretrained" in message


def test_a_mistyped_local_path_is_no_such_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "runs" / "lora").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for typed in ("./runs/lroa", "runs/lroa"):  # the second reads like a hub id
        with pytest.raises(ModelError) as caught:
            Summarizer.from_pretrained(typed)
        message = str(caught.value)
        assert message.startswith("No model folder at runs/lroa: it does not exist. ")
        assert "Did you mean runs/lora?" in message
        assert "cache" not in message.split("Nor is")[0]


def test_a_mistyped_export_folder_with_its_backends_options_is_told_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "served-int8").mkdir()
    monkeypatch.chdir(tmp_path)
    threads = {"threads": 2}  # onnxruntime's option: torch, chosen for a hub id, has none
    with pytest.raises(ModelError, match=r"^No model folder at served_int8: it does not exist"):
        Summarizer.from_pretrained("served_int8/", backend_options=threads)
    # where every command guesses the backend (serve, batch, from_pretrained)
    with pytest.raises(ModelError, match=r"Did you mean served-int8\?"):
        default_backend("served_int8/")
    with pytest.raises(ConfigError) as caught:
        Summarizer.from_pretrained("served_int8", backend_options=threads)
    message = str(caught.value)
    assert message.startswith("Invalid options for backend 'torch': threads: not a setting")
    assert "'served_int8' is no local folder, so it was taken for a hub id" in message
    assert message.endswith("Did you mean served-int8?")
    # a backend asked for by name: its own words only
    with pytest.raises(ConfigError) as caught:
        Summarizer.from_pretrained("served_int8", backend="torch", backend_options=threads)
    assert "hub id" not in str(caught.value)


def test_a_quoted_message_ending_in_a_period_is_not_doubled() -> None:
    assert clause("couldn't find them in the cached files.") == (
        "couldn't find them in the cached files"
    )
    assert clause("no period") == "no period" and clause("wait...") == "wait..."
    # The hub's own message ends with a period; the one quoting it goes on after it.
    with pytest.raises(ModelError) as caught:
        Summarizer.from_pretrained("google/flan-t5-nonexistent")
    assert ".." not in str(caught.value)


class _MissingPackage(dialogsum.InferenceBackend):
    name = "needs-a-package"
    install_hint = "pip install dialogsum-needs-a-package."

    def load(self, model_dir: Any, options: Any) -> Any:
        raise ImportError("No module named 'needs_a_package'. Install it.")


def test_a_plugins_install_hint_ending_in_a_period_is_not_doubled() -> None:
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(types.SimpleNamespace(
        register_backends=hookimpl(lambda register: register(_MissingPackage()))
    ))  # fmt: skip
    with pytest.raises(PluginError) as caught:
        Summarizer.from_pretrained("anything", backend="needs-a-package", plugins=manager)
    message = str(caught.value)
    assert "Install it. To fix: pip install dialogsum-needs-a-package." in message
    assert ".." not in message
