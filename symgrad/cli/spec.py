"""Network descriptions for the command line, parsed safely (a regex tokenizer, never eval).

A SPEC is a row of layers separated by spaces (commas or ``->`` also work)::

    Dense(2,16) ReLU Dense(16,1) Sigmoid
    Dense(4, 8) LeakyReLU(alpha=0.2) -> Dense(8, 3) Softmax
    Input(1,8,8) Conv2d(1,8,3,padding=1) ReLU MaxPool2d(2) Flatten Dense(128,10) Softmax

Image layers take PyTorch's arguments; a size that differs by axis is an (h, w) pair,
e.g. ``Conv2d(1,8,(3,2),stride=(2,1))``. ``Dense(in, out)`` takes two positive ints
(and ``bias=false``, ``init=xavier`` as keywords); an activation is any registered
name, written as its registry key (``leaky_relu``) or its class name (``LeakyReLU``),
case-insensitive, with optional numeric parameters. Anything else is an error that
names the position and what was expected.

>>> parse_spec("Dense(2,16) ReLU Dense(16,1) Sigmoid")
Sequential(Dense(2 -> 16), ReLU(), Dense(16 -> 1), Sigmoid())
>>> parse_spec("Input(1,6,6) Conv2d(1,2,3) ReLU AvgPool2d(2) Flatten Dense(8,1)")
Sequential(Conv2d(1 -> 2, kernel 3x3), ReLU(), AvgPool2d(2x2), Flatten(), Dense(8 -> 1))
>>> parse_spec("Dense(2,4) leaky_relu(0.2) Dense(4,1)")
Sequential(Dense(2 -> 4), LeakyReLU(alpha=0.2), Dense(4 -> 1))
>>> parse_spec("Dense(2,4) __import__('os')")
Traceback (most recent call last):
...
symgrad.cli.spec.SpecError: SPEC layer 1 "__import__('os')": argument "'os'" is not a number, \
an (h, w) pair or key=value

A SPEC that names an existing ``.py`` file runs that file (the user's own
program, as ``python file.py`` would) and takes its variable ``net``, and
``loss`` if it defines one.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from symgrad.definition.activations import REGISTRY, ActivationLayer
from symgrad.definition.layers import (
    INITS,
    AvgPool2d,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Sequential,
)
from symgrad.definition.losses import LossEntry

# Image layers by their SPEC names, with the keyword arguments each accepts.
_IMAGE_LAYERS = {"conv2d": (Conv2d, {"stride", "padding", "bias", "init"}),
                 "maxpool2d": (MaxPool2d, {"stride"}), "avgpool2d": (AvgPool2d, {"stride"}),
                 "flatten": (Flatten, set())}

__all__ = ["SpecError", "parse_spec", "load_spec"]


class SpecError(ValueError):
    """A network description that cannot be parsed or built."""


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_WORD = r"[A-Za-z_][A-Za-z0-9_]*"
_PAIR = r"\(\s*[-+]?\d+\s*,\s*[-+]?\d+\s*\)"   # (height, width) of an image layer
_ARG = re.compile(rf"\s*(?:(?P<key>{_WORD})\s*=\s*)?(?P<value>{_PAIR}|{_NUMBER}|{_WORD})\s*$")
_LAYER = re.compile(rf"(?P<name>{_WORD})(?:\s*\((?P<args>(?:[^()]|\([^()]*\))*)\))?")
_SEPARATOR = re.compile(r"(?:\s|,|->)*")


def _value(text: str) -> int | float | str | bool | tuple[int, int]:
    if text.startswith("("):
        return tuple(int(v) for v in text.strip("() ").split(","))
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(_NUMBER, text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text   # a bare word: only Dense's init= accepts one


def _arguments(text: str | None, where: str) -> tuple[list, dict]:
    args: list = []
    kwargs: dict = {}
    if text is None or not text.strip():
        return args, kwargs
    for part in re.split(r",(?![^()]*\))", text):   # commas outside (h, w) pairs
        match = _ARG.match(part)
        if match is None:
            raise SpecError(f"{where}: argument {part.strip()!r} is not a number, an (h, w) "
                            "pair or key=value")
        value = _value(match["value"])
        if match["key"]:
            if match["key"] in kwargs:
                raise SpecError(f"{where}: argument {match['key']!r} given twice")
            kwargs[match["key"]] = value
        elif kwargs:
            raise SpecError(f"{where}: positional argument {part.strip()!r} after a keyword")
        else:
            args.append(value)
    return args, kwargs


def _activation_names() -> dict[str, type[ActivationLayer]]:
    names: dict[str, type[ActivationLayer]] = {}
    for key, cls in REGISTRY.items():
        names[key.lower()] = cls
        names[cls.__name__.lower()] = cls
    return names


def _dense(args: list, kwargs: dict, where: str) -> Dense:
    if len(args) != 2 or any(isinstance(a, bool) or not isinstance(a, int) for a in args):
        raise SpecError(f"{where}: Dense takes two positive ints (inputs, outputs), "
                        f"got {args}")
    unknown = sorted(set(kwargs) - {"bias", "init"})
    if unknown:
        raise SpecError(f"{where}: Dense has no argument {unknown[0]!r} (only bias=, init=)")
    if "bias" in kwargs and not isinstance(kwargs["bias"], bool):
        raise SpecError(f"{where}: bias must be true or false, got {kwargs['bias']!r}")
    if "init" in kwargs and kwargs["init"] not in INITS:
        raise SpecError(f"{where}: init must be one of {INITS}, got {kwargs['init']!r}")
    try:
        return Dense(*args, **kwargs)
    except ValueError as err:
        raise SpecError(f"{where}: {err}") from None


def parse_spec(text: str) -> Sequential:
    """A `Sequential` from a one-line description; `SpecError` names any problem."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError("SPEC is empty; write e.g. \"Dense(2,16) ReLU Dense(16,1) Sigmoid\"")
    activations = _activation_names()
    layers: list = []
    input_shape: tuple[int, ...] | None = None
    pos = _SEPARATOR.match(text).end()
    while pos < len(text):
        match = _LAYER.match(text, pos)
        rest = text[pos:pos + 30]
        if match is None:
            raise SpecError(f"SPEC position {pos}: expected a layer such as Dense(2,16) or ReLU, "
                            f"found {rest!r}")
        end = match.end()
        if text[end:].lstrip().startswith("("):   # the regex stops before an unclosed "("
            raise SpecError(f"SPEC position {end}: the parenthesis after {match.group(0)!r} "
                            f"is not closed: {text[pos:pos + 40]!r}")
        if end < len(text) and not re.match(r"\s|,|->", text[end:end + 2]):
            raise SpecError(f"SPEC position {end}: expected a space between layers after "
                            f"{match.group(0)!r}, found {text[end:end + 30]!r}")
        name = match["name"]
        where = f"SPEC layer {len(layers)} {match.group(0)!r}"
        args, kwargs = _arguments(match["args"], where)
        if name.lower() == "dense":
            layers.append(_dense(args, kwargs, where))
        elif name.lower() == "input":
            if layers or input_shape is not None:
                raise SpecError(f"{where}: Input(C, H, W) must come first, once")
            if len(args) != 3 or kwargs or any(isinstance(a, bool) or not isinstance(a, int)
                                               for a in args):
                raise SpecError(f"{where}: Input takes three positive ints (C, H, W), got "
                                f"{args}")
            input_shape = tuple(args)
        elif name.lower() in _IMAGE_LAYERS:
            cls, allowed = _IMAGE_LAYERS[name.lower()]
            unknown = sorted(set(kwargs) - allowed)
            if unknown:
                raise SpecError(f"{where}: {cls.__name__} has no argument {unknown[0]!r}")
            try:
                layers.append(cls(*args, **kwargs))
            except (TypeError, ValueError) as err:
                raise SpecError(f"{where}: {err}") from None
        elif name.lower() in activations:
            cls = activations[name.lower()]
            try:
                layers.append(cls(*args, **kwargs))
            except (TypeError, ValueError) as err:
                raise SpecError(f"{where}: {err}") from None
        else:
            raise SpecError(f"{where}: unknown layer {name!r}; use Dense, Input, Conv2d, "
                            f"MaxPool2d, AvgPool2d, Flatten or an activation: "
                            f"{', '.join(sorted(REGISTRY))}")
        pos = _SEPARATOR.match(text, end).end()
    try:
        return Sequential(*layers, input_shape=input_shape)
    except ValueError as err:
        hint = "; in a SPEC, write Input(C, H, W) first" if "input_shape" in str(err) else ""
        raise SpecError(f"SPEC {text!r}: {err}{hint}") from None


def load_spec(spec: str) -> tuple[Sequential, object]:
    """(net, loss or None): from a ``.py`` file defining ``net`` or from a one-line SPEC."""
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise SpecError(f"{spec}: no such Python file")
        # Running a file the user names is the point: it is their own network definition.
        namespace = runpy.run_path(str(path), run_name="symgrad_spec")
        net = namespace.get("net")
        if not isinstance(net, Sequential):
            raise SpecError(f"{spec}: the file must define `net = sg.Sequential(...)`, "
                            f"found {type(net).__name__ if net is not None else 'no net'}")
        loss = namespace.get("loss")
        if loss is not None and not isinstance(loss, (str, LossEntry)):
            raise SpecError(f"{spec}: `loss` must be a loss name such as 'mse' or an "
                            f"sg.loss(...) entry, found {type(loss).__name__} {loss!r:.60}")
        return net, loss
    return parse_spec(spec), None
