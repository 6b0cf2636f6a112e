"""The layers hold: flows/ is pure, ovsdb/ knows nothing of controller/, and
no dvn module imports itself back through others. Every import counts, the
ones inside functions too: a lazy import is a dependency all the same."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("flows", "ovsdb", "controller")
# flows/ computes; it opens nothing, waits for nothing and reads no clock.
NOT_IN_FLOWS = ("controller", "ovsdb", "os_ken", "ovsdbapp", "ovs", "socket", "threading", "time", "eventlet")


def _modules():
    out = {}
    for package in PACKAGES:
        for name in sorted(os.listdir(os.path.join(ROOT, package))):
            if name.endswith(".py"):
                module = package if name == "__init__.py" else "%s.%s" % (package, name[:-3])
                out[module] = os.path.join(ROOT, package, name)
    return out


MODULES = _modules()


def _imports(path):
    """The modules a file imports (for ``from a import b``: a.b if that is a module, else a)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # dvn uses absolute imports only
                raise AssertionError("%s: relative import" % path)
            for alias in node.names:
                full = "%s.%s" % (node.module, alias.name)
                found.add(full if full in MODULES else node.module)
    return found


GRAPH = {module: _imports(path) for module, path in MODULES.items()}


def _top(name):
    return name.split(".")[0]


@pytest.mark.parametrize("module", [m for m in MODULES if _top(m) == "flows"])
def test_flows_is_pure(module):
    bad = sorted(name for name in GRAPH[module] if _top(name) in NOT_IN_FLOWS)
    assert not bad, "%s imports %s" % (module, ", ".join(bad))


@pytest.mark.parametrize("module", [m for m in MODULES if _top(m) == "ovsdb"])
def test_ovsdb_does_not_import_the_controller(module):
    bad = sorted(name for name in GRAPH[module] if _top(name) == "controller")
    assert not bad, "%s imports %s" % (module, ", ".join(bad))


def _cycle():
    """One import cycle among dvn's modules (a list of modules), or None."""
    edges = {m: sorted(n for n in deps if n in MODULES and n != m) for m, deps in GRAPH.items()}
    state = {}   # module -> "open" (on the path) or "done"
    path = []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for dep in edges[module]:
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(edges):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_walk_sees_the_imports_it_must(tmp_path):
    # The checks above are only as good as the graph: it has lazy imports
    # and resolves "from package import module".
    path = tmp_path / "m.py"
    path.write_text("import os\nfrom flows import acl\nfrom flows.flow import Flow\n\n\n"
                    "def f():\n    from controller import core\n")
    assert _imports(str(path)) == {"os", "flows.acl", "flows.flow", "controller.core"}
    assert len(MODULES) > 20 and "flows.flow" in GRAPH["flows.acl"]


def test_health_checks_do_not_know_the_core():
    # The Prober gets what it needs as callbacks (controller.health.Prober).
    assert not {"controller.core", "controller.api"} & GRAPH["controller.health"]
