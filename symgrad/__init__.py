"""symgrad: a symbolic differentiation and code-generation compiler for neural networks.

Define a network (or a micrograd-style scalar graph) with formulas; SymPy
derives and simplifies every gradient; the same expressions are printed as a
step-by-step derivation and compiled into Numba training kernels.

Data flow, one package per stage::

    definition -> graph -> derive -> simplify -> prove -> render / codegen -> runtime
"""

from symgrad import nn  # micrograd's nn API (Module, Neuron, Layer, MLP) on Value
from symgrad._version import __version__ as __version__
from symgrad.definition.activations import (
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Swish,
    Tanh,
    activation,
)
from symgrad.definition.errors import DefinitionError
from symgrad.definition.formulas import (
    Abs,
    Max,
    Min,
    Piecewise,
    cosh,
    erf,
    exp,
    log,
    pi,
    relu,
    sigmoid,
    sinh,
    softplus,
    sqrt,
    tanh,
    var,
)
from symgrad.definition.layer_kinds import LAYER_KINDS
from symgrad.definition.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, Sequential
from symgrad.definition.losses import loss
from symgrad.definition.scalar_ops import SCALAR_OPS, register_scalar_op
from symgrad.definition.value import Value

# Value.backward and Value._repr_html_ are implemented by later stages, which install
# them into symgrad.definition.value when imported (the definition stage imports no
# later stage): importing both here means `import symgrad` always installs them.
from symgrad.derive import scalar_backward as _scalar_backward  # noqa: F401
from symgrad.derive.scalar import GraphTooDeepError, symbolic
from symgrad.model import Model, compile
from symgrad.prove.check import ProofReport, check
from symgrad.prove.identity import ProofError
from symgrad.render import notebook as _notebook  # noqa: F401
from symgrad.render.animate import Animation, animate_network_training, animate_training
from symgrad.render.document import Derivation
from symgrad.render.draw import draw
from symgrad.render.function_plot import plot_derivative
from symgrad.render.head_table import head_table
from symgrad.render.scalar import derivation
from symgrad.render.stages import stage_table
from symgrad.render.textbook import textbook_vs_simplified
from symgrad.runtime.callbacks import Callback, EarlyStopping, ModelCheckpoint
from symgrad.runtime.divergence import TrainingDivergedError
from symgrad.runtime.history import History
from symgrad.runtime.optimizers import SGD, Adam, AdamW, Optimizer
from symgrad.runtime.weights_io import WeightsFileError
from symgrad.simplify.scalar_grad import grad
from symgrad.store.folder import CacheWarning

__all__ = [
    # formulas: the vocabulary of activations and losses
    "Abs", "Max", "Min", "Piecewise", "cosh", "erf", "exp", "log", "pi", "relu",
    "sigmoid", "sinh", "softplus", "sqrt", "tanh", "var",
    # scalar engine (micrograd-compatible)
    "Value", "SCALAR_OPS", "register_scalar_op", "grad", "symbolic", "derivation",
    "draw", "Derivation", "nn", "animate_training", "animate_network_training", "Animation",
    "stage_table", "plot_derivative",
    # networks
    "Dense", "Sequential", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "LAYER_KINDS",
    "ELU", "GELU", "Identity", "LeakyReLU", "ReLU", "Sigmoid",
    "SiLU", "Softmax", "Softplus", "Swish", "Tanh", "activation", "loss", "compile",
    "Model", "check", "ProofReport", "ProofError", "DefinitionError",
    "head_table", "textbook_vs_simplified",
    # training
    "History", "Callback", "EarlyStopping", "ModelCheckpoint", "SGD", "Adam", "AdamW",
    "Optimizer", "TrainingDivergedError",
    "WeightsFileError", "CacheWarning", "GraphTooDeepError",
]
