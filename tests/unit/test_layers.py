"""The layer diagram of DEVELOPERS.md ("Layout and dependency direction") as a checked contract.

Rule: a layer never imports one above it, not even inside a function. Every import of
``texttune`` counts, wherever it is written: at module top, inside a function (lazy), and
inside ``if TYPE_CHECKING:``. A TYPE_CHECKING import still names a dependency: the
annotation couples the lower layer to the upper one's types, and the import becomes real
the day someone needs the name at run time. Packages on the same level are independent:
one may import another only where ``SAME_LEVEL_ALLOWED`` says so.

The check reads the source with ``ast`` and imports nothing, so it is fast and runs alone::

    .venv/bin/python -m pytest tests/unit/test_layers.py   # add -rxX to see the xfail reasons
    .venv/bin/python tests/unit/test_layers.py             # the report, grouped by layer pair; exit 1 on violations

``make lint`` runs the second form.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "texttune"

#: Every module of the package belongs to the longest key that names it or a package above it.
#: A module may import its own unit and any unit of a lower level; nothing of a higher level.
#: ``texttune.__init__`` is the package's own ``__init__.py`` (the lazy ``__getattr__``).
LAYERS: dict[str, int] = {
    # level 0: errors, version, configuration
    "texttune.errors": 0,
    "texttune._version": 0,
    "texttune.hub": 0,
    "texttune.extras": 0,  # optional features and the extra that installs each
    "texttune.files": 0,  # generic atomic writes, used by backbones, inference, runs and the engine
    "texttune.config": 0,
    "texttune.config_checks": 0,
    "texttune.config_yaml": 0,
    "texttune.config_resume": 0,
    "texttune.config_fields": 0,
    "texttune.peft_config": 0,
    # level 1: independent building blocks (none imports another)
    "texttune.data": 1,
    "texttune.metrics": 1,
    "texttune.backbones": 1,
    "texttune.runs": 1,
    # level 2: the tasks, and the generation building block they call (batched, length-sorted
    # generation over a backend interface); the rest of inference (loading, CTranslate2) is above them
    "texttune.tasks": 2,
    "texttune.inference.generation": 2,
    "texttune.inference.backends": 2,
    "texttune.inference.scored": 2,  # generation on the loss pass's prompt cache, called by the text-to-text tasks
    "texttune.inference.options": 2,
    "texttune.inference.device": 2,  # --device/--dtype: checked by options, resolved when a model loads
    # level 3
    "texttune.inference": 3,
    # level 4: engine and serving never import each other
    "texttune.engine": 4,
    "texttune.serving": 4,
    # level 5
    "texttune.api": 5,
    "texttune.client": 5,
    "texttune.demo": 5,
    # level 6
    "texttune.cli": 6,
    "texttune.__init__": 6,
    "texttune.__main__": 6,
}

#: The only imports allowed between different units of one level: importer -> what it may import.
#: Level 0 is a chain, as DEVELOPERS.md draws it: errors | _version -> peft_config -> config_checks
#: -> config -> config_yaml (each may import those before it).
SAME_LEVEL_ALLOWED: dict[str, set[str]] = {
    # metrics are pure functions and their directions: the run catalog reads which way each improves
    "texttune.runs": {"texttune.metrics"},
    "texttune.tasks": {"texttune.inference.generation", "texttune.inference.backends", "texttune.inference.options",
                       "texttune.inference.scored"},
    "texttune.inference.generation": {"texttune.inference.backends", "texttune.inference.options"},
    "texttune.inference.scored": {"texttune.inference.generation", "texttune.inference.backends"},
    "texttune.inference.backends": {"texttune.inference.options"},
    "texttune.inference.options": {"texttune.inference.device"},
    "texttune.peft_config": {"texttune.errors", "texttune._version"},
    # annotations only (under TYPE_CHECKING): config imports config_checks to run them
    "texttune.config_checks": {"texttune.errors", "texttune._version", "texttune.peft_config", "texttune.config"},
    "texttune.config_fields": {"texttune.errors"},
    "texttune.config": {"texttune.errors", "texttune._version", "texttune.peft_config", "texttune.config_checks",
                        "texttune.config_fields"},
    "texttune.config_yaml": {
        "texttune.errors", "texttune._version", "texttune.peft_config", "texttune.config_checks", "texttune.config",
        "texttune.config_fields",
    },
    "texttune.config_resume": {"texttune.errors", "texttune.config"},
    "texttune.extras": {"texttune.errors"},
}

#: Internal imports inside a function that are by design: importing texttune stays cheap.
FUNCTION_IMPORTS_ALLOWED: set[tuple[str, str]] = {
    ("texttune.__init__", "__getattr__"),
    # The server loads models through texttune.api and must not load the training engine
    # (tests/integration/test_serve_process.py checks its modules stay out of a serving process).
    ("texttune.api", "fit"),
}


@dataclass(frozen=True)
class Import:
    """One import of the package: where it is written and which module it names."""

    path: Path
    line: int
    importer: str  # module name of the importing file
    target: str  # module name imported, resolved to a submodule where one exists
    names: tuple[str, ...]  # for ``from <target> import a, b`` where a, b are not modules
    function: str | None  # innermost enclosing function, None at module or class level
    type_checking: bool  # inside ``if TYPE_CHECKING:``


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    name = ".".join(parts)
    return f"{name}.__init__" if "." not in name else name


def find_modules(src: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``src``, by module name."""
    return {module_name(p, src): p for p in sorted((src / package).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _canonical(name: str, package: str) -> str:
    return f"{package}.__init__" if name == package else name


def collect_imports(path: Path, importer: str, package: str, modules: set[str]) -> list[Import]:
    """All imports of ``package`` in one file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    dotted = package if importer == f"{package}.__init__" else importer
    found: list[Import] = []

    def add(node: ast.stmt, targets: dict[str, list[str]], function: str | None, type_checking: bool) -> None:
        for target, names in targets.items():  # one record per statement and module
            if target == package or target.startswith(package + "."):
                canonical = _canonical(target, package)
                found.append(Import(path, node.lineno, importer, canonical, tuple(names), function, type_checking))

    def visit(node: ast.AST, function: str | None, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            add(node, {alias.name: [] for alias in node.names}, function, type_checking)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = dotted.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets: dict[str, list[str]] = {}
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    targets.setdefault(sub, [])
                else:
                    targets.setdefault(base, []).append(alias.name)
            add(node, targets, function, type_checking)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            name = getattr(node, "name", "<lambda>")
            for child in ast.iter_child_nodes(node):
                visit(child, name, type_checking)
            return
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, function, True)
            for child in node.orelse:
                visit(child, function, type_checking)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, function, type_checking)

    visit(tree, None, False)
    return found


def all_imports(src: Path = SRC, package: str = PACKAGE) -> list[Import]:
    modules = find_modules(src, package)
    names = set(modules) | {package}
    return [imp for name, path in modules.items() for imp in collect_imports(path, name, package, names)]


def unit_of(module: str, layers: dict[str, int]) -> str | None:
    """The longest key of ``layers`` that is ``module`` or a package above it."""
    best = None
    for unit in layers:
        if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best)):
            best = unit
    return best


def _what(imp: Import) -> str:
    """The module imported; for the package itself, also the names (``texttune.__version__``)."""
    if imp.target.endswith(".__init__") and imp.target.count(".") == 1 and imp.names:
        return ", ".join(f"{imp.target.removesuffix('.__init__')}.{name}" for name in imp.names)
    return imp.target


def _where(imp: Import, root: Path) -> str:
    try:
        shown = imp.path.relative_to(root)
    except ValueError:
        shown = imp.path
    return f"{shown}:{imp.line}"


def violations(
    imports: list[Import],
    layers: dict[str, int] = LAYERS,
    allowed: dict[str, set[str]] = SAME_LEVEL_ALLOWED,
    root: Path = ROOT,
) -> list[tuple[str, str, str]]:
    """``(importer unit, imported unit, message)`` for each import against the contract."""
    out = []
    for imp in imports:
        a, b = unit_of(imp.importer, layers), unit_of(imp.target, layers)
        if a is None or b is None:
            out.append((str(a), str(b), f"{_where(imp, root)}: unmapped module ({imp.importer} imports {imp.target})"))
            continue
        if a == b or layers[b] < layers[a] or (layers[b] == layers[a] and b in allowed.get(a, set())):
            continue
        how = " [TYPE_CHECKING]" if imp.type_checking else (f" [in {imp.function}()]" if imp.function else "")
        message = f"{_where(imp, root)}: {a} (level {layers[a]}) imports {b} (level {layers[b]}) ({_what(imp)}){how}"
        out.append((a, b, message))
    return out


#: Third-party libraries slow or optional enough that texttune imports them only where used.
HEAVY: frozenset[str] = frozenset({"torch", "lightning", "transformers", "datasets", "peft", "ctranslate2", "matplotlib",
                                   "fastapi", "uvicorn", "starlette", "sklearn", "onnxruntime", "tokenizers", "safetensors"})


def _top_level_libraries(path: Path) -> set[str]:
    """Root names of the modules ``path`` imports at module level (outside functions and TYPE_CHECKING)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or (
                isinstance(node, ast.If) and _is_type_checking(node.test)):
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def heavy_at_import(imports: list[Import], src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the heavy libraries importing it loads (its own module-level imports and its internal ones'), transitively."""
    modules = find_modules(src, package)
    direct = {name: _top_level_libraries(path) & HEAVY for name, path in modules.items()}
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        if imp.function is None and not imp.type_checking and imp.target in modules:
            edges[imp.importer].add(imp.target)
    closed: dict[str, set[str]] = {}

    def heavy(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if name not in closed:
            out = set(direct.get(name, set()))
            for target in edges[name] - seen - {name}:
                out |= heavy(target, seen | {name})
            closed[name] = out
        return closed[name]

    return {name: heavy(name) for name in modules}


def function_imports(
    imports: list[Import], allowed: set[tuple[str, str]] = FUNCTION_IMPORTS_ALLOWED, root: Path = ROOT,
    heavy: dict[str, set[str]] | None = None,
) -> list[str]:
    """Internal imports written inside a function body that belong at module top.

    Lazy is right only where importing the target at the top would load a heavy library
    (torch, lightning, fastapi...) the importer does not load already (``heavy``: module ->
    what importing it loads): ``texttune --help`` stays fast that way.
    """
    heavy = heavy or {}
    return [
        f"{_where(imp, root)}: {_what(imp)} imported in {imp.function}()"
        for imp in imports
        if imp.function is not None and (imp.importer, imp.function) not in allowed
        and not heavy.get(imp.target, set()) - heavy.get(imp.importer, set())
    ]


def report(imports: list[Import]) -> str:
    """The violations grouped by (importer layer -> imported layer) and the function-level counts."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for a, b, message in violations(imports):
        groups[(a, b)].append(message)
    lines = [f"{sum(map(len, groups.values()))} layer violations"]
    for (a, b), messages in sorted(groups.items(), key=lambda kv: (-LAYERS.get(kv[0][0], 99), kv[0])):
        lines.append(f"\n{a} -> {b}: {len(messages)}")
        lines.extend(f"  {m}" for m in messages)
    lazy = function_imports(imports, heavy=heavy_at_import(imports))
    per_file = Counter(m.split(":", 1)[0] for m in lazy)
    lines.append(f"\n{len(lazy)} internal imports inside functions, in {len(per_file)} files")
    lines.extend(f"  {n:3d}  {f}" for f, n in sorted(per_file.items(), key=lambda kv: (-kv[1], kv[0])))
    return "\n".join(lines)


# --- the contract on the real tree ------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    unmapped = [name for name in find_modules(SRC, PACKAGE) if unit_of(name, LAYERS) is None]
    assert not unmapped, f"add these modules to LAYERS in {Path(__file__).name}: {unmapped}"


def test_no_layer_imports_a_higher_one() -> None:
    found = [message for _, _, message in violations(all_imports())]
    assert not found, f"{len(found)} imports against the layer contract:\n" + "\n".join(found)


def test_internal_imports_are_at_module_top_unless_they_load_a_heavy_library() -> None:
    imports = all_imports()
    found = function_imports(imports, heavy=heavy_at_import(imports))
    assert not found, f"{len(found)} internal imports inside functions that belong at module top:\n" + "\n".join(found)


def test_the_package_and_its_cli_import_no_heavy_library() -> None:
    heavy = heavy_at_import(all_imports())
    assert heavy["texttune.__init__"] == set() and heavy["texttune.cli.main"] == set(), heavy["texttune.cli.main"]


# --- the checker itself, on a tiny fake package --------------------------------------------------

FAKE_LAYERS = {"pkg.low": 0, "pkg.other": 0, "pkg.high": 1, "pkg.__init__": 2}


def _fake(tmp_path: Path, files: dict[str, str]) -> list[tuple[str, str, str]]:
    for rel, text in {"pkg/__init__.py": "", **files}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return violations(all_imports(tmp_path, "pkg"), FAKE_LAYERS, {"pkg.other": {"pkg.low"}}, tmp_path)


def test_checker_catches_an_import_inside_a_function(tmp_path: Path) -> None:
    found = _fake(tmp_path, {"pkg/low.py": "def f():\n    if True:\n        from pkg import high\n", "pkg/high.py": ""})
    assert [(a, b) for a, b, _ in found] == [("pkg.low", "pkg.high")]
    assert found[0][2].startswith("pkg/low.py:3: pkg.low (level 0) imports pkg.high (level 1) (pkg.high)")
    assert "[in f()]" in found[0][2]


def test_checker_catches_a_type_checking_import(tmp_path: Path) -> None:
    text = "import typing\nif typing.TYPE_CHECKING:\n    from pkg.high.deep import Thing\n"
    found = _fake(tmp_path, {"pkg/low.py": text, "pkg/high/__init__.py": "", "pkg/high/deep.py": ""})
    assert [(a, b) for a, b, _ in found] == [("pkg.low", "pkg.high")]
    assert "(pkg.high.deep) [TYPE_CHECKING]" in found[0][2]


def test_checker_resolves_relative_imports(tmp_path: Path) -> None:
    files = {
        "pkg/low/__init__.py": "from .. import high\n",  # from pkg/low/__init__: .. is pkg
        "pkg/low/a.py": "from . import b\nfrom .b import x\nfrom ..high import y\n",
        "pkg/low/b.py": "",
        "pkg/high.py": "from .low import a\nimport pkg.low.b\n",  # downward: fine
    }
    found = _fake(tmp_path, files)
    assert sorted(message.split(": ")[0] for *_, message in found) == [
        "pkg/low/__init__.py:1",
        "pkg/low/a.py:3",
    ]


def test_checker_same_level_needs_an_allowance(tmp_path: Path) -> None:
    found = _fake(tmp_path, {"pkg/low.py": "import pkg.other\n", "pkg/other.py": "from pkg import low\n"})
    assert [(a, b) for a, b, _ in found] == [("pkg.low", "pkg.other")]  # other -> low is allowed


def test_checker_the_package_init_is_the_top(tmp_path: Path) -> None:
    found = _fake(tmp_path, {"pkg/high.py": "import pkg\nfrom pkg import __version__\n"})
    assert [(a, b) for a, b, _ in found] == [("pkg.high", "pkg.__init__")] * 2
    assert "(pkg.__version__)" in found[1][2]


def test_checker_reports_unmapped_modules(tmp_path: Path) -> None:
    found = _fake(tmp_path, {"pkg/stray.py": "from pkg import low\n", "pkg/low.py": ""})
    assert found and "unmapped module (pkg.stray imports pkg.low)" in found[0][2]


def test_checker_lists_function_imports(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/__init__.py").write_text("def __getattr__(name):\n    from pkg import low\n")
    (tmp_path / "pkg/low.py").write_text("import json\nimport pkg.other\n\n\nclass C:\n    def m(self):\n        import pkg.other\n")
    imports = all_imports(tmp_path, "pkg")
    assert function_imports(imports, {("pkg.__init__", "__getattr__")}, tmp_path) == [
        "pkg/low.py:7: pkg.other imported in m()"
    ]


if __name__ == "__main__":
    print(report(all_imports()))
    sys.exit(1 if violations(all_imports()) else 0)
