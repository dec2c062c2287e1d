"""The package's shape: the folder tree is the architecture, so its import graph must say the same.

Every `import` and `from ... import` of a measure module is read from the source (including those
inside functions, which the lazy builders in runtime.py use), so what is checked is what the code
can import, not what one run happened to.
"""

from __future__ import annotations

import ast
import json
import re
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


# What each module may import, by the longest prefix of its name that is listed here. The bottom
# (config, logs, retryafter) imports no measure module; each layer only those below it; the
# functions and runtime wire layers together; the tools (ops, dev) and the public re-export modules
# sit on top. Every module is an importer here: one without an entry fails the test below.
BOTTOM = {"measure.config", "measure.logs", "measure.retryafter"}
LAYERS = {"measure.events", "measure.tune", "measure.gcp", "measure.pipeline", "measure.functions"}
ALLOWED = {
    "measure": set(),
    **{name: set() for name in BOTTOM},
    "measure.events": {"measure.events"},
    "measure.tune": {"measure.tune", "measure.events"},
    "measure.gcp": {"measure.gcp"},
    "measure.pipeline": {"measure.pipeline", "measure.events", "measure.tune", "measure.gcp"},
    "measure.functions": LAYERS,
    "measure.runtime": LAYERS,
    "measure.signing": {"measure.tune"},
    "measure.links": {"measure.tune"},
    "measure.ops": LAYERS | {"measure.ops"},
    "measure.dev": LAYERS | {"measure.ops", "measure.dev"},
    "measure.__main__": {"measure.ops"},
}


def in_package(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def rule_for(module: str) -> str | None:
    matching = [prefix for prefix in ALLOWED if in_package(module, prefix)]
    return max(matching, key=len) if matching else None


def test_every_module_has_a_rule():
    assert [name for name in GRAPH if rule_for(name) is None] == []


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_module_imports_only_what_sits_below_it(layer):
    # The bottom is below everything but itself; `import measure` (the package) is no arrow.
    below = ALLOWED[layer] | (BOTTOM if layer not in BOTTOM and layer != "measure" else set())
    reaching = {
        f"{name} -> {target}"
        for name, targets in GRAPH.items() if rule_for(name) == layer
        for target in targets
        if target != "measure" and not any(in_package(target, ok) for ok in below)
    }
    assert not reaching, sorted(reaching)


def test_the_bottom_imports_no_measure_module():
    # config.py once imported measure.pipeline.retry for its schedule: an arrow upward.
    assert {name: GRAPH[name] - {"measure"} for name in BOTTOM} == {name: set() for name in BOTTOM}


# --- what never ships -------------------------------------------------------------------------

# The one list: terraform's `not_shipped` (paths under measure/, each a prefix) is read from the .tf.
SOURCE_TF = next(ROOT.glob("terraform/**/source.tf"))
NOT_SHIPPED = json.loads(re.search(r"^\s*not_shipped\s*=\s*(\[.*?\])", SOURCE_TF.read_text(), re.M | re.S).group(1))


def shipped(name: str) -> bool:
    path = MODULES[name].relative_to(PACKAGE).as_posix()
    return not any(path.startswith(prefix) for prefix in NOT_SHIPPED)


def test_the_not_shipped_list_is_the_tools_and_the_public_re_exports():
    folders = sorted(entry for entry in NOT_SHIPPED if entry.endswith("/"))
    assert folders == ["dev/", "ops/"]
    assert all((PACKAGE / entry).is_file() for entry in NOT_SHIPPED if not entry.endswith("/"))


def test_nothing_shipped_imports_what_does_not_ship():
    reaching = {f"{n} -> {t}" for n in GRAPH if shipped(n) for t in GRAPH[n] if not shipped(t)}
    assert not reaching, sorted(reaching)


def test_design_md_names_exactly_what_does_not_ship():
    """Each line of docs/design.md's package tree that says "never deployed" names entries of the list,
    and every entry is on such a line."""
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    tree = design.split("```\nmeasure/\n", 1)[1].split("```", 1)[0]
    never = [line for line in tree.splitlines() if "never deployed" in line]
    named = {word.rstrip(",:") for line in never for word in line.split()
             if word.rstrip(",:").endswith((".py", "/"))}
    assert named == set(NOT_SHIPPED), (sorted(named), NOT_SHIPPED)


def test_a_test_file_stands_beside_the_module_it_covers():
    # tests/<layer>/test_<module>.py for measure/<layer>/<module>.py: a module without one is named here.
    untested = [
        name for name, path in MODULES.items()
        if path.name != "__init__.py" and path.parent != PACKAGE
        and not any((ROOT / "tests" / path.parent.relative_to(PACKAGE)).glob(f"test_{path.stem}*.py"))
    ]
    assert untested == [], untested
