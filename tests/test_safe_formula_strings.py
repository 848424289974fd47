"""String formulas are parsed from a whitelist, never evaluated (issue 7, item 2).

A payload that would create a marker file is tried through every public entry point
that accepts a formula string (scalar op formula / domain / stable form, a callable
returning a string, activation and loss formulas); none may run, each is a clear
`DefinitionError` naming the construct. Harmless strings are accepted and mean what
they say.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.errors import DefinitionError
from symgrad.definition.scalar_ops import ScalarOpRegistry, operand_symbols
from symgrad.derive.scalar import local_derivatives

pytestmark = pytest.mark.usefixtures("scratch_registries")

PACKAGE = Path(sg.__file__).resolve().parent

# Each would create the marker file if the string were handed to eval/sympify.
PAYLOADS = [
    # (payload, the construct the error names: the outermost disallowed one)
    ("__import__('pathlib').Path({m!r}).touch() or x0", "attribute access"),
    ("open({m!r}, 'w') and x0", "function 'open'"),
    ("exec('open({m}, \"w\")') + x0", "function 'exec'"),
    ("eval('1') + x0", "function 'eval'"),
    ("(lambda: open({m!r}, 'w'))() + x0", "call of"),
    ("x0.__class__.__mro__", "attribute access"),
    ("[open({m!r}, 'w') for _ in 'a'][0]", "subscript"),
    ("globals()", "function 'globals'"),
    ("Symbol('x0').func(x0)", "attribute access"),
    ("x0 if open({m!r}, 'w') else x0", "conditional expression"),
    ("(y := open({m!r}, 'w'))", "assignment expression"),
    ("x0 + f'{{open({m!r})}}'", "f-string"),
]


@pytest.mark.parametrize("payload,construct", PAYLOADS, ids=[p for p, _ in PAYLOADS])
def test_no_entry_point_evaluates_a_formula_string(tmp_path, payload, construct):
    marker = tmp_path / "PWNED"
    text = payload.format(m=str(marker))
    attempts = {
        "op formula": lambda: sg.register_scalar_op("evil", text, latex="{0}",
                                                    registry=ScalarOpRegistry()),
        "op domain": lambda: sg.register_scalar_op("evil", "x0", latex="{0}", domain=text,
                                                   registry=ScalarOpRegistry()),
        "op stable": lambda: sg.register_scalar_op("evil", "x0", latex="{0}", stable=text,
                                                   registry=ScalarOpRegistry()),
        "op callable": lambda: sg.register_scalar_op("evil", lambda x0: text, latex="{0}",
                                                     arity=1, registry=ScalarOpRegistry()),
        "activation": lambda: sg.activation("evil_act", text.replace("x0", "x")),
        "activation stable": lambda: sg.activation("evil_act", "x", stable=text.replace("x0",
                                                                                        "x")),
        "loss": lambda: sg.loss("evil_loss", text.replace("x0", "(p - y)")),
    }
    for where, attempt in attempts.items():
        with pytest.raises(DefinitionError) as exc:
            attempt()
        assert "evil" in str(exc.value), where
        if where in ("op formula", "activation", "loss"):
            assert construct in str(exc.value), (where, str(exc.value))
        assert not marker.exists(), f"{where}: the formula string was executed"


def test_a_harmless_string_formula_is_accepted_and_means_what_it_says():
    op = sg.register_scalar_op("sq_plus", "x0**2 + k*x0", latex="{0}^{{2}} + {k}{0}",
                               params=("k",), domain="x0 > -10", registry=ScalarOpRegistry())
    (x0,), k = operand_symbols(1), sp.Symbol("k", real=True)
    assert op.formula == x0**2 + k * x0
    assert op.forward([3.0], [2.0]) == 15.0
    assert op.check_domain([-11.0], [1.0]) is False
    (d,) = local_derivatives(op)
    assert sp.expand(d.raw - (2 * x0 + k)) == 0


def test_operands_are_matched_by_name_whatever_their_assumptions():
    # sp.Symbol("x0") has no assumptions; the canonical operand is real. Once this was
    # "uses ['x0']; only operands ['x0'] are allowed".
    for formula in ("x0**2", sp.Symbol("x0") ** 2, lambda x0: sp.Symbol("x0") ** 2):
        op = sg.register_scalar_op("sq", formula, latex="{0}^{{2}}", arity=1,
                                   registry=ScalarOpRegistry())
        assert op.formula == operand_symbols(1)[0] ** 2
        assert op.formula.free_symbols == {operand_symbols(1)[0]}


def test_a_stray_symbol_is_named_and_the_message_does_not_contradict_itself():
    with pytest.raises(DefinitionError) as exc:
        sg.register_scalar_op("stray", sp.Symbol("q") * sp.Symbol("x0"), latex="{0}",
                              registry=ScalarOpRegistry())
    msg = str(exc.value)
    assert "uses ['q']" in msg and "only operands ['x0']" in msg
    with pytest.raises(DefinitionError) as exc:
        sg.register_scalar_op("stray", "q*x0", latex="{0}", registry=ScalarOpRegistry())
    msg = str(exc.value)
    assert "name 'q' is not allowed" in msg and "x0" in msg and "'x0' is not" not in msg


def test_string_formulas_work_for_activations_and_losses():
    Sq = sg.activation("sq_str", "x**2 + alpha*x", alpha=0.5)
    z = sp.Symbol("z", real=True)
    assert Sq().forward == z**2 + z / 2
    LogCosh = sg.loss("logcosh_str", "log(cosh(yhat - y))")
    p, y = sp.symbols("p y", real=True)
    assert LogCosh.formula == sp.log(sp.cosh(p - y))


@pytest.mark.parametrize("text", ["10**10**10 + x0", "x0 + 9**9**9**9", "((2**64)**64)**64 + x0",
                                  "-" * 300 + "x0", "x0" + " + x0" * 1000,
                                  "1" * 5000 + " + x0"], ids=lambda t: t[:20])
def test_strings_that_would_make_sympy_work_without_bound_are_refused_quickly(text):
    start = time.perf_counter()
    with pytest.raises(DefinitionError, match="too large|nested|characters long|digits"):
        sg.register_scalar_op("big", text, latex="{0}", registry=ScalarOpRegistry())
    assert time.perf_counter() - start < 5.0


def _calls_in_package(names: set[str]) -> list[str]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name in names:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {name}")
    return found


def test_the_definition_layer_never_sympifies_non_strictly_nor_evals():
    # The definition layer is where user objects arrive: every sympify there is strict
    # (strict=True never parses a string), and nothing calls eval or parse_expr.
    for path in (PACKAGE / "definition").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "sympify":
                strict = [k for k in node.keywords if k.arg == "strict"]
                assert strict and getattr(strict[0].value, "value", None) is True, (
                    f"{path.name}:{node.lineno}: sympify without strict=True")
    assert _calls_in_package({"eval", "parse_expr", "parse_latex"}) == []
