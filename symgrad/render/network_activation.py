"""A hidden activation in the network printout: formula, derived derivative, rewrite.

Shows f(z), SymPy's f'(z), the rewrite in terms of the saved output a = f(z)
when the simplify stage found one (else that z is saved), every kink with the
subgradient used there, and dZ = dA (.) f'. Nothing is keyed by name: what is
said follows from the expressions in the `ActivationPlan`.
"""

from __future__ import annotations

import sympy as sp
from sympy.core.relational import Relational

from symgrad.definition.formulas import A, Z
from symgrad.derive.plan import ActivationPlan, DensePlan
from symgrad.render.document import Derivation, Section
from symgrad.render.latex_printer import SymbolNames, indicator_condition, layer_latex, layer_str
from symgrad.render.network_names import dmat, function_tex, layer_names, mat, mtex, parenthesize
from symgrad.render.prose import latex_safe_prose


def activation_section(doc: Derivation, layer: DensePlan, act: ActivationPlan) -> None:
    j = layer.index + 1
    names = layer_names(j, last=False)
    canon = {Z: ("z", "z"), A: ("a", "a")}
    a_tex, a_txt = mat("A", j)
    z_tex, z_txt = mat("Z", j)
    da_tex, da_txt = dmat("A", j)
    dz_tex, dz_txt = dmat("Z", j)
    f = function_tex(act.latex_name, act.name)
    sec = doc.section(f"Activation of layer {j}: A_{j} = {act.name}(Z_{j})")
    formula_tex, formula_txt = layer_latex(act.forward, canon), layer_str(act.forward, canon)
    # A built-in SymPy function (tanh) is its own formula: do not print tanh(z) = tanh(z).
    same = formula_txt == f"{act.name}(z)"
    sec.add(text=f"Forward, elementwise, with the formula of '{latex_safe_prose(act.name)}':",
            math=(rf"{a_tex} = f({z_tex}), \qquad f(z) = {f}(z)"
                  + ("" if same else f" = {formula_tex}")),
            plain=(f"{a_txt} = f({z_txt}),   f(z) = {act.name}(z)"
                   + ("" if same else f" = {formula_txt}")))
    if act.stable_forward != act.forward:
        sec.add(text="It is evaluated in the numerically stable form",
                math=f"f(z) = {layer_latex(act.stable_forward, canon)}",
                plain=f"f(z) = {layer_str(act.stable_forward, canon)}")
    sec.add(text="SymPy differentiates the formula:",
            math=f"f'(z) = {layer_latex(act.derivative_raw, canon)}",
            plain=f"f'(z) = {layer_str(act.derivative_raw, canon)}")
    free = act.derivative.free_symbols
    raw_tex, raw_txt = layer_latex(act.derivative_raw, names), layer_str(act.derivative_raw, names)
    new_tex, new_txt = layer_latex(act.derivative, names), layer_str(act.derivative, names)
    if A in free:
        text = (f"Rewritten in terms of the saved output $a = f(z)$, i.e. ${a_tex}$ "
                f"(identity '{latex_safe_prose(act.identity.name)}', proven by sg.check):")
    elif act.derivative != act.derivative_raw:
        text = (f"Simplified (identity '{latex_safe_prose(act.identity.name)}', proven by "
                "sg.check):")
    else:
        text = "The derivative is used as derived:"
    # As derived on one line, the rewrite on the next: side by side they overflow the page.
    math = (f"f'({z_tex}) &= {raw_tex} \\\\ &= {new_tex}" if new_tex != raw_tex
            else f"f'({z_tex}) = {raw_tex}")
    plain = f"f'({z_txt}) = {raw_txt}" + (f" = {new_txt}" if new_txt != raw_txt else "")
    sec.add(text=text, math=math, plain=plain)
    sec.add(text=_saved_sentence(act, j))
    _kink_steps(sec, act.derivative, names)
    sec.add(text="The error passes through the activation as an elementwise product:",
            math=f"{dz_tex} = " + odot_tex(da_tex, act.derivative, new_tex),
            plain=f"{dz_txt} = " + odot_txt(da_txt, act.derivative, new_txt))


def _saved_sentence(act: ActivationPlan, j: int) -> str:
    free = act.derivative.free_symbols
    if A in free and Z not in free:
        return (f"So the backward pass reads only ${mtex('A', j)}$, which is kept anyway as the "
                f"input of layer {j + 1}; ${mtex('Z', j)}$ need not be saved.")
    if Z in free and A not in free:
        return (f"SymPy found no form of $f'$ in $a = f(z)$ alone, so ${mtex('Z', j)}$ is saved "
                "in the forward pass and $f'$ is evaluated from it.")
    if not free:
        return "The derivative is constant, so no forward value is needed for it."
    return (f"The derivative reads both ${mtex('A', j)}$ and ${mtex('Z', j)}$ "
            f"(saved: {', '.join(act.saved)}).")


def _kinks(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]]:
    """(step term, variable, point, value used) wherever a step in ``expr`` jumps.

    Found from the expression itself: Heaviside terms, and Piecewise terms
    whose branches disagree where a condition ``x > c`` switches.
    """
    found = []
    for hv in sorted(expr.atoms(sp.Heaviside), key=sp.default_sort_key):
        h0 = hv.args[1] if len(hv.args) > 1 else sp.S.Half
        found.append((hv, hv.args[0], sp.S.Zero, h0))
    for pw in sorted(expr.atoms(sp.Piecewise), key=sp.default_sort_key):
        for _, cond in pw.args:
            if not isinstance(cond, Relational):
                continue
            x, c = (cond.lhs, cond.rhs) if cond.rhs.is_number else (cond.rhs, cond.lhs)
            if not (x.is_Symbol and c.is_number):
                continue
            values = {sp.nsimplify(e.subs(x, c)) for e, _ in pw.args}
            if len(values) > 1:
                found.append((pw, x, c, pw.subs(x, c)))
    return found


def _kink_steps(sec: Section, expr: sp.Expr, names: SymbolNames) -> None:
    """Explain each step in f': a mask, and the value used where f' does not exist."""
    for term, x, c, used in _kinks(expr):
        t_tex, t_txt = layer_latex(term, names), layer_str(term, names)
        x_tex, x_txt = layer_latex(x, names), layer_str(x, names)
        mask = isinstance(term, sp.Heaviside) or indicator_condition(term) is not None
        text = ("This step is a mask: 1 lets the error through, 0 blocks it. " if mask else
                "This term has branches. ")
        text += (f"It switches at ${x_tex} = {sp.latex(c)}$. At the kink of $f$ the derivative "
                 "does not exist; symgrad uses the branch whose condition holds, the same in "
                 "this printout and in the numbers:")
        sec.add(text=text,
                math=rf"\left.{t_tex}\right|_{{{x_tex} = {sp.latex(c)}}} = "
                     f"{layer_latex(used, names)}",
                plain=f"at {x_txt} = {sp.sstr(c)}: {t_txt} = {layer_str(used, names)}")


def odot_tex(da: str, deriv: sp.Expr, deriv_tex: str) -> str:
    """``dA (.) f'`` in LaTeX; just ``dA`` when f' is 1 (identity activation)."""
    if deriv == 1:
        return da
    return rf"{da} \odot {parenthesize(deriv_tex, '', deriv)[0]}"


def odot_txt(da: str, deriv: sp.Expr, deriv_txt: str) -> str:
    if deriv == 1:
        return da
    return f"{da} * {parenthesize('', deriv_txt, deriv)[1]}"
