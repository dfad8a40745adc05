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
