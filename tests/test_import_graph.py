"""No module of spreid_tf imports another that imports it back (issue 10).

The graph is read from the source with `ast`, not by importing: every `import` and
`from ... import` statement counts, at module level, inside functions and under
`if TYPE_CHECKING:` alike, because a late import only hides a cycle. An edge goes to
the module named: `from spreid_tf.data import registry` is an edge to
spreid_tf.data.registry (a module), `from spreid_tf.models import build_backbone` an
edge to spreid_tf.models (its __init__). A package's __init__ importing its
submodules is an edge like any other, so a submodule that imports names through its
parent package's __init__ closes a cycle; it must import the defining submodule.
Parent packages that Python initialises on the way to a submodule are not edges
(every submodule would otherwise "import" its own package). `importlib.import_module`
and `__import__` hide edges from this reading, so the package must not call them
with anything but a literal name (which counts as an edge).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "spreid_tf"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted module name -> source file, for every module under `package_dir`."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _targets(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    """The package modules one import statement imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                 for alias in node.names]
    targets = []
    for name in names:
        # `import a.b.c` names a.b.c; an attribute path falls back to its longest module prefix.
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            targets.append(name)
    return targets


def _dynamic_import(node: ast.AST) -> ast.AST | None:
    """The name argument of an `importlib.import_module(...)` or `__import__(...)` call."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return node.args[0] if name in ("import_module", "__import__") else None


def import_graph(package_dir: Path = PACKAGE_DIR) -> tuple[dict[str, set[str]], list[str]]:
    """(module -> the package modules it imports anywhere in its source, dynamic imports
    whose name is not a literal, as "file:line")."""
    modules = module_files(package_dir)
    graph: dict[str, set[str]] = {}
    hidden = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(_targets(node, module, path.name == "__init__.py", modules))
            argument = _dynamic_import(node)
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                edges.update(_targets(ast.Import(names=[ast.alias(argument.value)]), module, False, modules))
            elif argument is not None:
                hidden.append(f"{path.relative_to(package_dir.parent)}:{node.lineno}")
        edges.discard(module)
        graph[module] = edges
    return graph, hidden


def find_cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], set[str]]]:
    """(a cycle: a path that returns to its start, the modules of its strongly connected
    component), one per component that has a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm; the graph is small
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)

    cycles = []
    for component in components:
        start = min(component)
        # Shortest way back to `start` inside the component (breadth first).
        parents = {start: None}
        queue = [start]
        end = None
        while queue and end is None:
            node = queue.pop(0)
            for succ in sorted(graph[node] & component):
                if succ == start:
                    end = node
                    break
                if succ not in parents:
                    parents[succ] = node
                    queue.append(succ)
        path = [start]
        while end is not None and end != start:
            path.insert(1, end)
            end = parents[end]
        cycles.append((path + [start], component))
    return sorted(cycles, key=lambda cycle: cycle[0])


@pytest.fixture(scope="module")
def package_graph() -> tuple[dict[str, set[str]], list[str]]:
    return import_graph()


def test_graph_reads_the_package(package_graph):
    graph, _ = package_graph
    assert "spreid_tf.data.registry" in graph
    assert "spreid_tf.data.convert" in graph
    assert "spreid_tf.data.registry" in graph["spreid_tf.data.convert"]


def test_finds_a_cycle_and_names_its_path():
    graph = {"a": {"b"}, "b": {"c", "f"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": {"b"}}
    assert find_cycles(graph) == [(["a", "b", "c", "a"], {"a", "b", "c", "f"})]


@pytest.mark.parametrize("source, target", [
    ("from spreid_tf.data import registry", "spreid_tf.data.registry"),
    ("from spreid_tf.data import DATASETS_NOT_A_MODULE", "spreid_tf.data"),
    ("import spreid_tf.data.registry as r", "spreid_tf.data.registry"),
    ("from . import registry", "spreid_tf.data.registry"),
    ("from .readers import market1501", "spreid_tf.data.readers.market1501"),
    ("from .. import atomic", "spreid_tf.atomic"),
])
def test_import_statements_resolve(source, target):
    modules = module_files()
    node = ast.parse(source).body[0]
    assert _targets(node, "spreid_tf.data.convert", False, modules) == [target]


def test_no_import_cycles(package_graph):
    graph, _ = package_graph
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in spreid_tf:\n" + "\n".join(
        f"{' -> '.join(path)}  (modules in this tangle: {', '.join(sorted(component))})"
        for path, component in cycles)


def test_no_dynamic_imports(package_graph):
    _, hidden = package_graph
    assert not hidden, f"imports this test cannot see (use a plain import statement): {hidden}"


def test_readers_do_not_import_the_miniatures_or_the_registry(package_graph):
    graph, _ = package_graph
    readers = [m for m in graph if m.startswith("spreid_tf.data.readers")]
    assert "spreid_tf.data.readers.market1501" in readers
    for reader in readers:
        bad = sorted(t for t in graph[reader]
                     if t.startswith("spreid_tf.data.synthetic") or t == "spreid_tf.data.registry")
        assert not bad, f"{reader} imports {bad}"
