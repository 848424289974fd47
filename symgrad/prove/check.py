"""`sg.check(model)`: prove everything a compiled model relies on, or raise `ProofError`.

Three kinds of evidence, all in the returned `ProofReport`:

(a) every `Identity` of the plan (activation rewrites, Steps A/B/C of the
    fusion, stable forms) symbolically and at random points (tolerance by the
    model's dtype);
(b) the Dense matrix rules dW = A^T dZ, db = sum_rows dZ, dA = dZ W^T on
    explicit symbolic matrices of several shapes;
(c) the whole network's gradients against central finite differences of the
    loss on a random batch, in float64: entry by entry for small networks,
    along random directions per parameter tensor for large ones.

The model is used duck-typed (``.plan``, ``.params``, ``.reference``) so this
stage needs nothing from the runtime package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symgrad.prove.identity import ProofError, prove_identity
from symgrad.prove.linalg import prove_dense_rules

FD_RTOL = 1e-5
FULL_FD_LIMIT = 400   # parameters; larger networks are checked along random directions


@dataclass(frozen=True)
class ReportEntry:
    """One proven claim."""

    name: str
    kind: str        # "identity", "matrix rule" or "finite differences"
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
    X = rng.normal(size=(rows, plan.input_dim))
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
            eps = 1e-6 / max(1.0, float(np.abs(v).max()))
            plus, minus = dict(params), dict(params)
            plus[name], minus[name] = value + eps * v, value - eps * v
            fd = (ref.loss(plus, X, Y) - ref.loss(minus, X, Y)) / (2 * eps)
            an = float(np.sum(g * v))
            worst = max(worst, abs(fd - an) / max(1.0, abs(an), abs(fd)))
        errors[name] = worst
    return errors


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


def check(model, seed: int = 0) -> ProofReport:
    """Prove the model's identities, the matrix rules and its gradients; see module doc."""
    report = ProofReport()
    dtype = getattr(getattr(model, "dtype", None), "name", "float64")
    for ident in model.plan.identities:
        proof = prove_identity(ident, dtype, seed)
        report.entries.append(ReportEntry(ident.name, "identity", proof.method, proof.max_error))
    for rule in prove_dense_rules():
        report.entries.append(ReportEntry(rule.name, "matrix rule", rule.method, 0.0))
    report.entries.extend(check_gradients(model, seed))
    return report
