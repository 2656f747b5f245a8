"""The layering rule, checked on the source: lower layers (codecs, routing, billing,
providers, store) never import engine/, http/, runtime/ or server.py, and no two
modules of different folders import each other in a cycle."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOWER = ("gateway.codecs", "gateway.routing", "gateway.billing", "gateway.providers", "store")
UPPER = ("gateway.engine", "gateway.http", "gateway.runtime", "gateway.server")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in ("gateway", "store"):
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module of ours `path` imports, anywhere in it (TYPE_CHECKING and
    function-local imports count: they are dependencies all the same)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(path, name, set(mods)) for name, path in mods.items()}


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _folder(name: str) -> str:
    return name.rpartition(".")[0] if name.count(".") else name


def test_lower_layers_never_import_upper_ones():
    bad = sorted(f"{m} -> {t}" for m, targets in _graph().items() if _under(m, LOWER)
                 for t in targets if _under(t, UPPER))
    assert bad == []


def test_no_cycle_between_modules_of_different_folders():
    graph = _graph()
    # Tarjan's strongly connected components; a component spanning folders is a cycle
    # between them.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    crossing = [sorted(c) for c in comps if len({_folder(m) for m in c}) > 1]
    assert crossing == []


def test_the_graph_sees_known_edges():
    graph = _graph()
    assert "gateway.engine.call" in graph["gateway.engine.pipeline"]
    assert "gateway.engine.pipeline" not in graph["gateway.engine.call"]


# The routes under http/ only decode and encode: what they read and write goes through a
# part server.py built (engine, resources). The operator's admin routes (/-/...) still
# reach the store.
_HTTP_STORE_ALLOWED = ("gateway.http.admin", "gateway.http.admin_ops", "gateway.http.org_routes")


def test_http_routes_never_call_the_store():
    bad = sorted(f"{m} -> {t}" for m, targets in _graph().items()
                 if _under(m, ("gateway.http",)) and m not in _HTTP_STORE_ALLOWED
                 for t in targets if _under(t, ("store",)))
    assert bad == []
