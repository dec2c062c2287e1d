"""The package's shape: the folder tree is the architecture, so its import graph must say the same.

Every `import` and `from ... import` of a measure module is read from the source (including those
inside functions, which the lazy builders in runtime.py use), so what is checked is what the code
can import, not what one run happened to.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "measure"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def _type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST):
    """ast.walk, less the bodies of `if TYPE_CHECKING:`: a name imported only for annotations is
    not an import at run time (the sandbox's page and server name the Sandbox that starts them)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if _type_checking(node):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str) -> set[str]:
    """The measure modules `name` imports by name (a `from pkg import mod` counts as pkg.mod)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in _nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles() -> list[list[str]]:
    """Every import cycle, each once, as the path that closes it."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(GRAPH[node]):
            if nxt == start:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    found.append([*path, start])
            elif nxt not in path and nxt > start:  # each cycle from its smallest member only
                visit(start, nxt, [*path, nxt])

    for name in sorted(GRAPH):
        visit(name, name, [name])
    return found


def test_the_graph_sees_imports_inside_functions():
    # runtime builds its objects lazily: those imports sit inside functions and must still count.
    assert "measure.functions.receive" in GRAPH["measure.runtime"]
    assert "measure.tune.auth" in GRAPH["measure.tune.client"]


def test_the_graph_leaves_out_imports_for_annotations_only():
    assert "measure.dev.sandbox.http" in GRAPH["measure.dev.sandbox.api"]
    assert "measure.dev.sandbox.api" not in GRAPH["measure.dev.sandbox.http"]


def test_no_module_imports_one_that_imports_it_back():
    assert cycles() == []


# What each layer may import, beside the shared top level (config, logs). The functions and
# runtime wire layers together; a layer below never reaches up into them or into the tools.
ALLOWED = {
    "measure.events": {"measure.events"},
    "measure.tune": {"measure.tune", "measure.events"},
    "measure.gcp": {"measure.gcp"},
    "measure.pipeline": {"measure.pipeline", "measure.events", "measure.tune", "measure.gcp"},
}
SHARED = {"measure.config", "measure.logs", "measure.retryafter"}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(layer):
    def in_layer(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    reaching = {
        f"{name} -> {target}"
        for name, targets in GRAPH.items() if in_layer(name, layer)
        for target in targets
        if target not in SHARED and target != "measure" and not any(in_layer(target, ok) for ok in ALLOWED[layer])
    }
    assert not reaching, sorted(reaching)


def test_nothing_deployed_imports_a_tool():
    tools = ("measure.ops", "measure.dev")
    deployed = [n for n in GRAPH if not n.startswith(tools) and n not in (
        "measure.__main__", "measure.signing", "measure.links")]
    reaching = {f"{n} -> {t}" for n in deployed for t in GRAPH[n] if t.startswith(tools)}
    assert not reaching, sorted(reaching)


def test_a_test_file_stands_beside_the_module_it_covers():
    # tests/<layer>/test_<module>.py for measure/<layer>/<module>.py: a module without one is named here.
    untested = [
        name for name, path in MODULES.items()
        if path.name != "__init__.py" and path.parent != PACKAGE
        and not any((ROOT / "tests" / path.parent.relative_to(PACKAGE)).glob(f"test_{path.stem}*.py"))
    ]
    assert untested == [], untested
