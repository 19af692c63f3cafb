"""The direction of imports in src/ (docs/development.md#import-layers): the import-linter contracts of
pyproject.toml hold, every module of src/ has its place in the layers, and no module imports itself back
through others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter's own TOML reader
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def src_graph() -> grimp.ImportGraph:
    """Every import of one src/ module by another, also those inside functions (as import-linter sees them)."""
    sys.path.insert(0, str(ROOT))
    try:
        return grimp.build_graph("src", cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))


def layers_contract() -> dict:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["id"] == "layers")


def test_the_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.is_file(), f"{lint_imports} is missing: install the dev extras (pip install -e '.[dev]')"
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    print(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "0 broken" in done.stdout


def test_every_module_of_src_stands_in_a_layer():
    """A new package or top-level module must be placed in the layers contract, or nothing checks its imports.
    Only the packages that hold several layers (`src`, `src.config`, `src.training`) stand in none themselves."""
    placed = [name.strip() for row in layers_contract()["layers"] for name in row.replace(":", "|").split("|")]
    holders = {".".join(name.split(".")[:i]) for name in placed for i in range(1, name.count(".") + 1)}
    unplaced = sorted(m for m in src_graph().modules
                      if m not in holders and not any(m == p or m.startswith(p + ".") for p in placed))
    assert not unplaced, f"modules in no layer of pyproject.toml's layers contract: {unplaced}"


def import_cycles(graph: grimp.ImportGraph) -> list[str]:
    """Every cycle closed by a direct import, as `a -> b -> ... -> a` from its smallest module name, once."""
    cycles = set()
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                members = list(back)  # imported -> ... -> importer, closed by importer -> imported
                start = members.index(min(members))
                cycles.add(" -> ".join(members[start:] + members[:start] + [min(members)]))
    return sorted(cycles)


def test_src_has_no_import_cycle():
    cycles = import_cycles(src_graph())
    assert not cycles, "import cycles in src/:\n" + "\n".join(cycles)


def test_the_cycle_check_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    package = tmp_path / "cyclic_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic_package import b\n")
    (package / "b.py").write_text("from cyclic_package import c\n")
    (package / "c.py").write_text("def f():\n    from cyclic_package import a\n    return a\n")
    (package / "d.py").write_text("from cyclic_package import a\n")  # imports the cycle, is not in it
    sys.path.insert(0, str(tmp_path))
    try:
        graph = grimp.build_graph("cyclic_package", cache_dir=None)
    finally:
        sys.path.remove(str(tmp_path))
    assert import_cycles(graph) == ["cyclic_package.a -> cyclic_package.b -> cyclic_package.c -> cyclic_package.a"]
    (package / "c.py").write_text("def f():\n    return 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert import_cycles(grimp.build_graph("cyclic_package", cache_dir=None)) == []
    finally:
        sys.path.remove(str(tmp_path))
