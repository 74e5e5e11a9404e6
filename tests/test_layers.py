"""The core's imports run one way, through declared layers; plugins use only the public API;
the core names no built-in plugin.

The import graph is read from the source (every import, those inside functions included),
so a lazy import that runs against the layers fails here as a top-level one would.
"""

from __future__ import annotations

import ast
import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tagger_core import registry

REPO = Path(__file__).resolve().parent.parent
CORE = "tagger_core"

# Lowest first. A module may import its own layer or a lower one, never a higher one.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("errors", "files", "hookspecs", "machine", "progress_bars", "version")),
    ("data types", ("schemas", "scores")),
    ("contracts", ("components", "taxonomy")),
    ("registry", ("registry",)),
    ("stages", ("data", "evaluation")),
    ("tagger", ("tagger",)),
    ("workflows", ("workflows",)),
    ("service", ("serve", "catalogue")),
    ("cli", ("cli",)),
]


def layer_of(module: str) -> int:
    """The index in LAYERS of a ``tagger_core.x.y`` module (by its first part)."""
    first = module.split(".")[1]
    for index, (_, names) in enumerate(LAYERS):
        if first in names:
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def modules(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(root: Path = REPO, package: str = CORE) -> dict[str, set[str]]:
    """module → the modules of ``package`` it imports (the package facade as ``package``)."""
    found = modules(root, package)
    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in found else base)
            for target in targets:
                while target not in found and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in found and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def upward_edges(graph: dict[str, set[str]]) -> list[str]:
    """Imports that run from a lower layer to a higher one; the package facade
    (``tagger_core/__init__.py``) re-exports and sits outside the layers."""
    out = []
    for source, targets in graph.items():
        if source == CORE:
            continue
        for target in targets:
            if target == CORE:
                out.append(f"{source} -> {CORE} (the facade: import the module itself)")
            elif layer_of(target) > layer_of(source):
                out.append(f"{source} -> {target}")
    return sorted(out)


def test_the_core_has_no_import_cycle() -> None:
    graph = {k: v - {CORE} for k, v in import_graph().items() if k != CORE}
    assert cycles(graph) == []


def test_imports_follow_the_layer_order() -> None:
    assert upward_edges(import_graph()) == []


def test_the_checks_catch_a_cycle_and_an_upward_edge(tmp_path: Path) -> None:
    """The two checks above can fail: a toy package with both faults."""
    package = tmp_path / CORE
    (package / "workflows").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "workflows" / "__init__.py").write_text("")
    (package / "errors.py").write_text("def f():\n    from tagger_core.workflows import run\n")
    (package / "workflows" / "run.py").write_text("from tagger_core import errors\n")
    graph = import_graph(tmp_path)
    assert cycles({k: v - {CORE} for k, v in graph.items()}) == [
        ["tagger_core.errors", "tagger_core.workflows.run"]
    ]
    assert upward_edges(graph) == ["tagger_core.errors -> tagger_core.workflows.run"]


def test_plugins_import_only_the_public_api() -> None:
    """``from tagger_core import X`` with X exported; never a submodule of tagger_core."""
    import tagger_core

    bad = []
    for path in sorted((REPO / "plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CORE):
                if node.module != CORE:
                    bad.append(f"{where}: from {node.module} import …")
                bad += [
                    f"{where}: {alias.name} is not public"
                    for alias in node.names
                    if alias.name not in tagger_core.__all__
                ]
            elif isinstance(node, ast.Import):
                bad += [f"{where}: import {a.name}" for a in node.names if a.name.startswith(CORE)]
    assert bad == []


def _builtin_names() -> set[str]:
    """Every name a built-in plugin registers: encoders, rules, normalizers, data sources
    and taxonomies."""
    builtin = {
        ep.name for ep in entry_points(group="tagger") if ep.value.startswith("tagger_plugins")
    }
    names: set[str] = set()
    for collection in (
        registry.encoders(),
        registry.decision_rules(),
        registry.normalizers(),
        registry.data_sources(),
        registry.taxonomies(),
    ):
        names |= {name for name, item in collection.items.items() if item.plugin in builtin}
    return names


# Built-in names that are also plain words of this domain or of a library ("the per-label
# table", "a global threshold", model_dump(mode="json"), OpenCC's "t2s" config): they may
# appear in text, but never where the core would pick a plugin by name.
ORDINARY_WORDS = {"threshold", "per-label", "top-k", "exclusive", "json", "whitespace", "t2s"}
LOOKUPS = {
    "make_encoder",
    "make_rule",
    "make_normalizer",
    "make_data_source",
    "data_source_for",
    "resolve_taxonomy",
    "get",
    "create",
}


def _chosen_by_name(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """Places where a string constant picks a component: a registry lookup's argument, a
    ``"name"`` in a spec, a comparison, a parameter or option default."""
    found = []

    def check(node: ast.AST | None, line: int) -> None:
        if isinstance(node, ast.Constant) and node.value in names:
            found.append((line, str(node.value)))

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in LOOKUPS:
                for arg in node.args:
                    check(arg, node.lineno)
            for keyword in node.keywords:
                if keyword.arg in {"default", "encoder", "rule", "name", "format"}:
                    check(keyword.value, node.lineno)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "name":
                    check(value, node.lineno)
        elif isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                check(side, node.lineno)
        elif isinstance(node, ast.arguments):
            for default in (*node.defaults, *node.kw_defaults):
                check(default, getattr(default, "lineno", 0))
    return found


def _strings_outside_docstrings(tree: ast.AST) -> list[tuple[int, str]]:
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.add(id(value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_the_core_names_no_builtin_plugin() -> None:
    """The core knows plugins only through the registry: outside docstrings, no built-in
    plugin's name (rule, encoder, normalizer, data source or taxonomy) in its code, and
    never one that picks a component."""
    names = _builtin_names()
    assert {"tfidf", "per-label", "argmax", "at-least-one", "json", "attractions"} <= names
    distinctive = sorted(names - ORDINARY_WORDS, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.\-/])(" + "|".join(map(re.escape, distinctive)) + r")(?![\w\-])")
    found = []
    for path in sorted((REPO / CORE).rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        where = path.relative_to(REPO)
        for line, text in _strings_outside_docstrings(tree):
            found += [f"{where}:{line}: {m.group(1)!r} in {text!r}" for m in pattern.finditer(text)]
        found += [
            f"{where}:{line}: chooses {name!r}" for line, name in _chosen_by_name(tree, names)
        ]
    assert found == []


@pytest.mark.parametrize("name", ["tfidf", "per-label"])
def test_the_name_checks_would_see_a_builtin_name(name: str) -> None:
    tree = ast.parse(f'"""A docstring may say {name}."""\nDEFAULT = "{name}"\n')
    assert _strings_outside_docstrings(tree) == [(2, name)]
    for code in (
        f'make_rule("{name}")',
        f'spec = {{"name": "{name}", "params": {{}}}}',
        f'if rule.name != "{name}": pass',
        f'def create(encoder: str = "{name}"): pass',
        f'option = click.option("--x", default="{name}")',
    ):
        assert _chosen_by_name(ast.parse(code), {name}) == [(1, name)], code
