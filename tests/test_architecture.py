"""The architecture's never-arrows, checked on the source and at run time (docs/architecture.md).

The import graph is built with :mod:`ast` over every ``.py`` file under ``dialogsum/``. It
counts module-level imports and lazy ones (inside a function) alike, resolves relative imports,
and maps ``from dialogsum.x import y`` to ``dialogsum.x.y`` when ``y`` is a submodule (to
``dialogsum.x`` otherwise) and ``import dialogsum.a.b`` to ``dialogsum.a.b``; literal-string
``importlib.import_module``, ``__import__`` and ``dialogsum.errors.require`` calls count as
imports too. Imports inside an ``if TYPE_CHECKING:`` block are left out: they are never
executed (the ``else`` branch of such a block is executed, and counts).

Layers, bottom to top: plugin layer < core < rooms < face < cli. The rules:

1. no import cycle among the package's modules;
2. nothing below the face imports the package itself (``import dialogsum``,
   ``from dialogsum import X``), i.e. ``dialogsum/__init__``;
3. no module imports a higher layer; nothing outside tests imports the test kit
   ``dialogsum.testing`` (dialogsum/, benchmarks/, recipes/, plugins/*/dialogsum_*/);
4. the core never imports the built-ins (``dialogsum.methods``, ``dialogsum.backends``), and the
   rooms ``training`` and ``onnx`` import neither each other nor the built-ins;
5. the torch-free half of onnx (``format``, ``predictor``, ``decoding``) imports no torch,
   transformers, peft or optimum, not even lazily; a subprocess that cannot import them serves
   an ONNX export and must summarize exactly as this process does.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "dialogsum"
PACKAGE_DIR = ROOT / PACKAGE

#: The torch stack a CPU serving install does not carry.
TORCH_STACK = frozenset({"torch", "transformers", "peft", "optimum"})
#: What ``import dialogsum`` and ``dialogsum plugins`` must not load.
HEAVY = TORCH_STACK | {"onnxruntime", "fastapi", "uvicorn"}
ONNX = f"{PACKAGE}.backends.onnxruntime"
#: The serving half of the onnxruntime backend: what a CPU serving install imports.
TORCH_FREE_ONNX = tuple(
    f"{ONNX}.{name}"
    for name in (
        "options",
        "export_files",
        "onnx_predictor",
        "decoding",
        "top_log_probs",
        "step_slots",
        "lanes",
        "row_buffers",
        "continuous",
    )
)

#: What everything shares and nothing plugin-specific: data, options, model folders, writes.
FOUNDATION = frozenset(
    f"{PACKAGE}.{name}"
    for name in (
        "_version",
        "errors",
        "validation",
        "files",
        "hub",
        "data",
        "generation",
        "evaluate",
        "modeling",
        "adapters",
        "adapter_serving",
        "continuous",
        "ray_cluster",
        "processes",
    )
)
#: The contract, discovery, the registry, and the capabilities plugins share (export, parity).
PLUGIN_LAYER = frozenset(
    f"{PACKAGE}.{name}"
    for name in (
        "interfaces",
        "hookspecs",
        "plugins",
        "registry",
        "exporting",
        "parity",
        "plugin_api",
    )
)
TRAINING = f"{PACKAGE}.training"
BUILT_INS = (f"{PACKAGE}.methods", f"{PACKAGE}.backends")
SERVE = f"{PACKAGE}.serve"
BATCH = f"{PACKAGE}.batch"
SWEEP = f"{PACKAGE}.sweep"
ROOMS = (TRAINING, SERVE, BATCH, SWEEP, *BUILT_INS)
FACE = frozenset(
    {PACKAGE, *(f"{PACKAGE}.{name}" for name in ("summarizer", "quickstart", "compare"))}
)
CLI = (f"{PACKAGE}.cli", f"{PACKAGE}.__main__")
TESTING = f"{PACKAGE}.testing"
LAYER_NAMES = ("foundation", "plugin layer", "rooms", "face", "cli")

SUBPROCESS_TIMEOUT = 300


def within(module: str, prefixes: Iterable[str]) -> bool:
    """Whether ``module`` is one of ``prefixes`` or inside one of those packages."""
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def layer_of(module: str) -> int | None:
    """The layer index of ``module`` (see LAYER_NAMES), or None for one no layer claims."""
    if module in FOUNDATION:
        return 0
    if module in PLUGIN_LAYER:
        return 1
    if within(module, ROOMS):
        return 2
    if module in FACE:
        return 3
    if within(module, CLI):
        return 4
    return None


@dataclass(frozen=True)
class Import:
    """One executed import in a module of the package."""

    source: str
    line: int
    #: A module of the package, or the dotted name of an outside one.
    target: str
    #: The statement as written, for failure messages.
    statement: str
    #: Inside a function: runs when called, not when the module is imported.
    lazy: bool
    #: Goes through the package's own namespace: ``import dialogsum``, ``from dialogsum import X``.
    via_package: bool

    @property
    def internal(self) -> bool:
        return within(self.target, [PACKAGE])

    def __str__(self) -> str:
        when = "lazy" if self.lazy else "module level"
        return f"{self.source}:{self.line} -> {self.target}  ({self.statement}; {when})"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


_DYNAMIC_IMPORTERS = frozenset({"import_module", "__import__", "require"})


class _ImportCollector(ast.NodeVisitor):
    """Every executed import of one module, with its line and whether it is lazy."""

    def __init__(self, module: str, is_package: bool, modules: frozenset[str]) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.modules = modules
        self.depth = 0
        self.imports: list[Import] = []

    def _add(self, node: ast.stmt | ast.expr, target: str, *, via_package: bool = False) -> None:
        statement = ast.unparse(node).splitlines()[0]
        self.imports.append(
            Import(self.module, node.lineno, target, statement, self.depth > 0, via_package)
        )

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:  # only the else branch ever runs
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name, via_package=alias.name == PACKAGE)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            if node.module:
                base = f"{base}.{node.module}" if base else node.module
        else:
            base = node.module or ""
        if not within(base, [PACKAGE]):
            self._add(node, base)
            return
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            target = submodule if submodule in self.modules else base
            self._add(node, target, via_package=base == PACKAGE)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in _DYNAMIC_IMPORTERS and node.args:
            first = node.args[0]
            values = first.elts if isinstance(first, ast.Tuple) else [first]
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    self._add(node, value.value, via_package=value.value == PACKAGE)
        self.generic_visit(node)


@dataclass(frozen=True)
class ImportGraph:
    """The package's modules and every executed import in them."""

    modules: frozenset[str]
    imports: tuple[Import, ...]
    unreadable: tuple[str, ...]

    def internal(self) -> Iterator[Import]:
        return (i for i in self.imports if i.internal and i.target in self.modules)

    def edges(self, *, eager_only: bool = False) -> dict[str, list[Import]]:
        graph: dict[str, list[Import]] = {module: [] for module in self.modules}
        for item in self.internal():
            if not (eager_only and item.lazy):
                graph[item.source].append(item)
        return graph


def collect_imports(
    files: Iterable[Path], root: Path, modules: frozenset[str]
) -> tuple[list[Import], list[str]]:
    imports: list[Import] = []
    unreadable: list[str] = []
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError) as exc:
            unreadable.append(f"{path.relative_to(ROOT)}: {type(exc).__name__}: {exc}")
            continue
        collector = _ImportCollector(module_name(path, root), path.name == "__init__.py", modules)
        collector.visit(tree)
        imports.extend(collector.imports)
    return imports, unreadable


def parse_or_empty(path: Path) -> ast.Module:
    """``path`` parsed; an empty module where it does not parse (reported by its own test)."""
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError):
        return ast.Module(body=[], type_ignores=[])


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


@cache
def import_graph() -> ImportGraph:
    files = package_files()
    modules = frozenset(module_name(path) for path in files)
    imports, unreadable = collect_imports(files, ROOT, modules)
    return ImportGraph(modules, tuple(imports), tuple(unreadable))


def report(title: str, lines: Iterable[object]) -> str:
    return "\n".join([title, *(f"  {line}" for line in lines)])


def strongly_connected(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each with more than one module or a
    module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = []
        pending = [start]
        while pending or work:
            if pending:
                node = pending.pop()
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
                work.append((node, iter(sorted({e.target for e in graph[node]}))))
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    pending.append(successor)
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or any(e.target == node for e in graph[node]):
                        components.append(sorted(component))
    return components


def cycle_path(graph: dict[str, list[Import]], component: list[str]) -> list[Import]:
    """One shortest cycle through the first module of ``component``, as the imports that make it."""
    members = set(component)
    start = component[0]
    came_from: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in graph[node]:
                if edge.target not in members or edge.target in came_from:
                    continue
                came_from[edge.target] = edge
                if edge.target == start:
                    path = [edge]
                    while path[-1].source != start:
                        path.append(came_from[path[-1].source])
                    return path[::-1]
                following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {component}")  # pragma: no cover


# -- the graph itself -----------------------------------------------------------------------------


def test_every_module_parses_and_has_a_layer() -> None:
    graph = import_graph()
    assert not graph.unreadable, report("Modules the import graph cannot read:", graph.unreadable)
    assert {
        "dialogsum.summarizer",
        "dialogsum.backends.onnxruntime.onnx_predictor",
        "dialogsum.training.run",
    } <= graph.modules
    unplaced = sorted(m for m in graph.modules if layer_of(m) is None and not within(m, [TESTING]))
    assert not unplaced, report(
        "Modules in no layer: place each in tests/test_architecture.py and docs/architecture.md:",
        unplaced,
    )


def test_the_graph_sees_what_python_runs(tmp_path: Path) -> None:
    # A small package shaped like ours: lazy and relative imports, submodules imported by name,
    # a TYPE_CHECKING-only back edge (no cycle) and a lazy back edge (a cycle).
    sources = {
        "__init__.py": "from dialogsum.face import Face\n",
        "face.py": "from dialogsum import low\nimport dialogsum.room.part\n",
        "low.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from dialogsum.face import Face\n"
            "else:\n    import json\n"
            "def later():\n    from .room import part, NAME\n    import torch.nn\n"
        ),
        "room/__init__.py": "NAME = 1\n",
        "room/part.py": (
            "from .. import low\nfrom ..low import later\n"
            "def f():\n    import importlib\n    importlib.import_module('dialogsum.face')\n"
        ),
    }
    for name, text in sources.items():
        (tmp_path / PACKAGE / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / PACKAGE / name).write_text(text)
    files = sorted((tmp_path / PACKAGE).rglob("*.py"))
    modules = frozenset(module_name(path, tmp_path) for path in files)
    imports, unreadable = collect_imports(files, tmp_path, modules)
    assert not unreadable
    found = {(i.source, i.target, i.lazy, i.via_package) for i in imports}
    assert found == {
        ("dialogsum", "dialogsum.face", False, False),
        ("dialogsum.face", "dialogsum.low", False, True),
        ("dialogsum.face", "dialogsum.room.part", False, False),
        ("dialogsum.low", "typing", False, False),
        ("dialogsum.low", "json", False, False),
        ("dialogsum.low", "dialogsum.room.part", True, False),
        ("dialogsum.low", "dialogsum.room", True, False),
        ("dialogsum.low", "torch.nn", True, False),
        ("dialogsum.room.part", "dialogsum.low", False, True),
        ("dialogsum.room.part", "dialogsum.low", False, False),
        ("dialogsum.room.part", "importlib", True, False),
        ("dialogsum.room.part", "dialogsum.face", True, False),
    }
    graph = ImportGraph(modules, tuple(imports), ()).edges()
    assert strongly_connected(graph) == [["dialogsum.face", "dialogsum.low", "dialogsum.room.part"]]
    path = cycle_path(graph, ["dialogsum.face", "dialogsum.low", "dialogsum.room.part"])
    assert [(e.source, e.target) for e in path] == [
        ("dialogsum.face", "dialogsum.room.part"),
        ("dialogsum.room.part", "dialogsum.face"),
    ]


def import_depth(graph: dict[str, list[Import]]) -> tuple[int, list[str]]:
    """The longest chain of imports (lazy ones included) in the acyclic graph, and one such chain."""
    longest: dict[str, list[str]] = {}

    def chain(module: str) -> list[str]:
        if module not in longest:
            longest[module] = [module]  # a cycle (reported by rule 1) ends the chain here
            below = max((chain(e.target) for e in graph[module]), key=len, default=[])
            longest[module] = [module, *below]
        return longest[module]

    deepest = max((chain(module) for module in sorted(graph)), key=len)
    return len(deepest), deepest


def test_docs_architecture_names_every_module_and_the_graph_depth() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w/]+\.py)`", text))
    files = {path.relative_to(PACKAGE_DIR).as_posix() for path in package_files()}
    missing = sorted(files - named)
    assert not missing, report(
        "Modules docs/architecture.md does not name (as `path/under/dialogsum.py`):", missing
    )
    stale = sorted(name for name in named - files if not (ROOT / name).exists() and "/" in name)
    assert not stale, report("docs/architecture.md names modules that do not exist:", stale)
    depth, deepest = import_depth(import_graph().edges())
    stated = re.search(r"import graph is (\d+) modules deep", text)
    assert stated, "docs/architecture.md must say 'the import graph is N modules deep'"
    assert int(stated.group(1)) == depth, (
        f"docs/architecture.md says the import graph is {stated.group(1)} modules deep; it is "
        f"{depth}: {' -> '.join(deepest)}"
    )


# -- rule 1 ---------------------------------------------------------------------------------------


def test_no_import_cycles() -> None:
    graph = import_graph().edges()
    cycles = []
    for component in strongly_connected(graph):
        path = cycle_path(graph, component)
        chain = " -> ".join([path[0].source, *(edge.target for edge in path)])
        cycles.append(report(f"cycle {chain} (component: {', '.join(component)})", path))
    assert not cycles, report("Import cycles (lazy imports count):", cycles)


# -- rule 2 ---------------------------------------------------------------------------------------


def test_nothing_below_the_face_imports_the_package() -> None:
    violations = [
        i
        for i in import_graph().imports
        if i.via_package and (layer := layer_of(i.source)) is not None and layer < 3
    ]
    assert not violations, report(
        "Modules below the face import dialogsum/__init__ (import from the defining module, "
        "e.g. `from dialogsum.hookspecs import hookimpl` or `import dialogsum.hookspecs as "
        "hookspecs`, not `from dialogsum import ...`):",
        violations,
    )


# -- rule 3 ---------------------------------------------------------------------------------------


def test_no_module_imports_a_higher_layer() -> None:
    violations = []
    for item in import_graph().internal():
        source, target = layer_of(item.source), layer_of(item.target)
        if source is not None and target is not None and target > source:
            violations.append(f"{item}   [{LAYER_NAMES[source]} -> {LAYER_NAMES[target]}]")
    assert not violations, report("Arrows pointing up the layers:", violations)


def production_files() -> list[Path]:
    """Source that ships or runs outside tests: the package, benchmarks, recipes, plugin code."""
    folders = [ROOT / "benchmarks", ROOT / "recipes", *sorted(ROOT.glob("plugins/*/dialogsum_*"))]
    files = [p for p in package_files() if module_name(p) != TESTING]
    files += [p for folder in folders if folder.is_dir() for p in sorted(folder.rglob("*.py"))]
    return [
        p for p in files if "__pycache__" not in p.parts and not within(module_name(p), [TESTING])
    ]


def test_production_code_never_imports_the_test_kit() -> None:
    modules = import_graph().modules
    assert TESTING in modules
    files = production_files()
    assert any(p.parts[-2] == "benchmarks" for p in files)
    imports, unreadable = collect_imports(files, ROOT, modules)
    # The package's own unreadable modules fail test_every_module_parses_and_has_a_layer.
    unreadable = [u for u in unreadable if not u.startswith(f"{PACKAGE}/")]
    assert not unreadable, report("Unreadable files:", unreadable)
    violations = [i for i in imports if within(i.target, [TESTING])]
    assert not violations, report(
        "Production code imports the test kit dialogsum.testing (only tests may):", violations
    )


# -- rule 4 ---------------------------------------------------------------------------------------


def test_only_the_face_reaches_the_built_ins_and_rooms_stay_apart() -> None:
    violations = []
    for item in import_graph().internal():
        below_rooms = item.source in FOUNDATION or item.source in PLUGIN_LAYER
        if below_rooms and within(item.target, BUILT_INS):
            violations.append(f"{item}   [the core imports a built-in; ask the registry]")
        for room in (TRAINING, SERVE, BATCH, SWEEP):
            if within(item.source, [room]) and within(item.target, BUILT_INS):
                violations.append(f"{item}   [room {room} imports a built-in; ask the registry]")
        if within(item.source, [TRAINING]) and within(item.target, [SERVE, BATCH, SWEEP]):
            violations.append(f"{item}   [room {TRAINING} imports {item.target}]")
        # Each built-in lives in its own folder and reaches the others only through the registry.
        for built_in in built_in_folders():
            if (
                within(item.source, [built_in])
                and within(item.target, BUILT_INS)
                and not within(item.target, [built_in])
            ):
                violations.append(f"{item}   [built-in {built_in} imports another built-in]")
    assert not violations, report("Arrows between rooms or into the built-ins:", violations)


def built_in_folders() -> list[str]:
    """Each built-in method or backend: a module or package under methods/ or backends/."""
    modules = import_graph().modules
    return sorted(m for m in modules for parent in BUILT_INS if m.rpartition(".")[0] == parent)


# -- rule 5 ---------------------------------------------------------------------------------------


def top_level(name: str) -> str:
    return name.partition(".")[0]


def parent_packages(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def test_torch_free_onnx_half_imports_no_torch_stack() -> None:
    graph = import_graph()
    assert set(TORCH_FREE_ONNX) <= graph.modules
    direct = [
        i
        for i in graph.imports
        if i.source in TORCH_FREE_ONNX and top_level(i.target) in TORCH_STACK
    ]
    # What importing them runs at once (their parent packages, dialogsum/__init__ included, and
    # everything imported at module level from there on) imports no torch stack at module level.
    eager = graph.edges(eager_only=True)
    reached: dict[str, list[str]] = {}
    frontier = [[module] for module in TORCH_FREE_ONNX]
    while frontier:
        path = frontier.pop()
        if path[-1] in reached:
            continue
        reached[path[-1]] = path
        # Importing a module runs its parent packages' __init__ first.
        parents = [p for p in parent_packages(path[-1]) if p in graph.modules]
        frontier.extend([*path, parent] for parent in parents)
        frontier.extend([*path, edge.target] for edge in eager[path[-1]])
    transitive = [
        f"{i}   [reached by importing: {' -> '.join(reached[i.source])}]"
        for i in graph.imports
        if i.source in reached and not i.lazy and top_level(i.target) in TORCH_STACK
    ]
    assert not direct + transitive, report(
        "The serving half of the onnxruntime backend reaches the torch stack:",
        direct + transitive,
    )


SERVE_WITHOUT_TORCH = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys

    BLOCKED = {"torch", "transformers", "peft", "optimum"}
    preloaded = sorted(BLOCKED & {name.partition(".")[0] for name in sys.modules})


    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this torch-free serving test", name=name)
            return None


    sys.meta_path.insert(0, Block())  # before dialogsum is imported

    import dialogsum.backends.onnxruntime.onnx_predictor
    import dialogsum

    folder, dialogues, generation = json.loads(sys.argv[1])
    serve = {"progress": False}
    named = dialogsum.Summarizer.from_pretrained(folder, backend="onnxruntime", backend_options=serve)
    picked = dialogsum.Summarizer.from_pretrained(folder, backend_options=serve)
    print(json.dumps({
        "preloaded": preloaded,
        "named": named.summarize(dialogues, **generation),
        "picked": picked.summarize(dialogues, **generation),
        "picked_backend": picked.backend,
        "predictor": type(picked.predictor).__module__,
        "blocked_loaded": sorted(BLOCKED & {name.partition(".")[0] for name in sys.modules}),
    }))
    """
)

DIALOGUES = [
    "#Person1#: Did you book the table for tonight?\n#Person2#: Yes, at eight, by the window.",
    "#Person1#: My laptop will not start.\n#Person2#: Bring it in tomorrow and we will look at it."
    "\n#Person1#: Thanks, I will come in the morning.",
]
GENERATION = {"max_new_tokens": 12, "num_beams": 2}


def run_python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    # Third-party plugin distributions are outside these rules; the built-ins always load.
    env = {**os.environ, "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("DIALOGSUM_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=SUBPROCESS_TIMEOUT,
    )


@pytest.fixture(scope="module")
def onnx_export(onnx_export_dir: Path) -> Path:
    """The session's ONNX export of the tiny model (tests/conftest.py)."""
    return onnx_export_dir


def test_an_onnx_export_serves_without_the_torch_stack(onnx_export: Path) -> None:
    from dialogsum import Summarizer

    served = Summarizer.from_pretrained(
        onnx_export, backend="onnxruntime", backend_options={"progress": False}
    )
    expected = served.summarize(DIALOGUES, **GENERATION)
    assert len(expected) == len(DIALOGUES) and all(isinstance(s, str) for s in expected)

    payload = json.dumps([str(onnx_export), DIALOGUES, GENERATION])
    result = run_python(SERVE_WITHOUT_TORCH, payload)
    assert result.returncode == 0, result.stderr[-3000:]
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["preloaded"] == [], "the interpreter loaded the torch stack before the block"
    assert child["blocked_loaded"] == [], f"serving imported {child['blocked_loaded']}"
    assert child["named"] == expected
    assert child["picked"] == expected
    assert child["picked_backend"] == "onnxruntime"  # from the manifest's export record
    assert child["predictor"] == "dialogsum.backends.onnxruntime.onnx_predictor"


LIGHT_IMPORT = textwrap.dedent(
    """
    import contextlib
    import io
    import json
    import sys

    HEAVY = {"torch", "transformers", "peft", "optimum", "onnxruntime"}


    def loaded():
        return sorted(HEAVY & {name.partition(".")[0] for name in sys.modules})


    import dialogsum
    import dialogsum.cli

    after_import = loaded()
    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        status = dialogsum.cli.main(["plugins", "--json"])
    print(json.dumps({
        "after_import": after_import,
        "after_plugins": loaded(),
        "status": status,
        "listed": sorted(row["name"] for row in json.loads(listing.getvalue())),
    }))
    """
)


def test_import_dialogsum_and_dialogsum_plugins_stay_light() -> None:
    result = run_python(LIGHT_IMPORT)
    assert result.returncode == 0, result.stderr[-3000:]
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["after_import"] == [], (
        f"`import dialogsum; import dialogsum.cli` loads {child['after_import']}"
    )
    assert child["status"] == 0
    assert {"full", "lora", "prompt_tuning", "torch", "onnxruntime"} <= set(child["listed"])
    assert child["after_plugins"] == [], f"`dialogsum plugins` loads {child['after_plugins']}"


# -- one version ----------------------------------------------------------------------------------


def test_the_version_has_one_source() -> None:
    if sys.version_info < (3, 11):
        tomllib = pytest.importorskip("tomli")
    else:
        import tomllib

    import dialogsum

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" in pyproject["project"]["dynamic"]
    assert "version" not in pyproject["project"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "dialogsum._version.__version__"
    }
    assert dialogsum.__version__ == importlib.metadata.version("dialogsum")

    version_file = PACKAGE_DIR / "_version.py"
    tree = ast.parse(version_file.read_text(encoding="utf-8"))
    imports = [
        f"_version.py:{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert not imports, report("dialogsum/_version.py must import nothing:", imports)
    # No second literal: every other module reads the version from _version.
    elsewhere = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in package_files()
        if path != version_file
        for node in ast.walk(parse_or_empty(path))
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        and any(
            isinstance(t, ast.Name) and t.id == "__version__"
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    ]
    assert not elsewhere, report("__version__ assigned outside dialogsum/_version.py:", elsewhere)


# -- names ----------------------------------------------------------------------------------------

#: The documented suffixes of pydantic models (docs/architecture.md, "Names"), by what they hold.
MODEL_SUFFIXES = ("Options", "Settings", "Config")
#: Models that are neither: records written to disk and the service's wire schema.
RECORDS = {
    "dialogsum.modeling": {"ModelManifest", "ExportInfo"},
    "dialogsum.adapter_serving": {"AdapterInfo"},
    # One entry of a search space (a range or choices), not the options of a call.
    "dialogsum.sweep.space": {"Dimension"},
    "dialogsum.serve.schema": {"SummarizeRequest", "Parameters", "Summary", "AdapterFolder"},
    "dialogsum.serve.openai_schema": {
        "CompletionRequest",
        "ChatCompletionRequest",
        "ChatMessage",
        "ContentPart",
    },
}


def test_pydantic_models_follow_the_suffix_convention() -> None:
    import importlib
    import inspect

    from pydantic import BaseModel

    wrong = []
    for module_name_ in sorted(import_graph().modules):
        if within(module_name_, [TESTING]) or module_name_.endswith("__main__"):
            continue  # the test kit is not the package's API; __main__ runs the CLI
        module = importlib.import_module(module_name_)
        for name, value in vars(module).items():
            if not (inspect.isclass(value) and issubclass(value, BaseModel)):
                continue
            if value.__module__ != module_name_ or name.startswith("_"):
                continue
            if not name.endswith(MODEL_SUFFIXES) and name not in RECORDS.get(module_name_, ()):
                wrong.append(f"{module_name_}.{name}")
    assert not wrong, report(
        f"Pydantic models named outside the convention (*{', *'.join(MODEL_SUFFIXES)}, or a "
        f"record listed in RECORDS):",
        wrong,
    )
