"""The code's layout: no import cycle among the project's modules, no function longer than a screen.

Read from the source with `ast`, nothing imported. The project's modules are `app.py`,
`operator_panel.py`, `ui/` and `tts_core/`. An import is an edge to the module it names
(`from . import audio` names `tts_core.audio`; `from .engines import Engine`, the package
`tts_core.engines`); imports under `if TYPE_CHECKING:` are left out, as they never run.

Two graphs are checked. Module-level imports are what make a cycle fail at import time
(a name read from a module that is half-initialized). Imports inside functions run later,
so they cannot fail that way, but a cycle through one is still two modules that each need
the other (how `config` and `engines` once read each other's names): the second test holds
those too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LONGEST_FUNCTION = 80  # lines, decorators left out, nested functions counted in their parent



def project_files() -> list[Path]:
    files = [ROOT / "app.py"]
    for package in ("ui", "tts_core"):
        files += sorted((ROOT / package).rglob("*.py"))
    return [f for f in files if f.exists()]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
        or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(node: ast.AST, module_level: bool = True):
    """Each import statement under `node` with whether it runs when the module is imported
    (not inside a function); `if TYPE_CHECKING:` bodies are skipped."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, module_level
        elif _type_checking(child):
            yield from imports(ast.Module(body=child.orelse, type_ignores=[]), module_level)
        else:
            inside = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from imports(child, module_level and not inside)


def import_graph(module_level_only: bool) -> dict[str, set[str]]:
    """module -> the project's modules it imports."""
    paths = {module_name(p): p for p in project_files()}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, at_import in imports(ast.parse(path.read_text(), str(path))):
            if module_level_only and not at_import:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in paths]
                targets = submodules + ([base] if len(submodules) < len(node.names) else [])
            graph[name].update(t for t in targets if t in paths and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [a, b, ..., a], or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle_at_import_time():
    cycle = find_cycle(import_graph(module_level_only=True))
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_even_through_imports_inside_functions():
    cycle = find_cycle(import_graph(module_level_only=False))
    assert cycle is None, "import cycle (counting imports inside functions): " + " -> ".join(cycle)


def test_the_graph_sees_the_imports_it_is_named_for():
    """The checks above are only as good as the graph: it holds edges of each kind."""
    at_import, every = import_graph(True), import_graph(False)
    assert "tts_core.audio" in at_import["tts_core.plan"]  # from . import audio as audio_io
    assert "tts_core.families" in at_import["tts_core.config"]  # from .families import FAMILIES
    assert "tts_core.engines" in at_import["tts_core.registry"]  # from .engines import Engine
    assert "tts_core.config" not in at_import["tts_core.engines"]  # under TYPE_CHECKING only
    assert "tts_core.engines" in every["tts_core.prefetch"] - at_import["tts_core.prefetch"]


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} is "
            f"{node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION]


def _file_cases():
    for path in project_files():
        yield pytest.param(path, id=path.relative_to(ROOT).as_posix())


@pytest.mark.parametrize("path", _file_cases())
def test_no_function_is_longer_than_a_screen(path):
    offenders = long_functions(path)
    assert not offenders, f"longer than {LONGEST_FUNCTION} lines: " + "; ".join(offenders)
