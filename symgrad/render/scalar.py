"""Print backpropagation through a scalar `Value` graph step by step (seed 000's walk).

Start from dL/dL = 1; for each op node in reverse topological order show the
local derivative SymPy derived (and its form in the node's own output when
the derive stage found one), the chain-rule product upstream x local and its
number. A node used by several consumers shows the sum of its contributions.
With ``steps="limit"`` every local derivative is also derived from the limit
definition (`symgrad.simplify.limit`).

>>> from symgrad.definition.value import Value
>>> a, b = Value(2.0, label="a"), Value(-3.0, label="b")
>>> e = a * b; e.label = "e"
>>> text = derivation(e).text()
>>> print(next(line for line in text.splitlines() if "de/db = de/de" in line))
    de/db = de/de * de/db = (1) * (2) = 2
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.latex import LatexPrinter

from symgrad.definition.convention import differentiate
from symgrad.definition.latex_input import check_latex, check_value_label
from symgrad.definition.value import Value, op_of
from symgrad.derive.scalar import OUT, local_derivatives, node_symbols
from symgrad.derive.scalar import _number as as_number
from symgrad.derive.scalar_backward import gradients
from symgrad.graph.scalar import graph_order
from symgrad.render.document import Derivation, Section, escape_latex_prose
from symgrad.render.prose import escape_latex_text
from symgrad.simplify.limit import limit_steps

_PLAIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)?$")


class ScalarLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer, except that labels which are not simple math names
    (spaces, punctuation) print upright as ``\\text{...}``."""

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if _PLAIN_NAME.match(expr.name):
            return super()._print_Symbol(expr, style)
        if expr.name.startswith("\\"):   # LaTeX by intent: checked (no \input etc.), not escaped
            check_latex(expr.name, f"label {expr.name!r}")
            return super()._print_Symbol(expr, style)
        return r"\text{" + escape_latex_text(expr.name) + "}"


_PRINTER = ScalarLatexPrinter()


def tex(expr: sp.Basic) -> str:
    """LaTeX for an expression, with the label-aware printer."""
    return _PRINTER.doprint(expr)


def plain(expr: sp.Basic) -> str:
    """Plain text for an expression."""
    return sp.sstr(expr)


def fmt(value: float) -> str:
    """A number as the printouts show it (4 decimals, trailing zeros dropped).

    >>> fmt(6.0), fmt(0.70710678), fmt(-2.5e-7)
    ('6', '0.7071', '-2.5e-07')
    """
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.4g}"
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _paren(value: float) -> str:
    return f"({fmt(value)})"


def _partial(top: str, bottom: str) -> str:
    return rf"\frac{{\partial {top}}}{{\partial {bottom}}}"


def derivation(root: Value, steps: str = "chain", h: float = 1e-4) -> Derivation:
    """The backward pass of ``root`` as a `Derivation` (LaTeX, Markdown, text).

    ``steps="chain"`` shows local derivatives and chain-rule products;
    ``steps="limit"`` additionally derives each local derivative from the
    limit definition; ``steps="slope"`` adds, for every input, the
    finite-difference slope with step ``h`` beside the exact derivative and
    the float error explained (`symgrad.render.slope`). Join them with ``+``
    (``"limit+slope"``). Does not modify ``.grad`` (numbers come from the same
    derived local derivatives `Value.backward` uses).
    """
    parts = set(steps.split("+")) if isinstance(steps, str) else set()
    if not parts or not parts <= {"chain", "limit", "slope"}:
        raise ValueError(f"derivation: steps must be 'chain', 'limit', 'slope' or a '+' "
                         f"join of them such as 'limit+slope', got {steps!r}")
    if "slope" in parts and not (isinstance(h, int | float) and not isinstance(h, bool)
                                 and 0 < h < float("inf")):
        raise ValueError(f"derivation: h must be a positive finite number, got {h!r}")
    order = graph_order(root)
    for n in order:   # labels may be set after construction: check them before printing
        if n.label:
            check_value_label(n.label)
    grads = {id(n): g for n, g in gradients(root)}
    names = node_symbols(root)

    def sym(n: Value) -> sp.Expr:
        return as_number(n.data) if n._const else names[id(n)]

    top_tex, top_txt = tex(sym(root)), plain(sym(root))
    doc = Derivation(
        f"Backpropagation through {top_txt}",
        intro=(f"Each local derivative below is SymPy's derivative of the op's formula; the "
               f"chain rule multiplies it by the gradient arriving from ${top_tex}$."),
    )
    fwd = doc.section("Forward pass")
    for n in order:
        if n._const:
            continue
        if n.op is None:
            fwd.add(math=f"{tex(sym(n))} = {fmt(n.data)}", plain=f"{plain(sym(n))} = {fmt(n.data)}")
            continue
        op = op_of(n)
        args_tex = [tex(sym(c)) for c in n.operands]
        args_txt = [plain(sym(c)) for c in n.operands]
        fwd.add(math=f"{tex(sym(n))} = {op.format(args_tex, n.params)} = {fmt(n.data)}",
                plain=f"{plain(sym(n))} = {op.format(args_txt, n.params, latex=False)} "
                      f"= {fmt(n.data)}")

    start = doc.section(f"Start: d{top_txt}/d{top_txt} = 1")
    start.add(text=f"The derivative of ${top_tex}$ with respect to itself is 1.",
              math=f"{_partial(top_tex, top_tex)} = 1", plain=f"d{top_txt}/d{top_txt} = 1")

    # Contributions arriving at each node from its consumers: (consumer, value).
    arrived: dict[int, list[tuple[Value, float]]] = {}
    # Limit tables already shown, by the op's formula up to renaming: a repeat refers back.
    tables: dict[str, tuple[Value, sp.Expr]] = {}
    for n in reversed(order):
        if n.op is None:
            continue
        shown = op_of(n).format([plain(sym(c)) for c in n.operands], n.params, False)
        sec = doc.section(f"Node {plain(sym(n))} = {shown}")
        _sum_line(sec, n, arrived.get(id(n), []), grads[id(n)], sym, top_tex, top_txt)
        _node_steps(sec, n, sym, grads, arrived, "limit" if "limit" in parts else "chain",
                    top_tex, top_txt, tables)

    leaves = [n for n in order if n.op is None and not n._const and n is not root]
    if leaves:
        sec = doc.section("Gradients of the inputs")
        for n in leaves:
            _sum_line(sec, n, arrived.get(id(n), []), grads[id(n)], sym, top_tex, top_txt,
                      always=True)
    if "slope" in parts:
        from symgrad.render.slope import slope_section

        slope_section(doc, root, h)
    return doc


def _sum_line(sec: Section, n: Value, parts: list[tuple[Value, float]], total: float, sym,
              top_tex: str, top_txt: str, always: bool = False) -> None:
    # A node with several consumers receives the sum of their contributions.
    name_tex, name_txt = tex(sym(n)), plain(sym(n))
    if len(parts) > 1:
        users = ", ".join(plain(sym(c)) for c, _ in parts)
        sec.add(
            text=f"${name_tex}$ is used by {users}: the contributions add up.",
            math=f"{_partial(top_tex, name_tex)} = "
                 + " + ".join(_paren(v) for _, v in parts) + f" = {fmt(total)}",
            plain=f"d{top_txt}/d{name_txt} = " + " + ".join(_paren(v) for _, v in parts)
                  + f" = {fmt(total)}",
        )
    elif always:
        sec.add(math=f"{_partial(top_tex, name_tex)} = {fmt(total)}",
                plain=f"d{top_txt}/d{name_txt} = {fmt(total)}")


def _node_steps(sec: Section, n: Value, sym, grads, arrived, steps: str,
                top_tex: str, top_txt: str, tables: dict[str, tuple[Value, sp.Expr]]) -> None:
    op = op_of(n)
    out_sym = sym(n)
    named = {x: sym(c) for x, c in zip(op.operands, n.operands, strict=True)}
    named.update({p: as_number(v) for p, v in zip(op.param_symbols, n.params, strict=True)})
    formula = op.formula.xreplace(named)
    locals_ = local_derivatives(op)
    from symgrad.derive.scalar import numeric_local_derivatives

    fns = numeric_local_derivatives(op)
    args = (*(c.data for c in n.operands), *n.params, n.data)
    upstream = grads[id(n)]
    seen: set[int] = set()
    for child in n.operands:
        if child._const or id(child) in seen:
            continue
        seen.add(id(child))
        slots = [i for i, c in enumerate(n.operands) if c is child]
        c_sym = sym(child)
        raw = differentiate(formula, c_sym)  # what SymPy's diff says for this node
        used = sp.Add(*[locals_[i].used.xreplace({**named, OUT: out_sym}) for i in slots])
        local_val = sum(fns[i](*args) for i in slots)
        o_t, c_t = tex(out_sym), tex(c_sym)
        o_p, c_p = plain(out_sym), plain(c_sym)
        line_t = (f"{_partial(o_t, c_t)} = \\frac{{\\partial}}{{\\partial {c_t}}}"
                  f"\\left({tex(formula)}\\right) = {tex(raw)}")
        line_p = f"d{o_p}/d{c_p} = d/d{c_p}[{plain(formula)}] = {plain(raw)}"
        if sp.srepr(used) != sp.srepr(raw):
            line_t += f" = {tex(used)}"
            line_p += f" = {plain(used)}"
        if not used.is_Number:
            line_t += f" = {fmt(local_val)}"
            line_p += f" = {fmt(local_val)}"
        sec.add(text="Local derivative (SymPy differentiates the formula):",
                math=line_t, plain=line_p)
        if steps == "limit":
            key = _table_key(formula, c_sym, [sym(c) for c in n.operands], op.arity == 1)
            if key in tables:
                _limit_reference(sec, c_sym, raw, *tables[key], sym)
            else:
                tables[key] = (n, c_sym)
                _limit_block(sec, formula, c_sym, out_sym, op.arity == 1)
        contribution = upstream * local_val
        arrived.setdefault(id(child), []).append((n, contribution))
        sec.add(
            text="Chain rule: upstream gradient times local derivative.",
            math=f"{_partial(top_tex, c_t)} = {_partial(top_tex, o_t)} \\cdot {_partial(o_t, c_t)}"
                 f" = {_paren(upstream)} \\cdot {_paren(local_val)} = {fmt(contribution)}",
            plain=f"d{top_txt}/d{c_p} = d{top_txt}/d{o_p} * d{o_p}/d{c_p} = "
                  f"{_paren(upstream)} * {_paren(local_val)} = {fmt(contribution)}",
        )


def _table_key(formula: sp.Expr, x: sp.Expr, operands: list[sp.Expr], unary: bool) -> str:
    """The limit table's identity: the formula with ``x`` and the other operands renamed.

    Two local derivatives with the same key have the same limit table up to
    the names (d/dv_1 of v_1 + v_2 and d/db of v_3 + b), so it is shown once.
    """
    generic = {x: sp.Symbol("_x", real=True)}
    for k, other in enumerate(o for o in operands if isinstance(o, sp.Symbol) and o != x):
        generic.setdefault(other, sp.Symbol(f"_y{k}", real=True))
    return f"{unary}:{sp.srepr(formula.xreplace(generic))}"


def _limit_reference(sec: Section, x: sp.Expr, raw: sp.Expr, first: Value,
                     first_x: sp.Expr, sym) -> None:
    # A repeat of a table shown above: one line that says where, and its result.
    what = op_of(first).short(first.params)
    sec.add(text=f"From the limit definition: the same steps as for the {what} node "
                 f"${tex(sym(first))}$ above (with ${tex(x)}$ in place of ${tex(first_x)}$):",
            math=rf"\lim_{{h \to 0}} \frac{{f({tex(x)} + h) - f({tex(x)})}}{{h}} = {tex(raw)}",
            plain=f"lim (f({plain(x)} + h) - f({plain(x)}))/h = {plain(raw)}    "
                  f"[as for node {plain(sym(first))} above]")


def _limit_block(sec: Section, formula: sp.Expr, x: sp.Expr, out: sp.Expr, unary: bool) -> None:
    lines = limit_steps(formula, x, output=out if unary else None, latex=tex, text=plain)
    sec.add(text="From the limit definition; every line below is computed by SymPy.")
    rows_t: list[str] = []
    rows_p: list[str] = []
    for s in lines:
        if len(s.label) > 40:  # the honest fallback note: prose, not an equation label
            _flush(sec, rows_t, rows_p)
            sec.add(text=s.label + ":", math=s.latex, plain=s.text)
            continue
        if s.relation == "":
            _flush(sec, rows_t, rows_p)
            rows_t.append(rf"{s.latex} && \text{{{escape_latex_prose(s.label)}}}")
            rows_p.append(f"{s.text}    [{s.label}]")
            continue
        rel_t = r"\xrightarrow{h \to 0}" if s.relation == "->" else "="
        rows_t.append(rf"&{rel_t} {s.latex} && \text{{{escape_latex_prose(s.label)}}}")
        rows_p.append(f"  {s.relation} {s.text}    [{s.label}]")
    _flush(sec, rows_t, rows_p)


def _flush(sec: Section, rows_t: list[str], rows_p: list[str]) -> None:
    if rows_t:
        sec.add(math=" \\\\\n".join(rows_t), plain="\n".join(rows_p))
        rows_t.clear()
        rows_p.clear()
