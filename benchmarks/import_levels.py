"""Import levels of `src/`: how deep the project's imports stack, and how many run back up.

    .venv/bin/python -m benchmarks.import_levels                  # src/ as the working tree has it
    .venv/bin/python -m benchmarks.import_levels --baseline REV   # and beside it, src/ as commit REV had it

The import graph is grimp's (what import-linter checks): every `import` of one `src` module by another,
including imports inside functions. Modules that import each other, directly or through others, form one
strongly connected component; the components, each standing above what it imports, form a DAG.

- levels: the number of components on the longest import chain of that DAG (a module that imports nothing
  of `src` is level 1; a module is one level above the highest it imports).
- imports back up: imports between two modules of the same component (they close a cycle: one of them
  runs from a lower level back up).
- the same at package level: each module counts in its package (`src.<name>`, the nets apart from
  `src.models`), and the imports between two packages of one package cycle are counted.
- against the layers: imports that run against the `layers` contract of pyproject.toml's
  [tool.importlinter] (from a lower layer to a higher one, or between independent siblings), when the
  contract is there (always this working tree's pyproject.toml, so an older commit is measured against
  today's contract).

Prints a table and writes benchmarks/results/import-levels-<date>.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter's own TOML reader
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def import_graph(root: Path) -> dict[str, set[str]]:
    """{module: the `src` modules it imports} for the `src` package under `root` (nothing of it is run)."""
    import grimp

    for name in [m for m in sys.modules if m == "src" or m.startswith("src.")]:  # another checkout's, found first
        del sys.modules[name]
    importlib.invalidate_caches()
    sys.path.insert(0, str(root))
    try:
        graph = grimp.build_graph("src", cache_dir=None)
    finally:
        sys.path.remove(str(root))
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan's algorithm, iterative), each a sorted list of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(sorted(component))
    return found


def levels(graph: dict[str, set[str]], comps: list[list[str]]) -> dict[str, int]:
    """{module: its level}: 1 + the highest level of the components its component imports."""
    of = {m: i for i, comp in enumerate(comps) for m in comp}
    level: dict[int, int] = {}
    for i, comp in enumerate(comps):  # Tarjan emits a component after every component it imports
        below = {of[t] for m in comp for t in graph[m]} - {i}
        level[i] = 1 + max((level[j] for j in below), default=0)
    return {m: level[of[m]] for m in graph}


def package_of(module: str) -> str:
    """The package a module counts in at package level: `src.<name>`, with the nets apart from the models."""
    parts = module.split(".")
    return ".".join(parts[:3] if parts[1:3] == ["models", "nets"] else parts[:2])


def measure(graph: dict[str, set[str]]) -> dict:
    """Levels, the components of more than one node, and the imports inside them (see the module docstring)."""
    comps = components(graph)
    level = levels(graph, comps)
    of = {m: i for i, c in enumerate(comps) for m in c}
    cyclic = [c for c in comps if len(c) > 1]
    inside = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if a != b and of[a] == of[b])
    return {"levels": max(level.values()), "cycles": cyclic, "imports_back_up": inside, "level_of": level}


def layer_order(pyproject: Path) -> list[tuple[list[str], bool]] | None:
    """The `layers` contract's layers, lowest first, each (its modules, whether they are independent
    siblings); None without one."""
    config = tomllib.loads(pyproject.read_text()).get("tool", {}).get("importlinter", {})
    for contract in config.get("contracts", []):
        if contract.get("type") == "layers" and not contract.get("containers"):
            return [([m.strip() for m in row.replace(":", "|").split("|")], ":" not in row)
                    for row in reversed(contract["layers"])]
    return None


def against_layers(graph: dict[str, set[str]], layers: list[tuple[list[str], bool]]) -> list[str]:
    """The imports `importer -> imported` that run up the layers or across independent siblings."""

    def place(module: str) -> tuple[int, str] | None:
        for height, (names, _) in enumerate(layers):
            for name in names:
                if module == name or module.startswith(name + "."):
                    return height, name
        return None

    wrong = []
    for importer, imported in sorted((a, b) for a, targets in graph.items() for b in targets):
        a, b = place(importer), place(imported)
        if a is None or b is None:
            continue
        if a[0] < b[0] or (a[0] == b[0] and a[1] != b[1] and layers[a[0]][1]):
            wrong.append(f"{importer} -> {imported}")
    return wrong


def checkout(commit: str, folder: Path) -> Path:
    """`src/` of `commit` of this repository, written under `folder`; the folder."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def commit_name(commit: str | None) -> str:
    rev = ["git", "-C", str(ROOT), "rev-parse", "--short", commit or "HEAD"]
    name = subprocess.run(rev, capture_output=True, text=True).stdout.strip()
    return name if commit else f"{name} + working tree"


def report(graph: dict[str, set[str]], layers: list[tuple[list[str], bool]] | None) -> dict:
    """Every figure of the module docstring for one import graph."""
    modules = measure(graph)
    packages_graph: dict[str, set[str]] = {}
    for importer, targets in graph.items():
        packages_graph.setdefault(package_of(importer), set()).update(package_of(t) for t in targets)
    for package, targets in packages_graph.items():
        targets.discard(package)
    packages = measure(packages_graph)
    cycle_of = {p: i for i, c in enumerate(packages["cycles"]) for p in c}
    inside = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                    if package_of(a) != package_of(b) and package_of(a) in cycle_of
                    and cycle_of[package_of(a)] == cycle_of.get(package_of(b)))
    return {"modules": len(graph), "imports": sum(len(t) for t in graph.values()),
            "module_levels": modules["levels"], "module_cycles": modules["cycles"],
            "module_imports_inside_cycles": modules["imports_back_up"],
            "packages": len(packages_graph), "package_levels": packages["levels"],
            "package_cycles": packages["cycles"], "imports_inside_package_cycles": inside,
            "against_layers": against_layers(graph, layers) if layers else None,
            "package_level_of": dict(sorted(packages["level_of"].items())),
            "module_level_of": dict(sorted(modules["level_of"].items()))}


ROWS = [("modules", "modules", None), ("imports", "imports", None), ("module import levels", "module_levels", None),
        ("module imports inside cycles", "module_imports_inside_cycles", len),
        ("packages", "packages", None), ("package import levels", "package_levels", None),
        ("packages in cycles", "package_cycles", lambda cycles: sum(len(c) for c in cycles)),
        ("imports inside package cycles", "imports_inside_package_cycles", len),
        ("imports against the layers contract", "against_layers", lambda v: "no contract" if v is None else len(v))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="also measure src/ as this commit has it, in a column of its own")
    args = parser.parse_args()
    layers = layer_order(ROOT / "pyproject.toml")
    sources = {}
    if args.baseline:
        with tempfile.TemporaryDirectory() as folder:
            sources[commit_name(args.baseline)] = report(import_graph(checkout(args.baseline, Path(folder))), layers)
    sources[commit_name(None)] = report(import_graph(ROOT), layers)

    names = list(sources)
    width = max(len(label) for label, _, _ in ROWS)
    print(f"{'src/ of':<{width}}  " + "  ".join(f"{n:>24}" for n in names))
    for label, key, shown in ROWS:
        values = [(shown or (lambda v: v))(sources[n][key]) for n in names]
        print(f"{label:<{width}}  " + "  ".join(f"{str(v):>24}" for v in values))
    for name in names:
        for key, what in (("package_cycles", "package cycle"), ("module_cycles", "module cycle")):
            for cycle in sources[name][key]:
                print(f"{name}: {what}: {' <-> '.join(cycle)}")
        for edge in sources[name]["against_layers"] or []:
            print(f"{name}: against the layers: {edge}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"import-levels-{date.today().isoformat()}.json"
    command = "python -m benchmarks.import_levels" + (f" --baseline {args.baseline}" if args.baseline else "")
    payload = {"command": command, "python": platform.python_version(), "sources": sources}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
