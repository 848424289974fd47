"""The micrograd-compatible `Value`: seed 000's numbers, reuse, deep graphs, bad input."""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.value import MalformedGraphError, ScalarDomainError, apply
from symgrad.derive.scalar import node_symbols
from symgrad.graph.topo import CycleError, topological_order

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed000_expression_gradients(tmp_path, capsys):
    grads = _example("seed000_expression").main(tmp_path)
    assert grads == {"a": 6.0, "b": -4.0, "c": -2.0, "e": -2.0, "d": -2.0, "f": 4.0, "L": 1.0}
    out = capsys.readouterr().out
    assert "dL/da = dL/de * (de/da)_local = (-2) * (-3) = 6" in out
    assert (tmp_path / "seed000_expression.png").read_bytes().startswith(b"\x89PNG")


def test_seed000_neuron_gradients(tmp_path, capsys):
    grads = _example("seed000_neuron").main(tmp_path)
    expect = {"n": 0.5, "x1": -1.5, "w1": 1.0, "x2": 0.5, "w2": 0.0, "b": 0.5}
    for name, value in expect.items():
        assert grads[name] == pytest.approx(value, abs=1e-9), name
    out = capsys.readouterr().out
    assert "o = 0.7071" in out
    assert "1 - o**2" in out  # tanh's derivative in the node's own output
    assert (tmp_path / "seed000_neuron.png").exists()


def test_operators_with_numbers_on_either_side():
    x = sg.Value(3.0, label="x")
    cases = {
        "x + 2": (x + 2, 5.0, 1.0), "2 + x": (2 + x, 5.0, 1.0),
        "x - 2": (x - 2, 1.0, 1.0), "2 - x": (2 - x, -1.0, -1.0),
        "x * 2": (x * 2, 6.0, 2.0), "2 * x": (2 * x, 6.0, 2.0),
        "x / 2": (x / 2, 1.5, 0.5), "6 / x": (6 / x, 2.0, -6 / 9),
        "-x": (-x, -3.0, -1.0), "x ** 2": (x**2, 9.0, 6.0), "x ** 0.5": (x**0.5, 3**0.5,
                                                                         0.5 / 3**0.5),
        "exp": (x.exp(), math.exp(3), math.exp(3)), "log": (x.log(), math.log(3), 1 / 3),
        "tanh": (x.tanh(), math.tanh(3), 1 - math.tanh(3) ** 2),
        "relu": (x.relu(), 3.0, 1.0), "relu-": ((-x).relu(), 0.0, 0.0),
        "sigmoid": (x.sigmoid(), 1 / (1 + math.exp(-3)),
                    math.exp(-3) / (1 + math.exp(-3)) ** 2),
    }
    for name, (y, data, dydx) in cases.items():
        y.backward()
        assert y.data == pytest.approx(data), name
        assert x.grad == pytest.approx(dydx), name


def test_backward_twice_gives_the_same_gradients():
    a, b = sg.Value(2.0, label="a"), sg.Value(-3.0, label="b")
    L = (a * b + a).tanh() * b
    L.backward()
    first = (a.grad, b.grad)
    L.backward()
    assert (a.grad, b.grad) == first


def test_reused_nodes_accumulate():
    a = sg.Value(3.0, label="a")
    (a + a).backward()
    assert a.grad == 2.0
    (a * a).backward()
    assert a.grad == 6.0
    b = a * a
    (b * b + b).backward()  # d/da (a^4 + a^2) = 4a^3 + 2a
    assert a.grad == pytest.approx(4 * 27 + 6)


def test_backward_from_an_inner_node_only_reaches_its_own_graph():
    a, b = sg.Value(2.0, label="a"), sg.Value(5.0, label="b")
    e = a * b
    L = e + b
    L.backward()
    e.backward()
    assert (a.grad, b.grad, e.grad) == (5.0, 2.0, 1.0)


def test_a_chain_of_100000_nodes_backpropagates_without_recursion():
    x = sg.Value(0.5, label="x")
    y = x
    for _ in range(100_000):
        y = -y  # one op node per step; value and gradient stay exact
    y.backward()
    assert x.grad == 1.0 and y.data == 0.5
    order = topological_order(y, lambda n: n.operands)
    assert len(order) == 100_001


def test_topological_order_rejects_cycles():
    kids = {"a": ["b"], "b": ["a"]}
    with pytest.raises(CycleError, match="cycle"):
        topological_order("a", lambda n: kids[n])


def test_symbolic_and_grad_of_the_seed_expression():
    nodes = _example("seed000_expression").build()
    L, a = nodes["L"], nodes["a"]
    a_, b_, c_, f_ = sp.symbols("a b c f", real=True)
    assert sp.expand(sg.symbolic(L) - (a_ * b_ + c_) * f_) == 0
    assert sg.grad(L, a) == b_ * f_
    assert sg.grad(L, nodes["f"]) == sp.expand(a_ * b_ + c_) or \
        sp.simplify(sg.grad(L, nodes["f"]) - (a_ * b_ + c_)) == 0
    assert sg.grad(L, nodes["d"]) == f_  # an intermediate node is held as a symbol


def test_unlabelled_leaves_get_stable_names_and_constants_stay_numbers():
    x, y = sg.Value(1.0), sg.Value(2.0)
    z = x * y + 3
    first = sg.symbolic(z)
    assert first == sg.symbolic(z)  # stable across calls
    assert {str(s) for s in first.free_symbols} == {"v_1", "v_2"}
    assert 3 in first.args
    dup1, dup2 = sg.Value(1.0, label="a"), sg.Value(2.0, label="a")
    expr = sg.symbolic(dup1 * dup2)
    assert len(expr.free_symbols) == 2  # a repeated label does not merge two inputs
    assert sg.grad(dup1 * dup2, dup2) == sp.Symbol("a", real=True)


@pytest.mark.parametrize("labels", [("a", "a", "a_2"), ("a_2", "a", "a"), ("v_1", "", "v_1_2"),
                                    ("a", "a", "a", "a_3", "a_2")])
def test_generated_names_never_take_a_label_of_another_node(labels):
    # "a" twice gets "a_2" for the second one, unless some other node is labelled a_2.
    nodes = [sg.Value(float(i + 2), label=name) for i, name in enumerate(labels)]
    y = nodes[0]
    for i, node in enumerate(nodes[1:], start=1):
        y = y + node * (i + 1) * node   # distinct coefficients: merged nodes would show
    names = node_symbols(y)
    leaf_names = [names[id(n)] for n in nodes]
    assert len(set(leaf_names)) == len(nodes)
    assert len(sg.symbolic(y).free_symbols) == len(nodes)
    for node in nodes:
        y.backward()
        slope = sg.grad(y, node)
        value = slope.subs({names[id(n)]: n.data for n in nodes})
        assert float(value) == node.grad


def test_grad_of_a_deep_chain_returns_within_the_symbolic_budget(monkeypatch):
    # simplify of a 12-deep tanh chain's derivative takes minutes; past the budget
    # the derivative comes back as differentiated, still equal to the slope.
    monkeypatch.setenv("SYMGRAD_SYMBOLIC_BUDGET", "0.5")
    x = sg.Value(0.3, label="x")
    y = x
    for _ in range(12):
        y = y.tanh()
    start = time.monotonic()
    slope = sg.grad(y, x)
    assert time.monotonic() - start < 30   # a hang guard, not a timing test
    y.backward()
    assert float(slope.subs(sp.Symbol("x", real=True), 0.3)) == pytest.approx(x.grad, rel=1e-14)


def test_grad_refuses_nodes_outside_the_graph_and_constants():
    a, b = sg.Value(1.0, label="a"), sg.Value(2.0, label="b")
    with pytest.raises(ValueError, match="not part of the graph"):
        sg.grad(a * a, b)
    y = a * 2
    with pytest.raises(ValueError, match="constant"):
        sg.grad(y, y.operands[1])


@pytest.mark.parametrize("bad", ["2.0", None, [1.0], True, 1 + 2j])
def test_non_numeric_data_is_a_type_error_naming_label_and_value(bad):
    with pytest.raises(TypeError, match=r"Value 'w1'.*" + repr(bad).replace("[", r"\[")
                       .replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")
                       .replace("+", r"\+")):
        sg.Value(bad, label="w1")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_data_is_a_value_error(bad):
    with pytest.raises(ValueError, match=f"Value 'b'.*finite.*{bad!r}"):
        sg.Value(bad, label="b")


def test_log_of_a_non_positive_value_fails_at_construction_naming_node_and_value():
    c = sg.Value(-1.5, label="c")
    with pytest.raises(ScalarDomainError, match=r"log\(c\).*c = -1\.5.*domain"):
        c.log()
    with pytest.raises(ValueError, match=r"d / z.*z = 0\.0"):
        sg.Value(1.0, label="d") / sg.Value(0.0, label="z")
    with pytest.raises(ValueError, match=r"n\*\*0\.5.*n = -4\.0"):
        sg.Value(-4.0, label="n") ** 0.5
    with pytest.raises(ValueError, match=r"exp\(big\).*big = 1000\.0"):
        sg.Value(1000.0, label="big").exp()


def test_bad_operands_are_type_errors_naming_the_node():
    with pytest.raises(TypeError, match="label must be a str"):
        sg.Value(1.0, label=7)
    a = sg.Value(1.0, label="a")
    with pytest.raises(TypeError, match="'mul' takes 2 operand"):
        apply("mul", a)
    with pytest.raises(TypeError, match=r"'a'.*'x'"):
        a + "x"
    with pytest.raises(TypeError, match="exponent must be a real number"):
        a ** sg.Value(2.0)
    with pytest.raises(TypeError, match="only number exponents"):
        2 ** a


def test_backward_on_a_malformed_graph_names_node_and_operand():
    a = sg.Value(1.0, label="a")
    y = a * 2
    y.label = "y"
    y.operands = (a, 3.0)  # tampered: not a Value
    with pytest.raises(MalformedGraphError, match=r"'y'.*operand 1 is 3\.0"):
        y.backward()
    z = a + 1
    z.label = "z"
    a.data = "oops"
    with pytest.raises(MalformedGraphError, match=r"'a'.*'oops'"):
        z.backward()
    with pytest.raises(MalformedGraphError, match="Value root"):
        sg.Value.backward(3.0)


def test_data_set_to_an_int_or_a_numpy_scalar_after_construction_is_used_as_a_float():
    # micrograd code writes p.data = 3 or a NumPy scalar; the constructor accepts both.
    x = sg.Value(2.0, label="x")
    y = x * x + x
    x.data = 3
    y.backward()
    assert x.grad == 7.0 and type(x.data) is float
    x.data = np.float32(0.5)
    y.backward()
    assert x.grad == 2.0 and type(x.data) is float
    x.data = True
    with pytest.raises(MalformedGraphError, match=r"'x' has data True; need a finite real"):
        y.backward()


def test_micrograd_attributes():
    a, b = sg.Value(2.0, label="a"), sg.Value(3.0, label="b")
    c = a * b
    assert c._prev == {a, b} and c._op == "*"
    assert (a**2)._op == "**2"
    assert "label='a'" in repr(a)


def test_relu_kink_uses_the_same_subgradient_convention_as_networks():
    """At 0, ReLU's derivative is the left branch's (0), as in networks and in micrograd."""
    x = sg.Value(0.0, label="x")
    y = x.relu()
    y.backward()
    assert x.grad == 0.0
    assert sg.grad(y, x) == sp.Heaviside(sp.Symbol("x", real=True), 0)


def test_a_graph_too_deep_for_sympy_gets_a_clear_error_naming_the_call_and_depth():
    x = sg.Value(0.5, label="x")
    y = x
    for _ in range(400):
        y = y.sin()
    y.label = "y"
    y.backward()   # the numeric path is iterative: any depth
    assert x.grad != 0.0
    calls = {"symbolic": lambda: sg.symbolic(y), "grad": lambda: sg.grad(y, x),
             r"derivation\(steps='rules'\)": lambda: sg.derivation(y, steps="rules")}
    for name, call in calls.items():
        with pytest.raises(sg.GraphTooDeepError, match=rf"^{name}: .*'y' is 400 ops deep"):
            call()
    # Cut at an intermediate node 50 ops below y, the symbolic form is within reach.
    mid = y
    for _ in range(50):
        mid = mid.operands[0]
    assert sg.grad(y, mid).has(sp.cos)
