"""The derived backward pass of a network, as plain data.

This is the contract between the stages: `simplify.network.derive_network` fills a
`NetworkPlan`; `prove` checks its identities; `render` prints it; `codegen`
and `runtime.reference` evaluate exactly these expressions. Nothing
downstream differentiates again, and nothing here is written by hand: every
expression comes out of SymPy.

Canonical symbols (see `symgrad.definition.formulas`): ``z`` pre-activation,
``a`` hidden activation output, ``p`` prediction of the output layer, ``y``
target, and ``lse`` the per-row log-sum-exp of the logits (softmax only; evaluated
through ``zmax``, the row's largest logit, and ``sumexp`` = sum_j exp(z_j - zmax)).

Shapes: a batch ``X`` is (n, in_dim); a Dense layer computes
``Z = A_prev @ W + b`` with ``W`` (in_dim, out_dim) and ``b`` (out_dim,). A
convolutional network reads images (n, C, H, W) through its ``features`` (image
layers, `FeaturePlan`) first; the Dense head then starts at the flattened features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import sympy as sp

LSE = sp.Symbol("lse", real=True)
# The row's largest logit and sum_j exp(z_j - zmax) (>= 1): softmax is evaluated from
# these, exp(z - zmax)/sumexp, because lse = zmax + log(sumexp) rounds log(sumexp) away
# once zmax is large (float32 logits near 1e5 gave rows summing to 1.0014).
ZMAX = sp.Symbol("zmax", real=True)
SUMEXP = sp.Symbol("sumexp", positive=True)


@dataclass(frozen=True)
class Identity:
    """A claimed equality ``raw == simplified``, to be proven by `symgrad.prove`.

    ``raw`` is what the chain rule produced; ``simplified`` is the form the
    kernel uses. ``substitutions`` map saved-value symbols to their definition
    (e.g. ``a -> tanh(z)``) so both sides can be compared in the same
    variables. ``domain`` gives sampling ranges for the numeric check, and
    ``assumptions`` states side conditions (e.g. one-hot targets sum to 1).
    """

    name: str
    raw: sp.Expr
    simplified: sp.Expr
    substitutions: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)
    domain: dict[sp.Symbol, tuple[float, float]] = field(default_factory=dict)
    assumptions: str = ""


@dataclass(frozen=True)
class ActivationPlan:
    """An elementwise activation a = f(z) and its derived derivative."""

    name: str
    latex_name: str
    forward: sp.Expr          # f(z), in z, parameters substituted (as the user wrote it)
    stable_forward: sp.Expr   # numerically safe form of f(z) used for evaluation
    derivative_raw: sp.Expr   # sympy.diff(f(z), z), as SymPy returned it
    derivative: sp.Expr       # simplified; in a where the engine found a form, else in z
    saved: tuple[str, ...]    # forward values the derivative reads: subset of ("z", "a")
    identity: Identity        # derivative_raw == derivative (with a -> f(z))
    accuracy_note: str = ""   # set where no evaluation form met the accuracy bound
    # The derivative as kernels evaluate it, where that differs from ``derivative``
    # (a gate a/z guarded at z = 0, `symgrad.simplify.saved_output.gate_forms`).
    evaluated_derivative: sp.Expr | None = None

    @property
    def kernel_derivative(self) -> sp.Expr:
        """What the kernels and the NumPy reference evaluate for f'."""
        return self.derivative if self.evaluated_derivative is None \
            else self.evaluated_derivative


@dataclass(frozen=True)
class DensePlan:
    """A Dense layer followed (for hidden layers) by an elementwise activation."""

    index: int
    name: str                 # "dense0", "dense1", ...
    in_dim: int
    out_dim: int
    bias: bool
    activation: ActivationPlan | None  # None for the last Dense (its activation is in OutputPlan)

    @property
    def param_names(self) -> tuple[str, ...]:
        return (f"{self.name}.W", f"{self.name}.b") if self.bias else (f"{self.name}.W",)


@dataclass(frozen=True)
class FeaturePlan:
    """An image layer (a registered layer kind) and the activation that follows it, if any.

    Shapes are per sample: ``in_shape`` (C, H, W) and ``out_shape`` (C', H', W'), or
    (F,) for Flatten. The layer's forward definition and backward rules are its kind's
    (`symgrad.definition.layer_kinds`), proven in `symgrad.prove.layer_rules`.
    """

    index: int                # position among the image layers
    name: str                 # "conv0", "maxpool0", "flatten0", ...
    kind: str                 # registry name: "conv2d", "maxpool2d", ...
    layer: object             # the layer as the user wrote it (its settings)
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    param_shapes: tuple[tuple[str, tuple[int, ...]], ...]   # (("W", shape), ("b", shape))
    activation: ActivationPlan | None

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}.{p}" for p, _ in self.param_shapes)


@dataclass(frozen=True)
class OutputPlan:
    """The output activation fused with the loss: Steps A, B, C of the printout.

    The loss of a batch is ``scale * sum(loss_from_logits)`` with
    ``scale = 1/n`` (``reduction == "rows"``: softmax cross-entropy) or
    ``1/(n*k)`` (``reduction == "elements"``: every elementwise loss).
    """

    activation_name: str
    activation_latex: str
    kind: Literal["elementwise", "softmax"]
    prediction: sp.Expr       # p as a function of z (softmax: exp(z - lse))
    loss_name: str
    loss_latex: str
    loss_formula: sp.Expr     # l(p, y) as written
    loss_from_logits: sp.Expr  # l(f(z), y) in a stable form, in z, y (and lse)
    stable_note: str          # which stable form is used and why (printed)
    step_a: sp.Expr           # dl/dp, simplified, in p, y
    step_b: sp.Expr           # dp/dz, simplified (in p where possible)
    delta_raw: sp.Expr        # step_a * step_b before cancellation
    delta: sp.Expr            # dl/dz, simplified: e.g. p - y
    delta_uses: tuple[str, ...]  # subset of ("p", "y", "z")
    reduction: Literal["rows", "elements"]
    identities: tuple[Identity, ...]
    # Numerically safe form of ``prediction`` for evaluation (None: use ``prediction``).
    stable_prediction: sp.Expr | None = None
    # The loss as evaluated, when it differs from ``loss_from_logits`` (softmax: in zmax
    # and sumexp instead of lse); proven equal by one of ``identities``.
    stable_loss: sp.Expr | None = None
    accuracy_note: str = ""   # set where no form of dl/dz met the accuracy bound

    @property
    def evaluated_prediction(self) -> sp.Expr:
        """The prediction in the form kernels, the reference and exports evaluate."""
        return self.prediction if self.stable_prediction is None else self.stable_prediction

    @property
    def evaluated_loss(self) -> sp.Expr:
        """The loss from the logits in the form kernels and the reference evaluate."""
        return self.loss_from_logits if self.stable_loss is None else self.stable_loss


@dataclass(frozen=True)
class NetworkPlan:
    """Everything derived about a network + loss; consumed by render, codegen, runtime."""

    layers: tuple[DensePlan, ...]
    output: OutputPlan
    input_dim: int
    output_dim: int
    gradients: dict[str, sp.Expr]   # parameter name -> backward formula (matrix form)
    identities: tuple[Identity, ...]  # every identity to prove (activations, fusion)
    # The backward pass in evaluation order as (lhs, rhs) matrix equations, e.g.
    # (dZ2, (P - Y)/(n k)), (dW2, A1.T*dZ2), (dA1, dZ2*W2.T), (dZ1, dA1 o D1) where
    # D_j is f'_j applied elementwise (layers[j-1].activation.derivative).
    backward: tuple[tuple[sp.Expr, sp.Expr], ...] = ()
    # What the compile left undone, for the printout (e.g. a symbolic budget ran out).
    notes: tuple[str, ...] = ()
    # Image layers before the Dense head (convolutional networks), in order; their
    # input is X of shape (n, *input_shape) in NCHW layout. Empty for an MLP.
    features: tuple[FeaturePlan, ...] = ()
    input_shape: tuple[int, ...] = ()

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(name for layer in (*self.features, *self.layers)
                     for name in layer.param_names)

    @property
    def input_layout(self) -> int | tuple[int, ...]:
        """What one sample of X is: ``input_dim`` for an MLP, (C, H, W) for images."""
        return self.input_shape if self.features else self.input_dim

    @property
    def first_layer(self) -> str:
        """The name of the layer that reads X (for error messages)."""
        return self.features[0].name if self.features else "dense0"


# -- statement keys -----------------------------------------------------------------------
# One name per statement of the forward and backward pass, shared by the stages that
# must agree on it: the printout tags its equation with the key (and numbers it), the
# kernel generator cites the key in a comment at the line that implements it, and the
# printout's appendix resolves each cited key to its equation number. Render and codegen
# never import each other; both read the keys from here. Dense layers are numbered from
# 1 as in the printout (the kernels' W0 is the printout's W_1); the backward keys are
# the names of the left-hand sides of `NetworkPlan.backward` (dW2, db2, dA1, dZ1, ...).
UPDATE_KEY = "update"            # the optimizer's step on every parameter
LOSS_KEY = "L"                   # the batch loss from the logits
PREDICTION_KEY = "P"             # the output activation
FEATURES_GRAD_KEY = "dF"         # the Dense head's error passed back to the image layers


def dense_key(what: str, j: int) -> str:
    """Key of Dense statement ``what`` ("Z", "dZ", "dW", "db", "dA") of printout layer ``j``.

    >>> dense_key("dW", 2)
    'dW2'
    """
    return f"{what}{j}"


def generic_dense_key(what: str, output: bool = False) -> str:
    """Key a depth-generic kernel line cites for Dense statement ``what`` of *every* layer
    (``output``: of the output layer only, dZ_L from the loss).

    The kernels run the Dense chain as one loop, so one line implements the equation of
    each layer; `citing_key` maps each layer's key to it.

    >>> generic_dense_key("dW"), generic_dense_key("dZ", output=True)
    ('dW_l', 'dZ_L')
    """
    return f"{what}_L" if output else f"{what}_l"


def citing_key(key: str, dense_layers: int) -> str:
    """The key a kernel line cites for equation ``key`` of a plan with ``dense_layers``
    Dense layers: the layer-generic key for Dense statements, else ``key`` itself.

    >>> citing_key("dW2", 3), citing_key("dZ3", 3), citing_key("dZ2", 3), citing_key("L", 3)
    ('dW_l', 'dZ_L', 'dZ_l', 'L')
    """
    match = re.fullmatch(r"(Z|dZ|dW|db|dA)(\d+)", key)
    if match is None:
        return key
    what, j = match.group(1), int(match.group(2))
    return generic_dense_key(what, output=what == "dZ" and j == dense_layers)


def feature_key(name: str, what: str) -> str:
    """Key of image layer ``name``'s statement ``what``: "fwd", "act", "dZ" or a rule target.

    >>> feature_key("conv0", "dW")
    'conv0.dW'
    """
    return f"{name}.{what}"


def cite(*keys: str) -> str:
    """The comment text by which generated code cites the equations it implements.

    >>> cite("dW2", "update")
    '[eq dW2 update]'
    """
    return "[eq " + " ".join(keys) + "]"
