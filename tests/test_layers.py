"""The package layout: no import circle anywhere in ``engine/``, and imports point down the layers.

Imports inside functions count; ``if TYPE_CHECKING:`` ones do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "engine"

# Lower index = lower layer. A module may import its own layer's modules and any lower layer's.
LAYERS: list[set[str]] = [
    {"format", "errors", "single_flight", "private_files"},
    {"core", "dtmf"},
    {"audio", "tts", "wire"},
    {"toml_fields"},
    {"sip_config"},
    {"config"},
    {"admission", "media"},
    {"local", "net"},
    {"server", "web"},
    {"cli"},
    {"testing"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ENGINE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "engine":
                found.update(f"engine.{alias.name}" for alias in node.names)
            elif node.module.startswith("engine."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("engine."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ENGINE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            while target not in modules and "." in target:  # engine.x.y -> the module or package that holds it
                target = target.rsplit(".", 1)[0]
            if target != name and target in modules:
                targets.add(target)
        graph[name] = targets
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # the engine package itself (its __init__ imports nothing of the engine)
    for index, names in enumerate(LAYERS):
        if parts[1] in names:
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def test_every_import_points_down_the_layers() -> None:
    wrong = [f"{module} ({_layer(module)}) imports {target} ({_layer(target)})"
             for module, targets in _graph().items() for target in targets
             if _layer(target) > _layer(module)]
    assert not wrong, wrong


def test_no_import_circle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                circles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                walk(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    assert not circles, circles


def test_the_graph_sees_function_level_imports() -> None:
    """The checker itself: an import inside a function body is an edge (the CLI imports its commands so)."""
    assert "engine.cli.render" in _graph()["engine.cli.main"]
