"""The shape of the house: no import cycle between the project's modules, type-only
imports included, and no module much over 400 lines unless its docstring says why.

Read from the source with `ast`, so it sees `if TYPE_CHECKING:` imports and imports
inside functions too: a cycle hidden in either still ties two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("runtime", "cdk_app", "sandbox")
MAX_LINES = 400
# Kept whole on purpose, each with the reason in its docstring ("kept whole", "over N lines").
WAIVED = {"runtime/tables.py"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # `from runtime import keys` names the module runtime.keys; `import a.b.c` needs a.b.c.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    edges = {name: imports_of(name, path, known) for name, path in found.items()}
    # A package's __init__ importing its own submodules is not a cycle with them.
    for name in edges:
        edges[name] = {t for t in edges[name] if not name.startswith(t + ".")}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
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
            child = next(children, None)
            if child is None:
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
                        result.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return result


def test_the_cycle_finder_finds_a_cycle_through_a_type_only_import(tmp_path):
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from runtime.x import Y\n")
    assert imports_of("runtime.m", source, {"runtime.x", "runtime.m"}) == {"runtime.x"}


def test_no_import_cycle_between_the_projects_modules():
    found = cycles(graph())
    assert found == [], "import cycles (type-only imports count):\n" + "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_much_over_400_lines_unless_it_says_why(name):
    path = modules()[name]
    lines = len(path.read_text().splitlines())
    relative = path.relative_to(ROOT).as_posix()
    if lines <= MAX_LINES:
        return
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert relative in WAIVED and ("kept whole" in doc or "lines" in doc), (
        f"{relative} has {lines} lines: split it by concern, or say in its docstring why it stays whole"
    )


# What the runtime loads and the CDK app must not (docs/design.md#artefact): synth reads
# the runtime's declarations (runtime/names.py, tables.py, columns.py), never its code.
RUNTIME_LIBRARIES = {"aws_lambda_powertools", "pandas", "pyarrow", "pandera"}


def external_imports(path: Path) -> set[str]:
    """The top-level names of every absolute import in `path`, at any depth of its code
    (a function's lazy import included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def reached_from(roots: set[str], edges: dict[str, set[str]]) -> set[str]:
    """Every project module the roots import, directly or through others, at any depth
    (a package's __init__ runs before any of its submodules)."""
    reached, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo += [*edges.get(name, ()), *(p for p in parents if p in edges)]
    return reached


def synth_modules() -> dict[str, Path]:
    """The CDK app's modules and the entry point, and every project module they reach."""
    found = modules() | {"app": ROOT / "app.py"}
    known = set(found)
    edges = {name: imports_of(name, path, known) for name, path in found.items()}
    roots = {"app"} | {n for n in found if n == "cdk_app" or n.startswith("cdk_app.")}
    return {name: found[name] for name in sorted(reached_from(roots, edges))}


def test_the_import_reader_sees_a_lazy_import_inside_a_function(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def tables():\n    from runtime.star import SCHEMAS\n    import pyarrow.parquet\n")
    assert external_imports(source) == {"runtime", "pyarrow"}
    assert imports_of("cdk_app.m", source, {"runtime.star", "cdk_app.m"}) == {"runtime.star"}
    # runtime.star.x runs runtime.star's __init__ (and runtime's) first.
    edges = {"cdk_app.m": {"runtime.star.x"}, "runtime.star.x": set(), "runtime.star": set(), "runtime": set()}
    assert reached_from({"cdk_app.m"}, edges) == {"cdk_app.m", "runtime.star.x", "runtime.star", "runtime"}


def test_no_module_the_cdk_app_reaches_imports_a_runtime_library_even_lazily():
    """Read from the source, so an import inside a function that no test calls is seen too."""
    reached = synth_modules()
    assert "cdk_app.athena_views" in reached and "runtime.columns" in reached
    offending = {
        name: sorted(external_imports(path) & RUNTIME_LIBRARIES)
        for name, path in reached.items()
        if external_imports(path) & RUNTIME_LIBRARIES
    }
    assert offending == {}, f"imported at synth, directly or through a project module: {offending}"


def test_building_the_catalog_loads_no_logging_or_data_library_of_the_runtime():
    """At run time: the stack's modules imported and the catalog (its Glue tables and
    views, built from the output tables' declaration) constructed, none of the runtime's
    libraries is loaded."""
    import subprocess
    import sys

    probe = (
        "import sys, app, cdk_app.processing_stack\n"
        "import aws_cdk as cdk\n"
        "from aws_cdk import aws_s3 as s3\n"
        "from cdk_app.catalog import Catalog\n"
        "stack = cdk.Stack(cdk.App(), 'Probe')\n"
        "catalog = Catalog(stack, 'Catalog', stage='probe', processed=s3.Bucket(stack, 'Processed'))\n"
        "print(len(catalog.tables))\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(RUNTIME_LIBRARIES)!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    tables, loaded = out.stdout.strip().splitlines()[-2:]
    assert int(tables) == 11
    assert loaded == "[]"


def unused_imports(path: Path) -> list[str]:
    """Names a module imports (at any depth) and never reads, nor lists in `__all__`:
    leftovers (a deliberate side-effect import says so with importlib.import_module)."""
    tree = ast.parse(path.read_text(), str(path))
    bound: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and getattr(node, "module", None) != "__future__":
            for alias in node.names:
                bound.setdefault(alias.asname or alias.name.split(".")[0], node.lineno)
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    exported = {
        c.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)
        for c in ast.walk(n.value)
        if isinstance(c, ast.Constant) and isinstance(c.value, str)
    }
    return [f"{name} (line {line})" for name, line in sorted(bound.items()) if name not in read | exported]


def test_the_unused_import_finder_sees_a_leftover_even_inside_a_function(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom a import B, C\n__all__ = ['C']\ndef f():\n    import runtime.x\n    return os\n")
    assert unused_imports(source) == ["B (line 2)", "runtime (line 5)"]


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_imports_a_name_it_never_uses(name):
    assert unused_imports(modules()[name]) == []
