"""Every scalar op in the registry: SymPy's derivative against finite differences,
the recorded identities proven, and registration of a new op as one entry."""

from __future__ import annotations

import math
import random

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.convention import with_heaviside_convention
from symgrad.definition.scalar_ops import SCALAR_OPS, UnknownOpError, param_symbol
from symgrad.derive.scalar import OUT, local_derivatives, numeric_local_derivatives

OPS = list(SCALAR_OPS)
# Parameter values exercised per op: integer and fractional exponents for pow.
PARAMS = {"k": (2.0, 3.0, -1.0, 0.5, 1.5)}


def _param_sets(op):
    if not op.params:
        return [()]
    return [tuple(PARAMS[p][i] for p in op.params) for i in range(len(PARAMS[op.params[0]]))]


def _points(op, params, n=12, seed=0):
    """Random operand tuples inside the op's domain, away from the kink of Max at 0."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        xs = tuple(rng.uniform(-3, 3) for _ in range(op.arity))
        if all(abs(x) > 1e-3 for x in xs) and op.check_domain(xs, params):
            out.append(xs)
    return out


def _central_difference(op, xs, params, i, h=1e-6):
    up = list(xs)
    dn = list(xs)
    up[i] += h
    dn[i] -= h
    return (op.forward(up, params) - op.forward(dn, params)) / (2 * h)


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_derived_local_derivative_matches_central_differences(op):
    fns = numeric_local_derivatives(op)
    assert len(fns) == op.arity
    for params in _param_sets(op):
        for xs in _points(op, params):
            out = op.forward(xs, params)
            for i, fn in enumerate(fns):
                derived = fn(*xs, *params, out)
                fd = _central_difference(op, xs, params, i)
                assert derived == pytest.approx(fd, rel=1e-5, abs=1e-6), (op.name, i, xs, params)


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_each_local_derivative_is_sympys_diff_and_its_identity_holds(op):
    for ld in local_derivatives(op):
        x = op.operands[ld.wrt]
        # nothing but SymPy's own derivative (kinks pinned to the documented convention)
        assert ld.raw == with_heaviside_convention(sp.diff(op.formula, x))
        ident = ld.identity
        assert ident.raw == ld.raw and ident.simplified == ld.used
        # Symbolic proof: raw - simplified == 0 once o is replaced by the formula.
        difference = (ident.raw - ident.simplified.xreplace(ident.substitutions)).rewrite(sp.exp)
        assert sp.simplify(difference) == 0, ident.name
        # Numeric proof at random points (pow at a fixed exponent).
        for params in _param_sets(op):
            subs_p = dict(zip(op.param_symbols, params, strict=True))
            for xs in _points(op, params, n=5, seed=1):
                at = {**dict(zip(op.operands, xs, strict=True)), **subs_p}
                lhs = float(ident.raw.subs(at).evalf())
                rhs = float(ident.simplified.xreplace(ident.substitutions).subs(at).evalf())
                assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-12), (ident.name, xs)


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_identities_pass_the_prove_stage(op):
    from symgrad.prove.identity import prove_identity

    for ld in local_derivatives(op):
        proof = prove_identity(ld.identity)
        assert proof.max_error < 1e-8, proof


def test_output_forms_emerge_for_tanh_sigmoid_exp_and_not_for_log():
    # Found by substitution / solving o = f(x), never looked up by name.
    used = {name: local_derivatives(SCALAR_OPS[name])[0].in_output
            for name in ("tanh", "sigmoid", "exp", "log", "relu")}
    assert used["tanh"] == 1 - OUT**2
    assert sp.expand(used["sigmoid"] - OUT * (1 - OUT)) == 0
    assert used["exp"] == OUT
    assert used["log"] is None and used["relu"] is None


@pytest.mark.parametrize("op", [op for op in OPS if op.stable is not None],
                         ids=[op.name for op in OPS if op.stable is not None])
def test_stable_forward_equals_formula_and_survives_extremes(op):
    for expr, _cond in op.stable.args:
        assert sp.simplify(expr - op.formula) == 0
    for x in (-800.0, -30.0, 0.0, 30.0, 800.0):
        assert math.isfinite(op.forward((x,), ()))


def test_registering_a_new_op_is_one_entry_and_flows_through_everything():
    op = sg.register_scalar_op("cube_plus", lambda x0: x0**3 + 2 * x0, latex=r"{0}^{{3}} + 2{0}")
    try:
        assert op in list(sg.SCALAR_OPS)
        (d,) = local_derivatives(op)
        assert d.raw == 3 * op.operands[0] ** 2 + 2
        from symgrad.definition.value import apply

        x = sg.Value(1.5, label="x")
        y = apply("cube_plus", x)
        y.backward()
        assert y.data == pytest.approx(1.5**3 + 3.0)
        assert x.grad == pytest.approx(3 * 1.5**2 + 2)
        assert sg.grad(y, x) == 3 * sp.Symbol("x", real=True) ** 2 + 2
        with pytest.raises(ValueError, match="already registered"):
            sg.register_scalar_op("cube_plus", lambda x0: x0, latex="{0}")
    finally:
        SCALAR_OPS.remove("cube_plus")
    assert "cube_plus" not in SCALAR_OPS


def test_registration_rejects_stray_symbols_and_unknown_names_are_clear():
    with pytest.raises(ValueError, match="only operands"):
        sg.register_scalar_op("bad", sp.Symbol("q") * sp.Symbol("x0"), latex="{0}")
    with pytest.raises(UnknownOpError, match="unknown scalar op 'nope'.*tanh"):
        SCALAR_OPS["nope"]
    from symgrad.definition.value import apply

    with pytest.raises(UnknownOpError, match="nope"):
        apply("nope", sg.Value(1.0, label="x"))


def test_pow_parameter_is_a_symbol_of_the_formula():
    op = SCALAR_OPS["pow"]
    assert param_symbol("k") in op.formula.free_symbols
    (d,) = local_derivatives(op)
    assert d.used == param_symbol("k") * op.operands[0] ** (param_symbol("k") - 1)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_builtin_passes_the_checks_a_user_definition_gets(op):
    # Built-ins skip `check_scalar_op` (the stable form's numeric check) at import.
    from symgrad.definition.scalar_ops import check_scalar_op
    check_scalar_op(op)


def test_check_scalar_op_refuses_a_wrong_stable_form():
    from symgrad.definition.errors import DefinitionError
    from symgrad.definition.scalar_ops import ScalarOp, check_scalar_op, operand_symbols
    (x0,) = operand_symbols(1)
    wrong = ScalarOp("wrong_stable", 1, sp.exp(x0) / (1 + sp.exp(x0)), "w({0})", "w({0})", "w",
                     stable=1 / (1 + sp.exp(x0)))
    with pytest.raises(DefinitionError, match="wrong_stable"):
        check_scalar_op(wrong)
