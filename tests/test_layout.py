"""The package's arrows point one way: the command-line tools under `scripts/` use the library, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import latent_triplane_ns

PACKAGE = Path(latent_triplane_ns.__file__).parent


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_no_library_module_imports_a_command_line_tool():
    library = [p for p in PACKAGE.rglob("*.py") if PACKAGE / "scripts" not in p.parents]
    assert len(library) > 20
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(
            m for m in imported_modules(p) if m.startswith("latent_triplane_ns.scripts")
        )
        for p in library
    }
    assert {k: v for k, v in offenders.items() if v} == {}
