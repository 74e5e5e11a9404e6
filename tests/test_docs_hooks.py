"""Guard rail: every hook in tagger_core/hookspecs.py has a section in docs/plugins/hooks.md
(with its arguments and a working example) and is exercised by at least one test file.

Hooks are discovered from the hookspec module, so a new hook fails here until it is
documented and tested. The examples in hooks.md are run as plugins, so they stay true.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tagger_core import Tagger, hookspecs, registry

REPO = Path(__file__).resolve().parent.parent
HOOKS_DOC = REPO / "docs" / "plugins" / "hooks.md"
TESTS = Path(__file__).resolve().parent


def hookspec_names() -> list[str]:
    marker = f"{hookspecs.hookspec.project_name}_spec"
    return sorted(
        name
        for name, value in vars(hookspecs).items()
        if inspect.isfunction(value) and hasattr(value, marker)
    )


HOOKS = hookspec_names()


def doc_sections() -> dict[str, tuple[str, str]]:
    """Hook name → (the heading's argument list, the section's text)."""
    text = HOOKS_DOC.read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    sections = {}
    for part in parts:
        heading, _, body = part.partition("\n")
        match = re.fullmatch(r"`?(\w+)\(([^)]*)\)`?\s*", heading)
        if match:
            sections[match.group(1)] = (match.group(2), body)
    return sections


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_hooks_are_discovered() -> None:
    assert "register_taxonomies" in HOOKS
    assert "register_commands" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docs_section(hook: str) -> None:
    sections = doc_sections()
    assert hook in sections, (
        f"hook '{hook}' has no section in {HOOKS_DOC.relative_to(REPO)}: add "
        f"'## {hook}(...)' with its arguments, what to register and an example"
    )
    arguments, body = sections[hook]
    expected = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert [a.strip() for a in arguments.split(",") if a.strip()] == expected, (
        f"the heading of hook '{hook}' in hooks.md lists ({arguments}); the hookspec takes "
        f"({', '.join(expected)})"
    )
    assert "**Arguments**" in body, f"hook '{hook}': the docs section lists no arguments"
    assert "**Example**" in body, f"hook '{hook}': the docs section has no example"
    examples = [block for block in python_blocks(body) if f"def {hook}(" in block]
    assert examples, f"hook '{hook}': no python example in hooks.md defines {hook}()"
    assert all("@hookimpl" in block for block in examples), f"hook '{hook}': @hookimpl missing"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    pattern = re.compile(rf"\b{hook}\b")
    users = [
        path.name
        for path in sorted(TESTS.rglob("test_*.py"))
        if path.resolve() != Path(__file__).resolve()
        and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert users, f"hook '{hook}' is not exercised by any test file in tests/: add a test"


def test_every_docs_section_is_a_hook() -> None:
    stale = sorted(set(doc_sections()) - set(HOOKS))
    assert not stale, f"hooks.md documents hooks that tagger_core/hookspecs.py lacks: {stale}"


# -- the examples of hooks.md, run as plugins ------------------------------------------------


def example_plugin(hook: str) -> types.ModuleType:
    """A module made of the python examples of ``hook``'s section, as a plugin author would."""
    module = types.ModuleType(f"hooks_md_{hook}")
    for block in python_blocks(doc_sections()[hook][1]):
        exec(compile(block, f"{HOOKS_DOC}:{hook}", "exec"), module.__dict__)
    return module


def _hotels_modules() -> dict[str, types.ModuleType]:
    return {
        name: module
        for name, module in sys.modules.items()
        if name == "tagger_hotels" or name.startswith("tagger_hotels.")
    }


@pytest.fixture
def hotels_source(monkeypatch: pytest.MonkeyPatch):
    """The tagger_hotels package of examples/ (which the taxonomy example reads a file
    from), importable for one test only: afterwards sys.path and sys.modules are restored."""
    before = _hotels_modules()
    monkeypatch.syspath_prepend(str(REPO / "examples" / "tagger-hotels"))
    for name in before:
        del sys.modules[name]
    yield
    for name in _hotels_modules():
        del sys.modules[name]
    sys.modules.update(before)


@pytest.fixture
def example(request: pytest.FixtureRequest, hotels_source: None):
    """Register the example of one hook as a plugin for one test."""
    hook = request.param
    module = example_plugin(hook)
    manager = registry.load_plugins()
    name = f"hooks-md-{hook}"
    manager.register(module, name=name)
    try:
        yield hook, name, module
    finally:
        manager.unregister(name=name)


@pytest.mark.parametrize("example", HOOKS, indirect=True)
def test_hook_example_registers_something(example) -> None:
    hook, name, module = example
    if hook == "register_commands":
        group = click.Group()
        module.register_commands(cli=group)
        assert group.commands, "the register_commands example added no command"
        return
    kind = hook.removeprefix("register_")
    collection = getattr(registry, kind, None)
    if collection is None:  # a hook without a collection in the registry: call it
        registered: list[object] = []
        getattr(module, hook)(register=registered.append)
        assert registered, f"the {hook} example registered nothing"
        return
    # Through the real registry: also proves no clash with a built-in name.
    provided = [r.name for r in collection().items.values() if r.plugin == name]
    assert provided, f"the {hook} example registered nothing"


def test_examples_work_end_to_end(hotels_source: None, tmp_path: Path) -> None:
    """The example components do what hooks.md says, used together in one tagger."""
    manager = registry.load_plugins()
    names = []
    try:
        for hook in HOOKS:
            names.append(f"hooks-md-{hook}")
            manager.register(example_plugin(hook), name=names[-1])

        # register_taxonomies: both the packaged file and the in-code taxonomy.
        assert registry.taxonomies().get("hotels").entity_type == "hotel"
        assert registry.taxonomies().get("room-types").mode == "single-label"

        # register_data_sources: a name list, labels after a tab.
        from tagger_core import DataError, FileOptions, read_records

        names_file = tmp_path / "names.lst"
        names_file.write_text("汉庭酒店(北京西单店)\tbudget\n\n三亚亚龙湾度假酒店\n", "utf-8")
        records = read_records(names_file, options=FileOptions(require_labels=False))
        assert [(r.text, r.labels, r.row) for r in records] == [
            ("汉庭酒店(北京西单店)", ("budget",), 1),
            ("三亚亚龙湾度假酒店", (), 3),
        ]
        with pytest.raises(DataError, match="row 3, field 'label': no labels after a tab"):
            read_records(names_file)

        # register_normalizers + register_encoders + register_decision_rules in one tagger.
        tagger = Tagger.create(
            "hotels",
            encoder="keyword",
            rule="within-margin",
            rule_params={"margin": 0.1},
            normalizers=["strip-branch"],
        )
        assert tagger.normalize(["汉庭酒店(北京西单店)", "如家酒店（外滩店）"]) == [
            "汉庭酒店",
            "如家酒店",
        ]
        from tagger_core import Record

        tagger.train([Record(text="香港半岛酒店", labels=("luxury",))])
        tagger.save(tmp_path / "keyword-tagger")
        [prediction] = Tagger.load(tmp_path / "keyword-tagger").predict(
            ["从化温泉度假酒店(温泉镇店)"]
        )
        assert sorted(prediction.labels) == ["hot-spring-spa", "resort"]

        # register_commands: the example command on a fresh group.
        group = click.Group()
        example_plugin("register_commands").register_commands(cli=group)
        data = REPO / "examples" / "tagger-hotels" / "data" / "validation.json"
        result = CliRunner().invoke(group, ["hotels", "count", str(data)])
        assert result.exit_code == 0, result.output
        assert "luxury\t" in result.output
    finally:
        for name in names:
            manager.unregister(name=name)
