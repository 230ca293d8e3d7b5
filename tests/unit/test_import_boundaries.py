"""Guard: only `dataplane` and `storage.catalog` import `artifactstore.storage.backends`.

Everything else reaches blobs through `dataplane.spi`, so a new backend never touches the store.
The check parses every module under artifactstore/ with ast; nothing is imported or run.
"""

from __future__ import annotations

import ast
from pathlib import Path

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
