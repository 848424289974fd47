"""Errors raised while a network, activation or loss is being *defined*.

They subclass ValueError/TypeError so callers can catch them generically, and
every message names the offending layer, formula, shape or value: the goal is
to fail when the user writes the definition, never later in a training loop.
"""

from __future__ import annotations


class DefinitionError(ValueError):
    """A formula, layer or loss that symgrad cannot accept."""


class NotElementwiseError(DefinitionError):
    """An activation/loss formula whose free variables are not the expected ones."""


class NotDifferentiableError(DefinitionError):
    """SymPy left an unevaluated Derivative/Subs in the derivative of a formula."""


class UnsupportedFunctionError(DefinitionError):
    """A formula uses a function the code printer cannot translate."""


class LayerSizeError(DefinitionError):
    """Two consecutive Dense layers whose sizes do not chain."""


class PairingError(DefinitionError):
    """An output activation and a loss that cannot be used together (e.g. softmax + mse)."""


class InputShapeError(ValueError):
    """Data (X or targets) whose shape or values do not fit the network."""
