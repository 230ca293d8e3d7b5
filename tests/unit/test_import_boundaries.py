"""Guard: only `dataplane` and `storage.catalog` import `artifactstore.storage.backends`.

Everything else reaches blobs through `dataplane.spi`, so a new backend never touches the store.
The check parses every module under artifactstore/ with ast; nothing is imported or run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import artifactstore
import artifactstore.storage

PACKAGE_ROOT = Path(artifactstore.storage.__file__).resolve().parent.parent
FORBIDDEN = "artifactstore.storage.backends"


def may_import_backends(relative: Path) -> bool:
    """The dataplane, the storage catalog and the backends themselves are allowed."""
    parts = relative.parts
    return (
        parts[0] == "dataplane"
        or parts[:2] == ("storage", "backends")
        or parts == ("storage", "catalog.py")
    )


def imported_modules(path: Path, package: str) -> list[str]:
    """Return the absolute names path imports ('from x import y' as x.y); package is path's."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = parts[: len(parts) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def package_of(path: Path) -> str:
    """The dotted package a module file under PACKAGE_ROOT belongs to."""
    return ".".join(("artifactstore", *path.relative_to(PACKAGE_ROOT).parent.parts))


def imports_backends(path: Path, package: str) -> bool:
    return any(
        name == FORBIDDEN or name.startswith(FORBIDDEN + ".")
        for name in imported_modules(path, package)
    )


def test_only_dataplane_and_storage_import_backends() -> None:
    modules = sorted(PACKAGE_ROOT.rglob("*.py"))
    assert PACKAGE_ROOT / "storage" / "catalog.py" in modules
    offenders = [
        str(path.relative_to(PACKAGE_ROOT))
        for path in modules
        if not may_import_backends(path.relative_to(PACKAGE_ROOT))
        and imports_backends(path, package_of(path))
    ]
    assert offenders == []


def test_the_check_sees_each_import_form(tmp_path: Path) -> None:
    forms = [
        "import artifactstore.storage.backends.local",
        "from artifactstore.storage.backends import local",
        "from artifactstore.storage.backends.local import LocalBackend",
        "from artifactstore.storage import backends",
        "from .storage.backends import local",
        "from ..storage.backends.local import LocalBackend",
    ]
    for index, source in enumerate(forms):
        module = tmp_path / f"m{index}.py"
        module.write_text(source + "\n")
        package = "artifactstore.web" if source.startswith("from ..") else "artifactstore"
        assert imports_backends(module, package), source
    harmless = tmp_path / "ok.py"
    harmless.write_text("from artifactstore.storage.spi import StorageBackend\n")
    assert not imports_backends(harmless, "artifactstore")


# -- no import circles, and faces above the public surface ----------------------------------

FACES = ("cli", "web.py", "api.py", "api_files.py", "api_recent.py", "api_write.py", "api_v2.py")
"""The command line (a package) and the web app: they use only the public library surface."""


def module_name(path: Path) -> str:
    """The dotted module name of a file under PACKAGE_ROOT ('artifactstore.cli' for its
    __init__.py)."""
    parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
    return ".".join(("artifactstore", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def is_type_checking_block(node: ast.AST) -> bool:
    """True for `if TYPE_CHECKING:`, whose imports never run."""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )


def runtime_imports(path: Path, known: set[str]) -> set[str]:
    """The artifactstore modules path imports when it runs (at any depth, not for typing)."""
    found: set[str] = set()
    package = package_of(path)

    def visit(node: ast.AST) -> None:
        if is_type_checking_block(node):
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update(nearest_module(name, known) for name in imported_modules_of(node, package))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    found.discard(module_name(path))
    found.discard("")
    return found


def nearest_module(name: str, known: set[str]) -> str:
    """The module an imported name lives in ('' when it is not an artifactstore module)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def imported_modules_of(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The absolute names one import statement names ('from x import y' as x.y)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parent = parts[: len(parts) - node.level + 1]
        base = ".".join([*parent, base] if base else parent)
    return [f"{base}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Every artifactstore module and the artifactstore modules it imports at run time."""
    paths = {module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    known = set(paths)
    return {name: runtime_imports(path, known) for name, path in paths.items()}


def find_circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle in graph (its modules, the first repeated at the end), or []."""
    done: set[str] = set()

    def walk(name: str, trail: list[str]) -> list[str]:
        if name in trail:
            return [*trail[trail.index(name) :], name]
        if name in done:
            return []
        for imported in sorted(graph.get(name, ())):
            circle = walk(imported, [*trail, name])
            if circle:
                return circle
        done.add(name)
        return []

    for name in sorted(graph):
        circle = walk(name, [])
        if circle:
            return circle
    return []


def test_no_module_imports_itself_through_others() -> None:
    graph = import_graph()
    assert "artifactstore.cbor" in graph["artifactstore.events.model"]
    assert find_circle(graph) == []


def test_the_circle_check_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_circle(graph) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) == []


def face_imports_outside_the_surface(path: Path, package: str = "artifactstore") -> list[str]:
    """The imports of a face module that are neither public names nor the CLI's own modules."""
    public = set(artifactstore.__all__) | {face.removesuffix(".py") for face in FACES}
    bad: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "artifactstore" and not node.level:
            bad.extend(f"artifactstore.{a.name}" for a in node.names if a.name not in public)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for name in imported_modules_of(node, package):
                module = name.removeprefix("artifactstore.").partition(".")[0]
                if name.startswith("artifactstore.") and module not in public:
                    bad.append(name)
    return bad


def test_the_cli_and_the_web_app_import_only_the_public_surface() -> None:
    faces = [
        path
        for face in FACES
        for path in (
            [PACKAGE_ROOT / face] if face.endswith(".py") else (PACKAGE_ROOT / face).rglob("*.py")
        )
    ]
    assert len(faces) > 2
    offenders = {
        str(p.relative_to(PACKAGE_ROOT)): face_imports_outside_the_surface(p) for p in faces
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_surface_check_sees_a_reach_past_it(tmp_path: Path) -> None:
    module = tmp_path / "face.py"
    module.write_text(
        "from artifactstore import ArtifactStore, schema\n"
        "from artifactstore.store import ArtifactStore\n"
        "from artifactstore.cli import output\n"
    )
    assert face_imports_outside_the_surface(module) == [
        "artifactstore.schema",
        "artifactstore.store.ArtifactStore",
    ]
