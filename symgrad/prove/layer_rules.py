"""Prove every registered layer kind's backward rules and index formula by SymPy.

A layer kind (`symgrad.definition.layer_kinds`) states its backward rules as
array rules; none of them is trusted. On each small proof instance this module
builds object arrays of SymPy symbols for the input X, every parameter and an
upstream gradient G shaped like the output, expands the definition
``kind.forward``, forms L = sum(G * Y) (its gradients are exactly what any loss
sends back through the layer) and differentiates L with ``sympy.diff`` with
respect to every element of X and of every parameter. The stated rule,
``kind.backward`` evaluated on the same arrays, must agree element by element:

* smooth kinds (convolution, average pooling, flatten): ``expand(diff - rule)``
  is 0 for every element, symbol by symbol;
* piecewise kinds (max pooling): the derivative of ``Max`` is a Heaviside
  expression; it is evaluated at random points with distinct values and at
  points with ties, and compared with the rule run on the same float arrays.
  At a tie the derivative does not exist; the kernels' convention (the first
  maximum of the window, row-major, as PyTorch) is the one-sided derivative
  from the direction in which earlier elements are slightly larger, so tied
  points are evaluated at X - eps * (row-major position). Because a window's
  row-major order is the image's row-major order restricted to the window,
  one perturbation encodes "first maximum" for every overlapping window at
  once. The derivative is also checked to route each window to exactly one
  element (target ``"route"``): the mask comes out of differentiating Max.

`prove_index_formula` expands the printed index-notation definition
(``kind.index_formula``) for every output element and checks it equals
``kind.forward`` on the same symbols (X read as 0 outside the image: padding).

>>> from symgrad.definition.conv import Conv2d
>>> from symgrad.definition.pooling import MaxPool2d
>>> proofs = prove_layer_kind(LAYER_KINDS["conv2d"],
...                           [(Conv2d(2, 3, 3, stride=2, padding=1), (2, 5, 5), 1)])
>>> [(p.target, p.compared, p.symbolic, p.passed) for p in proofs]
[('dX', 50, True, True), ('dW', 54, True, True), ('db', 3, True, True)]
>>> prove_index_formula(LAYER_KINDS["maxpool2d"], MaxPool2d(2), (1, 4, 4)).passed
True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

# The kinds register themselves when their modules are imported.
from symgrad.definition import conv as _conv  # noqa: F401
from symgrad.definition import pooling as _pooling  # noqa: F401
from symgrad.definition.layer_kinds import LAYER_KINDS, LayerKind
from symgrad.prove.identity import ProofError

__all__ = ["RuleProof", "prove_layer_kind", "prove_index_formula", "prove_all_layer_kinds",
           "require_proven"]

DEFAULT_SAMPLES = 2        # n = 2 so a rule that forgets to sum over the batch fails
NUMERIC_TOLERANCE = 1e-12  # piecewise kinds: rule vs evaluated derivative (only summation order)
DISTINCT_POINTS = 3        # random points without ties (piecewise kinds)
TIE_POINTS = 3             # random points with many ties (piecewise kinds)


@dataclass(frozen=True)
class RuleProof:
    """One rule (or the index formula) of one layer kind, checked on one instance.

    ``target`` is ``"dX"``, a parameter's gradient (``"dW"``, ``"db"``), ``"route"``
    (piecewise kinds: each window's derivative is one-hot) or ``"forward"`` (the
    index formula equals the array definition). ``compared`` counts the elements
    compared (times points, for numeric checks); ``max_abs_diff`` is the worst
    numeric disagreement (0.0 for symbolic checks); ``detail`` says what failed.
    """

    kind: str
    layer: str
    in_shape: tuple[int, ...]    # (n, C, H, W): samples included
    target: str
    compared: int
    max_abs_diff: float
    symbolic: bool
    passed: bool
    detail: str = ""


Instance = tuple  # (layer, in_shape) or (layer, in_shape, samples)


def _symbols(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Object array of real SymPy symbols ``name[i,j,...]``, one per element."""
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = sp.Symbol(f"{name}[{','.join(map(str, idx))}]", real=True)
    return out


def _instance(instance: Instance) -> tuple[object, tuple[int, ...], int]:
    layer, in_shape, *rest = instance
    return layer, tuple(in_shape), int(rest[0]) if rest else DEFAULT_SAMPLES


def _setup(kind: LayerKind, layer: object, in_shape: tuple[int, ...], samples: int):
    """Symbolic X, parameters and the expanded forward Y (shapes checked)."""
    out_shape = layer.out_shape(in_shape, f"{kind.name} proof instance")
    unknown = set(layer.param_shapes(in_shape)) - set(kind.params)
    if unknown:
        raise ProofError(f"{kind.name}: {layer!r} has parameters {sorted(unknown)} that the "
                         f"kind does not declare (params={kind.params})")
    X, params, Y = _expand(kind.forward, layer, in_shape, samples)
    if Y.shape != (samples, *out_shape):
        raise ProofError(f"{kind.name}: forward of {layer!r} gives shape {Y.shape}, but "
                         f"out_shape says {(samples, *out_shape)}")
    return X, params, Y


# Expansions and their derivatives are cached by (forward, layer, shape, samples): a
# layer's config fixes its forward, and proving a kind again (sg.check, a test of a
# wrong rule) then costs only the comparisons. The cached arrays are read-only, so a
# rule that writes into its inputs fails its proof instead of corrupting the cache.
@lru_cache(maxsize=64)
def _expand(forward: Callable, layer: object, in_shape: tuple[int, ...], samples: int):
    X = _frozen(_symbols("X", (samples, *in_shape)))
    params = {name: _frozen(_symbols(name, shape))
              for name, shape in layer.param_shapes(in_shape).items()}
    return X, params, _frozen(np.asarray(forward(layer, X, params), dtype=object))


@lru_cache(maxsize=64)
def _derive(forward: Callable, layer: object, in_shape: tuple[int, ...], samples: int):
    """G and dL/d(every element of X and of each parameter), L = sum(G * Y)."""
    X, params, Y = _expand(forward, layer, in_shape, samples)
    G = _frozen(_symbols("dY", Y.shape))
    targets = {"dX": X, **{_grad_name(k): v for k, v in params.items()}}
    return G, {t: _frozen(d) for t, d in _derived(G, Y, targets).items()}


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def _grad_name(param: str) -> str:
    return f"d{param}"


def _derived(G: np.ndarray, Y: np.ndarray, arrays: dict[str, np.ndarray]
             ) -> dict[str, np.ndarray]:
    """dL/d(every element) of L = sum(G * Y) by ``sympy.diff``, one array per target.

    For each symbol s, L's terms G[k] Y[k] whose Y[k] does not contain s are left
    out of the sum that is differentiated (each would differentiate to 0): this is
    what keeps the proof of every kind at a few seconds instead of a minute.
    """
    terms: dict[sp.Symbol, list[sp.Expr]] = {}
    for idx in np.ndindex(*Y.shape):
        term = G[idx] * Y[idx]
        for s in sp.sympify(Y[idx]).free_symbols:
            terms.setdefault(s, []).append(term)
    out = {}
    for target, arr in arrays.items():
        d = np.empty(arr.shape, dtype=object)
        for idx in np.ndindex(*arr.shape):
            d[idx] = sp.diff(sp.Add(*terms.get(arr[idx], [])), arr[idx])
        out[target] = d
    return out


def _stated(kind: LayerKind, layer: object, X: np.ndarray, params: dict[str, np.ndarray],
            G: np.ndarray) -> tuple[dict[str, np.ndarray] | None, str]:
    """The rule's arrays keyed by target, or None and why it could not be evaluated."""
    try:
        dX, grads = kind.backward(layer, X, params, G)
    except Exception as exc:  # a wrong rule may crash: that is a failed proof, not an error
        return None, f"backward raised {type(exc).__name__}: {exc}"
    if set(grads) != set(params):
        return None, (f"backward returns gradients for {sorted(grads)}, the layer has "
                      f"parameters {sorted(params)}")
    return {"dX": np.asarray(dX), **{_grad_name(k): np.asarray(v) for k, v in grads.items()}}, ""


def _symbolic_proofs(kind, layer, X, params, Y) -> list[RuleProof]:
    G, derived = _derive(kind.forward, layer, X.shape[1:], X.shape[0])
    stated, why = _stated(kind, layer, X, params, G)
    proofs = []
    for target, d in derived.items():
        detail = why
        if stated is not None:
            detail = _compare_symbolic(d, stated[target])
        proofs.append(RuleProof(kind.name, repr(layer), X.shape, target, d.size, 0.0, True,
                                not detail, detail))
    return proofs


def _compare_symbolic(derived: np.ndarray, rule: np.ndarray) -> str:
    """'' when expand(derived - rule) is 0 everywhere, else the first disagreement."""
    if rule.shape != derived.shape:
        return f"rule has shape {rule.shape}, the derivative {derived.shape}"
    for idx in np.ndindex(*derived.shape):
        if sp.expand(derived[idx] - sp.sympify(rule[idx])) != 0:
            return f"at {idx}: sympy.diff gives {derived[idx]}, the rule {rule[idx]}"
    return ""


def _points(rng: np.random.Generator, shape: tuple[int, ...]):
    """(label, exact values for the derivative, float values for the rule) per point.

    Distinct points: a random permutation of 0..size-1 (no ties anywhere). Tie
    points: integers in 0..2 (many ties), given to the derivative as
    X - (row-major position) / (size + 1): no order between different integers
    changes, and every tie is won by the element that comes first.
    """
    size = int(np.prod(shape))
    rank = np.arange(size).reshape(shape)
    for _ in range(DISTINCT_POINTS):
        vals = rng.permutation(size).reshape(shape)
        yield "distinct", _exact(vals, 0 * rank, size), vals.astype(float)
    for _ in range(TIE_POINTS):
        vals = rng.integers(0, 3, size=shape)
        yield "tied", _exact(vals, rank, size), vals.astype(float)


def _exact(vals: np.ndarray, rank: np.ndarray, size: int) -> np.ndarray:
    out = np.empty(vals.shape, dtype=object)
    for idx in np.ndindex(*vals.shape):
        out[idx] = sp.Integer(int(vals[idx])) - sp.Rational(int(rank[idx]), size + 1)
    return out


def _numeric_proofs(kind, layer, X, params, Y, seed: int) -> list[RuleProof]:
    """Piecewise kinds: the Heaviside derivative, evaluated, against the rule on floats.

    L is linear in G, so with X (and the parameters) substituted each derivative
    is sum_k c_k G_k with numbers c_k (Heaviside of a nonzero number is 0 or 1):
    its value at G = g is sum_k c_k g_k, and for dX the c_k are the Jacobian
    dY_k / dX_m that the route check reads.
    """
    rng = np.random.default_rng(seed)
    G, derived = _derive(kind.forward, layer, X.shape[1:], X.shape[0])
    g_index = {G[idx]: idx for idx in np.ndindex(*G.shape)}
    worst = dict.fromkeys(derived, 0.0)
    details = dict.fromkeys(derived, "")
    selection = _is_selection(Y, X)
    route = {"compared": 0, "detail": ""}
    for label, x_exact, x_float in _points(rng, X.shape):
        g = rng.normal(size=Y.shape)
        p_float = {k: rng.normal(size=v.shape) for k, v in params.items()}
        values = _bind(X, x_exact)
        for k, v in params.items():
            values.update(_bind(v, p_float[k], sp.Float))
        stated, why = _stated(kind, layer, x_float, p_float, g)
        for target, d in derived.items():
            coeffs, bad = _coefficients(d, values, g_index)
            if target == "dX" and selection and not route["detail"]:
                route["compared"] += Y.size
                route["detail"] = bad or _route_detail(coeffs, Y.shape, label)
            if details[target]:
                continue
            if bad or stated is None:
                details[target] = bad or why
                continue
            err, detail = _compare_numeric(coeffs, stated[target], g)
            worst[target] = max(worst[target], err)
            details[target] = f"{label} point: {detail}" if detail else ""
    compared = DISTINCT_POINTS + TIE_POINTS
    proofs = [RuleProof(kind.name, repr(layer), X.shape, target, compared * d.size,
                        worst[target], False, not details[target], details[target])
              for target, d in derived.items()]
    if selection:
        proofs.append(RuleProof(kind.name, repr(layer), X.shape, "route", route["compared"],
                                0.0, False, not route["detail"], route["detail"]))
    return proofs


def _bind(symbols: np.ndarray, values: np.ndarray, convert: Callable = lambda v: v) -> dict:
    return {symbols[idx]: convert(values[idx]) for idx in np.ndindex(*symbols.shape)}


def _coefficients(derived: np.ndarray, values: dict, g_index: dict
                  ) -> tuple[np.ndarray, str]:
    """Per element, {index of G_k: c_k} of the derivative at ``values`` (linear in G)."""
    out = np.empty(derived.shape, dtype=object)
    for idx in np.ndindex(*derived.shape):
        e = sp.expand(derived[idx].xreplace(values))
        terms = {}
        for term, c in e.as_coefficients_dict().items():
            if c == 0:
                continue
            if term not in g_index or not c.is_number:
                return out, f"derivative at {idx} is not linear in dY with numbers: {e}"
            terms[g_index[term]] = c
        out[idx] = terms
    return out, ""


def _compare_numeric(coeffs: np.ndarray, rule: np.ndarray, g: np.ndarray) -> tuple[float, str]:
    """Worst |derivative - rule| at G = g, and what failed ('' if within tolerance)."""
    if rule.shape != coeffs.shape:
        return np.inf, f"rule has shape {rule.shape}, the derivative {coeffs.shape}"
    worst = 0.0
    for idx in np.ndindex(*coeffs.shape):
        value = float(sum(float(c) * g[k] for k, c in coeffs[idx].items()))
        err = abs(value - float(rule[idx]))
        worst = max(worst, err)
        if not err < NUMERIC_TOLERANCE:
            return worst, f"at {idx}: sympy.diff gives {value!r}, the rule {float(rule[idx])!r}"
    return worst, ""


def _is_selection(Y: np.ndarray, X: np.ndarray) -> bool:
    """Every output is Max/Min of inputs or one input: its gradient must be one-hot."""
    inputs = set(X.ravel())
    return all(y in inputs or (isinstance(y, (sp.Max, sp.Min)) and set(y.args) <= inputs)
               for y in Y.ravel())


def _route_detail(coeffs: np.ndarray, out_shape: tuple[int, ...], label: str) -> str:
    """'' when each output's derivative dY_k/dX is one 1 and zeros, else the first culprit."""
    jac: dict[tuple[int, ...], dict] = {k: {} for k in np.ndindex(*out_shape)}
    for m in np.ndindex(*coeffs.shape):
        for k, c in coeffs[m].items():
            jac[k][m] = c
    for k, row in jac.items():
        if not (all(c == 1 for c in row.values()) and len(row) == 1):
            return f"{label} point, output {k}: nonzero dY/dX entries {row} (want one 1)"
    return ""


def prove_layer_kind(kind: LayerKind, instances: Iterable[Instance] | None = None,
                     seed: int = 0) -> list[RuleProof]:
    """Every backward rule of ``kind`` against ``sympy.diff`` on each instance.

    ``instances`` default to ``kind.proof_instances``; each is ``(layer, (C, H, W))``
    or ``(layer, (C, H, W), samples)`` (default 2 samples). Failures are reported
    (``passed=False`` with a ``detail``), not raised: see `require_proven`.
    """
    proofs: list[RuleProof] = []
    for i, instance in enumerate(kind.proof_instances if instances is None else instances):
        layer, in_shape, samples = _instance(instance)
        proofs += _rule_proofs(kind, layer, *_setup(kind, layer, in_shape, samples), seed + i)
    return proofs


def _rule_proofs(kind, layer, X, params, Y, seed: int) -> list[RuleProof]:
    if kind.piecewise:
        return _numeric_proofs(kind, layer, X, params, Y, seed)
    return _symbolic_proofs(kind, layer, X, params, Y)


def _index_vars(indexed: sp.Expr) -> tuple[sp.Symbol, ...] | None:
    """The indices of ``indexed`` if it is an Indexed over distinct plain symbols."""
    if not isinstance(indexed, sp.Indexed):
        return None
    idx = indexed.indices
    if all(isinstance(i, sp.Symbol) for i in idx) and len(set(idx)) == len(idx):
        return tuple(idx)
    return None


def _plain_symbols(expr: sp.Expr) -> set[sp.Symbol]:
    """Free symbols that are not array elements, arrays, or arrays' labels."""
    labels = {b.label for b in expr.atoms(sp.IndexedBase)}
    return {s for s in expr.free_symbols if isinstance(s, sp.Symbol) and s not in labels
            and not isinstance(s, (sp.Indexed, sp.IndexedBase))}


def prove_index_formula(kind: LayerKind, layer: object, in_shape: Sequence[int],
                        samples: int = DEFAULT_SAMPLES) -> RuleProof:
    """The index-notation definition equals ``kind.forward``, element by element.

    Every free index is given each concrete value (over the output's indices when
    the left side is ``Y[n, o, i, j]``; over the input's when the right side is
    ``X[n, c, h, w]``, as for Flatten); shape symbols N, C, H, W take the input's
    sizes; each Sum is expanded term by term over its (concrete) limits; ``X`` read
    outside the image is 0 (zero padding) and every other IndexedBase is the
    parameter array of that name. Every output element must be defined exactly
    once; Max/Min are compared as sets of arguments, everything else by
    ``expand(formula - forward) == 0``.
    """
    X, params, Y = _setup(kind, layer, tuple(in_shape), samples)
    return _formula_proof(kind, layer, X, params, Y)


def _formula_proof(kind, layer, X, params, Y) -> RuleProof:
    try:
        lhs, rhs = kind.index_formula(layer)
        detail, compared = _check_index_formula(lhs, rhs, X, params, Y)
    except _FormulaError as exc:
        detail, compared = str(exc), 0
    return RuleProof(kind.name, repr(layer), X.shape, "forward", compared, 0.0, True,
                     not detail, detail)


class _FormulaError(Exception):
    """The index formula cannot be instantiated (unknown array, index out of range...)."""


def _check_index_formula(lhs, rhs, X, params, Y) -> tuple[str, int]:
    if not isinstance(lhs, sp.Indexed):
        return f"left side {lhs} is not an Indexed element", 0
    arrays = {"X": X, **params}
    if (loop := _index_vars(lhs)) is not None:
        ranges = Y.shape
    elif (loop := _index_vars(rhs)) is not None and str(rhs.base.label) == "X":
        ranges = X.shape
    else:
        return "neither side is indexed by plain distinct symbols", 0
    if len(loop) != len(ranges):
        return f"{len(loop)} indices for an array of shape {ranges}", 0
    shape_vals = dict(zip(("N", "C", "H", "W"), X.shape, strict=True)) if X.ndim == 4 else {}
    fixed = {}
    for s in (_plain_symbols(lhs) | _plain_symbols(rhs)) - set(loop):
        if s.name not in shape_vals:
            return f"free symbol {s} is neither an index nor a shape (N, C, H, W)", 0
        fixed[s] = sp.Integer(shape_vals[s.name])
    seen: set[tuple[int, ...]] = set()
    for values in itertools.product(*(range(r) for r in ranges)):
        sub = {**fixed, **{v: sp.Integer(k) for v, k in zip(loop, values, strict=True)}}
        out_idx = _concrete_index(lhs, sub)
        if str(lhs.base.label) == "X" or not _inside(out_idx, Y.shape):
            return f"{lhs} at {sub} is outside the output {Y.shape}", len(seen)
        if out_idx in seen:
            return f"output element {out_idx} is defined twice", len(seen)
        seen.add(out_idx)
        right = _instantiate(rhs, sub, arrays)
        if not _same(right, Y[out_idx]):
            return (f"at {out_idx}: the index formula gives {right}, forward gives "
                    f"{Y[out_idx]}"), len(seen)
    if len(seen) != Y.size:
        return f"only {len(seen)} of the {Y.size} output elements are defined", len(seen)
    return "", len(seen)


def _inside(idx: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    return len(idx) == len(shape) and all(0 <= i < s for i, s in zip(idx, shape, strict=True))


def _concrete_index(element: sp.Indexed, sub: dict) -> tuple[int, ...]:
    idx = [i.xreplace(sub) for i in element.indices]
    if not all(i.is_Integer for i in idx):
        raise _FormulaError(f"{element} at {sub} has a non-integer index {idx}")
    return tuple(int(i) for i in idx)


def _instantiate(expr: sp.Expr, sub: dict, arrays: dict[str, np.ndarray]) -> sp.Expr:
    """``expr`` at concrete indices: Sums written out, Indexed read from the arrays.

    Done by hand rather than by ``subs`` + ``Sum.doit`` (seconds per layer) and
    without evaluating Max/Min (SymPy compares every pair of symbolic arguments).
    """
    if isinstance(expr, sp.Sum):
        inner = [(v, int(lo.xreplace(sub)), int(hi.xreplace(sub))) for v, lo, hi in expr.limits]
        terms = []
        for vals in itertools.product(*(range(lo, hi + 1) for _, lo, hi in inner)):
            at = {**sub, **{v: sp.Integer(k) for (v, _, _), k in zip(inner, vals, strict=True)}}
            terms.append(_instantiate(expr.function, at, arrays))
        return sp.Add(*terms)
    if isinstance(expr, sp.Indexed):
        name, idx = str(expr.base.label), _concrete_index(expr, sub)
        if name not in arrays:
            raise _FormulaError(f"{expr}: no array called {name!r}")
        if _inside(idx, arrays[name].shape):
            return arrays[name][idx]
        if name == "X" and len(idx) == arrays[name].ndim:
            return sp.Integer(0)     # zero padding
        raise _FormulaError(f"{expr} at {sub} is outside {name}'s shape {arrays[name].shape}")
    if not expr.args:
        return expr.xreplace(sub)
    args = [_instantiate(a, sub, arrays) for a in expr.args]
    if isinstance(expr, (sp.Max, sp.Min)):
        return args[0] if len(args) == 1 else expr.func(*args, evaluate=False)
    return expr.func(*args)


def _same(formula: sp.Expr, forward: sp.Expr) -> bool:
    """Max/Min: same kind over the same set of arguments; else expand(difference) == 0."""
    if isinstance(formula, (sp.Max, sp.Min)) or isinstance(forward, (sp.Max, sp.Min)):
        return type(formula) is type(forward) and set(formula.args) == set(forward.args)
    return sp.expand(formula - sp.sympify(forward)) == 0


def prove_all_layer_kinds(kinds: Iterable[LayerKind] | None = None) -> list[RuleProof]:
    """Backward rules and index formula of every registered kind on its proof instances."""
    proofs: list[RuleProof] = []
    for kind in LAYER_KINDS.values() if kinds is None else kinds:
        for i, instance in enumerate(kind.proof_instances):
            layer, in_shape, samples = _instance(instance)
            arrays = _setup(kind, layer, in_shape, samples)   # the forward, expanded once
            proofs += _rule_proofs(kind, layer, *arrays, seed=i)
            proofs.append(_formula_proof(kind, layer, *arrays))
    return proofs


def require_proven(proofs: Iterable[RuleProof]) -> list[RuleProof]:
    """``proofs`` unchanged if all passed; `ProofError` naming every failure otherwise."""
    proofs = list(proofs)
    failed = [p for p in proofs if not p.passed]
    if failed:
        raise ProofError("layer rules not proven:\n" + "\n".join(
            f"  {p.kind} {p.layer} on {p.in_shape}, {p.target}: {p.detail}" for p in failed))
    return proofs
