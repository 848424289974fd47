"""Fuse the output activation with the loss: Steps A, B, C of seed 001.

Step A  dl/dp, differentiated from the loss formula and simplified (in p, y);
Step B  dp/dz, differentiated from the activation and rewritten in p where the
        saved-output search finds a form (`symgrad.simplify.saved_output`);
Step C  their product, cancelled with bounded tools (cancel/factor).

Nothing is keyed by name: sigmoid + BCE gives p - y, identity + MSE 2(p - y)
because the algebra says so. Softmax outputs are derived on an explicit
symbolic vector of K = 2..4 logits with the one-hot assumption sum(y) = 1,
then read off per element.

The forward loss is taken from the logits in a stable form
(`symgrad.simplify.stable`): BCE on a sigmoid turns into a softplus, softmax
cross-entropy into log-sum-exp. Each claim is recorded as an `Identity`.

>>> from symgrad.definition.activations import Sigmoid
>>> from symgrad.definition.losses import BCE
>>> out = fuse_output(Sigmoid(), BCE)
>>> out.step_b, out.delta
(p*(1 - p), p - y)
>>> out.loss_from_logits
-y*z + log(1 + exp(-Abs(z))) + Max(0, z)

Every evaluation form (the prediction, dp/dz, the fused delta) is chosen among
candidates by its measured accuracy over the whole float32 and float64 range
(`symgrad.simplify.accuracy`): Swish + MSE keeps (p - y) times the sigmoid-product
form of Swish', because the shorter (p - y)(z + e^z + 1)/(2 cosh(z/2)^2) is inf/inf
once e^z overflows.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from symgrad.definition.activations import ActivationLayer
from symgrad.definition.convention import differentiate
from symgrad.definition.errors import PairingError
from symgrad.definition.formulas import P, Y, Z
from symgrad.definition.losses import LossEntry
from symgrad.definition.supported import LAMBDIFY_MODULES
from symgrad.derive.elementwise import derive_elementwise
from symgrad.derive.plan import LSE, SUMEXP, ZMAX, Identity, OutputPlan
from symgrad.simplify.accuracy import Choice, choose
from symgrad.simplify.saved_output import (
    DERIVATIVE_ULPS,
    choose_forward,
    flip_sign,
    in_saved_output,
    one_exponential_forms,
    shortfall,
    tidy,
)
from symgrad.simplify.stable import OVERFLOW_RULES, RULES, expand_logs, stabilise

SOFTMAX_SIZES = (2, 3, 4)   # explicit vector lengths the softmax fusion is proven on
SOFTMAX_SHOWN = 3           # the size whose Jacobian is kept for the printout

LSE_NOTE = (r"The loss is computed from the logits: $\log p_i = z_i - \operatorname{lse}(z)$ with "
            r"$\operatorname{lse}(z) = m + \log s$, $m = \max_j z_j$, $s = \sum_j e^{z_j - m}$, "
            r"evaluated as $(z_i - m) - \log s$ and $p_i = e^{z_i - m}/s$ (zmax and sumexp "
            r"in the formulas). Every exponent is $\le 0$, so nothing overflows, $\log 0$ "
            r"never occurs, and $\log s$ is never added to a large $m$ first, where it "
            r"would be rounded away.")
PLAIN_NOTE = "No exp/log composition needs stabilising; the loss is evaluated as written."


def check_pairing(layer: ActivationLayer, loss: LossEntry) -> None:
    """Softmax outputs need a softmax loss (cross-entropy) and vice versa."""
    softmax = layer.entry.kind == "softmax"
    if softmax and not loss.requires_softmax:
        raise PairingError(f"output activation {layer!r} (softmax) must be paired with the "
                           f"cross-entropy loss, got loss {loss.name!r}")
    if loss.requires_softmax and not softmax:
        raise PairingError(f"loss {loss.name!r} needs a Softmax output layer (class "
                           f"probabilities that sum to 1), got output activation {layer!r}")


def _y_domain(loss: LossEntry) -> tuple[float, float]:
    # Targets of log-based losses are probabilities; others are any real value.
    return (0.0, 1.0) if loss.formula.has(sp.log) else (-2.0, 2.0)


def _check_finite(act: str, loss: str, f: sp.Expr, stable_loss: sp.Expr,
                  y_dom: tuple[float, float]) -> tuple[float, float]:
    """Refuse pairs whose loss is undefined on the activation's outputs (relu + bce);
    returns the range of p = f(z) over z in [-4, 4] (the numeric proof domain)."""
    zs = np.linspace(-4.0, 4.0, 33)
    with np.errstate(all="ignore"):
        ps = np.broadcast_to(sp.lambdify([Z], f, modules=LAMBDIFY_MODULES)(zs), zs.shape)
        for yv in y_dom:
            vals = np.broadcast_to(
                sp.lambdify([Z, Y], stable_loss, modules=LAMBDIFY_MODULES)(zs, yv), zs.shape)
            bad = np.flatnonzero(~np.isfinite(vals))
            if bad.size:
                i = bad[0]
                raise PairingError(f"loss {loss!r} is not defined on the outputs of {act!r}: "
                                   f"at z = {zs[i]:g}, p = {ps[i]:g}, y = {yv:g} it gives "
                                   f"{vals[i]}; pick an output activation whose range fits")
    return float(ps.min()), float(ps.max())


def _targets(y_dom: tuple[float, float]) -> tuple[float, ...]:
    lo, hi = y_dom
    return tuple(lo + (hi - lo) * t for t in (0.15, 0.9))


def from_logits(expr: sp.Expr, forward: sp.Expr) -> sp.Expr:
    """``expr`` with every log(u(p)) and every sum in p alone written in the logit z
    (p = ``forward``), simplified and stabilised.

    Once p rounds to 1 (or to 0), log(1 - p) (or log p) is -inf and its factor p - 1 (or
    p) is 0: NaN, where the exact slope is an ordinary number (a focal loss on a sigmoid,
    z >= 37 in float64). In z the log is finite: log(1 - sigmoid(z)) = -softplus(z); and
    1 - p, which cancels as p nears 1, is 1/(e^z + 1).

    >>> from symgrad.definition.activations import Sigmoid
    >>> f = derive_elementwise(Sigmoid()).forward
    >>> from_logits((P - 1) * sp.log(1 - P), f)
    -(-log1p(exp(-Abs(z))) - Max(0, z))/(exp(z) + 1)
    """
    def log_in_z(log: sp.log) -> sp.Expr:
        return stabilise(log.subs(P, forward), distribute=False)[0]

    def sum_in_z(total: sp.Add) -> sp.Expr:
        return stabilise(sp.factor(sp.cancel(total.subs(P, forward))), distribute=False)[0]

    expr = expr.replace(lambda e: isinstance(e, sp.log) and e.has(P), log_in_z)
    return expr.replace(lambda e: isinstance(e, sp.Add) and e.free_symbols == {P}, sum_in_z)


def choose_delta(step_a: sp.Expr, step_b: sp.Expr, exact: sp.Expr, prediction: sp.Expr,
                 y_dom: tuple[float, float], forward: sp.Expr | None = None) -> Choice:
    """dl/dz = Step A * Step B in the shortest form that is accurate over the whole range.

    ``exact`` is dl/dz from the raw formulas, in z and y; ``prediction`` the form p is
    evaluated by, ``forward`` the activation as defined (for `from_logits`). The
    cancelled product reads best (p - y) but may overflow where the plain product does
    not (Swish + MSE); the accuracy check decides.
    """
    product = step_a * step_b
    short = tidy(product)
    candidates = [("cancelled", short), ("product", product)]
    for label, base in (("cancelled", short), ("product", product)):
        stable, used = stabilise(base, distribute=False)
        if used:
            candidates.append((f"{label}, stable rules", stable))
    if forward is not None:
        for label, base in (("cancelled", short), ("product", product)):
            if base.has(sp.log):
                candidates.append((f"{label}, logs and sums in z", from_logits(base, forward)))
    candidates += one_exponential_forms(candidates)
    return choose(candidates, exact, DERIVATIVE_ULPS, floor=1.0, saved={P: prediction},
                  targets={Y: _targets(y_dom)})


# The loss of a batch is a reported sum: lost digits below the loss's own size (or below
# 1) do not matter, an inf or a NaN does (fit would stop as diverged).
LOSS_ULPS = DERIVATIVE_ULPS


def choose_loss(stable: sp.Expr, naive: sp.Expr, loss_in_p: sp.Expr, forward: sp.Expr,
                prediction: sp.Expr, y_dom: tuple[float, float]) -> Choice:
    """The form each element's loss is evaluated in: ``stable`` (the loss from the logits,
    as printed) unless it misses the accuracy bound where another form does not.

    From the logits, a custom loss can be inf or NaN where its value is an ordinary
    number: a Poisson loss p - y log p on a softplus as log(log(1 + e^-|z|) + max(z, 0))
    is log 0 from z = -37 (its value there is 12 for y = 0.3); log(1 + (p - y)^2) on a
    sigmoid, its fraction multiplied out, has 0 * inf in y^2 e^(2z). Also measured: the
    loss as written in p (p from its stable form), every stable rule (log1p among them),
    and the logs and sums of p written in z (`from_logits`).
    """
    # log1p last: log(1 - tanh z) as log1p(-tanh z) is still log 0 once tanh z rounds to 1,
    # where log(2/(e^(2z) + 1)) = log 2 - softplus(2z) is not
    first = tuple(rule for rule in RULES if rule.name != "log1p")
    log1p_last = stabilise(stabilise(naive, first, distribute=False, expand=False)[0],
                           distribute=False)[0]
    candidates = [("from the logits", stable), ("in p", loss_in_p),
                  ("every stable rule", stabilise(naive, distribute=False)[0]),
                  ("every stable rule, log1p last", log1p_last),
                  ("logs and sums in z", from_logits(loss_in_p, forward))]
    return choose(candidates, naive, LOSS_ULPS, floor=1.0, saved={P: prediction},
                  targets={Y: _targets(y_dom)})


def _elementwise(layer: ActivationLayer, loss: LossEntry) -> OutputPlan:
    raw = derive_elementwise(layer)
    f, l_py = raw.forward, loss.bound()
    stable_p = choose_forward(f, raw.stable_given).expr
    step_a_raw = differentiate(l_py, P, f"loss {loss.name!r}")
    step_a = tidy(step_a_raw)
    step_b = in_saved_output(f, raw.derivative_raw, Z, P, stable_p).expr
    delta_raw = sp.Mul(step_a, step_b, evaluate=False)
    y_dom = _y_domain(loss)
    delta_choice = choose_delta(step_a, step_b, step_a_raw.subs(P, f) * raw.derivative_raw,
                                stable_p, y_dom, f)
    delta = delta_choice.expr
    # No form met the bound: the most accurate is used, and the plan says where it fails
    # (a focal loss's log(1 - p) is -inf once p rounds to 1, in every form tried).
    off = shortfall(delta_choice, DERIVATIVE_ULPS)
    accuracy_note = (f"output {raw.name!r} + loss {loss.name!r}: no form of dl/dz within the "
                     f"accuracy bound was found; `{delta}` is off by {off} (inf: not finite "
                     "where the exact value is)") if off else ""
    uses = tuple(s for s in ("p", "y", "z") if delta.has(sp.Symbol(s, real=True)))
    naive = l_py.subs(P, f)
    stable, used = stabilise(naive, OVERFLOW_RULES)
    p_dom = _check_finite(raw.name, loss.name, f, stable, y_dom)
    domain = {P: p_dom, Y: y_dom}
    identities = [
        Identity(f"{raw.name}: Step B, dp/dz in p", raw.derivative_raw, step_b, {P: f},
                 {Z: (-4.0, 4.0)}),
        Identity(f"{loss.name}: Step A, dl/dp simplified", step_a_raw, step_a, {}, domain),
        # A delta with logs in z (`from_logits`) is proven with p = f(z).
        Identity(f"{raw.name} + {loss.name}: Step C, Step A * Step B = delta", delta_raw, delta,
                 *(({P: f}, {Z: (-4.0, 4.0), Y: y_dom}) if delta.has(Z) else ({}, domain))),
    ]
    if stable != naive:
        identities.append(Identity(f"{raw.name} + {loss.name}: stable loss from logits", naive,
                                   stable, {}, {Z: (-10.0, 10.0), Y: y_dom}))
    if stable_p != f:
        identities.append(Identity(f"{raw.name}: stable forward form", f, stable_p, {},
                                   {Z: (-10.0, 10.0)}))
    loss_choice = choose_loss(stable, naive, l_py, f, stable_p, y_dom)
    evaluated = None
    if loss_choice.expr != stable:
        evaluated = loss_choice.expr
        identities.append(Identity(f"{raw.name} + {loss.name}: loss as evaluated ("
                                   f"{loss_choice.label})", naive, evaluated, {P: f},
                                   {Z: (-10.0, 10.0), Y: y_dom}))
    off = shortfall(loss_choice, LOSS_ULPS)
    if off:
        accuracy_note = " ".join(filter(None, (accuracy_note, (
            f"output {raw.name!r} + loss {loss.name!r}: no form of the loss within the "
            f"accuracy bound was found; `{loss_choice.expr}` is off by {off} (inf: not "
            "finite where the exact value is)"))))
    note = " ".join(rule.note for rule in used) or PLAIN_NOTE
    return OutputPlan(raw.name, raw.latex, "elementwise", f, loss.name, loss.latex, l_py,
                      stable, note, step_a, step_b, delta_raw, delta, uses, loss.reduction,
                      tuple(identities), stable_p, evaluated, accuracy_note=accuracy_note)


def sum_to_one(expr: sp.Expr, syms: tuple[sp.Symbol, ...]) -> sp.Expr:
    """Use sum(syms) = 1: the full sum -> 1 and each sum of all-but-one -> 1 - the missing one."""
    expr = expr.subs(sp.Add(*syms), 1)
    if len(syms) < 3:
        return expr   # partial sums would be single symbols: nothing readable to gain
    for i, s in enumerate(syms):
        expr = expr.subs(sp.Add(*syms[:i], *syms[i + 1:]), 1 - s)
    return expr


def _softmax_vector(f_entry: sp.Expr, l_py: sp.Expr, k: int):
    """Explicit K-vector: logits, targets, p_i, loss, chain-rule pieces in p."""
    z = sp.symbols(f"z1:{k + 1}", real=True)
    y = sp.symbols(f"y1:{k + 1}", real=True)
    p = sp.symbols(f"p1:{k + 1}", positive=True)
    num = [f_entry.subs(Z, zi) for zi in z]
    total = sp.Add(*num)
    probs = [ni / total for ni in num]
    # dp_i/dz_j from SymPy, then read in the saved p: exp(z_m) = p_m * S with
    # S = sum_j exp(z_j), i.e. z_m -> log(p_m S), and sum_m p_m = 1.
    s = sp.Dummy("S", positive=True)
    back = {zi: sp.log(pi * s) for zi, pi in zip(z, p, strict=True)}

    def in_p(expr: sp.Expr) -> sp.Expr:
        e = sp.factor(expr.subs(back)).subs(sp.Add(*p), 1)
        return flip_sign(sum_to_one(sp.factor(sp.cancel(e)), p))

    # Only column 0 feeds dl/dz_1; the full Jacobian is kept for the printed size.
    cols = k if k == SOFTMAX_SHOWN else 1
    jac = sp.ImmutableMatrix(k, cols, lambda i, j: in_p(differentiate(probs[i], z[j])))
    step_a = [differentiate(l_py, P).xreplace({P: p[i], Y: y[i]}) for i in range(k)]
    return z, y, p, probs, jac, step_a


def _softmax(layer: ActivationLayer, loss: LossEntry) -> OutputPlan:
    raw = derive_elementwise(layer)
    l_py = loss.bound()
    identities = []
    shown = None
    for k in SOFTMAX_SIZES:
        z, y, p, probs, jac, step_a = _softmax_vector(raw.forward, l_py, k)
        chain_sum = sp.Add(*[sp.Mul(step_a[j], jac[j, 0], evaluate=False) for j in range(k)])
        chain_1 = sp.cancel(chain_sum)
        onehot = {y[-1]: 1 - sp.Add(*y[:-1])}
        last = {y[-1]: 1 - sp.Add(*y[:-1]), p[-1]: 1 - sp.Add(*p[:-1])}
        fused = sp.expand(sp.cancel(chain_1.subs(last)))
        per_element = fused.xreplace({p[0]: P, y[0]: Y})
        if per_element.free_symbols - {P, Y}:
            raise PairingError(f"{raw.name} + {loss.name}: dl/dz_i depends on other classes "
                               f"({fused}); no per-element form")
        loss_vec = sp.Add(*[l_py.xreplace({P: probs[i], Y: y[i]}) for i in range(k)])
        direct = differentiate(loss_vec, z[0]).subs(onehot)
        identities.append(Identity(
            f"{raw.name} + {loss.name}: dl/dz_1 = p_1 - y_1 (K={k})", direct,
            per_element.xreplace({P: p[0], Y: y[0]}), {p[0]: probs[0]},
            {**{zi: (-4.0, 4.0) for zi in z}, **{yi: (0.0, 1.0) for yi in y[:-1]}},
            "one-hot targets: sum_j y_j = 1"))
        if k == SOFTMAX_SHOWN:
            shown = (jac, chain_sum, per_element)
    jac, chain_1, delta = shown
    prediction = sp.exp(Z - LSE)   # exp(z_i)/sum_j exp(z_j), written with the row's lse
    from_logits = tidy(expand_logs(l_py.subs(P, prediction)))
    # Evaluated from the row max and the shifted sum, never through lse itself:
    # lse = zmax + log(sumexp) rounds log(sumexp) away when zmax is large.
    stable_p = sp.exp(Z - ZMAX) / SUMEXP
    stable_loss = expand_logs(l_py.subs(P, stable_p), distribute=False)
    k = SOFTMAX_SHOWN
    p = sp.symbols(f"p1:{k + 1}", positive=True)
    y = sp.symbols(f"y1:{k + 1}", real=True)
    identities.append(Identity(
        f"{raw.name} + {loss.name}: loss from logits via log-sum-exp",
        l_py.subs(P, prediction), from_logits, {}, {Z: (-30.0, 30.0), LSE: (-30.0, 30.0),
                                                    Y: (0.0, 1.0)}))
    row = {Z: (-30.0, 30.0), ZMAX: (-30.0, 30.0), SUMEXP: (1.0, 10.0), Y: (0.0, 1.0)}
    lse_def = {LSE: ZMAX + sp.log(SUMEXP)}
    identities.append(Identity(
        f"{raw.name}: prediction evaluated from the row max and sum", prediction, stable_p,
        lse_def, row, "lse = zmax + log(sumexp), zmax = max_j z_j"))
    identities.append(Identity(
        f"{raw.name} + {loss.name}: loss evaluated from the row max and sum",
        l_py.subs(P, prediction), stable_loss, lse_def, row,
        "lse = zmax + log(sumexp), zmax = max_j z_j"))
    step_a = tidy(differentiate(l_py, P))
    delta_raw = chain_1.xreplace({p[0]: P, y[0]: Y})
    uses = tuple(s for s in ("p", "y", "z") if delta.has(sp.Symbol(s, real=True)))
    return OutputPlan(raw.name, raw.latex, "softmax", prediction, loss.name, loss.latex, l_py,
                      from_logits, LSE_NOTE, step_a, jac, delta_raw, tidy(delta), uses,
                      loss.reduction, tuple(identities), stable_p, stable_loss)


def fuse_output(layer: ActivationLayer, loss: LossEntry) -> OutputPlan:
    """Steps A, B, C and the stable loss for an output activation + loss pair."""
    check_pairing(layer, loss)
    return _softmax(layer, loss) if layer.entry.kind == "softmax" else _elementwise(layer, loss)
