"""The package's layout: an acyclic import graph, and an ARCHITECTURE.md that names real modules.

The import graph is built from the source with :mod:`ast`, not by importing anything:

* every ``import`` and ``from ... import`` statement of every module counts, wherever it is: at the
  top, inside functions (lazy imports), and inside ``if TYPE_CHECKING:`` blocks (included on purpose:
  a type-only import still ties two modules together, and the layout should not need it to);
* relative imports are resolved against the importing module's package;
* ``from pkg import name`` is an edge to the submodule ``pkg.name`` when that is a module of the
  package, else to ``pkg`` (its ``__init__``);
* importing ``a.b.c`` is an edge to ``a.b.c`` only: the implicit import of the parent packages'
  ``__init__`` modules is not counted (else every ``__init__`` that re-exports its submodules would be
  a cycle with them), so the ``__init__`` modules are checked like any other module, by what they
  import themselves.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vssl_helpers"


def module_name(path: Path, root: Path, package: str) -> str:
    """Dotted name of ``path`` inside the package folder ``root`` (``__init__.py`` -> the package)."""
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}`` for every ``.py`` file under ``root``."""
    files = {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}

    def inside(name: str) -> bool:
        return name == package or name.startswith(package + ".")

    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if inside(a.name))
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the module's package, one level up per extra dot
                    base = mod.split(".") if is_package else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not inside(target):
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    edges.add(sub if sub in files else target)
        edges.discard(mod)
        unknown = sorted(e for e in edges if e not in files)
        assert not unknown, f"{mod} imports {unknown}, which are not modules of the package"
        graph[mod] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component with more than one module
    (or a module importing itself), found by depth-first search."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(c)) for c in components]


def _cycle_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A concrete cycle through the component's first module (breadth-first, shortest)."""
    start = min(comp)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & comp):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    raise AssertionError(f"no cycle through {start} in {sorted(comp)}")


def test_package_import_graph_is_acyclic() -> None:
    graph = import_graph(ROOT / PACKAGE, PACKAGE)
    assert len(graph) > 30 and f"{PACKAGE}.cli" in graph  # the whole package was read
    cycles = find_cycles(graph)
    text = "\n".join(" -> ".join(c) for c in cycles)
    print(text)
    assert not cycles, f"import cycles in {PACKAGE}:\n{text}"


def test_the_layers_named_in_the_issue_are_one_way() -> None:
    """The two cycles issue 14 names are gone, lazy imports included: the model registry imports no
    family, and the negatives manifest imports no test-set loader."""
    graph = import_graph(ROOT / PACKAGE, PACKAGE)
    assert not {e for e in graph[f"{PACKAGE}.models.registry"] if e.startswith(f"{PACKAGE}.models.")
                and e != f"{PACKAGE}.models.transforms"}
    assert not {e for e in graph[f"{PACKAGE}.negatives"] if e.startswith(f"{PACKAGE}.testsets")}
    assert not {e for e in graph[f"{PACKAGE}.testsets.registry"] if e not in {f"{PACKAGE}.testsets.base"}}


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / "toy" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "toy"


def test_checker_finds_cycles_through_lazy_relative_and_type_checking_imports(tmp_path: Path) -> None:
    pkg = _write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from .sub import b\n",                      # a submodule named in `from pkg import name`
        "sub/__init__.py": "",
        "sub/b.py": "def f():\n    from ..c import thing\n",  # lazy, two dots
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import toy.a\nthing = 1\n",
        "d.py": "import os\nfrom toy import c\n",           # outside the cycle
    })
    graph = import_graph(pkg, "toy")
    assert graph["toy.a"] == {"toy.sub.b"}
    assert graph["toy.sub.b"] == {"toy.c"}
    assert graph["toy.c"] == {"toy.a"}
    assert graph["toy.d"] == {"toy.c"}
    assert find_cycles(graph) == [["toy.a", "toy.sub.b", "toy.c", "toy.a"]]
    # break it: the checker then finds nothing
    (pkg / "c.py").write_text("thing = 1\n", encoding="utf-8")
    assert find_cycles(import_graph(pkg, "toy")) == []


def test_checker_counts_a_package_init_and_a_self_import(tmp_path: Path) -> None:
    pkg = _write_package(tmp_path, {
        "__init__.py": "from .m import x\n",   # the package's __init__ imports m ...
        "m.py": "from . import n\nx = 1\n",
        "n.py": "import toy\n",                # ... and n imports the package: a cycle through __init__
    })
    assert find_cycles(import_graph(pkg, "toy")) == [["toy", "toy.m", "toy.n", "toy"]]


def test_architecture_note_names_real_modules() -> None:
    """Every module path named in ARCHITECTURE.md exists (``vssl_helpers/x.py``, ``vssl_helpers/x/``
    or a dotted ``vssl_helpers.x``), and the note names the main stations of the data flow."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"vssl_helpers/[\w/]*\w(?:\.py)?/?", text))
    dotted = set(re.findall(r"\bvssl_helpers(?:\.\w+)+", text))
    assert len(paths | dotted) >= 10, "the note names the modules it draws"
    missing = []
    for p in paths:
        if not (ROOT / p).exists():
            missing.append(p)
    for d in dotted:
        rel = d.replace(".", "/")
        if not ((ROOT / f"{rel}.py").is_file() or (ROOT / rel / "__init__.py").is_file()):
            missing.append(d)
    assert not missing, f"ARCHITECTURE.md names modules that do not exist: {sorted(missing)}"
    for station in ("testsets", "models", "engine", "store", "metrics", "report", "pipeline", "cli"):
        assert station in text, station


def test_one_command_line() -> None:
    """`vssl` is the only command line: no other module of the package has a ``__main__`` entry
    and the Makefile's book target runs `vssl book`."""
    mains = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                mains.append(module_name(path, ROOT / PACKAGE, PACKAGE))
    assert sorted(mains) == [f"{PACKAGE}.cli"], mains
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    book = makefile.split("\nbook:", 1)[1].split("\n\n", 1)[0]
    assert "vssl_helpers.cli book" in book or "vssl book" in book, book
    from vssl_helpers.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices
    assert {"evaluate", "threshold", "table", "models", "train", "book", "manifest"} <= set(sub)
    assert "--no-build" in sub["book"].format_help()
