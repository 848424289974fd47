"""Every activation registry entry: derivative vs finite differences, proofs, forms, errors."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.activations import REGISTRY
from symgrad.definition.errors import (
    DefinitionError,
    NotElementwiseError,
    UnsupportedFunctionError,
)
from symgrad.definition.formulas import A, Z
from symgrad.definition.supported import LAMBDIFY_MODULES
from symgrad.derive.elementwise import derive_elementwise
from symgrad.prove.identity import prove_identity
from symgrad.simplify.saved_output import activation_plan

ELEMENTWISE = sorted(n for n, cls in REGISTRY.items() if cls.entry.kind == "elementwise")


def _plan(cls, **params):
    return activation_plan(derive_elementwise(cls(**params)))


def _fn(expr, *syms):
    f = sp.lambdify(list(syms), expr, modules=LAMBDIFY_MODULES)
    return lambda *x: np.broadcast_to(np.asarray(f(*x), dtype=float), np.shape(x[0]))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_matches_finite_differences(name):
    plan, _ = _plan(REGISTRY[name])
    # Stay away from kinks (all built-in kinks are at 0): central differences need smoothness.
    z = np.concatenate([np.linspace(-3, -0.05, 20), np.linspace(0.05, 3, 20)])
    f = _fn(plan.forward, Z)
    eps = 1e-6
    fd = (f(z + eps) - f(z - eps)) / (2 * eps)
    derived = _fn(plan.derivative, Z, A)(z, f(z))
    np.testing.assert_allclose(derived, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_identities_proven(name):
    plan, extra = _plan(REGISTRY[name])
    for ident in (plan.identity, *extra):
        proof = prove_identity(ident)
        assert proof.max_error < 1e-8


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_stable_forward_is_finite_at_extremes(name):
    plan, _ = _plan(REGISTRY[name])
    z = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with np.errstate(all="ignore"):   # np.select evaluates unselected branches too
        values = _fn(plan.stable_forward, Z)(z)
    assert np.all(np.isfinite(values)), (name, values)


# What the search must find, by construction of the engine (not by lookup).
EXPECTED_IN_OUTPUT = {
    "identity": lambda a: sp.Integer(1),
    "tanh": lambda a: 1 - a**2,
    "sigmoid": lambda a: a * (1 - a),
    "softplus": lambda a: 1 - sp.exp(-a),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_IN_OUTPUT))
def test_saved_output_forms_emerge(name):
    plan, _ = _plan(REGISTRY[name])
    assert sp.simplify(plan.derivative - EXPECTED_IN_OUTPUT[name](A)) == 0
    assert not plan.derivative.has(Z)
    assert plan.saved in ((), ("a",))


def test_relu_is_a_mask_on_the_saved_output_with_zero_at_the_kink():
    plan, _ = _plan(sg.ReLU)
    assert plan.saved == ("a",)
    d = _fn(plan.derivative, Z, A)
    a = np.array([-0.0, 0.0, 1e-12, 3.0])
    np.testing.assert_array_equal(d(a, a), [0.0, 0.0, 1.0, 1.0])
    assert plan.derivative_raw == sp.Heaviside(Z, 0)   # convention carried by the expression


def test_elu_branches_in_saved_output():
    plan, _ = _plan(sg.ELU, alpha=0.5)
    assert plan.saved == ("a",)
    d = _fn(plan.derivative, Z, A)
    np.testing.assert_allclose(d(np.array([0.0]), np.array([-0.3])), [0.2])   # a + alpha
    np.testing.assert_allclose(d(np.array([0.0]), np.array([2.0])), [1.0])


@pytest.mark.parametrize("name", ["swish", "silu"])
def test_no_output_form_falls_back_to_z(name):
    # Swish's gate form a(1 + z - a)/z is found but measured 11.5 ulp off in float64
    # at z = 22 (z - a cancels a's rounding), so the slope stays in z.
    plan, _ = _plan(REGISTRY[name])
    assert plan.saved == ("z",)
    assert plan.derivative.has(Z) and not plan.derivative.has(A)
    assert plan.evaluated_derivative is None


@pytest.mark.parametrize("formula, gone", [
    ("gelu", sp.erf),           # Phi(z) + z phi(z): erf(z/sqrt 2) = 2a/z - 1
    ("x*atan(x)", sp.atan),     # atan(z) + z/(1 + z^2): atan(z) = a/z
])
def test_gated_activation_reads_its_gate_off_a(formula, gone):
    if formula == "gelu":
        plan, _ = _plan(REGISTRY["gelu"])
    else:
        plan, _ = _plan(sg.activation(f"gate_test_{gone.__name__}", formula))
    assert plan.saved == ("z", "a")
    assert not plan.derivative.atoms(gone) and plan.derivative.has(A / Z)
    # The kernels evaluate the guarded form: no 0/0 at z = 0, nor from a subnormal a.
    d = _fn(plan.kernel_derivative, Z, A)
    f = _fn(plan.stable_forward, Z)
    exact = sp.lambdify(Z, plan.derivative_raw, "mpmath")
    zs = np.array([0.0, 1e-300, -1e-40, 5e-324, 1e-3, -0.7, 2.5, -6.0, 30.0])
    with np.errstate(all="ignore"):   # NumPy evaluates both sides of the guard
        got = d(zs, f(zs))
    assert np.all(np.isfinite(got))
    want = np.array([float(exact(mpmath.mpf(float(v)))) if v else float(
        sp.limit(plan.derivative_raw, Z, 0)) for v in zs])
    np.testing.assert_allclose(got, want, rtol=0, atol=8 * 2.0**-52)


def test_parameterised_activation_takes_parameters_at_construction():
    assert sg.LeakyReLU(0.2).params == {"alpha": 0.2}
    assert sg.LeakyReLU(alpha=0.3).forward.subs(Z, -1) == sp.Rational(-3, 10)
    with pytest.raises(TypeError, match="no parameter 'beta'"):
        sg.LeakyReLU(beta=1.0)
    with pytest.raises(ValueError, match="finite"):
        sg.ELU(alpha=float("nan"))


def test_custom_activation_like_a_builtin():
    x = sg.var("x")
    Swish2 = sg.activation("swish2_test", x * sg.sigmoid(x), latex=r"\mathrm{sw}")
    layer = Swish2()
    assert layer.forward == Z * sg.sigmoid(Z)
    assert isinstance(layer, sg.definition.activations.ActivationLayer)
    plan, _ = activation_plan(derive_elementwise(layer))
    assert plan.saved == ("z",)


def test_not_elementwise_is_rejected_at_definition():
    x, w = sg.var("x"), sg.var("w")
    with pytest.raises(NotElementwiseError, match="w, x"):
        sg.activation("bad2", x * w)
    with pytest.raises(NotElementwiseError, match="none"):
        sg.activation("const", sp.Integer(3))


def test_untranslatable_function_is_rejected_at_definition():
    x = sg.var("x")
    with pytest.raises(UnsupportedFunctionError, match="zeta"):
        sg.activation("zeta_act", sp.zeta(x))
    f = sp.Function("f")
    with pytest.raises(UnsupportedFunctionError, match="f"):
        sg.activation("undefined_fn", f(x))


@pytest.mark.parametrize("formula", ["Piecewise((x, x > 0))",
                                     "Piecewise((x**2, x > 1), (x, x > -1))",
                                     "tanh(x) + Piecewise((x, x > 0))"])
def test_a_piecewise_without_a_default_branch_is_rejected_at_definition(formula):
    """Undefined where no condition holds: a bare TypeError deep in the simplify stage, or
    an error only at the first prediction, until the definition checked it."""
    with pytest.raises(UnsupportedFunctionError, match=r"no default branch.*\(0, True\)"):
        sg.activation("pw_no_default", formula)
    with pytest.raises(UnsupportedFunctionError, match="no default branch"):
        sg.loss("pw_no_default_loss", formula.replace("x", "(p - y)"))


@pytest.mark.parametrize("formula", [sp.Heaviside(sp.Symbol("x", real=True), 0),
                                     sp.sign(sp.Symbol("x", real=True) - 1)])
def test_a_piecewise_constant_activation_is_rejected(formula):
    # Its derivative is 0 wherever it exists: nothing would train through it.
    with pytest.raises(DefinitionError, match="piecewise constant.*no gradient"):
        sg.activation("step", formula)


@pytest.mark.parametrize("formula, slope", [
    ("x*Heaviside(x)", "Heaviside(z)"),
    ("x*Heaviside(x**2 - 1)", "Heaviside(z**2 - 1)"),
    ("x + x*Heaviside(sin(x), 0)", "1 + Heaviside(sin(z), 0)"),
    ("sign(x)*x**2", "2*z*sign(z)"),
])
def test_steps_in_a_formula_give_the_derivative_almost_everywhere(formula, slope, tmp_path,
                                                                  monkeypatch):
    """SymPy's derivative of a step has DiracDelta terms; they are zero off the step, so
    the derivative is the a.e. one (as PyTorch's and JAX's for `where`), and it compiles,
    trains and passes sg.check (finite differences away from the steps)."""
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    act = sg.activation("test_step_ae", formula, replace=True)
    try:
        plan, _ = _plan(act)
        assert plan.derivative_raw == sp.sympify(slope, locals={"z": Z})
        model = sg.compile(sg.Sequential(sg.Dense(2, 4), act(), sg.Dense(4, 1)), loss="mse")
        rng = np.random.default_rng(1)
        X = rng.normal(size=(40, 2))
        model.fit(X, X[:, :1] * X[:, 1:], epochs=2, verbose=0)
        assert sg.check(model).ok
    finally:
        REGISTRY.pop("test_step_ae", None)


def test_softmax_kind_must_be_exp():
    x = sg.var("x")
    with pytest.raises(DefinitionError, match="softmax"):
        sg.activation("bad_softmax", x**2, kind="softmax")


def test_sympy_leaving_a_derivative_is_a_clear_error():
    from symgrad.definition.convention import differentiate
    from symgrad.definition.errors import NotDifferentiableError

    x = sg.var("x")
    with pytest.raises(NotDifferentiableError, match="floor"):
        differentiate(sp.floor(x), x, "activation 'floor'")


def test_registry_entries_are_layer_classes_with_formulas_only():
    for name, cls in REGISTRY.items():
        entry = cls.entry
        assert entry.name == name
        assert isinstance(entry.formula, sp.Expr)
        # no derivative is stored anywhere in a registry entry
        assert not any("deriv" in f for f in vars(entry))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_is_finite_at_extreme_preactivations(name):
    plan, _ = _plan(REGISTRY[name])
    z = np.array([-1000.0, -50.0, 50.0, 1000.0])
    with np.errstate(all="ignore"):
        a = _fn(plan.stable_forward, Z)(z)
        d = _fn(plan.derivative, Z, A)(z, a)
    assert np.all(np.isfinite(d)), (name, d)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_builtin_passes_the_checks_a_user_definition_gets(name):
    # Built-ins skip `check_activation` at import (it is SymPy work every import would
    # pay); here every one of them gets it, as `activation()` gives a user's formula.
    from symgrad.definition.activations import check_activation
    check_activation(REGISTRY[name].entry)


def test_check_activation_refuses_a_wrong_stable_form():
    from symgrad.definition.activations import ActivationEntry, check_activation
    x = sp.Symbol("x", real=True)
    wrong = ActivationEntry("wrong_stable", sp.log(1 + sp.exp(x)), x, r"\operatorname{w}",
                            stable=sp.log(1 + sp.exp(-sp.Abs(x))))
    with pytest.raises(DefinitionError, match="wrong_stable"):
        check_activation(wrong)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_kink_away_from_zero_keeps_its_branch_just_past_it(dtype, scratch_registries):
    # Leaky hard-tanh: slope 1e-4 past z = 1 where f = 1. Mapped to a > 1, the condition
    # failed for z up to 1.0003 in float32 (a rounds to 1) and the slope 1 was used.
    s = 1e-4
    act = sg.activation("kink_at_one", "Piecewise((1 + (x - 1)*s, x > 1), (x, x > -1), "
                        "(-1 + (x + 1)*s, True))", s=s)
    z = np.array([1 + 1e-6, 1 + 1e-5, 1 + 1e-4, 1.0003, 1.01, 0.5, -1.5])
    n = len(z)
    model = sg.compile(sg.Sequential(sg.Dense(1, n), act(), sg.Dense(n, n)), loss="mse",
                       dtype=dtype)
    model.params = {"dense0.W": np.zeros((1, n)), "dense0.b": z, "dense1.W": np.eye(n),
                    "dense1.b": np.zeros(n)}
    X = np.ones((1, 1))
    _, grads = model.compiled_backward(X, model.predict_proba(X) - 1)
    slope = grads["dense0.b"] / grads["dense1.b"]   # f'(z): dense1 is the identity
    np.testing.assert_allclose(slope, [s] * 5 + [1, s], rtol=1e-6)


@pytest.mark.parametrize("formula", ["x + nan", "Max(x, oo)", "x*zoo", "x + Inf",
                                     sp.Symbol("x", real=True) + sp.oo,
                                     sp.Symbol("x", real=True) * sp.nan])
def test_an_infinite_or_undefined_constant_is_named_as_such(formula):
    """'nan' parsed as a second variable: "has free variables: nan, x" hid the problem
    (helper-34); SymPy's x + oo is oo, which was refused as having no variable."""
    with pytest.raises(DefinitionError, match="is not a finite number"):
        sg.activation("not_finite", formula)
