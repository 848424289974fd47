"""micrograd's ``nn`` on symgrad's `Value`: Module, Neuron, Layer, MLP.

The signatures and behaviour are micrograd's (``micrograd.nn``), so a
micrograd script runs on symgrad with one import changed::

    from symgrad.nn import MLP          # was: from micrograd.nn import MLP
    from symgrad import Value           # was: from micrograd.engine import Value

Weights are drawn as micrograd draws them, ``random.uniform(-1, 1)`` from
Python's global `random` module, one per input in order, biases start at 0:
after the same ``random.seed(...)`` both libraries build the same network.
What symgrad adds: every parameter carries a label (``w1_21`` is layer 1,
neuron 2, input 1; ``b1_2`` its bias), so a loss built from the network can be
derived and printed symbolically with `symgrad.grad` / `symgrad.derivation`.

>>> import random
>>> random.seed(0)
>>> net = MLP(2, [3, 1])
>>> net
MLP of [Layer of [ReLUNeuron(2), ReLUNeuron(2), ReLUNeuron(2)], Layer of [LinearNeuron(3)]]
>>> len(net.parameters())
13
>>> out = net([1.0, -2.0])
>>> out.backward(); net.zero_grad(); net.parameters()[0].grad
0.0
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from numbers import Real

from symgrad.definition.value import Value

__all__ = ["MLP", "Layer", "Module", "Neuron"]


def _check_count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


def _check_inputs(x: object, nin: int, who: str) -> Sequence[Value | float]:
    if isinstance(x, Value | Real) and nin == 1:
        return [x]  # type: ignore[list-item]
    try:
        items = list(x)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"{who} takes a sequence of {nin} inputs, got {x!r}") from None
    if len(items) != nin:
        raise ValueError(f"{who} takes {nin} inputs, got {len(items)}")
    for i, xi in enumerate(items):
        if not isinstance(xi, Value) and (isinstance(xi, bool) or not isinstance(xi, Real)):
            raise TypeError(f"{who}: input {i} is {xi!r} ({type(xi).__name__}); "
                            "need a Value or a real number")
    return items


class Module:
    """Base class: ``parameters()`` lists the trainable Values, ``zero_grad()`` zeroes them."""

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to 0 (symgrad's backward also resets them itself)."""
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self) -> list[Value]:
        """The trainable Values of this module, in a fixed order."""
        return []


class Neuron(Module):
    """``sum_i w_i x_i + b``, followed by ReLU when ``nonlin`` (micrograd's `Neuron`)."""

    def __init__(self, nin: int, nonlin: bool = True) -> None:
        _check_count(nin, "Neuron: nin")
        # micrograd's draw, in micrograd's order, so a shared seed gives shared weights
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = bool(nonlin)

    def __call__(self, x: Sequence[Value | float]) -> Value:
        """The neuron's output Value for the inputs ``x`` (Values or numbers)."""
        x = _check_inputs(x, len(self.w), repr(self))
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self) -> list[Value]:
        """Weights, then the bias."""
        return self.w + [self.b]

    def _name(self, layer: int, index: int) -> None:
        # Labels make the symbolic loss readable; indices are 1-based as in the notes.
        sep = "" if len(self.w) < 10 else ","
        for i, wi in enumerate(self.w, start=1):
            if not wi.label:
                wi.label = f"w{layer}_{index}{sep}{i}"
        if not self.b.label:
            self.b.label = f"b{layer}_{index}"

    def __repr__(self) -> str:
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    """``nout`` neurons reading the same ``nin`` inputs (micrograd's `Layer`).

    Called on inputs it returns a list of Values, or the single Value when
    ``nout == 1``, as micrograd does.
    """

    def __init__(self, nin: int, nout: int, **kwargs: bool) -> None:
        _check_count(nin, "Layer: nin")
        _check_count(nout, "Layer: nout")
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Sequence[Value | float]) -> Value | list[Value]:
        """The layer's outputs for the inputs ``x``."""
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:
        """Every neuron's parameters, neuron by neuron."""
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """A multi-layer perceptron: ReLU hidden layers, a linear last layer (micrograd's `MLP`).

    ``MLP(2, [16, 16, 1])`` maps 2 inputs through two hidden layers of 16 to
    one output. Parameters are labelled by position (``w{layer}_{neuron}{input}``,
    ``b{layer}_{neuron}``) unless they already carry a label.
    """

    def __init__(self, nin: int, nouts: Sequence[int]) -> None:
        _check_count(nin, "MLP: nin")
        try:
            nouts = list(nouts)
        except TypeError:
            raise TypeError(f"MLP: nouts must be a list of layer sizes, got {nouts!r}") from None
        if not nouts:
            raise ValueError("MLP: nouts must name at least one layer size")
        for k, n in enumerate(nouts):
            _check_count(n, f"MLP: nouts[{k}]")
        sz = [nin] + nouts
        self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1)
                       for i in range(len(nouts))]
        for li, layer in enumerate(self.layers, start=1):
            for j, neuron in enumerate(layer.neurons, start=1):
                neuron._name(li, j)

    def __call__(self, x: Sequence[Value | float]) -> Value | list[Value]:
        """The network's output(s) for the inputs ``x``."""
        for layer in self.layers:
            x = layer(x)  # type: ignore[assignment]
        return x  # type: ignore[return-value]

    def parameters(self) -> list[Value]:
        """Every layer's parameters, layer by layer."""
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
