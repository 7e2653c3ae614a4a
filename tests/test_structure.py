"""The package's shape: the library never imports the book's tooling (qtbook), and no module
imports itself back through others (every import counted, those inside functions too; not those under
`if TYPE_CHECKING:`, which never run: they name types for annotations)."""
import ast
import inspect
import typing
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"qt_helpers": ROOT / "qt_helpers", "qtbook": ROOT / "tools" / "qtbook"}  # the library, the tooling


def module_name(path):
    package = next(p for p in PACKAGES.values() if p in path.parents)
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def run_nodes(tree):
    """Every node of `tree` but those under `if TYPE_CHECKING:`."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        typing_only = isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        todo.extend(node.orelse if typing_only else ast.iter_child_nodes(node))


def imports(path):
    """The qt_helpers modules that `path` imports, resolved from relative imports."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in run_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found |= {t for t in targets if t.split(".")[0] in PACKAGES and module_path(t) is not None}
    return found - {name}


def module_path(name):
    top, *rest = name.split(".")
    path = PACKAGES[top].joinpath(*rest)
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


GRAPH = {module_name(p): imports(p) for package in PACKAGES.values() for p in sorted(package.rglob("*.py"))}


def test_the_library_never_imports_the_tooling():
    library = {m for m in GRAPH if not m.startswith("qtbook")}
    assert len(library) > 10
    assert "qtbook.experiments" in GRAPH
    for module in library:
        wrong = {t for t in GRAPH[module] if t.startswith("qtbook")}
        assert not wrong, f"{module} imports the tooling: {sorted(wrong)}"


def test_no_import_cycles():
    packages = {m for m in GRAPH if module_path(m).name == "__init__.py"}  # a package's __init__ re-exports
    graph = {m: {t for t in ts if t not in packages} for m, ts in GRAPH.items() if m not in packages}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as e:
        msg = f"import cycle: {' -> '.join(e.args[1])}"
        raise AssertionError(msg) from None


def test_the_public_api_is_annotated():
    """Every function of `qt_helpers.__all__`, and every public method (and constructor) its classes define, has
    its parameters and return annotated, and the annotations resolve (`typing.get_type_hints`)."""
    import qt_helpers

    checked = 0
    for name in qt_helpers.__all__:
        obj = getattr(qt_helpers, name)
        members = vars(obj).items() if inspect.isclass(obj) else [(name, obj)] if inspect.isfunction(obj) else []
        for attr, f in members:
            if inspect.isfunction(f) and (attr == "__init__" or not attr.startswith("_")):
                hints = typing.get_type_hints(f)
                params = set(inspect.signature(f).parameters) - {"self"}
                assert "return" in hints, f"{name}.{attr}: no return annotation"
                assert params <= set(hints), f"{name}.{attr}: {sorted(params - set(hints))} not annotated"
                checked += 1
    assert checked > 40
