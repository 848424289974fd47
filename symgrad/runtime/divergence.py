"""Say why training diverged: replay the bad epoch step by step, name what went non-finite first.

A NaN loss has many causes and "use a smaller learning rate" fits only one.
After `fit` has restored the weights from the end of the last good epoch,
`explain_divergence` replays the epoch that failed (same batch order, same
compiled update step, on copies) and checks, before each step, the forward
pass layer by layer (NumPy reference: Z = A W + b, then the activation),
the predictions, the loss, then the compiled gradients and the updated
parameters. The first non-finite value decides the message and the advice:

- an activation giving NaN from a finite z: z left the activation's domain
  (log or sqrt of a negative number);
- an activation giving inf, or Z overflowing: the inputs are too large
  (scale the data) or the weights grew too large (learning rate);
- the loss non-finite from finite predictions: the targets are too large or
  outside the loss's domain;
- a gradient or an update non-finite: the learning rate (or the gradient's
  scale) is too large.

Runs only after a divergence, so its cost (one Python-level step per batch)
never touches a healthy fit.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from symgrad.codegen.checks import first_nonfinite
from symgrad.derive.plan import NetworkPlan
from symgrad.runtime.history import History
from symgrad.runtime.reference import ReferenceEvaluator

__all__ = ["TrainingDivergedError", "explain_divergence"]


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or inf during `fit`; the last finite weights were restored."""

    def __init__(self, message: str, epoch: int, history: History) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.history = history


def _absmax(arr: np.ndarray) -> float:
    with np.errstate(invalid="ignore"):
        return float(np.nanmax(np.abs(arr))) if arr.size else 0.0


def _at(index: tuple[int, ...], rows: np.ndarray) -> str:
    """'row r' of X (the batch row mapped back to the data), with the column if any."""
    where = f"row {int(rows[index[0]])} of X"
    return where + (f", column {index[1]}" if len(index) > 1 else "")


def _forward_cause(reference: ReferenceEvaluator, plan: NetworkPlan,
                   params: dict[str, np.ndarray], xb: np.ndarray, yb: np.ndarray,
                   rows: np.ndarray, step: str, lr_hint: str) -> str | None:
    """The first non-finite value of the forward pass and loss of one batch, explained."""
    fwd = reference.forward(params, xb)
    a_prev = xb
    acts = iter(fwd["A"][1:])
    for layer, z in zip(plan.layers, fwd["Z"], strict=True):
        bad = first_nonfinite(z)
        if bad is not None:
            w_max = _absmax(params[f"{layer.name}.W"])
            a_max = _absmax(a_prev)
            source = "X" if layer.index == 0 else "the previous layer's activations"
            advice = (f"the inputs are too large: scale X (its largest |value| is {a_max:.3g})"
                      if layer.index == 0 and a_max >= w_max else
                      f"the weights grew too large (largest |W| {w_max:.3g}, largest |input| "
                      f"{a_max:.3g}): {lr_hint}")
            return (f"the pre-activations Z = A W + b of {layer.name} became {z[bad]} at "
                    f"{_at(bad, rows)} in {step} (its input, {source}, was finite); {advice}")
        if layer.activation is None:
            continue
        a = next(acts)
        bad = first_nonfinite(a)
        if bad is not None:
            act = layer.activation.name
            if np.isnan(a[bad]):
                return (f"the activation {act} of {layer.name} gave nan from the finite input "
                        f"z = {z[bad]} at {_at(bad, rows)} in {step}: z is outside {act}'s "
                        f"domain (e.g. log or sqrt of a negative number); use an activation "
                        f"defined for every real z, or keep its input inside the domain")
            return (f"the activation {act} of {layer.name} overflowed to {a[bad]} at z = "
                    f"{z[bad]} ({_at(bad, rows)}, {step}); scale the inputs or {lr_hint}")
        a_prev = a
    out = plan.output
    bad = first_nonfinite(fwd["P"])
    if bad is not None:
        z = fwd["Z"][-1]
        kind = "is outside its domain" if np.isnan(fwd["P"][bad]) else "overflows"
        return (f"the output activation {out.activation_name} gave {fwd['P'][bad]} from the "
                f"finite logit z = {z[bad]} at {_at(bad, rows)} in {step}: it {kind} there")
    loss = reference.loss(params, xb, yb, fwd)
    if np.isfinite(loss):
        return None
    for r in range(xb.shape[0]):   # the batch is small: find the row one at a time
        if not np.isfinite(reference.loss(params, xb[r:r + 1], yb[r:r + 1])):
            y_max, p_max = _absmax(yb[r]), _absmax(fwd["P"][r])
            head = (f"the loss {out.loss_name} became {loss} at row {int(rows[r])} of X in "
                    f"{step} from finite predictions {fwd['P'][r]} and targets {yb[r]}")
            if p_max > max(y_max, 1.0):
                w_max = max(_absmax(v) for v in params.values())
                return (f"{head}: the predictions grew too large (largest |W| {w_max:.3g}); "
                        f"{lr_hint}")
            if y_max > 1.0:
                return f"{head}: the targets are too large (largest |y| {y_max:.3g}): scale them"
            return f"{head}: the targets are outside the loss's domain"
    return f"the loss {out.loss_name} became {loss} in {step} from finite predictions"


def explain_divergence(mod: ModuleType, plan: NetworkPlan, optimizer: object,
                       params: dict[str, np.ndarray], state: dict[str, np.ndarray],
                       X: np.ndarray, Y: np.ndarray, batch_size: int, hyper: np.ndarray,
                       order: np.ndarray, seed: int) -> str | None:
    """What became non-finite first when the epoch that diverged is replayed, or None.

    ``params``/``state`` are the values at the start of that epoch (they are
    copied, not changed); ``order``/``seed`` are what the epoch kernel got.
    """
    n = X.shape[0]
    if order.size == n:
        perm = order
    elif seed >= 0:
        perm = mod._permutation(n, seed)   # the kernel's own shuffle for this seed
    else:
        perm = np.arange(n)
    p = {k: v.copy() for k, v in params.items()}
    s = {k: v.copy() for k, v in state.items()}
    reference = ReferenceEvaluator(plan)
    lr_hint = f"try a smaller learning rate (now {optimizer!r})"
    for number, start in enumerate(range(0, n, batch_size), start=1):
        rows = perm[start:start + batch_size]
        xb, yb = X[rows], Y[rows]
        step = f"step {number} of the epoch"
        with np.errstate(all="ignore"):
            cause = _forward_cause(reference, plan, p, xb, yb, rows, step, lr_hint)
        if cause is not None:
            return cause
        _, grads = mod._loss_and_grads_rows(xb, yb, p)
        for name in reversed(plan.param_names):   # in the order backprop computes them
            bad = first_nonfinite(grads[name])
            if bad is not None:
                return (f"the gradient of {name} became {grads[name][bad]} in {step} while "
                        f"the forward pass and the loss were finite: the backward pass "
                        f"overflowed (largest |W| {_absmax(p[name]):.3g}); {lr_hint}")
        mod._train_epoch(xb, yb, xb.shape[0], hyper, None, -1, p, s)
        for name in plan.param_names:
            bad = first_nonfinite(p[name])
            if bad is not None:
                return (f"the update in {step} made {name} {p[name][bad]} from finite "
                        f"gradients (largest |gradient| {_absmax(grads[name]):.3g}): the "
                        f"learning rate is too large; {lr_hint}")
    return None
