"""The training stage table of seed 000, filled with a scalar graph's own numbers.

The notes summarise learning as six stages: input -> forward pass -> output ->
loss -> backpropagation -> update. `stage_table` runs them once on the user's
graph (one gradient-descent step with learning rate ``lr``) and prints each
stage with its values: the inputs, every forward node, the output, the loss,
dL/dp for every parameter, and ``new = old - lr * grad`` for every parameter
with the loss the updated weights give. The graph itself is left as it was.

>>> from symgrad.definition.value import Value
>>> w, x = Value(3.0, label="w"), Value(2.0, label="x")
>>> y = w * x; y.label = "y"
>>> L = (y - 5.0) ** 2; L.label = "L"
>>> t = stages(L, lr=0.01, params=[w], output=y)
>>> [s.name for s in t], t[-1].values[0]
(['Input', 'Forward pass', 'Output', 'Loss', 'Backpropagation', 'Update'], ('w', 2.96))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from symgrad.definition.value import Value, op_of
from symgrad.derive.scalar import node_symbols, symbolic
from symgrad.derive.scalar_backward import gradients
from symgrad.graph.scalar import graph_order
from symgrad.render.animate import recompute
from symgrad.render.document import Derivation

__all__ = ["Stage", "stage_table", "stages"]


@dataclass(frozen=True)
class Stage:
    """One row of the table: the stage, what happens in it, and its (name, number) pairs."""

    name: str
    role: str
    values: list[tuple[str, float]] = field(default_factory=list)
    latex: list[str] = field(default_factory=list)   # one LaTeX line per value
    plain: list[str] = field(default_factory=list)   # the same as plain text


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def stages(loss: Value, lr: float = 0.1, params: Sequence[Value] | None = None,
           inputs: Sequence[Value] | None = None, output: Value | None = None) -> list[Stage]:
    """The six stages of one gradient-descent step on ``loss``, with the graph's numbers.

    ``params`` (default: every input leaf) are the trained leaves; ``inputs``
    (default: the other leaves) the data; ``output`` (default: the loss
    itself) the prediction the loss is computed from.
    """
    from symgrad.render.scalar import plain, tex

    if not isinstance(loss, Value):
        raise TypeError(f"stage_table needs the loss Value, got {loss!r}")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not (
            math.isfinite(lr) and lr > 0):
        raise ValueError(f"stage_table: lr must be a positive finite number, got {lr!r}")
    order = graph_order(loss)
    ids = {id(n) for n in order}
    leaves = [n for n in order if n.op is None and not n._const]
    params = list(leaves) if params is None else list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Value) or id(p) not in ids or p.op is not None or p._const:
            raise ValueError(f"stage_table: params[{i}] = {p!r} is not an input leaf of the "
                             "loss's graph")
    taken = {id(p) for p in params}
    inputs = [n for n in leaves if id(n) not in taken] if inputs is None else list(inputs)
    for i, x in enumerate(inputs):
        if not isinstance(x, Value) or id(x) not in ids:
            raise ValueError(f"stage_table: inputs[{i}] = {x!r} is not in the loss's graph")
    output = loss if output is None else output
    if not isinstance(output, Value) or id(output) not in ids:
        raise ValueError(f"stage_table: output {output!r} is not a node of the loss's graph")

    names = node_symbols(loss)

    def row(node: Value, value: float | None = None) -> tuple[str, float, str, str]:
        value = node.data if value is None else value
        return plain(names[id(node)]), value, tex(names[id(node)]), plain(names[id(node)])

    def stage(name: str, role: str, items: list[tuple[str, float, str, str]]) -> Stage:
        return Stage(name, role, [(n, v) for n, v, _, _ in items],
                     [f"{t} = {_fmt(v)}" for _, v, t, _ in items],
                     [f"{p} = {_fmt(v)}" for _, v, _, p in items])

    table = [stage("Input", "the data the graph starts from", [row(x) for x in inputs])]
    fwd = []
    forward = Stage("Forward pass", "each op computes its value from its operands; the graph "
                    "remembers operands and ops for the way back")
    for n in order:
        if n.op is None or n is loss:
            continue
        op = op_of(n)
        args_t = [_fmt(c.data) if c._const else tex(names[id(c)]) for c in n.operands]
        args_p = [_fmt(c.data) if c._const else plain(names[id(c)]) for c in n.operands]
        name_t, name_p = tex(names[id(n)]), plain(names[id(n)])
        fwd.append(name_p)
        forward.values.append((name_p, n.data))
        forward.latex.append(f"{name_t} = {op.format(args_t, n.params)} = {_fmt(n.data)}")
        forward.plain.append(f"{name_p} = {op.format(args_p, n.params, latex=False)} "
                             f"= {_fmt(n.data)}")
    table.append(forward)
    table.append(stage("Output", "the prediction", [row(output)]))
    seed = rf"$\partial {tex(names[id(loss)])}/\partial {tex(names[id(loss)])} = 1$"
    lo = Stage("Loss", "how far the prediction is from the target; backpropagation starts "
               f"here with {seed}", [(plain(names[id(loss)]), loss.data)])
    formula = symbolic(loss, cut=(output,) if output is not loss else ())
    lo.latex.append(f"{tex(names[id(loss)])} = {tex(formula)} = {_fmt(loss.data)}")
    lo.plain.append(f"{plain(names[id(loss)])} = {plain(formula)} = {_fmt(loss.data)}")
    table.append(lo)

    grads = {id(n): g for n, g in gradients(loss)}
    back = Stage("Backpropagation", f"the chain rule carries {seed} back to every parameter")
    L_t, L_p = tex(names[id(loss)]), plain(names[id(loss)])
    for p in params:
        g = grads[id(p)]
        p_t, p_p = tex(names[id(p)]), plain(names[id(p)])
        back.values.append((f"d{L_p}/d{p_p}", g))
        back.latex.append(rf"\frac{{\partial {L_t}}}{{\partial {p_t}}} = {_fmt(g)}")
        back.plain.append(f"d{L_p}/d{p_p} = {_fmt(g)}")
    table.append(back)

    update = Stage("Update", r"gradient descent: $\text{new} = \text{old} - \text{lr} \cdot "
                   rf"\text{{grad}}$ with $\text{{lr}} = {lr:g}$")
    new = [p.data - lr * grads[id(p)] for p in params]
    for p, value in zip(params, new, strict=True):
        p_t, p_p = tex(names[id(p)]), plain(names[id(p)])
        g = grads[id(p)]
        update.values.append((p_p, value))
        update.latex.append(rf"{p_t} \leftarrow {_fmt(p.data)} - {lr:g} \cdot ({_fmt(g)}) = "
                            f"{_fmt(value)}")
        update.plain.append(f"{p_p} <- {_fmt(p.data)} - {lr:g} * ({_fmt(g)}) = {_fmt(value)}")
    old = [p.data for p in params]
    try:   # the loss the new weights give, then the graph as it was
        for p, value in zip(params, new, strict=True):
            p.data = value
        after = recompute(loss)
    finally:
        for p, value in zip(params, old, strict=True):
            p.data = value
        recompute(loss)
    update.values.append((f"{L_p} after", after))
    update.latex.append(rf"{L_t}_{{\text{{after}}}} = {_fmt(after)}")
    update.plain.append(f"{L_p} after the update = {_fmt(after)}")
    table.append(update)
    return table


def stage_table(loss: Value, lr: float = 0.1, params: Sequence[Value] | None = None,
                inputs: Sequence[Value] | None = None, output: Value | None = None
                ) -> Derivation:
    """Seed 000's stage table (input -> ... -> update) for one step on ``loss``, as a document."""
    table = stages(loss, lr, params, inputs, output)
    doc = Derivation("Training stages, one gradient-descent step",
                     intro=r"input $\to$ forward pass $\to$ output $\to$ loss $\to$ "
                           r"backpropagation $\to$ update, with this graph's numbers.")
    for k, s in enumerate(table, start=1):
        sec = doc.section(f"{k}. {s.name}")
        sec.add(text=s.role[0].upper() + s.role[1:] + ".")
        if s.latex:
            # one value per line, left-aligned
            sec.add(math=r" \\ ".join("&" + line for line in s.latex), plain="\n".join(s.plain))
        else:
            sec.add(text="(none: every leaf is a parameter)")
    return doc
