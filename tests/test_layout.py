"""The reusable app never depends on the demo host."""
import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app" / "eventtrail"
FORBIDDEN = {"community", "config"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_eventtrail_never_imports_the_demo_host():
    offenders = {
        str(path.relative_to(APP)): sorted(imported_roots(path) & FORBIDDEN)
        for path in APP.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_eventtrail_is_importable_as_a_package():
    import eventtrail

    assert Path(eventtrail.__file__).parent == APP


# --- the import graph: layers only point down, and nothing is in a cycle ------------------------

# Highest first. A module may import its own layer or any below it, never one above.
LAYERS = [
    ("entry", ["eventtrail", "apps", "urls", "views", "checks", "middleware", "signals",
               "collect", "testing", "templatetags", "management", "api", "analytics"]),
    ("capture", ["capture"]),
    ("delivery", ["delivery"]),
    ("build", ["build", "processors"]),
    ("stores", ["stores"]),
    ("foundations", ["conf", "schema", "registry", "ids", "stats", "privacy", "models", "draft",
                     "routers", "enrichment", "event_types", "logstash", "migrations"]),
]


def module_name(path: Path) -> str:
    parts = ["eventtrail", *path.relative_to(APP).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in APP.rglob("*.py")}


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "eventtrail"
    for rank, (_, tops) in enumerate(LAYERS):
        if top in tops:
            return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imports_of(module: str) -> set[str]:
    """Every eventtrail module ``module`` imports, at any depth (function-level imports count),
    leaving out ``if TYPE_CHECKING:`` blocks, which never run."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            for child in getattr(node, "orelse", []):
                visit(child)
            return
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import sub`` imports the submodule when there is one.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]
        else:
            names = []
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_a_layer_above_its_own():
    upward = sorted(
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
        f"({LAYERS[layer_of(target)][0]})"
        for module, targets in GRAPH.items() for target in targets
        if layer_of(target) < layer_of(module)
    )
    assert upward == []


def test_no_module_is_in_an_import_cycle():
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            connect(node)
    assert cycles == []


def test_the_graph_check_sees_function_level_imports():
    # capture hands events to delivery; the edge must be visible to the checks above.
    assert "eventtrail.delivery" in GRAPH["eventtrail.capture"]
    assert "eventtrail.stores.query" in GRAPH["eventtrail.stores.base"]
