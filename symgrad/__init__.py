"""symgrad: a symbolic differentiation and code-generation compiler for neural networks.

Define a network (or a micrograd-style scalar graph) with formulas; SymPy
derives and simplifies every gradient; the same expressions are printed as a
step-by-step derivation and compiled into Numba training kernels.

Data flow, one package per stage::

    definition -> graph -> derive -> simplify -> prove -> render / codegen -> runtime
"""

from symgrad.definition.formulas import (  # noqa: F401
    Abs, Max, Min, Piecewise, cosh, erf, exp, log, pi, relu, sigmoid, sinh, softplus,
    sqrt, tanh, var,
)
from symgrad.render.document import Derivation  # noqa: F401

# --- scalar engine (issue: foundation) ---
from symgrad.definition.scalar_ops import SCALAR_OPS, register_scalar_op  # noqa: F401, E402
from symgrad.definition.value import Value  # noqa: F401, E402
from symgrad.derive.scalar import grad, symbolic  # noqa: F401, E402
from symgrad.render.draw import draw  # noqa: F401, E402
from symgrad.render.scalar import derivation  # noqa: F401, E402
# --- networks (issue: symbolic networks) ---
# isort: split
from symgrad.definition.activations import (  # noqa: F401, E402
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
from symgrad.definition.errors import DefinitionError  # noqa: F401, E402
from symgrad.definition.layers import Dense, Sequential  # noqa: F401, E402
from symgrad.definition.losses import loss  # noqa: F401, E402
from symgrad.model import Model, compile  # noqa: F401, E402
from symgrad.prove.check import ProofReport, check  # noqa: F401, E402
from symgrad.prove.identity import ProofError  # noqa: F401, E402

# isort: split
# --- training (issue: numba kernels) ---
from symgrad.runtime.history import History  # noqa: F401,E402
from symgrad.runtime.optimizers import SGD, Adam, AdamW, Optimizer  # noqa: F401,E402
from symgrad.runtime.training import TrainingDivergedError  # noqa: F401,E402
from symgrad.runtime.weights_io import WeightsFileError  # noqa: F401,E402

__version__ = "0.1.0"
