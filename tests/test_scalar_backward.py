"""`Value.backward` through generated steps: same gradients as the reference walk and as
micrograd, deep graphs, repeated calls, the on-disk step cache and its safety, and errors.

Correctness only; speed is measured by benchmarks/bench_scalar.py.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.scalar_ops import SCALAR_OPS, register_scalar_op
from symgrad.definition.value import ScalarDomainError, Value, apply
from symgrad.derive import scalar_steps
from symgrad.derive.scalar import local_derivatives, numeric_local_derivatives
from symgrad.derive.scalar_backward import gradients
from symgrad.graph.topo import topological_order

ROOT = Path(__file__).resolve().parents[1]
PARAM_CHOICES = (2.0, 3.0, -1.0, 0.5, 1.5)


def reference_gradients(root: Value) -> tuple[dict[int, float], dict[int, float]]:
    """The engine before generated steps: depth-first order, a dict of grads, lambdified
    local derivatives called per node. Also the same walk over absolute values, which
    bounds the rounding error of any summation order."""
    order = topological_order(root, lambda n: n.operands if n.op is not None else ())
    grads = {id(n): 0.0 for n in order}
    scale = dict(grads)
    grads[id(root)] = scale[id(root)] = 1.0
    for node in reversed(order):
        if node.op is None:
            continue
        fns = numeric_local_derivatives(SCALAR_OPS[node.op])
        args = (*(c.data for c in node.operands), *node.params, node.data)
        for child, fn in zip(node.operands, fns, strict=True):
            local = fn(*args)
            grads[id(child)] += grads[id(node)] * local
            scale[id(child)] += scale[id(node)] * abs(local)
    return grads, scale


def _local_derivatives_at(node: Value) -> list[float]:
    fns = numeric_local_derivatives(SCALAR_OPS[node.op])
    return [fn(*(c.data for c in node.operands), *node.params, node.data) for fn in fns]


def random_graph(seed: int, n_ops: int = 300) -> tuple[Value, list[Value], set[str]]:
    """A random DAG using every registered op (operands inside each op's domain).

    Ops are taken in turn from the registry, so an op registered later is
    covered too; operands come from recent nodes and the leaves; values that
    grow past 4 in size are not reused, so nothing overflows. The root sums
    every node kept, so each one gets a gradient.
    """
    rng = random.Random(seed)
    leaves = [Value(rng.uniform(-2, 2), label=f"x{i}") for i in range(8)]
    pool = list(leaves)
    used: set[str] = set()
    ops = list(SCALAR_OPS)
    for step in range(n_ops):
        op = ops[step % len(ops)]
        for _attempt in range(20):
            operands = [rng.choice(pool[-12:] + leaves) for _ in range(op.arity)]
            params = {p: rng.choice(PARAM_CHOICES) for p in op.params}
            try:
                node = apply(op.name, *operands, **params)
                _local_derivatives_at(node)
            except (ScalarDomainError, ArithmeticError):
                continue   # outside the domain, or an infinite slope (x**0.5 at 0)
            if abs(node.data) <= 4.0:
                pool.append(node)
                used.add(op.name)
            break
    root = pool[0]
    for node in pool[1:]:
        root = root + node
    return root, leaves, used


@pytest.mark.parametrize("seed", range(6))
def test_every_op_matches_the_reference_walk(seed):
    root, _, used = random_graph(seed)
    assert used == set(SCALAR_OPS.names())  # every registered op is in the graph
    ref, scale = reference_gradients(root)
    root.backward()
    nodes = topological_order(root, lambda n: n.operands)
    assert len(nodes) == len(ref)
    for node in nodes:
        # Only the summation order may differ from the reference: rounding-sized.
        bound = 1e-12 * scale[id(node)] * len(nodes)
        assert abs(node.grad - ref[id(node)]) <= bound, (node, ref[id(node)])
    # gradients() is the same computation and leaves .grad alone.
    before = [n.grad for n in nodes]
    for n in nodes:
        n.grad = 123.0
    expected = {id(n): g for n, g in zip(nodes, before, strict=True)}
    assert {id(n): g for n, g in gradients(root)} == expected
    assert all(n.grad == 123.0 for n in nodes)


def _micrograd_program(seed: int, n_ops: int = 400) -> list[tuple]:
    """Steps over ops micrograd has too: + - * / neg **k relu, numbers on either side."""
    rng = random.Random(seed)
    values = [rng.uniform(-2, 2) for _ in range(6)]
    program: list[tuple] = []
    while len(program) < n_ops:
        i, j = len(values) - 1 - rng.randrange(min(8, len(values))), rng.randrange(len(values))
        a, b, c = values[i], values[j], rng.choice((0.5, 2.0, -1.5))
        kind = rng.choice(sorted(_STEP_KINDS))
        k = rng.choice((2, 3, -1, 0.5))
        if kind in ("div", "rdiv") and abs(b if kind == "div" else a) < 0.3:
            continue
        if kind == "pow" and ((k < 0 and abs(a) < 0.3) or (k == 0.5 and a <= 0.1)):
            continue
        value = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b if b else 0.0,
                 "neg": -a, "pow": a**k if kind == "pow" else 0.0, "relu": max(a, 0.0),
                 "radd": c + a, "rsub": c - a, "rmul": c * a,
                 "rdiv": c / a if a else 0.0}[kind]
        if abs(value) > 4.0:
            continue
        program.append((kind, i, j, c, k))
        values.append(value)
    return program


# Each kind of step as the operators write it (a, b: nodes; c: a number; k: exponent).
_STEP_KINDS = {
    "add": lambda a, b, c, k: a + b, "sub": lambda a, b, c, k: a - b,
    "mul": lambda a, b, c, k: a * b, "div": lambda a, b, c, k: a / b,
    "neg": lambda a, b, c, k: -a, "pow": lambda a, b, c, k: a**k,
    "relu": lambda a, b, c, k: a.relu(), "radd": lambda a, b, c, k: c + a,
    "rsub": lambda a, b, c, k: c - a, "rmul": lambda a, b, c, k: c * a,
    "rdiv": lambda a, b, c, k: c / a,
}


def _replay(value_cls: type, seed: int) -> tuple[object, list]:
    rng = random.Random(seed)
    leaves = [value_cls(rng.uniform(-2, 2)) for _ in range(6)]
    nodes = list(leaves)
    for kind, i, j, c, k in _micrograd_program(seed):
        nodes.append(_STEP_KINDS[kind](nodes[i], nodes[j], c, k))
    root = nodes[0]
    for node in nodes[1:]:
        root = root + node
    return root, leaves


@pytest.mark.parametrize("seed", range(4))
def test_gradients_match_micrograd(seed):
    micrograd = pytest.importorskip("micrograd.engine", reason="pip install micrograd")
    ours, our_leaves = _replay(sg.Value, seed)
    theirs, their_leaves = _replay(micrograd.Value, seed)
    assert ours.data == pytest.approx(theirs.data, rel=1e-12)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # micrograd's build_topo recurses
    try:
        theirs.backward()
    finally:
        sys.setrecursionlimit(limit)
    ours.backward()
    for mine, other in zip(our_leaves, their_leaves, strict=True):
        assert mine.grad == pytest.approx(other.grad, rel=1e-9, abs=1e-12)
    assert any(leaf.grad != 0.0 for leaf in our_leaves)


def test_deep_mixed_chain_backpropagates_and_repeats_exactly():
    x, w, b = Value(0.3, label="x"), Value(1.0, label="w"), Value(0.0, label="b")
    y = x
    for _ in range(40_000):  # 120 000 op nodes in one chain from y down to x
        y = (y * w + b).tanh()
    y.backward()
    first = (x.grad, w.grad, b.grad)
    ref, _ = reference_gradients(y)
    assert first == pytest.approx((ref[id(x)], ref[id(w)], ref[id(b)]), rel=1e-12)
    assert all(g != 0.0 for g in first)
    y.backward()
    assert (x.grad, w.grad, b.grad) == first  # reset, not accumulated


def test_each_step_is_the_printed_sympy_derivative():
    for op in SCALAR_OPS:
        source = scalar_steps.step_source(op)
        texts = scalar_steps.derivative_texts(op)
        assert len(texts) == op.arity
        for i, text in enumerate(texts):
            # The printed text is SymPy's derivative: evaluate both at a point.
            expected = local_derivatives(op)[i].used
            assert f"n{i}.grad" in source
            if text not in ("1", "-1"):
                assert f"g * ({text})" in source
            point = {f"x{j}": 0.7 + 0.1 * j for j in range(op.arity)}
            point.update({f"p{j}": 2.0 for j in range(len(op.params))})
            out = op.forward([point[f"x{j}"] for j in range(op.arity)], [2.0] * len(op.params))
            point["o"] = out
            value = eval(compile(text, "<test>", "eval"), {"math": math}, dict(point))  # noqa: S307
            subs = {s: point["o"] if s.name == "o" else
                    point.get(s.name, 2.0) for s in expected.free_symbols}
            assert value == pytest.approx(float(sp.N(expected.subs(subs))), rel=1e-12), op.name


def test_a_new_op_gets_a_derived_step_and_a_replaced_op_a_new_one():
    name = "cube_plus_test_op"
    try:
        register_scalar_op(name, lambda x0, x1: x0**3 + x0 * x1, latex="c({0},{1})")
        a, b = Value(2.0), Value(5.0)
        y = apply(name, a, b)
        y.backward()
        assert (a.grad, b.grad) == (3 * 4 + 5, 2.0)
        register_scalar_op(name, lambda x0, x1: x0 * x1**2, latex="c({0},{1})", replace=True)
        y = apply(name, a, b)
        y.backward()
        assert (a.grad, b.grad) == (25.0, 20.0)
    finally:
        SCALAR_OPS.remove(name)


def test_derivative_that_cannot_be_evaluated_names_the_node_and_resets_grads():
    x = Value(1e-200, label="x")
    y = 1 / x  # forward is finite (1e200); d/dx = -1/x**2 = -1e400 is not a float
    y.label = "y"
    with pytest.raises(ScalarDomainError,
                       match=r"(?i)derivative of div at node 'y'.*x = 1e-200.*-1\.0+e\+400"):
        y.backward()
    assert x.grad == 0.0 and y.grad == 0.0


def _torch_free_exact(f, *xs: float) -> list[float]:
    """Gradient of ``f`` (a SymPy lambda) at ``xs`` to 30 digits, as floats."""
    syms = sp.symbols(f"t0:{len(xs)}", real=True)
    expr = f(*syms)
    point = {s: sp.Rational(x) for s, x in zip(syms, xs, strict=True)}
    return [float(sp.diff(expr, s).subs(point).evalf(30)) for s in syms]


@pytest.mark.parametrize(("a", "b"), [(1.234567e-160, 1.7654321e-160), (1e-200, 1e-200),
                                      (3e-170, 7e-165), (1e-200, 1e-155)])
def test_division_by_a_tiny_number_gets_the_exact_slope(a, b):
    # -a/b**2 squares b to 0 (or to a subnormal) below 1e-154; -o/b does not.
    x, y = Value(a, label="a"), Value(b, label="b")
    (x / y).backward()
    exact = _torch_free_exact(lambda s, t: s / t, a, b)
    assert x.grad == pytest.approx(exact[0], rel=1e-15)
    assert y.grad == pytest.approx(exact[1], rel=1e-15)


@pytest.mark.parametrize(("k", "slope"), [(0, 0.0), (1, 1.0), (2, 0.0), (2.5, 0.0)])
def test_a_power_at_zero_has_its_slope(k, slope):
    # k*x**(k - 1) divides by zero at x = 0 for k = 0 in floats; the exact step knows 0*x**-1 = 0.
    x = Value(0.0, label="x")
    y = x ** k
    y.backward()
    assert (y.data, x.grad) == (0.0 ** k, slope)


def test_an_infinite_slope_names_the_node_and_the_derivative():
    x = Value(0.0, label="x")
    y = x ** 0.5
    y.label = "y"
    with pytest.raises(ScalarDomainError, match=r"pow at node 'y'.*x = 0\.0.*k\*x0\*\*\(k - 1\)"):
        y.backward()
    assert x.grad == 0.0


def test_a_derivative_that_overflows_in_floats_but_not_in_value_is_evaluated_exactly():
    # log(1 + e^x1) has the stable forward; its derivative e^x1/(e^x1 + 1) overflows
    # math.exp at x1 = 800 although it is 1. The first operand's slope must not be
    # counted twice when the fast pass is abandoned half-way.
    name = "shifted_softplus_test_op"
    try:
        register_scalar_op(
            name, lambda x0, x1: x0 + sp.log(1 + sp.exp(x1)), latex="s({0},{1})",
            stable=lambda x0, x1: x0 + sp.Piecewise(
                (x1 + sp.log(1 + sp.exp(-x1)), x1 > 0), (sp.log(1 + sp.exp(x1)), True)))
        a, b = Value(2.0, label="a"), Value(800.0, label="b")
        c = Value(3.0, label="c")
        y = apply(name, a * c, b) * c
        y.backward()
        assert (a.grad, b.grad, c.grad) == (9.0, 3.0, y.data / 3 + 6.0)
    finally:
        SCALAR_OPS.remove(name)


def test_a_gradient_beyond_the_float_range_is_an_error_not_inf():
    # Every value and every local slope is a float, but dz/dx = 1e250 * -1e100 is not.
    x = Value(1e-50, label="x")
    y = 1 / x
    y.label = "y"
    with pytest.raises(ScalarDomainError, match=r"node 'y'.*overflows the float range.*reset"):
        (y * 1e250).backward()
    assert x.grad == 0.0


def test_tampered_but_acyclic_graph_still_gets_the_right_gradients():
    a, b = Value(2.0, label="a"), Value(3.0, label="b")
    y = a * b
    later = b + 1  # created after y
    y.operands = (a, later)  # a valid DAG, but not in creation order any more
    y.backward()
    assert (a.grad, later.grad, b.grad) == (4.0, 2.0, 2.0)


def test_checked_expression_accepts_arithmetic_and_rejects_everything_else():
    ok = scalar_steps.checked_expression(
        "((0) if (x0 <= 0) else (1)) + math.exp(-x1)*abs(o) - max(0, x0)**p0 / float('inf')",
        {"x0", "x1", "o", "p0"}, "t")
    assert ok == {"x0", "x1", "o", "p0"}
    for bad in ("__import__('os')", "x0.__class__", "open('f')", "(lambda: 1)()", "x0[0]",
                "math.__dict__", "getattr(math, 'exp')", "'a' * 3", "float('1e9')", "None",
                "[x0]", "x2", "os.system", "x0; y"):
        with pytest.raises(scalar_steps.StepError, match="t: "):
            scalar_steps.checked_expression(bad, {"x0", "x1", "o", "p0"}, "t")


def test_step_cache_is_read_back_and_a_foreign_file_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SYMGRAD_DERIVATION_CACHE", raising=False)
    op = SCALAR_OPS["tanh"]
    fresh = scalar_steps.step_source(op)
    path = scalar_steps.step_cache_path(op)
    record = json.loads(path.read_text())
    assert record["op"] == "tanh" and record["derivatives"] == ["1 - o**2"]
    # Read back without SymPy: a derivation would fail here.
    monkeypatch.setattr(scalar_steps, "derivative_texts", lambda op: pytest.fail("derived"))
    assert scalar_steps.step_source(op) == fresh
    monkeypatch.undo()
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    # A file that would run code is never compiled: it is derived again and overwritten.
    record["derivatives"] = ["__import__('os').system('echo pwned')"]
    path.write_text(json.dumps(record))
    assert scalar_steps.step_source(op) == fresh
    assert json.loads(path.read_text())["derivatives"] == ["1 - o**2"]
    path.write_text("not json")
    assert scalar_steps.step_source(op) == fresh


def test_a_second_process_backpropagates_without_deriving(tmp_path):
    code = (
        "import sys, symgrad as sg\n"
        "import symgrad.derive.scalar as ds\n"
        "if sys.argv[1] == 'warm':\n"
        "    def refuse(*a, **k):\n"
        "        raise AssertionError('derived again')\n"
        "    ds.local_derivatives = refuse\n"
        "    import symgrad.derive.scalar_steps as st\n"
        "    st.local_derivatives = refuse\n"
        "x = sg.Value(0.5); w = sg.Value(-1.5)\n"
        "y = ((x * w).tanh() + x.sigmoid() * 2) ** 2\n"
        "y.backward()\n"
        "print(repr(x.grad), repr(w.grad))\n")
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(tmp_path))
    env.pop("SYMGRAD_DERIVATION_CACHE", None)
    runs = [subprocess.run([sys.executable, "-c", code, phase], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=300) for phase in ("cold", "warm")]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout == runs[1].stdout
    assert len(list((tmp_path / "scalar_steps").glob("*.json"))) >= 4  # mul tanh sigmoid add pow
