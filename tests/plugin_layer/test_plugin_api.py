"""The public plugin API: documented name for name, the only door into dialogsum for plugins.

- ``docs/plugins.md`` documents every name of ``dialogsum.plugin_api.__all__``, and its reference
  section lists exactly those names.
- The plugin distributions under ``plugins/`` import nothing of dialogsum but the face, the
  plugin API and (their tests) the test kit; the built-in methods and backends import nothing of
  dialogsum outside their own folder but the plugin API.
- A third party's exporting backend, written from the docs alone (the plugin below imports only
  ``dialogsum.plugin_api``), exports, is served from its own folder, passes the contract battery,
  and meets the documented errors.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import dialogsum.plugin_api
from dialogsum import Summarizer
from dialogsum.plugin_api import (
    MANIFEST_NAME,
    PARITY_NEW_TOKENS,
    ConfigError,
    ExportJob,
    GenerationOptions,
    InferenceBackend,
    ModelError,
    ModelManifest,
    NoOptions,
    Options,
    PluginError,
    Predictor,
    check_token_parity,
    encode_sources,
    hookimpl,
    merged_copy,
    parity_sources,
    read_manifest,
    summarize_batches,
    torch_tokens,
    warn_truncated_inputs,
)
from dialogsum.testing import BackendContract, contract_dialogues, make_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
PUBLIC = list(dialogsum.plugin_api.__all__)

# -- the docs name every public name, and only those ------------------------------------------


def reference_section(text: str) -> str:
    """The body of the docs' ``## Reference`` section (up to the next ``## `` heading)."""
    match = re.search(r"^## Reference\b.*?$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"{PLUGINS_DOC} has no '## Reference' section"
    return match.group(1)


def test_the_public_api_is_not_empty_and_has_no_duplicates() -> None:
    # Guards the checks below against passing on an empty list.
    assert len(PUBLIC) > 30 and len(set(PUBLIC)) == len(PUBLIC)
    assert all(hasattr(dialogsum.plugin_api, name) for name in PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_documented(name: str) -> None:
    assert f"`{name}`" in PLUGINS_DOC.read_text(encoding="utf-8"), (
        f"{PLUGINS_DOC} does not mention `{name}` (dialogsum.plugin_api.__all__)"
    )


def test_the_reference_lists_exactly_the_public_names() -> None:
    listed = re.findall(
        r"^- `(\w+)`", reference_section(PLUGINS_DOC.read_text(encoding="utf-8")), flags=re.M
    )
    assert len(listed) == len(set(listed)), "a name is listed twice in the reference"
    assert not set(listed) - set(PUBLIC), (
        f"the reference lists names that are not in dialogsum.plugin_api.__all__: "
        f"{sorted(set(listed) - set(PUBLIC))}"
    )
    assert not set(PUBLIC) - set(listed), (
        f"the reference does not list {sorted(set(PUBLIC) - set(listed))}"
    )


# -- who may import what -----------------------------------------------------------------------


def dialogsum_imports(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every dialogsum module ``path`` imports, lazy imports included.

    ``from dialogsum import x`` counts as ``dialogsum.x`` when ``x`` is a submodule (so
    ``from dialogsum import registry`` cannot slip past); relative imports stay within their
    own package and are left out.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dialogsum":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "dialogsum":
                continue
            for alias in node.names:
                sub = ROOT.joinpath(*node.module.split("."), alias.name)
                is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                yield node.lineno, f"{node.module}.{alias.name}" if is_module else node.module
        elif (  # importlib.import_module("dialogsum.x") with a literal name
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.split(".")[0] == "dialogsum"
        ):
            yield node.lineno, node.args[0].value


def offending(files: list[Path], allowed: Callable[[Path, str], bool]) -> list[str]:
    found = (
        f"{path.relative_to(ROOT)}:{line} -> {module}"
        for path in files
        for line, module in dialogsum_imports(path)
        if not allowed(path, module)
    )
    return list(dict.fromkeys(found))  # one line per module, however many names it gives


PLUGIN_DISTRIBUTIONS = sorted(p for p in (ROOT / "plugins").iterdir() if p.is_dir())


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if ".egg-info" not in str(p))


def test_the_plugin_distributions_are_found() -> None:
    names = {p.name for p in PLUGIN_DISTRIBUTIONS}
    assert {"dialogsum-ia3", "dialogsum-ctranslate2"} <= names
    for plugin in PLUGIN_DISTRIBUTIONS:
        assert [p for p in python_files(plugin) if "tests" not in p.parts], plugin
        assert python_files(plugin / "tests"), plugin


@pytest.mark.parametrize("plugin", PLUGIN_DISTRIBUTIONS, ids=lambda p: p.name)
def test_plugin_distributions_import_only_the_public_api(plugin: Path) -> None:
    code = [p for p in python_files(plugin) if "tests" not in p.relative_to(plugin).parts]
    tests = python_files(plugin / "tests")
    bad = offending(code, lambda _, module: module in ("dialogsum", "dialogsum.plugin_api"))
    bad += offending(
        tests,
        lambda _, module: module in ("dialogsum", "dialogsum.plugin_api", "dialogsum.testing"),
    )
    assert not bad, (
        "a plugin may import dialogsum, dialogsum.plugin_api and, in its tests, "
        "dialogsum.testing only:\n" + "\n".join(bad)
    )


def test_this_files_third_party_plugin_imports_only_the_public_api() -> None:
    # The backend below is written from docs/plugins.md alone, as a third party would.
    bad = offending(
        [Path(__file__)],
        lambda _, module: module in ("dialogsum", "dialogsum.plugin_api", "dialogsum.testing"),
    )
    assert not bad, "\n".join(bad)


PACKAGE = ROOT / "dialogsum"


def built_in_units() -> list[Path]:
    """Each built-in method module or folder, and each built-in backend folder."""
    units = [p for p in (PACKAGE / "methods").iterdir() if p.name != "__init__.py"]
    units += [p for p in (PACKAGE / "backends").iterdir() if p.is_dir()]
    return sorted(p for p in units if p.suffix == ".py" or (p / "__init__.py").is_file())


def own_package(unit: Path) -> str:
    return ".".join(unit.relative_to(ROOT).with_suffix("").parts)


def built_in_files() -> list[Any]:
    params = []
    for unit in built_in_units():
        for path in [unit] if unit.is_file() else python_files(unit):
            name = str(path.relative_to(ROOT))
            params.append(pytest.param(unit, path, id=name))
    return params


def test_the_built_ins_are_found() -> None:
    names = {unit.stem for unit in built_in_units()}
    assert {"full", "lora", "prompt_tuning", "torch", "onnxruntime"} <= names


@pytest.mark.parametrize(("unit", "path"), built_in_files())
def test_built_ins_import_only_the_public_api_and_their_own_folder(unit: Path, path: Path) -> None:
    own = own_package(unit)

    def allowed(_: Path, module: str) -> bool:
        return module == "dialogsum.plugin_api" or module == own or module.startswith(own + ".")

    bad = offending([path], allowed)
    assert not bad, (
        f"a built-in imports dialogsum.plugin_api and its own folder ({own}) only:\n"
        + "\n".join(bad)
    )


# -- a third party's exporting backend, written from the docs ----------------------------------


class MergedOptions(Options):
    """How the export is served."""

    progress: bool = True


class MergedExportOptions(Options):
    """How the export is written."""

    max_shard_size: str = "2GB"


class MergedPredictor(Predictor):
    """Summarizes with the merged model the export holds."""

    def __init__(self, model: Any, tokenizer: Any, manifest: ModelManifest, progress: bool) -> None:
        self.model, self.tokenizer, self.manifest = model, tokenizer, manifest
        self.progress = progress

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        import torch

        data = self.manifest.data
        sources, truncated = encode_sources(dialogues, self.tokenizer, data)
        warn_truncated_inputs(truncated, len(dialogues), data)
        kwargs = options.generate_kwargs(data.max_target_length)

        def run_batch(ids: list[list[int]], mask: list[list[int]]) -> list[str]:
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), **kwargs
                )
            return list(self.tokenizer.batch_decode(output, skip_special_tokens=True))

        return summarize_batches(
            sources,
            options.batch_size,
            self.tokenizer.pad_token_id,
            run_batch,
            progress=self.progress,
        )


class SafetensorsMergedBackend(InferenceBackend):
    """Exports a model with its adapter merged, as safetensors; serves such a folder."""

    name = "safetensors-merged"
    Options = MergedOptions
    ExportOptions = MergedExportOptions
    install_hint = "pip install 'dialogsum[train]'"

    def load(self, model_dir: Path | str, options: MergedOptions) -> Predictor:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        if not isinstance(model_dir, Path):
            raise ModelError(f"No safetensors-merged export at {model_dir}: not a folder.")
        record = read_manifest(model_dir).export
        if record is None or record.backend != self.name:
            raise ModelError(
                f"{model_dir} is not a safetensors-merged export; write one with "
                f"Summarizer.export(DIR, backend='safetensors-merged')."
            )
        model = AutoModelForSeq2SeqLM.from_pretrained(model_dir / record.backend_data["weights"])
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        return MergedPredictor(model, tokenizer, read_manifest(model_dir), options.progress)

    def export(self, job: ExportJob, options: MergedExportOptions) -> None:
        import transformers

        if job.adapter == "baked":
            raise ConfigError("A soft prompt cannot be merged; export it with onnxruntime.")
        weights = job.folder / "weights"
        merged_copy(job.model).save_pretrained(weights, max_shard_size=options.max_shard_size)
        job.tokenizer.save_pretrained(job.folder)
        job.write_manifest(
            {"weights": "weights"},
            files=sorted(str(p.relative_to(job.folder)) for p in weights.iterdir()),
            versions={"transformers": transformers.__version__},
        )
        served = self.load(job.folder, MergedOptions(progress=False))
        eos = job.tokenizer.eos_token_id
        parity = check_token_parity(
            job.model,
            parity_sources(job.tokenizer, job.manifest),
            lambda sources, beams: torch_tokens(
                served.model, sources, eos, PARITY_NEW_TOKENS, beams
            ),
            eos=eos,
            what="The safetensors-merged export",
        )
        job.write_manifest(parity=parity)


class ThirdPartyPlugin:
    @hookimpl
    def register_backends(self, register: Callable[[InferenceBackend], None]) -> None:
        register(SafetensorsMergedBackend())


SERVE = {"progress": False}
GREEDY = {"num_beams": 1, "do_sample": False, "max_new_tokens": 16}


@pytest.fixture(scope="module")
def plugins() -> Any:
    manager = make_plugin_manager()  # the built-ins and the installed plugins
    manager.register(ThirdPartyPlugin(), name="third-party")
    return manager


@pytest.fixture(scope="module")
def tuned(plugins: Any, tiny_model_dir: Path, few_examples: list[Any]) -> Summarizer:
    """The tiny model with a LoRA adapter, trained enough to summarize unlike its base."""
    base = Summarizer.from_pretrained(tiny_model_dir, backend_options=SERVE, plugins=plugins)
    return base.finetune(
        few_examples,
        method="lora",
        options={"r": 4},
        training={"max_steps": 4, "learning_rate": 1e-2, "progress": False, "save_strategy": "no"},
        data={"max_source_length": 128, "max_target_length": 32},
    )


@pytest.fixture(scope="module")
def merged_export(tuned: Summarizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("third-party") / "merged"
    return tuned.export(folder, backend="safetensors-merged", max_shard_size="1GB")


def test_export_writes_a_folder_whose_manifest_names_the_backend(
    merged_export: Path, tuned: Summarizer
) -> None:
    manifest = read_manifest(merged_export)
    record = manifest.export
    assert record is not None and record.backend == "safetensors-merged"
    assert record.adapter == "merged" and not manifest.peft and manifest.merged
    assert record.options == {"max_shard_size": "1GB"}
    assert record.backend_data == {"weights": "weights"}
    assert record.parity["passed"] is True and record.parity["greedy_identical"] == 1.0
    assert "transformers" in record.versions and "dialogsum" in record.versions
    assert all((merged_export / name).is_file() for name in record.files)
    assert manifest.data == tuned.manifest.data
    assert sorted(p.name for p in merged_export.parent.iterdir()) == ["merged"]


def test_the_export_is_served_by_its_backend_with_the_torch_models_summaries(
    merged_export: Path, tuned: Summarizer, plugins: Any
) -> None:
    served = Summarizer.from_pretrained(merged_export, backend_options=SERVE, plugins=plugins)
    assert served.backend == "safetensors-merged"
    assert isinstance(served.predictor, MergedPredictor)
    dialogues = contract_dialogues()
    expected = tuned.summarize(dialogues, **GREEDY)
    assert served.summarize(dialogues, batch_size=2, **GREEDY) == expected
    assert len(set(expected)) > 1  # the comparison could tell dialogues apart


def test_an_unknown_export_option_is_a_config_error_naming_it(
    tuned: Summarizer, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="shard_size") as error:
        tuned.export(tmp_path / "x", backend="safetensors-merged", shard_size="1GB")
    assert "safetensors-merged" in str(error.value)
    assert not (tmp_path / "x").exists()


def test_a_backend_that_cannot_export_names_those_that_can(
    tuned: Summarizer, tmp_path: Path
) -> None:
    with pytest.raises(PluginError, match=r"Backend 'torch' .*cannot export") as error:
        tuned.export(tmp_path / "x", backend="torch")
    assert "onnxruntime" in str(error.value) and "safetensors-merged" in str(error.value)
    assert not (tmp_path / "x").exists()


class DeclaresExportOnly(InferenceBackend):
    name = "declares-export"
    ExportOptions = NoOptions

    def load(self, model_dir: Path | str, options: Any) -> Predictor:
        raise AssertionError("never loaded")


class DuckTyped:
    """Everything a backend has, but not an InferenceBackend subclass."""

    name = "duck"
    Options = NoOptions

    def load(self, model_dir: Path | str, options: Any) -> Predictor:
        raise AssertionError("never loaded")


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        pytest.param(
            DeclaresExportOnly(),
            r"'declares-export' .* declares ExportOptions but does not implement export",
            id="export-options-without-export",
        ),
        pytest.param(
            DuckTyped(),
            r"DuckTyped\) does not subclass dialogsum.plugin_api.InferenceBackend",
            id="not-a-subclass",
        ),
    ],
)
def test_a_backend_that_breaks_the_contract_is_refused_at_registration(
    plugin_manager: Any, tiny_model_dir: Path, backend: Any, message: str
) -> None:
    class Broken:
        @hookimpl
        def register_backends(self, register: Callable[[Any], None]) -> None:
            register(backend)

    plugin_manager.register(Broken(), name="broken")
    with pytest.raises(PluginError, match=message) as error:
        Summarizer.from_pretrained(tiny_model_dir, plugins=plugin_manager)
    assert "in-process plugin 'broken'" in str(error.value)


class ForgetsTheManifest(InferenceBackend):
    name = "forgets-manifest"
    ExportOptions = NoOptions

    def load(self, model_dir: Path | str, options: Any) -> Predictor:
        raise AssertionError("never loaded")

    def export(self, job: ExportJob, options: Any) -> None:
        (job.folder / "weights.bin").write_bytes(b"\0" * 16)


def test_an_export_that_forgets_its_manifest_is_a_plugin_error_and_writes_nothing(
    plugin_manager: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    class Forgetful:
        @hookimpl
        def register_backends(self, register: Callable[[Any], None]) -> None:
            register(ForgetsTheManifest())

    plugin_manager.register(Forgetful(), name="forgetful")
    model = Summarizer.from_pretrained(
        tiny_model_dir, backend_options=SERVE, plugins=plugin_manager
    )
    target = tmp_path / "out" / "export"
    with pytest.raises(PluginError, match=r"'forgets-manifest'.*without writing its manifest"):
        model.export(target, backend="forgets-manifest")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no staging folder left either
    assert not (target / MANIFEST_NAME).exists()


def docs_example_plugin() -> types.ModuleType:
    """The worked example's code block in docs/plugins.md, run as a plugin module."""
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    section = text.split("## A worked example: an exporting backend", 1)[1]
    code = re.search(r"^```python\n(.*?)^```", section, flags=re.M | re.S)
    assert code, "the worked example has no python block"
    module = types.ModuleType("docs_worked_example")
    exec(compile(code.group(1), f"{PLUGINS_DOC}:worked example", "exec"), module.__dict__)
    return module


def test_the_docs_worked_example_runs_as_written(tiny_model_dir: Path, tmp_path: Path) -> None:
    manager = make_plugin_manager()
    manager.register(docs_example_plugin(), name="docs-example")
    base = Summarizer.from_pretrained(tiny_model_dir, backend_options=SERVE, plugins=manager)
    folder = base.export(tmp_path / "merged", backend="safetensors-merged")
    served = Summarizer.from_pretrained(folder, backend_options=SERVE, plugins=manager)
    assert served.backend == "safetensors-merged"
    dialogues = contract_dialogues()[:2]
    assert served.summarize(dialogues, **GREEDY) == base.summarize(dialogues, **GREEDY)


class TestSafetensorsMergedContract(BackendContract):
    """The kit's battery over the third party's backend, export tests included."""

    backend = "safetensors-merged"
    backend_options: ClassVar[dict[str, Any]] = SERVE
    export_options: ClassVar[dict[str, Any]] = {"max_shard_size": "1GB"}

    @pytest.fixture(scope="class")
    @classmethod
    def contract_plugin_manager(cls) -> Any:
        manager = make_plugin_manager()
        manager.register(ThirdPartyPlugin(), name="third-party")
        return manager

    @pytest.fixture(scope="class")
    @classmethod
    def model_dir(cls, exported: Path) -> Path:
        return exported  # the battery's own export of the tiny model


# -- the kit's export battery catches a broken exporter ----------------------------------------

BROKEN_EXPORTERS = '''
from pathlib import Path

import pytest

from dialogsum.plugin_api import InferenceBackend, NoOptions, Predictor, hookimpl, read_manifest
from dialogsum.testing import BackendContract, make_plugin_manager


class ReversingPredictor(Predictor):
    def __init__(self, folder):
        self.manifest = read_manifest(folder)

    def summarize(self, dialogues, options):
        return [f"summary of a {len(d)}-character dialogue" for d in dialogues][::-1]


class Sloppy(InferenceBackend):
    """Exports without a parity record and serves summaries in reverse order."""

    name = "sloppy"
    ExportOptions = NoOptions

    def load(self, model_dir, options):
        if not Path(model_dir).is_dir():
            raise FileNotFoundError(model_dir)
        return ReversingPredictor(model_dir)

    def export(self, job, options):
        job.write_manifest({"format": 1})


class Plugin:
    @hookimpl
    def register_backends(self, register):
        register(Sloppy())


class TestSloppy(BackendContract):
    backend = "sloppy"

    @pytest.fixture(scope="class")
    @classmethod
    def contract_plugin_manager(cls):
        manager = make_plugin_manager()
        manager.register(Plugin())
        return manager

    @pytest.fixture(scope="class")
    @classmethod
    def model_dir(cls, exported):
        return exported


class TestTorch(BackendContract):
    backend = "torch"
    backend_options = {"progress": False}
'''


def test_the_export_battery_catches_a_sloppy_exporter_and_skips_a_backend_that_cannot(
    tmp_path: Path,
) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["dialogsum.testing"]\n')
    (tmp_path / "test_exporters.py").write_text(BROKEN_EXPORTERS)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-v",
            "-rs",
            "test_exporters.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcomes = dict(
        re.findall(r"^test_exporters\.py::(\S+) (PASSED|FAILED|ERROR|SKIPPED)", result.stdout, re.M)
    )
    assert outcomes, result.stdout[-3000:] + result.stderr[-3000:]
    sloppy = {k.split("::", 1)[1]: v for k, v in outcomes.items() if k.startswith("TestSloppy::")}
    assert sloppy["test_export_manifest_names_the_backend_and_records_parity"] == "FAILED"
    assert sloppy["test_export_loads_with_its_backend_in_input_order"] == "FAILED"
    assert sloppy["test_summaries_come_back_one_per_dialogue_in_input_order"] == "FAILED"
    # What the core guarantees around any export holds for this one too.
    assert sloppy["test_export_refuses_an_existing_folder_without_overwrite"] == "PASSED"
    assert sloppy["test_backend_is_registered_with_a_valid_name_and_options"] == "PASSED"
    torch = {k.split("::", 1)[1]: v for k, v in outcomes.items() if k.startswith("TestTorch::")}
    exports = {k: v for k, v in torch.items() if k.startswith("test_export_")}
    assert exports and set(exports.values()) == {"SKIPPED"}
    assert "backend 'torch' cannot export (its ExportOptions is None)" in result.stdout
    assert set(torch.values()) == {"PASSED", "SKIPPED"}
