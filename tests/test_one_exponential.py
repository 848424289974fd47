"""The one-exponential rewrite and the cost-aware choice of evaluation forms.

`through_one_exponential` proposes a form of f(z) that evaluates a single e^(-|u|);
`choose` takes it only when it is accurate and cheaper. Checked here: the rewrite is
exact (at points of both signs, far out where the exponentials over- and underflow
too), it declines what it cannot do, the choice never trades accuracy for speed, and
formulas that are not built in (a user's activation) get the cheaper slope.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.formulas import Z
from symgrad.derive.elementwise import derive_elementwise
from symgrad.simplify.accuracy import choose, evaluate
from symgrad.simplify.one_exponential import through_one_exponential
from symgrad.simplify.op_count import evaluation_cost
from symgrad.simplify.saved_output import DERIVATIVE_ULPS, activation_plan

z = Z

# Formulas of exp/cosh/sinh/tanh of multiples of z (none is a built-in's own form).
FORMULAS = [
    z / (4 * sp.cosh(z / 2) ** 2) + 1 / (1 + sp.exp(-z)),          # Swish's slope
    sp.exp(-z) / (1 + sp.exp(-z)) ** 2,                             # the logistic slope
    sp.tanh(z),
    sp.diff(z * sp.tanh(z), z),
    (1 + sp.tanh(z / 2)) / 2,
    z * sp.exp(-3 * z / 2) / (1 + sp.exp(-z / 2)) ** 3,
    sp.sinh(z / 3) / (1 + sp.cosh(2 * z / 3)),
    sp.diff(z / (1 + sp.exp(-sp.Rational(7, 4) * z)), z),
    # z under a root beside the exponential: a coefficient of the polynomial in t that
    # SymPy's default domain refused (sg.compile raised PolynomialError)
    sp.diff(sp.sqrt(z ** 2 + 1) + sp.tanh(z), z),
    sp.sqrt(z ** 2 + 1) * (1 + sp.tanh(z) ** 2 + z * sp.tanh(z)),
]
POINTS = [-60, -7.5, -1.2784645, -0.3, -1e-3, 0, 2e-4, 0.25, 1, 3.3, 9, 45]


def _exact(expr: sp.Expr, x: float) -> float:
    with mpmath.workdps(40):
        return float(sp.N(expr.subs(z, sp.Float(x, 40)), 30))


@pytest.mark.parametrize("expr", FORMULAS, ids=range(len(FORMULAS)))
def test_rewrite_is_exact_and_takes_one_exponential(expr):
    form = through_one_exponential(expr, z)
    assert form is not None
    exps = {f for f in form.atoms(sp.exp)}
    assert len(exps) <= 2          # e^(-|u|), and e^(|u|) where the formula grows like it
    for x in POINTS:
        want = _exact(expr, x)
        got = _exact(form, x)
        assert got == pytest.approx(want, rel=1e-25, abs=1e-25), (x, form)


@pytest.mark.parametrize("expr", [sp.exp(-z ** 2), sp.log(1 + sp.exp(z)), sp.erf(z) * sp.exp(z),
                                  z ** 2 + 1, sp.exp(z) * sp.Abs(z), sp.exp(sp.sqrt(2) * z)],
                         ids=["gauss", "log", "erf", "polynomial", "abs", "irrational"])
def test_rewrite_declines_what_it_cannot_write(expr):
    assert through_one_exponential(expr, z) is None


def test_swish_slope_is_evaluated_through_one_exponential():
    plan, _ = activation_plan(derive_elementwise(sg.Swish()))
    # as derived it is one exponential too, but inf/inf once e^-z overflows
    far = {z: np.array([-100.0], np.float32)}
    assert not np.isfinite(evaluate(plan.derivative_raw, far, "float32")).all()
    assert evaluation_cost(plan.derivative) == 1
    assert plan.derivative.atoms(sp.exp) == {sp.exp(-sp.Abs(z))}
    assert np.isfinite(evaluate(plan.derivative, far, "float32")).all()


def test_a_users_activation_gets_the_cheaper_slope_and_stays_exact():
    # z * sigmoid(z/2) ("SiLU with a temperature"), defined as a formula
    act = sg.activation("silu_half", z / (1 + sp.exp(-z / 2)), r"\operatorname{s}")
    raw = derive_elementwise(act())
    plan, _ = activation_plan(raw)
    assert evaluation_cost(plan.derivative) == 1
    for x in POINTS:
        assert _exact(plan.derivative, x) == pytest.approx(_exact(raw.derivative_raw, x),
                                                           rel=1e-25, abs=1e-25)
    # ... and the compiled kernels agree with the NumPy reference on it
    model = sg.compile(sg.Sequential(sg.Dense(3, 5), act(), sg.Dense(5, 2), sg.Softmax()),
                       loss="cross_entropy", optimizer=sg.SGD(lr=0.1), seed=3)
    rng = np.random.default_rng(0)
    X = rng.normal(0, 6, (40, 3))     # wide: both branches of the select are used
    y = rng.integers(0, 2, 40)
    report = sg.check(model)
    assert report.ok, report
    fitted = model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(fitted.history["loss"]).all()


def test_choose_never_trades_accuracy_for_cost():
    exact = sp.exp(-z) / (1 + sp.exp(-z)) ** 2
    costly = 1 / (4 * sp.cosh(z / 2) ** 2)                # accurate, cost 2
    cheap_bad = sp.exp(-z) / (1 + sp.exp(-z)) ** 2        # cost 1, inf/inf for z << 0
    cheap_good = through_one_exponential(exact, z)        # cost 1, accurate
    assert evaluation_cost(costly) == 2
    picked = choose([("costly", costly), ("cheap, overflows", cheap_bad)], exact,
                    DERIVATIVE_ULPS, floor=1.0)
    assert picked.label == "costly"
    picked = choose([("costly", costly), ("cheap, overflows", cheap_bad),
                     ("one exponential", cheap_good)], exact, DERIVATIVE_ULPS, floor=1.0)
    assert picked.label == "one exponential"
    assert picked.ulps <= DERIVATIVE_ULPS


def test_a_rewrite_that_overflows_is_refused():
    """z * sigmoid(3z/2): through one exponential its slope holds (3z + 2) e^(-3|z|/2),
    and 3z overflows near the largest float while e^(-3z/2) is 0 (inf * 0): the
    accuracy check refuses it and the slope stays in the stable rules' form (a known
    limit of the rewrite: a coefficient above 1 on z)."""
    raw = derive_elementwise(sg.activation("silu_3half", z / (1 + sp.exp(-sp.Rational(3, 2) * z)),
                                           r"\operatorname{s}")())
    plan, _ = activation_plan(raw)
    assert not plan.derivative.has(sp.Piecewise)
    assert sp.cosh in {type(f) for f in plan.derivative.atoms(sp.Function)}
