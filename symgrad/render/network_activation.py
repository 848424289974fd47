"""A hidden activation in the network printout: formula, derived derivative, rewrite.

Shows f(z), SymPy's f'(z) (branch by branch, as cases, when it has branches),
the rewrite in terms of the saved output a = f(z) line by line when the
simplify stage found one (else that z is saved), every kink with the
subgradient used there, and dZ = dA (.) f'. Nothing is keyed by name: what is
said follows from the expressions in the `ActivationPlan`. Which identity
sg.check proves and how the kernel evaluates f go to the appendices.

The helpers `algebra_rows` and `cases_math` also print the output layer's Steps
A and B (`symgrad.render.network_output`).
"""

from __future__ import annotations

import sympy as sp
from sympy.core.relational import Relational

from symgrad.definition.formulas import A, Z
from symgrad.derive.plan import ActivationPlan, DensePlan, Identity
from symgrad.derive.seams import pinned_seams, side_values
from symgrad.render.document import Derivation, Section
from symgrad.render.latex_printer import SymbolNames, indicator_condition, layer_latex, layer_str
from symgrad.render.network_names import dmat, function_tex, layer_names, mat, mtex, parenthesize
from symgrad.render.prose import latex_safe_prose
from symgrad.simplify.limit import latex_em
from symgrad.simplify.step_algebra import (
    AlgebraLine,
    branch_rewrite_steps,
    piecewise_branches,
    saved_output_steps,
)

EVALUATION_APPENDIX = "How the kernel evaluates it"
IDENTITY_APPENDIX = "Identities proven by sg.check"
REASON_SHOWN_CHARS = 100  # a line's reason goes beside it only while the row stays short


def name_math(latex_name: str, name: str) -> str:
    """Inline math naming an activation or loss: its checked LaTeX, e.g. ``$\\sigma$``."""
    return f"${function_tex(latex_name, name)}$"


def expr_txt(expr: sp.Expr, names: SymbolNames) -> str:
    """Plain text of an algebra line; a quotient kept unevaluated prints as (num)/(den)."""
    if (isinstance(expr, sp.Mul) and len(expr.args) == 2 and isinstance(expr.args[1], sp.Pow)
            and expr.args[1].exp == -1 and not expr.args[1].base.is_Atom):
        num, den = expr.args[0], expr.args[1].base
        return f"({layer_str(num, names)})/({layer_str(den, names)})"
    return layer_str(expr, names)


def line_math(line: AlgebraLine, names: SymbolNames) -> tuple[str, str]:
    """(LaTeX, text) of one line; a split product shows its factors one by one."""
    if line.factors:
        tex = r" \cdot ".join(parenthesize(layer_latex(f, names), "", f)[0] for f in line.factors)
        txt = " * ".join(f"({layer_str(f, names)})" for f in line.factors)
        return tex, txt
    return layer_latex(line.expr, names), expr_txt(line.expr, names)


def algebra_rows(lhs: tuple[str, str], lines: list[AlgebraLine], names: SymbolNames
                 ) -> tuple[str, str]:
    """The lines as one aligned display ``lhs = line 1 = line 2 ...``, each with its reason."""
    rows_tex, rows_txt = [], []
    for k, line in enumerate(lines):
        tex, txt = line_math(line, names)
        start_tex = f"{lhs[0]} &= " if k == 0 else "&= "
        start_txt = f"{lhs[1]} = " if k == 0 else " " * len(lhs[1]) + " = "
        why = "" if k == 0 else line.reason
        tag = rf" \qquad \text{{({why})}}" if why and len(tex) < REASON_SHOWN_CHARS else ""
        rows_tex.append(start_tex + tex + tag)
        rows_txt.append(start_txt + txt + (f"    ({why})" if why else ""))
    return r" \\ ".join(rows_tex), "\n".join(rows_txt)


def using_sentences(lines: list[AlgebraLine], names: SymbolNames) -> list[str]:
    """One sentence per line that relies on an equality (the inverse, a substitution)."""
    out = []
    for line in lines:
        if len(line.using) < 2:
            continue
        chain = " = ".join(layer_latex(e, names) for e in line.using)
        if line.reason == "inverse substituted":
            out.append(f"The inverse of the forward formula, ${chain}$, is substituted for the "
                       "input, and SymPy simplifies.")
        elif line.reason == "substituted":
            out.append(f"Every ${chain}$ in the derivative is the saved output itself.")
        else:
            out.append(f"The second factor is written in the saved output: ${chain}$.")
    return out


def cases_math(branches: list[tuple[sp.Expr, sp.Basic]], lhs: tuple[str, str],
               names: SymbolNames) -> tuple[str, str]:
    """A branch-by-branch display: LaTeX ``cases`` and its plain twin (one row a branch)."""
    rows_tex, rows_txt = [], []
    for value, cond in branches:
        c_tex = r"\text{otherwise}" if cond == sp.true else layer_latex(cond, names)
        c_txt = "otherwise" if cond == sp.true else f"if {layer_str(cond, names)}"
        rows_tex.append(f"{layer_latex(value, names)} & {c_tex}")
        rows_txt.append(f"{layer_str(value, names)}  {c_txt}")
    indent = " " * (len(lhs[1]) + 3)
    tex = rf"{lhs[0]} = \begin{{cases}} " + r" \\ ".join(rows_tex) + r" \end{cases}"
    return tex, f"{lhs[1]} = " + ("\n" + indent).join(rows_txt)


def branch_steps(sec: Section, forward: sp.Expr, derivative: sp.Expr, names: SymbolNames,
                 f_lhs: tuple[str, str], d_lhs: tuple[str, str]) -> None:
    """f and f' branch by branch when SymPy's derivative has branches (a step, a Piecewise)."""
    d_branches = piecewise_branches(derivative)
    if d_branches is None:
        return
    f_pw = sp.piecewise_fold(forward.rewrite(sp.Piecewise))
    f_branches = piecewise_branches(f_pw) if isinstance(f_pw, sp.Piecewise) else None
    if f_branches and len(f_branches) == 2 and f_branches[0][1] == d_branches[-1][1]:
        f_branches.reverse()   # same order of conditions in f and f'
    rows = [cases_math(f_branches, f_lhs, names)] if f_branches else []
    rows.append(cases_math(d_branches, d_lhs, names))
    sec.add(text=("Branch by branch: on each side of the kink the formula is a smooth "
                  "function, and its slope there is the derivative:"),
            math=r" \qquad ".join(t for t, _ in rows) if len(rows) == 1 else
            r" \\ ".join(t.replace(" = ", " &= ", 1) for t, _ in rows),
            plain="\n".join(t for _, t in rows))


def branch_rewrites(sec: Section, f: sp.Expr, d: sp.Expr, final: sp.Expr, out: sp.Symbol,
                    lhs: tuple[str, str], names: SymbolNames) -> bool:
    """A piecewise f' rewritten in the saved output, branch by branch; False if not shown.

    Shown when some branch needs the inverse of its forward branch (ELU: e^z = a + 1) or
    a condition is carried over to the output (z > 0 exactly when a > 0).
    """
    steps = branch_rewrite_steps(f, d, final, Z, out)
    if not any(st.inverse is not None or st.boundary is not None for st in steps):
        return False
    in_z = cases_math([(st.value, st.condition) for st in steps], lhs, names)
    in_out = cases_math([(st.value_out, st.condition_out) for st in steps], lhs, names)
    tex = in_z[0].replace(" = ", " &= ", 1) + r" \\ &= " + in_out[0].split(" = ", 1)[1]
    pad = " " * len(lhs[1])
    txt = in_z[1] + "\n" + pad + " = " + in_out[1].split(" = ", 1)[1].replace(
        "\n" + " " * (len(lhs[1]) + 3), "\n" + pad + "   ")
    sec.add(text="Rewritten in terms of the saved output, branch by branch:", math=tex,
            plain=txt)
    out_tex, z_tex = layer_latex(out, names), layer_latex(Z, names)
    for st in steps:
        if st.inverse is None:
            continue
        sec.add(text=(f"Where ${layer_latex(st.condition, names)}$ the forward branch is "
                      f"${out_tex} = {layer_latex(st.forward, names)}$, so "
                      f"${z_tex} = {layer_latex(st.inverse, names)}$ and "
                      f"${layer_latex(st.value, names)} = {layer_latex(st.value_out, names)}$."))
    bounds = [st for st in steps if st.boundary is not None][:1]
    for st in bounds:
        c, fc = st.boundary
        sec.add(text=(f"The conditions are read in the output: $f$ increases through "
                      f"${z_tex} = {sp.latex(c)}$ and $f({sp.latex(c)}) = {sp.latex(fc)}$, so "
                      f"${layer_latex(st.condition, names)}$ exactly when "
                      f"${layer_latex(st.condition_out, names)}$."))
    return True


def appendix_identity(doc: Derivation, where: str, ident: Identity, names: SymbolNames,
                      max_ops: int = 24) -> None:
    """One identity in the appendix of proven identities: its name and raw == simplified."""
    sec = doc.appendix(IDENTITY_APPENDIX)
    # The identity's name and assumptions are the plan's identifiers (what sg.check
    # reports): printed as such, in typewriter type, not as prose.
    text = f"{where}, identity `{latex_safe_prose(ident.name)}`"
    text += f" (assuming `{latex_safe_prose(ident.assumptions)}`)" if ident.assumptions else ""
    new_tex, new_txt = layer_latex(ident.simplified, names), layer_str(ident.simplified, names)
    ops = sp.count_ops(ident.raw)
    if ops > max_ops:
        sec.add(text=text + f": the raw side ({ops} operations) equals", math=new_tex,
                plain=new_txt)
        return
    sec.add(text=text + ":", math=f"{layer_latex(ident.raw, names)} = {new_tex}",
            plain=f"{layer_str(ident.raw, names)} == {new_txt}")


def activation_section(doc: Derivation, layer: DensePlan, act: ActivationPlan) -> None:
    j = layer.index + 1
    names = layer_names(j, last=False)
    canon = {Z: ("z", "z"), A: ("a", "a")}
    a_tex, a_txt = mat("A", j)
    z_tex, z_txt = mat("Z", j)
    da_tex, da_txt = dmat("A", j)
    dz_tex, dz_txt = dmat("Z", j)
    f = function_tex(act.latex_name, act.name)
    sec = doc.section(f"Activation of layer {j}: {act.name}")
    formula_tex, formula_txt = layer_latex(act.forward, canon), layer_str(act.forward, canon)
    # A built-in SymPy function (tanh) is its own formula: do not print tanh(z) = tanh(z).
    same = formula_txt == f"{act.name}(z)"
    f_name = name_math(act.latex_name, act.name)
    sec.add(text=f"Forward, elementwise, with the formula of {f_name}:",
            math=(rf"{a_tex} = f({z_tex}), \qquad f(z) = {f}(z)"
                  + ("" if same else f" = {formula_tex}")),
            plain=(f"{a_txt} = f({z_txt}),   f(z) = {act.name}(z)"
                   + ("" if same else f" = {formula_txt}")))
    if act.stable_forward != act.forward:
        doc.appendix(EVALUATION_APPENDIX).add(
            text=f"Layer {j}, {f_name}: the forward pass evaluates "
                 "the equal, numerically stable form",
            math=f"f(z) = {layer_latex(act.stable_forward, canon)}",
            plain=f"f(z) = {layer_str(act.stable_forward, canon)}")
    sympy_slope, seams = pinned_seams(act.derivative_raw)
    sec.add(text="SymPy differentiates the formula:",
            math=f"f'(z) = {layer_latex(sympy_slope, canon)}",
            plain=f"f'(z) = {layer_str(sympy_slope, canon)}")
    branch_steps(sec, act.forward, sympy_slope, canon, ("f(z)", "f(z)"), ("f'(z)", "f'(z)"))
    _seam_steps(sec, sympy_slope, seams, canon)
    free = act.derivative.free_symbols
    raw_tex, raw_txt = layer_latex(act.derivative_raw, names), layer_str(act.derivative_raw, names)
    new_tex, new_txt = layer_latex(act.derivative, names), layer_str(act.derivative, names)
    appendix_identity(doc, f"Layer {j}", act.identity, names)
    lines = saved_output_steps(act.forward, act.derivative_raw, act.derivative, Z, A)
    if lines:
        math, plain = algebra_rows((f"f'({z_tex})", f"f'({z_txt})"), lines, names)
        sec.add(text=(f"Rewritten in terms of the saved output $a = f(z)$, i.e. ${a_tex}$, "
                      "line by line as SymPy computes it:"), math=math, plain=plain)
        for sentence in using_sentences(lines, names):
            sec.add(text=sentence)
    elif not branch_rewrites(sec, act.forward, act.derivative_raw, act.derivative, A,
                             (f"f'({z_tex})", f"f'({z_txt})"), names):
        if A in free:
            text = (f"Rewritten in terms of the saved output $a = f(z)$, i.e. ${a_tex}$ "
                    "(proven equal by sg.check):")
        elif act.derivative != act.derivative_raw:
            text = "Simplified (proven equal by sg.check):"
        else:
            text = "The derivative is used as derived:"
        # As derived on one line, the rewrite on the next: side by side they overflow the page.
        math = (f"f'({z_tex}) &= {raw_tex} \\\\ &= {new_tex}" if new_tex != raw_tex
                else f"f'({z_tex}) = {raw_tex}")
        plain = f"f'({z_txt}) = {raw_txt}" + (f" = {new_txt}" if new_txt != raw_txt else "")
        sec.add(text=text, math=math, plain=plain)
    if act.evaluated_derivative is not None:
        gate = act.forward / Z   # the factor of f(z) = z g(z) that the slope reads off a
        sec.add(text=_saved_sentence(act, j),
                math=f"g(z) = \\frac{{f(z)}}{{z}} = {layer_latex(gate, canon)} = \\frac{{a}}{{z}}",
                plain=f"g(z) = f(z)/z = {layer_str(gate, canon)} = a/z")
        _gate_guard(doc, act, j, f_name)
    else:
        sec.add(text=_saved_sentence(act, j))
    _kink_steps(sec, act.derivative, names, tuple(c for c, _ in seams), act.forward)
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
    if act.evaluated_derivative is not None:
        return (f"Since $f(z) = z\\,g(z)$, the factor $g$ is read off the saved output "
                f"wherever $z \\neq 0$, so the derivative reads both ${mtex('A', j)}$ and "
                f"${mtex('Z', j)}$ (saved: {', '.join(act.saved)}){_gone(act)}:")
    return (f"The derivative reads both ${mtex('A', j)}$ and ${mtex('Z', j)}$ "
            f"(saved: {', '.join(act.saved)}).")


def _gone(act: ActivationPlan) -> str:
    """", and evaluates no erf" for the special functions the rewrite removed."""
    def names(expr: sp.Expr) -> set[str]:
        return {type(f).__name__ for f in expr.atoms(sp.Function)}
    gone = sorted(names(act.derivative_raw) - names(act.derivative))
    return f", and evaluates no {' or '.join(gone)}" if gone else ""


def _gate_guard(doc: Derivation, act: ActivationPlan, j: int, f_name: str) -> None:
    """The appendix line for a derivative that divides by z: what the kernel does at 0."""
    (at_zero, near_zero), _ = act.evaluated_derivative.args
    bound_tex = layer_latex(near_zero.rhs)   # 2^{-100}, not its 31 digits
    doc.appendix(EVALUATION_APPENDIX).add(
        text=(f"Layer {j}, {f_name}: the backward pass divides by $z$; where "
              f"$|z| < {bound_tex}$ it evaluates the limit instead (there $a/z$ would be "
              "$0/0$ or read a subnormal $a$, and $f'(z)$ differs from $f'(0)$ by far less "
              "than a rounding error):"),
        math=f"f'(0) = \\lim_{{z \\to 0}} f'(z) = {sp.latex(at_zero)}",
        plain=f"f'(0) = lim_(z -> 0) f'(z) = {sp.sstr(at_zero)}")


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


def _seam_steps(sec: Section, sympy_slope: sp.Expr, seams: tuple[tuple[sp.Expr, sp.Expr], ...],
                names: SymbolNames) -> None:
    """Say where f' is pinned (`symgrad.derive.seams`): branches that meet with one slope,
    or a kink whose steps read a value that is neither side's slope."""
    for c, slope in seams:
        convention = sympy_slope.subs(Z, c)
        left, right = side_values(sympy_slope, Z, c)
        c_tex = sp.latex(c)
        if right is not None and sp.simplify(left - right) == 0:
            text = (f"At $z = {c_tex}$ the branches meet with the same slope from both sides, "
                    f"${sp.latex(slope)}$: $f$ is differentiable there, and that slope is used "
                    f"(the convention for a true kink, each step taking its value where its "
                    f"condition fails, would give ${sp.latex(convention)}$):")
            math = rf"f'({c_tex}) = \lim_{{z \to {c_tex}}} f'(z) = {layer_latex(slope, names)}"
            plain = (f"f'({sp.sstr(c)}) = lim_(z -> {sp.sstr(c)}) f'(z) = "
                     f"{layer_str(slope, names)}")
        else:
            text = (f"At $z = {c_tex}$ $f$ has a kink, slope ${sp.latex(left)}$ on the left and "
                    f"${sp.latex(right)}$ on the right; its steps there read "
                    f"${sp.latex(convention)}$, neither side's slope nor between them, so the "
                    "left slope is used, as for ReLU'(0) = 0:")
            math = rf"f'({c_tex}) = \lim_{{z \to {c_tex}^-}} f'(z) = {layer_latex(slope, names)}"
            plain = (f"f'({sp.sstr(c)}) = lim_(z -> {sp.sstr(c)}-) f'(z) = "
                     f"{layer_str(slope, names)}")
        sec.add(text=text, math=math, plain=plain)


def _at_a_seam(term: sp.Expr, x: sp.Expr, c: sp.Expr, seams: tuple[sp.Expr, ...],
               forward: sp.Expr) -> bool:
    """Whether a step switches at one of the pinned seams (explained by `_seam_steps`); its
    argument ``x`` may be written in the saved output a = ``forward``."""
    if isinstance(term, sp.Piecewise) and any(isinstance(cond, sp.Eq) for _, cond in term.args):
        return True
    x = x.subs(A, forward)
    return x.free_symbols == {Z} and any(sp.simplify(x.subs(Z, s) - c) == 0 for s in seams)


def _kink_steps(sec: Section, expr: sp.Expr, names: SymbolNames,
                seams: tuple[sp.Expr, ...] = (), forward: sp.Expr = Z) -> None:
    """Explain each step in f': a mask, and the value used where f' does not exist (not at
    ``seams``, the points where f' exists and is pinned to its slope)."""
    for term, x, c, used in _kinks(expr):
        if seams and _at_a_seam(term, x, c, seams, forward):
            continue
        x_tex, x_txt = layer_latex(x, names), layer_str(x, names)
        mask = isinstance(term, sp.Heaviside) or indicator_condition(term) is not None
        text = ("This step is a mask: 1 lets the error through, 0 blocks it. " if mask else
                "This term has branches. ")
        if latex_em(x_tex) > _SWITCH_EM:
            # written once in the prose and named: in the display it stood twice (in the
            # bracket and under the bar), one line wider than the page (fuzz_formulas seed 86)
            short = _unused_symbol(expr)
            text += f"It switches where ${short} = {sp.latex(c)}$, with ${short} = {x_tex}$."
            term, x_tex, x_txt = term.subs(x, short), sp.latex(short), short.name
        else:
            text += f"It switches at ${x_tex} = {sp.latex(c)}$."
        t_tex, t_txt = layer_latex(term, names), layer_str(term, names)
        text += (" At the kink of $f$ the derivative does not exist; symgrad uses the branch "
                 "whose condition holds, the same in this printout and in the numbers:")
        sec.add(text=text,
                math=rf"\left.{t_tex}\right|_{{{x_tex} = {sp.latex(c)}}} = "
                     f"{layer_latex(used, names)}",
                plain=f"at {x_txt} = {sp.sstr(c)}: {t_txt} = {layer_str(used, names)}")


#: A switching expression wider than this (em) is named in the prose, not printed twice.
_SWITCH_EM = 8.0


def _unused_symbol(expr: sp.Expr) -> sp.Symbol:
    """A one-letter symbol (s, u, v, w) that ``expr`` does not use."""
    used = {sym.name for sym in expr.free_symbols}
    return sp.Symbol(next(n for n in "suvw" if n not in used), real=True)


def odot_tex(da: str, deriv: sp.Expr, deriv_tex: str) -> str:
    """``dA (.) f'`` in LaTeX; just ``dA`` when f' is 1 (identity activation)."""
    if deriv == 1:
        return da
    return rf"{da} \odot {parenthesize(deriv_tex, '', deriv)[0]}"


def odot_txt(da: str, deriv: sp.Expr, deriv_txt: str) -> str:
    if deriv == 1:
        return da
    return f"{da} * {parenthesize('', deriv_txt, deriv)[1]}"
