"""What a generated driver is made of: the names of its arrays and the pieces both epochs share.

`KernelLayout` derives from a `NetworkPlan` the names and sizes the driver's code uses
(image-layer workspaces, the Dense buffers, one prefix per distinct activation); the
small emitters here (`logits`, `batch_rows`) are written into the plain epoch
(`symgrad.codegen.kernels`) and the split one (`symgrad.codegen.split_batches`) alike.
"""

from __future__ import annotations

from symgrad.codegen import dense_layers, feature_layers
from symgrad.codegen.source_text import INLINE_JIT as _INLINE_JIT
from symgrad.codegen.source_text import JIT as _JIT
from symgrad.codegen.source_text import Src as _Src
from symgrad.derive.plan import (
    LOSS_KEY,
    PREDICTION_KEY,
    ActivationPlan,
    NetworkPlan,
    generic_dense_key,
)

__all__ = ["KernelLayout", "is_classification", "activation_key", "output_keys", "logits",
           "batch_rows", "batch_pass_jit"]


def is_classification(plan: NetworkPlan) -> bool:
    """True if accuracy is meaningful: softmax output or a logistic (0..1) output with BCE."""
    if plan.output.kind == "softmax":
        return True
    return plan.output.loss_name.lower() in {"bce", "binary_cross_entropy", "cross_entropy"}


# Small helpers (the GEMM calls, the bias add; ~0.1 s apiece as functions of their own,
# cold) and the batch passes are inlined by Numba into their callers.


def batch_pass_jit(lay: KernelLayout) -> str:
    """Options of a batch pass (_forward, _backward, _update): inlined into its callers
    (_epoch, _predict, ...) by Numba itself where it can be.

    Compiled as a function of its own, a pass is optimised by LLVM once alone and again
    inside _epoch, whose module links in every callee's code: for a cold 3-layer MLP,
    ~0.7 s of LLVM passes. Numba 0.68's inliner refuses the image-layer passes' calls
    ("Calling a closure with *args is unsupported", their argument lists are long), so
    drivers with image layers keep them as functions.
    """
    return _JIT if lay.features else _INLINE_JIT


def activation_key(act: ActivationPlan) -> tuple[str, ...]:
    """What makes two activation plans the same kernel (their printed formulas)."""
    return (act.name, str(act.stable_forward), str(act.kernel_derivative), *act.saved)


class KernelLayout:
    """Names of arrays in the generated code, derived from the plan.

    Image layers keep one argument per parameter and per workspace (their code is
    written per layer). Dense layers are run by one loop (`symgrad.codegen.dense_layers`)
    over the flat parameter buffer ``theta`` and the shared buffers ``Abuf``/``Zbuf``/
    ``Dbuf``, sized from the layout table ``LT``: the driver's source does not depend on
    the Dense widths or on how many Dense layers there are.

    A workspace is ``(name, rows per sample, columns, fixed rows)``: per-batch buffers
    have ``rows per sample * m`` rows; a fixed one (rows per sample 0) has its own.
    """

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self.layers = plan.layers
        self.features = plan.features
        # Image-layer parameters by kernel variable name, aligned with the first
        # plan.param_names; the Dense ones follow, all inside theta.
        self.fparams: list[str] = []
        for feature in plan.features:
            self.fparams += feature_layers.feature_params(feature)
        # Each distinct activation gets a prefix (a0_fwd_b, a0_bwd, ...) and a code,
        # its position here (the Dense loop branches on it: LT[l, 4]).
        self.activations: dict[tuple[str, ...], tuple[str, ActivationPlan]] = {}
        acts = [f.activation for f in plan.features] + [d.activation for d in plan.layers[:-1]]
        # Sorted by formula, so models using the same activations in another order share
        # a driver.
        found = {activation_key(act): act for act in reversed(acts) if act is not None}
        for key in sorted(found):
            self.activations[key] = (f"a{len(self.activations)}_", found[key])

    def prefix(self, act: ActivationPlan) -> str:
        return self.activations[activation_key(act)][0]

    def code(self, act: ActivationPlan) -> int:
        """The Dense loop's branch number of ``act``."""
        return list(self.activations).index(activation_key(act))

    def feature_input(self) -> str:
        return f"FA{self.features[-1].index}" if self.features else "X"

    def work_arrays(self) -> list[tuple[str, int, object, int]]:
        """Image layers' per-batch workspaces and errors (the Dense buffers are apart)."""
        return (list(feature_layers.workspaces(self.features))
                + list(feature_layers.deltas(self.features)))

    def forward_arrays(self) -> list[str]:
        return [w[0] for w in feature_layers.workspaces(self.features)] + ["Abuf", "Zbuf"]

    def delta_arrays(self) -> list[str]:
        return [w[0] for w in feature_layers.deltas(self.features)] + ["Dbuf"]

    def allocate(self, s: _Src, rows: str, suffix: str = "") -> None:
        """Emit the allocation of every workspace for batches of up to ``rows`` rows."""
        for name, per, cols, fixed in self.work_arrays():
            count = f"{fixed}" if per == 0 else rows if per == 1 else f"{rows} * ({per})"
            s(f"{name}{suffix} = np.empty(({count}, {cols}), dtype=DTYPE)")
        z_rows = f"{rows} * width" if dense_layers.saves_any_z(self) else "0"
        s("width = LT[LT.shape[0] - 1, 5] + LT[LT.shape[0] - 1, 1]  # all Dense outputs",
          f"Abuf{suffix} = np.empty(({rows} * width), dtype=DTYPE)",
          f"Dbuf{suffix} = np.empty(({rows} * width), dtype=DTYPE)",
          f"Zbuf{suffix} = np.empty(({z_rows}), dtype=DTYPE)"
          "  # z, for activations whose derivative reads it")

    def view(self, name: str, rows: str = "m") -> str:
        """The batch view of workspace ``name`` (allocated with suffix ``_``)."""
        per = {w[0]: w[1] for w in self.work_arrays()}.get(name)
        if per is None or per == 0:   # a Dense buffer (the loop takes its own views), fixed
            return f"{name}_"
        return f"{name}_[:{rows}]" if per == 1 else f"{name}_[:{rows} * ({per})]"


def output_keys(lay: KernelLayout) -> tuple[str, ...]:
    """What ``_output`` computes: the prediction, the loss and the output error dZ_L."""
    return (PREDICTION_KEY, LOSS_KEY, generic_dense_key("dZ", output=True))


def logits(s: _Src) -> None:
    """ZL and DL: the last Dense layer's blocks of the buffers (its logits and error)."""
    s("last = LT.shape[0] - 1", "at = m * LT[last, 5]",
      "ZL = _dense_view(Abuf_, at, m, LT[last, 1])",
      "DL = _dense_view(Dbuf_, at, m, LT[last, 1])")


def batch_rows(s: _Src) -> None:
    """xb, yb: the batch's rows start:stop, gathered into Xb, Yb in the epoch's order, or
    row slices of X, Y when the rows train in order."""
    s("if gather:", "    for r in range(m):", "        src = perm[start + r]",
      "        for c in range(X.shape[1]):", "            Xb[r, c] = X[src, c]",
      "        for c in range(Y.shape[1]):", "            Yb[r, c] = Y[src, c]",
      "    xb = Xb[:m]", "    yb = Yb[:m]",
      "else:", "    xb = X[start:stop]", "    yb = Y[start:stop]")
