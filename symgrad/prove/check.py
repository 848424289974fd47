"""`sg.check(model)`: prove everything a compiled model relies on, or raise `ProofError`.

Four kinds of evidence, all in the returned `ProofReport`:

(a) every `Identity` of the plan (activation rewrites, Steps A/B/C of the
    fusion, stable forms) symbolically and at random points (tolerance by the
    model's dtype);
(b) the backward rules of every layer kind the model uses (Dense: dW = X^T dZ,
    db = sum_rows dZ, dX = dZ W^T; Conv2d, pooling, Flatten), each against
    ``sympy.diff`` of the kind's expanded definition on its proof instances, and
    its index formula against its array rule (`symgrad.prove.layer_rules`);
(c) the whole network's gradients against central finite differences of the
    loss on a random batch, in float64: entry by entry for small networks,
    along random directions per parameter tensor for large ones. The tolerance
    follows the error model of a central difference with step h: FD_RTOL of the
    slope, plus the rounding of the loss divided by the step (~eps |L| / h) and
    the truncation error (~h^2 |L^(3)|, estimated from a second step 2h);
(d) the compiled kernel: its loss and gradients on a batch equal the NumPy
    reference's (KERNEL_RTOL by dtype), so a model that checks also compiles.

The model is used duck-typed (``.plan``, ``.params``, ``.reference``) so this
stage needs nothing from the runtime package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from symgrad.definition.layer_kinds import layer_kind
from symgrad.prove.identity import ProofError, prove_identity
from symgrad.prove.layer_rules import prove_all_layer_kinds, require_proven

FD_RTOL = 1e-5
FULL_FD_LIMIT = 400   # parameters; larger networks are checked along random directions
# Rounding of one loss evaluation, in units of eps * |L|: a long formula (a degree-80
# polynomial) or a mean over a batch loses a few dozen ulps.
LOSS_ROUNDING_ULPS = 64.0
KERNEL_RTOL = {"float64": 1e-12, "float32": 1e-5}


@dataclass(frozen=True)
class ReportEntry:
    """One proven claim."""

    name: str
    kind: str   # "identity", "layer rule", "finite differences" or "kernel"
    method: str
    max_error: float


@dataclass
class ProofReport:
    """Everything `check` proved; ``str(report)`` is a readable table."""

    entries: list[ReportEntry] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    @property
    def ok(self) -> bool:
        return True   # a failure raises instead of being recorded

    def names(self, kind: str | None = None) -> list[str]:
        return [e.name for e in self.entries if kind is None or e.kind == kind]

    def __str__(self) -> str:
        rows = [f"{'kind':<20} {'method':<42} {'max err':>9}  name"]
        for e in self.entries:
            rows.append(f"{e.kind:<20} {e.method[:42]:<42} {e.max_error:9.2e}  {e.name}")
        return "\n".join(rows)


def _batch(plan, rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    layout = plan.input_layout   # images: (rows, C, H, W)
    X = rng.normal(size=(rows, *layout) if isinstance(layout, tuple) else (rows, layout))
    k = plan.output_dim
    if plan.output.reduction == "rows":
        Y = np.eye(k)[rng.integers(0, k, rows)]
    else:
        Y = rng.uniform(0.0, 1.0, (rows, k))
    return X, Y


def _fd_errors(model, params: dict, X: np.ndarray, Y: np.ndarray,
               rng: np.random.Generator) -> dict[str, float]:
    ref = model.reference
    _, grads = ref.backward(params, X, Y)
    rounding = _loss_rounding(ref, params, X, Y)
    total = sum(v.size for v in params.values())
    errors = {}
    for name, value in params.items():
        g = grads[name]
        if total <= FULL_FD_LIMIT:
            directions = [np.eye(value.size)[i].reshape(value.shape) for i in range(value.size)]
        else:
            directions = [rng.normal(size=value.shape) for _ in range(2)]
        worst = 0.0
        for v in directions:
            # Step relative to the parameter: a bias of 4e26 moved by 1e-6 moves nothing.
            size = float(np.abs(value[v != 0]).max(initial=0.0))
            h = 1e-6 * max(1.0, size) / max(1.0, float(np.abs(v).max()))
            an = float(np.sum(g * v))
            # A loss that oscillates faster than the step (sin(e^(3z + 1)) at e^(3z+1) ~ 1e5)
            # is not smooth at that scale, and Richardson's estimate of the truncation fails
            # with it: shorter steps, each judged with its own rounding allowance.
            best = float("inf")
            for step in (h, h / 32, h / 1024):
                fd, fd2, size = _central(ref, params, name, value, v, step, X, Y)
                noise = max(LOSS_ROUNDING_ULPS * np.finfo(np.float64).eps * size, rounding)
                best = min(best, float(_fd_error(an, fd, fd2, noise, step)))
                if best <= FD_RTOL:
                    break
            worst = max(worst, best)
        errors[name] = worst
    return errors


def _central(ref, params: dict, name: str, value: np.ndarray, v: np.ndarray, h: float,
             X: np.ndarray, Y: np.ndarray) -> tuple[float, float, float]:
    """Central differences with steps h and 2h along v, and the largest |L| seen."""
    losses = []
    for step in (h, -h, 2 * h, -2 * h):
        at = dict(params)
        at[name] = value + step * v
        losses.append(float(ref.loss(at, X, Y)))
    fd = (losses[0] - losses[1]) / (2 * h)
    fd2 = (losses[2] - losses[3]) / (4 * h)
    return fd, fd2, max(abs(x) for x in losses)


def _loss_rounding(ref, params: dict, X: np.ndarray, Y: np.ndarray) -> float:
    """How much one float64 evaluation of the loss may round, from its conditioning: the
    float32 evaluation's error against it, scaled by 2^-29 (the ratio of the precisions),
    times `LOSS_ROUNDING_ULPS`. sin(e^(3z + 1)) rounds e^(3z + 1) ~ 2e4 by 2e4 eps, and sin
    passes that on: far more than eps |L|. 0 where the float32 loss is not finite."""
    low = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
    with np.errstate(all="ignore"):
        coarse = ref.loss(low, np.asarray(X, dtype=np.float32), np.asarray(Y, dtype=np.float32))
        fine = ref.loss(params, X, Y)
    gap = abs(float(coarse) - float(fine))
    precision = float(np.finfo(np.float64).eps / np.finfo(np.float32).eps)
    return LOSS_ROUNDING_ULPS * gap * precision if math.isfinite(gap) else 0.0


def _fd_error(an: float, fd: float, fd2: float, noise: float, h: float) -> float:
    """|fd - an| relative to what a central difference can resolve; fails above FD_RTOL.

    The allowance is FD_RTOL * max(1, |an|, |fd|) (the slope itself) plus the finite
    difference's own error: the loss's rounding ``noise`` divided by the step (at least
    eps |L|: a loss of 1e53 rounds by 1e37, so a slope far below 1e43 is invisible to a
    step of 1e-6; more where the loss is ill-conditioned, `_loss_rounding`), and the
    truncation h^2 |L^(3)| / 6, estimated by Richardson: fd(2h) - fd(h) is three times
    it. A wrong gradient still fails wherever the finite difference can see it.
    """
    if not (np.isfinite(fd) and np.isfinite(an)):
        return 0.0 if fd == an else float("inf")
    noise = noise / h
    truncation = abs(fd2 - fd) / 3 if np.isfinite(fd2) else 0.0
    allowance = max(1.0, abs(an), abs(fd)) + (noise + 2 * truncation) / FD_RTOL
    return abs(fd - an) / allowance


def _first_overflow(model, params: dict, X: np.ndarray) -> str:
    """", the activation A of L gives inf at z = ..., ..." for the first activation that is
    not finite on ``X`` where its input is; "" if there is none."""
    with np.errstate(all="ignore"):
        fwd = model.reference.forward(params, X)
    acts = iter(fwd["A"][1:])
    for layer, z in zip(model.plan.layers, fwd["Z"], strict=True):
        if not np.isfinite(z).all():
            k = tuple(np.argwhere(~np.isfinite(z))[0])
            return f": {layer.name}'s weighted sum is {z[k]}"   # (or what feeds it)
        a = next(acts) if layer.activation is not None else z
        bad = ~np.isfinite(a) & np.isfinite(z)
        if layer.activation is not None and bad.any():
            k = np.argwhere(bad)[0]
            kind = "outside its domain" if np.isnan(a[tuple(k)]) else "it overflows there"
            return (f": the activation {layer.activation.name} of {layer.name} gives "
                    f"{a[tuple(k)]} at z = {z[tuple(k)]:.6g}, {kind}")
    return ""


def _require_finite_loss(model, params: dict, X: np.ndarray, Y: np.ndarray) -> None:
    """`ProofError` naming the first activation that is not finite on the check's batch
    (e.g. log or sqrt of a negative z): finite differences cannot check a NaN."""
    with np.errstate(all="ignore"):
        loss = float(model.reference.loss(params, X, Y))
    if np.isfinite(loss):
        return
    raise ProofError(f"the loss on the check's sample batch ({X.shape[0]} rows of standard "
                     f"normal inputs) is {loss}{_first_overflow(model, params, X)}; finite "
                     "differences need a network that is finite there (use an activation "
                     "defined for every real z)")


def check_gradients(model, seed: int = 0, rows: int = 5, attempts: int = 2
                    ) -> list[ReportEntry]:
    """Reference gradients vs central finite differences (float64); `ProofError` if off.

    A kink (ReLU, |x|) within eps of a sample spoils a finite difference, and some
    sit exactly on a sample: zero biases after a dead ReLU put every such row at the
    next activation's kink, whatever the batch. So a failing try is repeated on a
    fresh batch at slightly jittered parameters (the gradient formulas do not depend
    on the parameter values); a wrong gradient fails every try.
    """
    rng = np.random.default_rng(seed)
    params = {k: np.asarray(v, dtype=np.float64) for k, v in model.params.items()}
    errors: dict[str, float] = {}
    for attempt in range(attempts):
        X, Y = _batch(model.plan, rng, rows)
        if attempt == 0:
            _require_finite_loss(model, params, X, Y)
        at = params if attempt == 0 else {
            k: v + 0.05 * rng.standard_normal(v.shape) for k, v in params.items()}
        errors = _fd_errors(model, at, X, Y, rng)
        if max(errors.values()) <= FD_RTOL:
            break
    else:
        name = max(errors, key=errors.get)
        raise ProofError(f"gradient of {name!r} disagrees with central finite differences: "
                         f"relative error {errors[name]:.3g} > {FD_RTOL:g}")
    how = "entrywise" if sum(p.size for p in params.values()) <= FULL_FD_LIMIT else \
        "random directions"
    return [ReportEntry(f"d loss / d {name}", "finite differences",
                        f"central differences ({how}, float64)", err)
            for name, err in errors.items()]


def _kernel_errors(loss_k: float, grads_k: dict, loss_r: float, grads_r: dict
                   ) -> dict[str, float]:
    """Relative errors of a kernel's loss and of each gradient (to its largest entry)."""
    errors = {"loss": abs(float(loss_k) - float(loss_r)) / max(abs(float(loss_r)), 1e-300)}
    for name, ref in grads_r.items():
        ref = np.asarray(ref, dtype=np.float64)
        got = np.asarray(grads_k[name], dtype=np.float64)
        scale = max(float(np.abs(ref).max(initial=0.0)), 1e-300)
        errors[name] = float(np.abs(got - ref).max(initial=0.0)) / scale
    return errors


def check_kernel(model, seed: int = 0, rows: int = 5) -> list[ReportEntry]:
    """The compiled kernel's loss and gradients vs the NumPy reference on one batch.

    Compiles the model's kernels (``model.compiled_backward``) if it has not yet, so
    an expression the kernel printer cannot handle fails here, not at ``fit``. Each
    gradient tensor is compared relative to its largest entry. A float32 kernel is
    compared with the reference run in float64 on the same rounded inputs and
    parameters, within 1e-5 or four times the worst error of the reference's own
    float32 run (or of a float64 run on inputs and parameters moved by one float32
    rounding), whichever is larger: a formula's conditioning forces that much rounding
    on any float32 evaluation (sin(e^(3z+1)) inherits e^(3z+1)'s), and a float32 reference
    compared with the kernel directly failed right kernels where it rounded worse
    (log(1 + u) beside the kernel's log1p). A float64 kernel: within 1e-12, or that
    float32 error scaled by 2^-29 (the ratio of the two precisions) where it is larger.
    A wrong kernel is off by far more.
    """
    compiled = getattr(model, "compiled_backward", None)
    if compiled is None:
        return []
    dtype = getattr(getattr(model, "dtype", None), "name", "float64")
    tol = KERNEL_RTOL.get(dtype, KERNEL_RTOL["float32"])
    X, Y = _batch(model.plan, np.random.default_rng(seed + 1), rows)
    try:
        loss_k, grads_k = compiled(X, Y)
    except Exception as exc:   # noqa: BLE001 - reported with its cause, as a failed proof
        raise ProofError(f"the kernel could not be compiled or run: "
                         f"{type(exc).__name__}: {exc}") from exc
    with np.errstate(all="ignore"):   # an overflow is reported below, by name
        reference = model.backward(X, Y)   # in the model's dtype
    bad = [name for name, v in (("loss", reference[0]), *reference[1].items())
           if not np.isfinite(v).all()]
    if bad:
        # nothing to compare with: the reference overflows too (a float32 network of
        # e^(3z) layers past z = 30), and a ratio of two infinities says nothing
        params = {k: np.asarray(v, dtype=dtype) for k, v in model.params.items()}
        where = _first_overflow(model, params, np.asarray(X, dtype=dtype))
        if not where:
            with np.errstate(all="ignore"):
                top = float(np.abs(model.predict_proba(X)).max())   # any head's outputs
            where = (f": every layer's output is finite (the network's up to {top:.3g}), "
                     + ("the loss overflows" if "loss" in bad else "the backward pass overflows"))
        raise ProofError(f"the kernel cannot be checked on the sample batch ({X.shape[0]} "
                         f"rows of standard normal inputs): the {dtype} reference's "
                         f"{', '.join(map(repr, bad))} is not finite there{where}")
    if dtype == "float64":
        errors = _kernel_errors(loss_k, grads_k, *reference)
        # float64 has no wider reference: the conditioning is measured as the reference's
        # own error run in float32, scaled to float64's precision. A gradient that is a
        # small difference of large terms (after training: 1e-4 of terms near 0.35)
        # differs by more than 1e-12 with any change of operation order.
        low = {k: np.asarray(v, dtype=np.float32) for k, v in model.params.items()}
        X32, Y32 = (np.asarray(a, dtype=np.float32) for a in (X, Y))
        with np.errstate(all="ignore"):
            coarse = model.reference.backward(low, X32.reshape(X32.shape[0], -1), Y32)
        floor = max(_kernel_errors(*coarse, *reference).values())
        precision = float(np.finfo(np.float64).eps / np.finfo(np.float32).eps)
        bound = max(tol, 4 * floor * precision) if math.isfinite(floor) else tol
    else:
        rounded = {k: np.asarray(v, dtype=dtype).astype(np.float64)
                   for k, v in model.params.items()}
        X64, Y64 = (np.asarray(a, dtype=dtype).astype(np.float64) for a in (X, Y))
        exact = model.reference.backward(rounded, X64.reshape(X64.shape[0], -1), Y64)
        errors = _kernel_errors(loss_k, grads_k, *exact)
        # the float32 reference's own error, its worst over the loss and every gradient:
        # one ill-conditioned activation reaches them all, by chance more in one of them
        floor = max(_kernel_errors(*reference, *exact).values())
        # ... and what one float32 rounding of every input and parameter moves the result
        # by: a kernel that sums in another order rounds as much, and one reference run
        # can by chance round less (a diverged network's loss, a 1e25 difference of 1e26
        # logits: kernel 1.2e-5 off, the float32 reference 3e-7)
        shake = np.random.default_rng(seed + 2)
        eps = float(np.finfo(np.float32).eps)
        jittered = {k: v * (1 + eps * shake.choice([-1.0, 1.0], v.shape))
                    for k, v in rounded.items()}
        Xj = X64 * (1 + eps * shake.choice([-1.0, 1.0], X64.shape))
        with np.errstate(all="ignore"):
            moved = model.reference.backward(jittered, Xj.reshape(Xj.shape[0], -1), Y64)
        nudge = max(_kernel_errors(*moved, *exact).values())
        floor = max(floor, nudge) if math.isfinite(nudge) else floor
        bound = max(tol, 4 * floor)
    for name, err in errors.items():
        if not err <= bound:
            raise ProofError(f"compiled kernel disagrees with the NumPy reference on "
                             f"{name!r}: relative error {err:.3g} > {bound:.3g} ({dtype})")
    return [ReportEntry(f"kernel {name}", "kernel",
                        f"compiled vs NumPy reference ({dtype}, {rows} rows)", err)
            for name, err in errors.items()]


def check(model, seed: int = 0, kernel: bool = True) -> ProofReport:
    """Prove the model's identities, its layer kinds' rules, its gradients and (``kernel``) that
    the compiled kernel matches the reference; see module doc."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"check: seed must be an int, got {type(seed).__name__}; check(model) "
                        "draws its own batches, it takes no data")
    report = ProofReport()
    dtype = getattr(getattr(model, "dtype", None), "name", "float64")
    for ident in model.plan.identities:
        proof = prove_identity(ident, dtype, seed)
        report.entries.append(ReportEntry(ident.name, "identity", proof.method, proof.max_error))
    kinds = dict.fromkeys([*(feature.kind for feature in getattr(model.plan, "features", ())),
                           "dense"])
    for proof in require_proven(prove_all_layer_kinds([layer_kind(k) for k in kinds])):
        method = ("index formula == array rule, expanded" if proof.target == "forward"
                  else "sympy.diff of the expanded definition" if proof.symbolic
                  else "sympy.diff of Max at points, vs the rule")
        report.entries.append(ReportEntry(
            f"{proof.kind} {proof.target} ({proof.layer} on {proof.in_shape})", "layer rule",
            method, proof.max_abs_diff))
    report.entries.extend(check_gradients(model, seed))
    if kernel:
        report.entries.extend(check_kernel(model, seed))
    return report
