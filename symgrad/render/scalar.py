"""Print backpropagation through a scalar `Value` graph step by step (seed 000's walk).

Start from dL/dL = 1; for each op node in reverse topological order show the
local derivative SymPy derived (and its form in the node's own output when
the derive stage found one), the chain-rule product upstream x local and its
number. Three symbols keep the pieces apart: the *local* derivative of a node
with respect to one operand, ``(de/da)_local``; the *gradient* ``dL/da`` (what
``a.grad`` holds); and, for a node used by several others, the *part* of the
gradient arriving through one of them, ``(dL/da)_{via e}``: the gradient is the
sum of the parts, shown once. With ``steps="limit"`` every local derivative is
also derived from the limit definition (`symgrad.simplify.limit`); with
``steps="rules"`` the output is differentiated rule by rule with respect to
every input (`symgrad.render.scalar_rules`).

>>> from symgrad.definition.value import Value
>>> a, b = Value(2.0, label="a"), Value(-3.0, label="b")
>>> e = a * b; e.label = "e"
>>> text = derivation(e).text()
>>> print(next(line for line in text.splitlines() if "de/db = de/de" in line))
    de/db = de/de * (de/db)_local = (1) * (2) = 2
"""

from __future__ import annotations

import dataclasses
import re

import sympy as sp
from sympy.printing.conventions import split_super_sub
from sympy.printing.latex import LatexPrinter, greek_letters_set, modifier_dict, other_symbols

from symgrad.definition.convention import differentiate
from symgrad.definition.latex_input import check_latex, check_value_label
from symgrad.definition.value import Value, op_of
from symgrad.derive.scalar import (
    OUT,
    local_derivatives,
    node_symbols,
    numeric_local_derivatives,
    sympy_depth_guard,
)
from symgrad.derive.scalar import _number as as_number
from symgrad.derive.scalar_backward import gradients
from symgrad.graph.scalar import graph_order
from symgrad.prove.identity import prove_identity
from symgrad.render.document import Derivation, Section
from symgrad.render.prose import escape_latex_text
from symgrad.simplify.limit import function_name, limit_steps

_PLAIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)?$")
STEPS = ("chain", "limit", "slope", "rules")
# "2 \cdot n" -> "2 n": a number times a factor is written side by side, as in the notes.
_NUMBER_DOT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?) \\cdot ")


def _one_letter(base: str) -> bool:
    # x, theta, xhat: one mathematical letter (italic); x1w1, out, loss: a word (upright).
    if len(base) == 1 or base.lower() in greek_letters_set or base in other_symbols:
        return True
    return any(base.endswith(m) and len(base) > len(m) and _one_letter(base[:-len(m)])
               for m in modifier_dict)


class ScalarLatexPrinter(LatexPrinter):
    r"""SymPy's LaTeX printer for node names, with products as ``\cdot`` (as the notes write).

    A single letter with an optional subscript stays italic math (``x1`` ->
    ``x_{1}``); a multi-letter lecture label is one upright name, not a product
    of italic letters (``x1w1`` -> ``\mathrm{x1w1}``); labels that are not
    simple math names (spaces, punctuation) print upright as ``\text{...}``,
    escaped.

    >>> a, b = sp.symbols("x1w1 w1", real=True)
    >>> tex(a * b)
    'w_{1} \\cdot \\mathrm{x1w1}'
    """

    def __init__(self) -> None:
        super().__init__({"mul_symbol": "dot"})

    def _print_Mul(self, expr: sp.Mul) -> str:
        return _NUMBER_DOT.sub(r"\1 ", super()._print_Mul(expr))

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if _PLAIN_NAME.match(expr.name):
            base, _, subs = split_super_sub(expr.name)
            if _one_letter(base):
                return super()._print_Symbol(expr, style)
            # _PLAIN_NAME allows one subscript of letters and digits only: nothing to escape.
            return rf"\mathrm{{{base}}}" + (f"_{{{' '.join(subs)}}}" if subs else "")
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


def _local(top: str, bottom: str) -> str:
    # The local derivative: one node w.r.t. one operand, the other operands held fixed.
    return rf"\left({_partial(top, bottom)}\right)_{{\text{{local}}}}"


def _via(top: str, bottom: str, through: str) -> str:
    # The part of the gradient of `bottom` that arrives through one consumer.
    return rf"\left({_partial(top, bottom)}\right)_{{\text{{via }} {through}}}"


class ScalarDerivation(Derivation):
    """A `Derivation` whose title and headings hold inline math, with a plain form for text.

    >>> d = ScalarDerivation("Node $L = d \\\\cdot f$", plain_title="Node L = d * f")
    >>> _ = d.section("Start: $L$", plain="Start: L")
    >>> d.text().splitlines()[:4]
    ['Node L = d * f', '==============', '', 'Start: L']
    """

    def __init__(self, title: str, intro: str = "", plain_title: str = "") -> None:
        super().__init__(title, intro)
        self.plain_title = plain_title or title
        self._plain: dict[int, str] = {}

    def section(self, title: str, plain: str = "") -> Section:
        """Start a section; ``plain`` is its heading in the text rendering (default: ``title``)."""
        sec = super().section(title)
        if plain:
            self._plain[id(sec)] = plain
        return sec

    def text(self) -> str:
        """The derivation as plain text, headings in their plain form."""
        # NOTE: Derivation.text prints headings as they are, and ours hold LaTeX; render a
        # copy with the plain headings (same Step objects, so equation numbers agree).
        copy = Derivation(self.plain_title, self.intro, self.numbered)
        copy.sections = [dataclasses.replace(s, title=self._plain.get(id(s), s.title))
                         for s in self.sections]
        return copy.text()


def derivation(root: Value, steps: str = "chain", h: float = 1e-4) -> Derivation:
    """The backward pass of ``root`` as a `Derivation` (LaTeX, Markdown, text).

    ``steps="chain"`` shows local derivatives and chain-rule products;
    ``steps="limit"`` additionally derives each local derivative from the
    limit definition; ``steps="slope"`` adds, for every input, the
    finite-difference slope with step ``h`` beside the exact derivative and
    the float error explained (`symgrad.render.slope`); ``steps="rules"``
    adds, before the backward pass, the derivative of ``root``'s expression
    with respect to every input worked rule by rule (sum, constant,
    coefficient, product, power, chain...; `symgrad.render.scalar_rules`).
    Join them with ``+`` (``"limit+slope"``, ``"rules+limit"``). Does not
    modify ``.grad`` (numbers come from the same derived local derivatives
    `Value.backward` uses). Where ``backward`` evaluates a local derivative in
    another form than SymPy's (tanh: ``1 - o**2``), an appendix states it and
    its proof; `ProofError` if that proof fails.

    >>> from symgrad.definition.value import Value
    >>> a, b, c = Value(2.0, label="a"), Value(-3.0, label="b"), Value(10.0, label="c")
    >>> d = a * b + c; d.label = "d"
    >>> text = derivation(d, steps="rules").text()
    >>> print(next(line for line in text.splitlines() if line.startswith("    dd/db = a")))
        dd/db = a + 0 = a = 2
    """
    parts = set(steps.split("+")) if isinstance(steps, str) else set()
    if not parts or not parts <= set(STEPS):
        raise ValueError(f"derivation: steps must be one of {', '.join(map(repr, STEPS))} or "
                         f"a '+' join of them such as 'limit+slope', got {steps!r}")
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
    doc = ScalarDerivation(f"Backpropagation through ${top_tex}$",
                           plain_title=f"Backpropagation through {top_txt}")
    consumers = _consumers(order)
    _notation(doc, top_tex, top_txt, any(len(c) > 1 for c in consumers.values()))
    _forward(doc, order, sym)
    if "rules" in parts:
        from symgrad.render.scalar_rules import rule_sections

        with sympy_depth_guard(root, "derivation(steps='rules')"):
            rule_sections(doc, root, order, sym)

    doc.section(f"Start: $\\partial {top_tex} / \\partial {top_tex} = 1$",
                plain=f"Start: d{top_txt}/d{top_txt} = 1").add(
        text=f"The derivative of ${top_tex}$ with respect to itself is 1.",
        math=f"{_partial(top_tex, top_tex)} = 1", plain=f"d{top_txt}/d{top_txt} = 1")

    # Parts of the gradient arriving at each node from its consumers: (consumer, value).
    arrived: dict[int, list[tuple[Value, float]]] = {}
    # Limit tables already shown, by the op's formula up to renaming: a repeat refers back.
    tables: dict[str, tuple[Value, sp.Expr]] = {}
    for n in reversed(order):
        if n.op is None:
            continue
        op = op_of(n)
        shown_t = op.format([tex(sym(c)) for c in n.operands], n.params)
        shown_p = op.format([plain(sym(c)) for c in n.operands], n.params, False)
        sec = doc.section(f"Node ${tex(sym(n))} = {shown_t}$",
                          plain=f"Node {plain(sym(n))} = {shown_p}")
        _sum_line(sec, n, arrived.get(id(n), []), grads[id(n)], sym, top_tex, top_txt)
        _node_steps(sec, n, sym, grads, arrived, consumers, "limit" if "limit" in parts
                    else "chain", top_tex, top_txt, tables)

    leaves = [n for n in order if n.op is None and not n._const and n is not root]
    if leaves:
        sec = doc.section("Gradients of the inputs")
        for n in leaves:
            _sum_line(sec, n, arrived.get(id(n), []), grads[id(n)], sym, top_tex, top_txt,
                      always=True)
    if "slope" in parts:
        from symgrad.render.slope import slope_section

        with sympy_depth_guard(root, "derivation(steps='slope')"):
            slope_section(doc, root, h)
    _evaluation_appendix(doc, order, sym)
    return doc


def _consumers(order: list[Value]) -> dict[int, list[Value]]:
    # The op nodes using each non-constant node, in backward order (each one once).
    users: dict[int, list[Value]] = {}
    for n in reversed(order):
        for child in dict.fromkeys(n.operands):
            if not child._const:
                users.setdefault(id(child), []).append(n)
    return users


def _notation(doc: ScalarDerivation, top_tex: str, top_txt: str, fan_out: bool) -> None:
    # The legend: three symbols that must not be confused (the via-part only where used).
    syms_t = [_local(r"\,\text{node}", r"\,\text{operand}"), _partial(top_tex, r"\,\text{node}")]
    syms_p = ["(d node/d operand)_local", f"d{top_txt}/d node"]
    text = ("A local derivative is SymPy's derivative of one node's formula with respect to one "
            "operand, the other operands held fixed; the chain rule multiplies it by the "
            f"gradient arriving from ${top_tex}$ (what a node's .grad holds)")
    if fan_out:
        syms_t.append(_via(top_tex, r"\,\text{node}", r"\text{user}"))
        syms_p.append(f"(d{top_txt}/d node)_{{via user}}")
        text += ("; a node used by several others receives one part of its gradient through "
                 "each user, and its gradient is the sum of the parts")
    doc.section("Notation").add(text=text + ":", math=r", \qquad ".join(syms_t),
                                plain=",   ".join(syms_p))


def _forward(doc: ScalarDerivation, order: list[Value], sym) -> None:
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


def _sum_line(sec: Section, n: Value, parts: list[tuple[Value, float]], total: float, sym,
              top_tex: str, top_txt: str, always: bool = False) -> None:
    # A node with several consumers receives the sum of the parts arriving through each.
    name_tex, name_txt = tex(sym(n)), plain(sym(n))
    if len(parts) > 1:
        users = [f"${tex(sym(c))}$" for c, _ in parts]
        listed = ", ".join(users[:-1]) + " and " + users[-1]
        terms_t = [_via(top_tex, name_tex, tex(sym(c))) for c, _ in parts]
        terms_p = [f"(d{top_txt}/d{name_txt})_{{via {plain(sym(c))}}}" for c, _ in parts]
        nums = [_paren(v) for _, v in parts]
        rows_t = [_partial(top_tex, name_tex) + " &= " + " + ".join(terms_t[:3])]
        rows_t += [r"&\quad + " + " + ".join(terms_t[k:k + 3]) for k in range(3, len(terms_t), 3)]
        rows_t += ["&= " + " + ".join(nums[k:k + 8]) if k == 0 else
                   r"&\quad + " + " + ".join(nums[k:k + 8]) for k in range(0, len(nums), 8)]
        rows_t[-1] += f" = {fmt(total)}"
        sec.add(
            text=f"${name_tex}$ is used by {listed}: its gradient is the sum of the parts "
                 "that arrive through each.",
            math=" \\\\\n".join(rows_t),
            plain=f"d{top_txt}/d{name_txt} = " + " + ".join(terms_p) + "\n    = "
                  + " + ".join(nums) + f" = {fmt(total)}",
        )
    elif always:
        sec.add(math=f"{_partial(top_tex, name_tex)} = {fmt(total)}",
                plain=f"d{top_txt}/d{name_txt} = {fmt(total)}")


def _node_steps(sec: Section, n: Value, sym, grads, arrived, consumers, steps: str,
                top_tex: str, top_txt: str, tables: dict[str, tuple[Value, sp.Expr]]) -> None:
    op = op_of(n)
    out_sym = sym(n)
    named = {x: sym(c) for x, c in zip(op.operands, n.operands, strict=True)}
    named.update({p: as_number(v) for p, v in zip(op.param_symbols, n.params, strict=True)})
    formula = op.formula.xreplace(named)
    locals_ = local_derivatives(op)
    fns = numeric_local_derivatives(op)
    args = (*(c.data for c in n.operands), *n.params, n.data)
    upstream = grads[id(n)]
    for child in dict.fromkeys(n.operands):
        if child._const:
            continue
        slots = [i for i, c in enumerate(n.operands) if c is child]
        c_sym = sym(child)
        raw = differentiate(formula, c_sym)  # what SymPy's diff says for this node
        used = sp.Add(*[locals_[i].used.xreplace({**named, OUT: out_sym}) for i in slots])
        local_val = sum(fns[i](*args) for i in slots)
        o_t, c_t = tex(out_sym), tex(c_sym)
        o_p, c_p = plain(out_sym), plain(c_sym)
        line_t = (f"{_local(o_t, c_t)} = \\frac{{\\partial}}{{\\partial {c_t}}}"
                  f"\\left({tex(formula)}\\right) = {tex(raw)}")
        line_p = f"(d{o_p}/d{c_p})_local = d/d{c_p}[{plain(formula)}] = {plain(raw)}"
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
        chain_t = (f"{_partial(top_tex, o_t)} \\cdot {_local(o_t, c_t)}"
                   f" = {_paren(upstream)} \\cdot {_paren(local_val)} = {fmt(contribution)}")
        chain_p = (f"d{top_txt}/d{o_p} * (d{o_p}/d{c_p})_local = "
                   f"{_paren(upstream)} * {_paren(local_val)} = {fmt(contribution)}")
        if len(consumers[id(child)]) == 1:
            sec.add(text="Chain rule: upstream gradient times local derivative.",
                    math=f"{_partial(top_tex, c_t)} = {chain_t}",
                    plain=f"d{top_txt}/d{c_p} = {chain_p}")
        else:
            sec.add(text=f"Chain rule, the part of the gradient of ${c_t}$ that arrives through "
                         f"${o_t}$ (${c_t}$ is used by {len(consumers[id(child)])} nodes; the "
                         "parts are added up below):",
                    math=f"{_via(top_tex, c_t, o_t)} = {chain_t}",
                    plain=f"(d{top_txt}/d{c_p})_{{via {o_p}}} = {chain_p}")


def _evaluation_appendix(doc: ScalarDerivation, order: list[Value], sym) -> None:
    # How backward() evaluates a local derivative, when that is not the form SymPy's diff
    # returned (tanh: 1 - o**2), and the proof that the two agree: facts for the curious.
    shown: set[tuple[str, int]] = set()
    for n in order:
        if n.op is None:
            continue
        op = op_of(n)
        for d in local_derivatives(op):
            if d.in_output is None or (op.name, d.wrt) in shown:
                continue
            shown.add((op.name, d.wrt))
            proof = prove_identity(d.identity)
            named = {x: sym(c) for x, c in zip(op.operands, n.operands, strict=True)}
            raw = d.raw.xreplace(named)
            used = d.in_output.xreplace({OUT: sym(n), **named})
            source = ", not its operand" if op.arity == 1 else " and its operands"
            sec = doc.appendix("How backward() evaluates the local derivatives")
            sec.add(text=f"For a {op.name} node such as ${tex(sym(n))}$ the local "
                         f"derivative is evaluated from the node's own output{source} "
                         f"(checked by SymPy, and at {proof.points} random points: largest "
                         f"difference {proof.max_error:.2g}):",
                    math=f"{tex(raw)} = {tex(used)}",
                    plain=f"{plain(raw)} = {plain(used)}")


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
    fn = function_name(x, raw)   # "f", unless a node is called f: then f(f + h) would mislead
    named = {s.name for s in x.free_symbols | raw.free_symbols}
    h_t, h_p = (r"h_{0}", "h_0") if "h" in named else ("h", "h")   # as limit_steps renames it
    sec.add(text=f"From the limit definition: the same steps as for the {what} node "
                 f"${tex(sym(first))}$ above:",
            math=rf"\lim_{{{h_t} \to 0}} \frac{{{fn}({tex(x)} + {h_t}) - {fn}({tex(x)})}}"
                 rf"{{{h_t}}} = {tex(raw)}",
            plain=f"lim_({h_p}->0) ({fn}({plain(x)} + {h_p}) - {fn}({plain(x)}))/{h_p} = "
                  f"{plain(raw)}")


def _limit_block(sec: Section, formula: sp.Expr, x: sp.Expr, out: sp.Expr, unary: bool) -> None:
    # The notes' table (step, expression, why) as the page can hold it: a line of prose, then
    # the equation; limit_steps splits quotients too long for the line.
    lines = limit_steps(formula, x, output=out if unary else None, latex=tex, text=plain)
    intro = "From the limit definition, every line below computed by SymPy. "
    for k, s in enumerate(lines):
        sec.add(text=(intro if k == 0 else "") + s.note, math=s.lead_latex + s.latex,
                plain=s.lead_text + s.text)
