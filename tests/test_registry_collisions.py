"""A name that is already registered is refused unless replace=True (issue 7, item 9).

Before, ``sg.loss("mse", ...)`` silently replaced the built-in for every later
``compile(loss="mse")`` in the process. The same definition again (a re-run cell) is
not a collision and returns the registered entry.
"""

from __future__ import annotations

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.activations import REGISTRY
from symgrad.definition.errors import DefinitionError
from symgrad.definition.losses import LOSSES
from symgrad.definition.scalar_ops import SCALAR_OPS

pytestmark = pytest.mark.usefixtures("scratch_registries")

x, t, yhat, y = sg.var("x"), sg.var("t"), sg.var("yhat"), sg.var("y")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_builtin_loss_name_is_refused_with_how_to_replace(name):
    before = LOSSES[name]
    with pytest.raises(DefinitionError, match=rf"loss '{name}' is already registered \(a "
                                              r"built-in.*replace=True"):
        sg.loss(name, (yhat - y) ** 4)
    assert LOSSES[name] is before


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_builtin_activation_name_is_refused_with_how_to_replace(name):
    before = REGISTRY[name]
    with pytest.raises(DefinitionError, match=rf"activation '{name}' is already registered "
                                              r"\(a built-in.*replace=True"):
        sg.activation(name, x**3 + x)
    assert REGISTRY[name] is before


@pytest.mark.parametrize("name", list(SCALAR_OPS.names()))
def test_every_builtin_scalar_op_name_is_refused_with_how_to_replace(name):
    before = SCALAR_OPS[name]
    with pytest.raises(DefinitionError, match=rf"scalar op '{name}' is already registered "
                                              r"\(a built-in.*replace=True"):
        sg.register_scalar_op(name, lambda x0: x0**3 + 7, latex="{0}")
    assert SCALAR_OPS[name] is before


def test_a_refused_loss_leaves_compile_using_the_builtin():
    with pytest.raises(DefinitionError):
        sg.loss("mse", sp.Abs(yhat - y))
    from symgrad.simplify.network import derive_network

    plan = derive_network(sg.Sequential(sg.Dense(2, 1)), "mse")
    p, yy = sp.symbols("p y", real=True)
    assert plan.output.loss_formula == (p - yy) ** 2


def test_user_entries_collide_too_and_replace_true_replaces():
    Cube = sg.activation("cube_c", x**3)
    with pytest.raises(DefinitionError, match="defined earlier.*replace=True"):
        sg.activation("cube_c", x**5)
    assert REGISTRY["cube_c"] is Cube
    Quint = sg.activation("cube_c", x**5, replace=True)
    assert REGISTRY["cube_c"] is Quint and Quint().forward == sp.Symbol("z", real=True) ** 5

    quart = sg.loss("quart_c", (yhat - y) ** 4)
    with pytest.raises(DefinitionError, match="defined earlier.*replace=True"):
        sg.loss("quart_c", (yhat - y) ** 6)
    assert LOSSES["quart_c"] is quart
    assert sg.loss("quart_c", (yhat - y) ** 6, replace=True) is LOSSES["quart_c"] != quart


def test_replacing_a_builtin_loss_needs_and_honours_replace_true():
    original = LOSSES["mae"]
    new = sg.loss("mae", (yhat - y) ** 4, replace=True)
    assert LOSSES["mae"] is new != original   # scratch_registries restores the built-in


def test_the_same_definition_again_is_not_a_collision():
    First = sg.activation("cube_same", x**3)
    assert sg.activation("cube_same", x**3) is First
    assert sg.activation("cube_same", t**3) is First          # same formula, other letter
    assert sg.activation("cube_same", "x**3") is First        # or written as a string
    with pytest.raises(DefinitionError, match="already registered"):
        sg.activation("cube_same", x**3, latex=r"\mathrm{c}")  # a different printout
    loss = sg.loss("quart_same", (yhat - y) ** 4)
    assert sg.loss("quart_same", (yhat - y) ** 4) is loss
    assert sg.loss("mse", (yhat - y) ** 2, latex=r"\operatorname{MSE}") is LOSSES["mse"]


def test_scalar_op_collisions_and_replacement():
    op = sg.register_scalar_op("cube_op_c", lambda x0: x0**3, latex="{0}^{{3}}")
    try:
        assert sg.register_scalar_op("cube_op_c", "x0**3", latex="{0}^{{3}}",
                                     text="cube_op_c({0})", symbol="cube_op_c") is op
        with pytest.raises(DefinitionError, match="defined earlier.*replace=True"):
            sg.register_scalar_op("cube_op_c", lambda x0: x0**5, latex="{0}^{{5}}")
        new = sg.register_scalar_op("cube_op_c", lambda x0: x0**5, latex="{0}^{{5}}",
                                    replace=True)
        assert SCALAR_OPS["cube_op_c"] is new and new.forward([2.0], []) == 32.0
    finally:
        SCALAR_OPS.remove("cube_op_c")
