"""The stages run in one direction: no module imports a later stage, lazily or not.

definition -> graph -> derive -> simplify -> prove -> render / codegen -> runtime
(DESIGN.md, "Data flow"). Every module of every stage package is parsed with
`ast` and every import is collected: top level, inside functions, under
``if TYPE_CHECKING:`` (a type-only import is still an edge a reader follows),
and ``importlib.import_module("...")`` with a literal name. Nothing is
imported to check, so a violation cannot hide behind import order.

- A stage may import its own stage and earlier ones.
- render and codegen are siblings, both after prove: neither imports the other
  (the printout and the kernel are two readings of the same derived
  expressions; none of today's modules crosses between them).
- Any stage may import the stage-neutral modules (`symgrad.store`: cache
  folder and atomic writes; `symgrad._version`), which import no stage.
- No stage imports a facade (`symgrad` itself, `symgrad.model`, `symgrad.nn`,
  `symgrad.sklearn`, `symgrad.cli`, `symgrad.__main__`): those import every
  stage, so importing one means depending on all. Facades may import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "symgrad"

# Stage -> rank; a module may import ranks <= its own, except a sibling of equal rank.
RANK = {"definition": 0, "graph": 1, "derive": 2, "simplify": 3, "prove": 4,
        "render": 5, "codegen": 5, "runtime": 6}
NEUTRAL = {"store", "_version"}
FACADES = {"__init__", "__main__", "model", "nn", "sklearn", "cli"}

# (importing module, imported stage) -> why it is allowed for now. Each entry must
# still be needed: when the imports go, the test asks for the entry to go too.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _literal_import(call: ast.Call) -> bool:
    """``importlib.import_module("...")`` or ``__import__("...")`` with a literal name."""
    func = getattr(call.func, "attr", getattr(call.func, "id", ""))
    return (func in ("import_module", "__import__") and bool(call.args)
            and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str))


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """Every ``symgrad`` module ``source`` imports, with its line: any depth, any form.

    >>> src = "import os\\ndef f():\\n    from symgrad.derive import scalar\\n    from . import x"
    >>> imported_modules(src, "symgrad.render.draw")
    [('symgrad.derive.scalar', 3), ('symgrad.render.x', 4)]
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from symgrad.derive import scalar` imports a module; `from symgrad import
            # __version__` the package itself: names are kept, and _target sorts them out.
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and _literal_import(node):
            found.append((node.args[0].value, node.lineno))
    return sorted((name, line) for name, line in found
                  if name == "symgrad" or name.startswith("symgrad."))


def _target(name: str) -> str:
    """What ``symgrad.<part>...`` names: a stage, a neutral module or a facade."""
    part = name.split(".")[1] if "." in name else "__init__"
    if part in RANK or part in NEUTRAL or part in FACADES:
        return part
    # `from symgrad import X` with X an attribute of the package (not a submodule)
    return "__init__"


def violations(source: str, module: str, is_package: bool = False) -> list[tuple[str, str]]:
    """(imported stage or facade, message) for each import of ``module`` that breaks the rule.

    ``module`` is a stage or stage-neutral module.

    >>> for target, message in violations("from symgrad.derive import memo", "symgrad.graph.topo"):
    ...     print(target, message, sep=": ")
    derive: symgrad.graph.topo:1 imports symgrad.derive.memo: a later stage (graph -> derive)
    """
    own = module.split(".")[1]
    bad = []
    for name, line in imported_modules(source, module, is_package):
        target = _target(name)
        if target == own:
            continue
        if target in FACADES:
            why = "a facade (it imports every stage)"
        elif own in NEUTRAL:
            if target in NEUTRAL:
                continue
            why = "a stage, from a stage-neutral module"
        elif target in NEUTRAL or RANK[target] < RANK[own]:
            continue
        elif RANK[target] > RANK[own]:
            why = f"a later stage ({own} -> {target})"
        else:
            why = f"a sibling stage ({own} -> {target})"
        bad.append((target, f"{module}:{line} imports {name}: {why}"))
    return bad


def _messages(source: str, module: str) -> list[str]:
    return [message for _, message in violations(source, module)]


def _checked_files() -> list[Path]:
    files = [PACKAGE / "_version.py"]
    for part in sorted([*RANK, "store"]):
        files += sorted((PACKAGE / part).rglob("*.py"))
    return files


def test_every_part_of_the_package_is_classified() -> None:
    # A new package or top-level module must be placed (stage, neutral or facade)
    # before it can escape this test.
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert parts - set(RANK) - NEUTRAL - FACADES == set()


def test_no_stage_imports_a_later_stage() -> None:
    found, used = [], set()
    for path in _checked_files():
        module = _module_name(path)
        source = path.read_text(encoding="utf-8")
        for target, message in violations(source, module, path.name == "__init__.py"):
            if (module, target) in KNOWN_EXCEPTIONS:
                used.add((module, target))
            else:
                found.append(message)
    assert found == [], "\n".join(found)
    stale = set(KNOWN_EXCEPTIONS) - used
    assert not stale, f"these imports are gone: delete their KNOWN_EXCEPTIONS entries: {stale}"


def test_the_walk_sees_what_it_must() -> None:
    """The checker is not vacuous: it finds real imports and flags each kind of breach."""
    memo = (PACKAGE / "derive" / "memo.py").read_text(encoding="utf-8")
    names = [name for name, _ in imported_modules(memo, "symgrad.derive.memo")]
    assert "symgrad.store.folder.cache_dir" in names and "symgrad.derive.plan.OutputPlan" in names
    lazy = "def backward(self):\n    from symgrad.derive.scalar_steps import backward_step\n"
    assert _messages(lazy, "symgrad.definition.value") == [
        "symgrad.definition.value:2 imports symgrad.derive.scalar_steps.backward_step: "
        "a later stage (definition -> derive)"]
    typing_only = "if TYPE_CHECKING:\n    from symgrad.model import Model\n"
    assert "a facade" in _messages(typing_only, "symgrad.render.notebook")[0]
    assert "a facade" in _messages("from symgrad import __version__", "symgrad.codegen.cache")[0]
    assert "sibling" in _messages("import symgrad.codegen.kernels", "symgrad.render.draw")[0]
    assert "stage-neutral" in _messages("from symgrad.graph import topo", "symgrad.store.folder")[0]
    dynamic = "import importlib\nimportlib.import_module('symgrad.runtime.training')"
    assert "later stage" in _messages(dynamic, "symgrad.prove.check")[0]
    assert "later stage" in _messages("from ..render import draw", "symgrad.derive.scalar")[0]
    assert _messages("from symgrad.graph.topo import depths", "symgrad.render.draw") == []
    assert _messages("from symgrad.store.atomic import atomic_write", "symgrad.derive.memo") == []
    assert _messages("from . import atomic", "symgrad.store.folder") == []


@pytest.mark.parametrize("stage", sorted(RANK))
def test_every_stage_has_modules(stage) -> None:
    # A renamed or moved stage folder would otherwise make the walk silently skip it.
    assert len(list((PACKAGE / stage).glob("*.py"))) >= 2, stage


def test_import_symgrad_leaves_numba_for_the_first_kernel():
    # Deriving and printing need no JIT compiler: `import symgrad` must not pay for
    # Numba (~0.4-0.8 s here); the kernel generators load it when a model first trains.
    import subprocess
    import sys
    code = ("import sys, symgrad; "
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite')]; "
            "sys.exit(str(sorted(loaded)[:5]) if loaded else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"import symgrad loaded {proc.stderr or proc.stdout}"
