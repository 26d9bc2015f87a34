"""``BackendContract``: the battery every inference backend passes, built-in or a plugin's.

Every backend is checked for registration, serving and errors (and, where its predictor offers
continuous batching, that rows joining a running decode get ``summarize()``'s answers); a
backend that can export
(``ExportOptions`` is not None) is also checked for its export step: the folder, its manifest,
loading it back, and the refusal to replace an existing folder. Those tests are skipped, with
the reason, for a backend that cannot export.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dialogsum import ConfigError, DataError, DialogsumError, Predictor, Summarizer
from dialogsum.continuous import ContinuousRow, ContinuousSettings
from dialogsum.data import sample_rows
from dialogsum.plugin_api import MANIFEST_NAME, InferenceBackend, ModelManifest, read_manifest
from dialogsum.plugins import DialogsumPluginManager
from dialogsum.registry import get_registry
from dialogsum.testing.contract import ContractBase

__all__ = ["BackendContract", "contract_dialogues"]


def contract_dialogues() -> list[str]:
    """Five test dialogues of the shipped sample, all of different lengths, not in length order.

    Short enough to need no truncation: a backend that batches by length (as the built-ins do)
    must still hand the summaries back in input order.
    """
    by_length: dict[int, str] = {}
    for row in sample_rows("test"):
        by_length.setdefault(len(row["dialogue"]), row["dialogue"])
    shortest = [by_length[length] for length in sorted(by_length)[:15:3]]
    return [shortest[i] for i in (2, 0, 4, 1, 3)]


class BackendContract(ContractBase):
    """What every inference backend promises, as tests; subclass it as ``Test<Name>Contract``.

    Set :attr:`backend` (and :attr:`backend_options`, and :attr:`export_options` for a backend
    that exports). Override the class-scoped fixture ``model_dir`` when the backend serves
    something other than a saved torch model (an export, say), and ``contract_plugin_manager``
    to register an uninstalled plugin in-process. Needs the kit's fixtures:
    ``pytest_plugins = ["dialogsum.testing"]`` in your root conftest.

    The export tests (``test_export_*``) run when the backend declares ``ExportOptions``: they
    export the kit's tiny model (``tiny_model_dir``, loaded with the ``torch`` backend) with
    :attr:`export_options`, and serve the folder with :attr:`backend_options`. For a backend
    that cannot export they are skipped.
    """

    #: The registered backend name under test.
    backend: ClassVar[str]
    #: Options passed as ``backend_options=``.
    backend_options: ClassVar[dict[str, Any]] = {}
    #: Export options passed to ``Summarizer.export`` (backends that export only).
    export_options: ClassVar[dict[str, Any]] = {}
    #: Greedy decoding, short: deterministic, so batched and one-by-one results must agree.
    generation: ClassVar[dict[str, Any]] = {
        "num_beams": 1,
        "do_sample": False,
        "max_new_tokens": 16,
    }

    @pytest.fixture(scope="class")
    @classmethod
    def backend_name(cls) -> str:
        """The backend under test: :attr:`backend`."""
        name = getattr(cls, "backend", None)
        if not isinstance(name, str):
            pytest.fail(f"{cls.__name__} must set backend = '<registered backend name>'.")
        return name

    @pytest.fixture(scope="class")
    @classmethod
    def model_dir(cls, tiny_model_dir: Path) -> Path | str:
        """The model the backend serves; default: the kit's tiny torch model folder."""
        return tiny_model_dir

    @pytest.fixture(scope="class")
    @classmethod
    def served(
        cls,
        model_dir: Path | str,
        backend_name: str,
        contract_plugin_manager: DialogsumPluginManager,
    ) -> Summarizer:
        """A Summarizer serving ``model_dir`` through the backend under test."""
        return Summarizer.from_pretrained(
            model_dir,
            backend=backend_name,
            backend_options=cls.backend_options,
            plugins=contract_plugin_manager,
        )

    @pytest.fixture(scope="class")
    @classmethod
    def exporting_backend(
        cls, backend_name: str, contract_plugin_manager: DialogsumPluginManager
    ) -> str:
        """The backend's name when it can export; the export tests are skipped otherwise."""
        if get_registry(contract_plugin_manager).backend(backend_name).ExportOptions is None:
            pytest.skip(f"backend '{backend_name}' cannot export (its ExportOptions is None)")
        return backend_name

    @pytest.fixture(scope="class")
    @classmethod
    def export_source(
        cls, tiny_model_dir: Path, contract_plugin_manager: DialogsumPluginManager
    ) -> Summarizer:
        """The model the export tests export: the kit's tiny model, served by ``torch``."""
        return Summarizer.from_pretrained(
            tiny_model_dir,
            backend="torch",
            backend_options={"progress": False},
            plugins=contract_plugin_manager,
        )

    @pytest.fixture(scope="class")
    @classmethod
    def exported(
        cls,
        exporting_backend: str,
        export_source: Summarizer,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Path:
        """The tiny model exported with the backend under test (:attr:`export_options`)."""
        folder = tmp_path_factory.mktemp("contract-export") / "export"
        written = export_source.export(folder, backend=exporting_backend, **cls.export_options)
        assert Path(written) == folder, f"export() returned {written}, not the folder {folder}"
        return folder

    def test_backend_is_registered_with_a_valid_name_and_options(
        self, backend_name: str, contract_plugin_manager: DialogsumPluginManager
    ) -> None:
        registry = get_registry(contract_plugin_manager)
        assert backend_name in registry.backends, (
            f"backend {backend_name!r} is not registered; registered: {sorted(registry.backends)}"
        )
        backend = registry.backend(backend_name)
        assert isinstance(backend, InferenceBackend) and backend.name == backend_name
        options = registry.backend_options(backend_name, self.backend_options)
        assert isinstance(options, backend.Options)
        if backend.ExportOptions is not None:
            export_options = registry.export_options(backend_name, self.export_options)
            assert isinstance(export_options, backend.ExportOptions)

    def test_export_manifest_names_the_backend_and_records_parity(
        self, exported: Path, exporting_backend: str
    ) -> None:
        assert (exported / MANIFEST_NAME).is_file()
        record = read_manifest(exported).export
        assert record is not None, f"{exported / MANIFEST_NAME} has no export record"
        assert record.backend == exporting_backend
        # The parity check against the PyTorch model (dialogsum.plugin_api.check_token_parity's
        # result, or the backend's own), recorded and passed.
        assert record.parity.get("passed") is True, f"parity record: {record.parity}"
        assert [p.name for p in exported.parent.iterdir()] == [exported.name]  # nothing staged

    def test_export_loads_with_its_backend_in_input_order(
        self,
        exported: Path,
        exporting_backend: str,
        contract_plugin_manager: DialogsumPluginManager,
    ) -> None:
        served = Summarizer.from_pretrained(  # no backend named: the manifest's is used
            exported, backend_options=self.backend_options, plugins=contract_plugin_manager
        )
        assert served.backend == exporting_backend
        dialogues = contract_dialogues()
        batched = served.summarize(dialogues, batch_size=2, **self.generation)
        assert isinstance(batched, list) and len(batched) == len(dialogues)
        assert all(isinstance(summary, str) for summary in batched)
        assert batched == [served.summarize([d], **self.generation)[0] for d in dialogues]

    def test_export_refuses_an_existing_folder_without_overwrite(
        self, exporting_backend: str, export_source: Summarizer, tmp_path: Path
    ) -> None:
        folder = tmp_path / "taken"
        folder.mkdir()
        (folder / "notes.txt").write_text("the user's\n")
        with pytest.raises(ConfigError, match="overwrite"):
            export_source.export(folder, backend=exporting_backend, **self.export_options)
        assert [p.name for p in folder.iterdir()] == ["notes.txt"]
        assert (folder / "notes.txt").read_text() == "the user's\n"
        assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no staging folder left

    def test_load_returns_a_predictor(
        self,
        model_dir: Path | str,
        backend_name: str,
        contract_plugin_manager: DialogsumPluginManager,
    ) -> None:
        registry = get_registry(contract_plugin_manager)
        backend = registry.backend(backend_name)
        options = registry.backend_options(backend_name, self.backend_options)
        where = Path(model_dir) if Path(model_dir).exists() else model_dir
        predictor = backend.load(where, options)
        assert isinstance(predictor, Predictor)
        # Every summary reads the model's prompt and lengths from it (set it in __init__).
        assert isinstance(getattr(predictor, "manifest", None), ModelManifest), (
            f"{type(predictor).__name__} has no manifest: set self.manifest = "
            f"read_manifest(folder) in its __init__"
        )

    def test_summaries_come_back_one_per_dialogue_in_input_order(self, served: Summarizer) -> None:
        dialogues = contract_dialogues()
        batched = served.summarize(dialogues, batch_size=2, **self.generation)
        one_by_one = [served.summarize([d], **self.generation)[0] for d in dialogues]
        assert isinstance(batched, list) and all(isinstance(s, str) for s in batched)
        assert batched == one_by_one
        # Otherwise a mix-up of the order could not show: serve a model that tells them apart.
        assert len(set(one_by_one)) > 1, f"the model gives every dialogue one summary: {batched}"

    def test_each_summary_is_reported_once_as_returned(self, served: Summarizer) -> None:
        # Through the predictor's summarize_each: its own where it streams, otherwise the base
        # class's, which reports at the end; either way once per dialogue, equal to what is
        # returned.
        dialogues = contract_dialogues()
        reported: list[tuple[int, str]] = []
        summaries = served.summarize(
            dialogues,
            on_summary=lambda index, text: reported.append((index, text)),
            batch_size=2,
            **self.generation,
        )
        assert sorted(index for index, _ in reported) == list(range(len(dialogues)))
        assert all(text == summaries[index] for index, text in reported)
        assert summaries == served.summarize(dialogues, batch_size=2, **self.generation)

    def test_continuous_decoding_answers_as_summarize(self, served: Summarizer) -> None:
        # Optional: a backend whose predictor offers continuous batching. Rows join the running
        # decode two steps apart, at most two in flight; each answer must be summarize()'s.
        decoder = served.continuous_decoder(ContinuousSettings(max_rows=2))
        if decoder is None:
            pytest.skip("this backend offers no continuous batching (an optional capability)")
        dialogues = contract_dialogues()
        options = served.generation_options(**self.generation)
        answers: dict[int, str] = {}
        errors: list[Exception] = []
        rows = [
            ContinuousRow(text, options, functools.partial(answers.__setitem__, i), errors.append)
            for i, text in enumerate(dialogues)
        ]
        for step in range(10_000):
            if step % 2 == 0 and rows:
                decoder.add([rows.pop(0)])
            assert decoder.in_flight <= 2
            if not decoder.step() and not rows:
                break
        assert not errors, errors
        expected = served.summarize(dialogues, options=options)
        assert [answers.get(i) for i in range(len(dialogues))] == expected

    def test_no_dialogues_give_no_summaries(self, served: Summarizer) -> None:
        assert served.summarize([], **self.generation) == []

    @pytest.mark.parametrize(
        "dialogues",
        [
            pytest.param("#Person1#: Hi.", id="a-single-string"),
            pytest.param(["#Person1#: Hi.", ""], id="an-empty-dialogue"),
            pytest.param(["#Person1#: Hi.", " \n "], id="a-blank-dialogue"),
            pytest.param(["#Person1#: Hi.", 3], id="a-non-string"),
        ],
    )
    def test_bad_dialogues_are_a_data_error(self, served: Summarizer, dialogues: Any) -> None:
        # Through the Summarizer, which checks the dialogues before the backend sees them: what
        # a user of the backend gets, whatever the backend checks itself.
        with pytest.raises(DataError):
            served.summarize(dialogues, **self.generation)

    def test_unknown_generation_option_is_a_config_error(self, served: Summarizer) -> None:
        with pytest.raises(ConfigError, match="num_beam"):
            served.summarize(["#Person1#: Hi.\n#Person2#: Hello."], num_beam=2)

    def test_missing_model_folder_is_a_dialogsum_error(
        self,
        backend_name: str,
        contract_plugin_manager: DialogsumPluginManager,
        tmp_path: Path,
    ) -> None:
        missing = tmp_path / "no-such-model"
        with pytest.raises(DialogsumError) as error:
            Summarizer.from_pretrained(
                missing,
                backend=backend_name,
                backend_options=self.backend_options,
                plugins=contract_plugin_manager,
            )
        assert type(error.value) is not DialogsumError  # a typed subclass: ModelError, ...
        assert "no-such-model" in str(error.value)
