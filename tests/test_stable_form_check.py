"""A user ``stable=`` form is checked against the formula when it is defined (issue 7, item 8).

Before, an activation declared as tanh with the identity as its "stable" form trained on
the identity silently. Mismatches are refused with the activation (or op) and a point
where the two differ; correct stable forms, including ones that are only right in
exact arithmetic where float64 overflows the formula, are accepted.
"""

from __future__ import annotations

import re

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.errors import DefinitionError
from symgrad.definition.scalar_ops import ScalarOpRegistry

pytestmark = pytest.mark.usefixtures("scratch_registries")

x = sg.var("x")
alpha = sg.var("alpha")
_point = re.compile(r"at x = (-?[0-9.e+-]+)")


def _refused_at(exc: pytest.ExceptionInfo) -> float:
    return float(_point.search(str(exc.value)).group(1))


WRONG = [
    # (formula, stable form): differ somewhere in |x| <= 700
    (sg.tanh(x), x),
    (sg.sigmoid(x), (1 + sg.tanh(x)) / 2),                         # x/2 forgotten
    (sg.softplus(x), sg.Max(x, 0)),                               # the log term dropped
    (sg.softplus(x), sg.Max(x, 0) + sg.log(1 + sg.exp(-x))),      # -|x| written as -x
    (x * sg.sigmoid(x), x * sg.exp(x) / (1 + sg.exp(-x))),
    # equal for |x| < 100 only: caught far out
    (sg.softplus(x), sg.Piecewise((sg.softplus(x), sg.Abs(x) < 100), (0, True))),
    # equal except for x < 0 only
    (sg.Abs(x), sg.Piecewise((x, x > -1e-3), (-x, True))),
]


@pytest.mark.parametrize("formula,stable", WRONG, ids=[str(s) for _, s in WRONG])
def test_a_stable_form_that_is_not_the_formula_is_refused_naming_a_point(formula, stable):
    with pytest.raises(DefinitionError, match=r"activation 'claimed'.*stable form") as exc:
        sg.activation("claimed", formula, stable=stable)
    z0 = _refused_at(exc)
    f = sp.lambdify(x, formula, "mpmath")(z0)
    s = sp.lambdify(x, stable, "mpmath")(z0)
    assert abs(f - s) > 1e-9 * max(1, abs(f))   # the named point really is a mismatch
    from symgrad.definition.activations import REGISTRY

    assert "claimed" not in REGISTRY


def test_a_mismatch_only_where_float64_overflows_the_formula_is_caught_in_exact_arithmetic():
    # softplus(2x)/2: naive float64 gives inf beyond x ~ 355, the exact value is ~x.
    formula = sg.log(1 + sg.exp(2 * x)) / 2
    good = sg.Max(x, 0) + sg.log(1 + sg.exp(-2 * sg.Abs(x))) / 2
    sg.activation("half_softplus", formula, stable=good)
    wrong_far = sg.Piecewise((good, x < 400), (x + 1, True))
    with pytest.raises(DefinitionError, match="not equal to the formula") as exc:
        sg.activation("half_softplus_bad", formula, stable=wrong_far)
    assert _refused_at(exc) >= 400


def test_a_stable_form_that_overflows_where_the_formula_is_finite_is_refused():
    with pytest.raises(DefinitionError, match="not numerically safe.*float64"):
        # equal to x exactly, but exp(2x) overflows float64 beyond x ~ 355
        sg.activation("lin", x, stable=(sg.log(sg.exp(2 * x) + 1) - sg.log(1 + sg.exp(-2 * x))) / 2)


def test_a_stable_form_right_only_at_the_default_parameter_is_refused():
    with pytest.raises(DefinitionError, match=r"activation 'scaled'.*alpha = "):
        sg.activation("scaled", alpha * x, stable=x / 100, alpha=0.01)


@pytest.mark.parametrize("formula,stable,params", [
    (sg.sigmoid(x), (1 + sg.tanh(x / 2)) / 2, {}),
    (sg.softplus(x), sg.Max(x, 0) + sg.log(1 + sg.exp(-sg.Abs(x))), {}),
    (sg.Piecewise((x, x > 0), (alpha * x, True)), sg.Max(x, alpha * x), {"alpha": 0.1}),
    (sg.log(sg.cosh(x)), sg.Abs(x) + sg.log(1 + sg.exp(-2 * sg.Abs(x))) - sg.log(2), {}),
    (x * sg.sigmoid(x), x * (1 + sg.tanh(x / 2)) / 2, {}),
])
def test_correct_stable_forms_are_accepted(formula, stable, params):
    Act = sg.activation("stable_ok", formula, stable=stable, replace=True, **params)
    assert Act.entry.stable is not None


def test_builtin_stable_forms_pass_the_same_check():
    from symgrad.definition.activations import REGISTRY, check_user_stable

    checked = 0
    for cls in REGISTRY.values():
        e = cls.entry
        if e.stable is not None:
            check_user_stable(e.formula, e.stable, [e.variable], dict(e.defaults), e.name)
            checked += 1
    assert checked >= 2


def test_scalar_op_stable_forms_are_checked_too():
    with pytest.raises(DefinitionError, match=r"scalar op 'bad_sig'.*not equal") as exc:
        sg.register_scalar_op("bad_sig", sg.sigmoid, latex=r"\sigma({0})", arity=1,
                              stable=lambda x0: sp.exp(x0) / (1 + sp.exp(x0)) + 1e-3,
                              registry=ScalarOpRegistry())
    assert "x0 = " in str(exc.value)
    with pytest.raises(DefinitionError, match=r"scalar op 'bad_mul'.*x0 = .*x1 = "):
        sg.register_scalar_op("bad_mul", lambda x0, x1: x0 * x1, latex=r"{0} {1}",
                              stable=lambda x0, x1: x0 * x1 + x0, registry=ScalarOpRegistry())
    # Only points inside the op's domain are compared; with parameters, several values.
    op = sg.register_scalar_op("safe_pow", lambda x0, k: x0**k, params=("k",),
                               latex="{0}^{{{k}}}", domain=lambda x0, k: x0 > 0,
                               stable=lambda x0, k: sp.exp(k * sp.log(x0)),
                               registry=ScalarOpRegistry())
    assert op.forward([4.0], [0.5]) == pytest.approx(2.0)
    with pytest.raises(DefinitionError, match="not equal"):
        sg.register_scalar_op("bad_pow", lambda x0, k: x0**k, params=("k",),
                              latex="{0}^{{{k}}}", domain=lambda x0, k: x0 > 0,
                              stable=lambda x0, k: x0**2, registry=ScalarOpRegistry())


def test_a_right_stable_form_of_a_cancelling_formula_is_accepted():
    # exp(2x)(1 - tanh x) = 2/(1 + e^-2x): at x = 128, 60 digits of tanh(128) leave
    # nothing of 1 - tanh, so a fixed-precision "exact" value called them different.
    x = sg.var("x")
    layer = sg.activation("test_twosig_cancel", sg.exp(2 * x) * (1 - sg.tanh(x)),
                          stable=2 / (1 + sg.exp(-2 * x)), replace=True)
    try:
        assert layer.entry.stable is not None
    finally:
        from symgrad.definition.activations import REGISTRY
        REGISTRY.pop("test_twosig_cancel", None)
