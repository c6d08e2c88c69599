"""The library's import graph: no cycles, and every layer imports only inward.

Run: .venv/bin/python infra/import_graph.py [--dot]   (exit 1, one line per problem; `make lint`)

Every `import` counts, at module level or inside a function (a function-local import still runs,
and is the usual way to hide a cycle); only `if TYPE_CHECKING:` blocks are left out. The layers
(docs/DESIGN.md, "The house"), innermost first:

    domain          plain values and rules: imports nothing else of cashmatch
    ports           the interfaces: imports domain
    settings        the one settings object: imports domain
    service_layer   handlers, registry, publishing, dispatch: domain, ports, settings
    adapters        local and gcp I/O behind the ports: the layers above, never entry points,
                    and one stack's adapters never the other's
    synth           the simulator, apart from what ships: domain only
    bootstrap       the composition root: imported by entry points alone
    entrypoints     CloudEvent edge, CLI, Serve app, Vertex job: anything
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "cashmatch"
SRC = Path(__file__).resolve().parent.parent / "shared" / "src"

# layer -> the layers it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "ports": {"domain"},
    "settings": {"domain"},
    "service_layer": {"domain", "ports", "settings"},
    "adapters": {"domain", "ports", "settings", "service_layer"},
    "synth": {"domain"},
    "bootstrap": {"domain", "ports", "settings", "service_layer", "adapters"},
    "entrypoints": {
        "domain",
        "ports",
        "settings",
        "service_layer",
        "adapters",
        "synth",
        "bootstrap",
    },
}
# Domain code never touches I/O or serving machinery, whatever imports it.
DOMAIN_FORBIDDEN = ("google", "ray", "duckdb", "fastapi", "starlette", "flask", "httpx", "boto3")


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its __init__)."""
    found: dict[str, Path] = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            stack.append(child)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(modules of the package `name` imports, top-level names of everything else it imports)."""
    inside: set[str] = set()
    outside: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports pkg and, when it is one, the module pkg.mod
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            if target.split(".")[0] != PACKAGE:
                outside.add(target.split(".")[0])
            elif target in known:
                inside.add(target)
    inside.discard(name)
    return inside, outside


def graph(src: Path = SRC) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Edges inside the package, and the outside packages each module imports."""
    known = modules(src)
    edges: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for name, path in known.items():
        edges[name], external[name] = imports_of(name, path, known)
        # importing a.b.c runs a/__init__ and a/b/__init__ first
        for target in list(edges[name]):
            parts = target.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in known and parent != name and not name.startswith(parent + "."):
                    edges[name].add(parent)
    return edges, external


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
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
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer(name: str) -> str:
    """The layer of a module: the first folder (or module) under the package."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "package"


STACKS = ("local", "gcp")


def _cross_stack(name: str, targets: set[str]) -> list[str]:
    """One stack's adapters never import the other's: a gcp image must not need DuckDB."""
    parts = name.split(".")
    if len(parts) < 3 or parts[1] != "adapters" or parts[2] not in STACKS:
        return []
    other = next(s for s in STACKS if s != parts[2])
    return [
        f"{name} imports {target}: the {parts[2]} adapters may not import the {other} ones"
        for target in sorted(targets)
        if target.startswith(f"{PACKAGE}.adapters.{other}")
    ]


def problems(src: Path = SRC) -> list[str]:
    """Every cycle and every import against the layers, one line each."""
    edges, external = graph(src)
    found = [f"import cycle: {' -> '.join(c)} -> {c[0]}" for c in cycles(edges)]
    for name in sorted(edges):
        mine = layer(name)
        allowed = ALLOWED.get(mine)
        if allowed is None:
            if mine != "package":
                found.append(f"{name}: layer {mine!r} is not one of {', '.join(ALLOWED)}")
            continue
        for target in sorted(edges[name]):
            theirs = layer(target)
            if theirs != mine and theirs not in allowed and theirs != "package":
                found.append(f"{name} imports {target}: {mine} may not import {theirs}")
        found += _cross_stack(name, edges[name])
        if mine == "domain":
            for top in sorted(external[name] & set(DOMAIN_FORBIDDEN)):
                found.append(f"{name} imports {top}: the domain does no I/O")
    return found


def main(argv: list[str]) -> int:
    if "--dot" in argv:
        edges, _ = graph()
        sys.stdout.write("digraph cashmatch {\n")
        for name in sorted(edges):
            for target in sorted(edges[name]):
                sys.stdout.write(f'  "{name}" -> "{target}";\n')
        sys.stdout.write("}\n")
        return 0
    found = problems()
    for line in found:
        sys.stderr.write(f"FAIL {line}\n")
    if not found:
        sys.stdout.write(f"import graph OK: {len(modules())} modules, no cycle, layers inward\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
