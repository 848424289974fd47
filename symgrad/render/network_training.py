"""Seed 002 in the network printout: from gradients to updates, and the Jacobian view.

Three sections `symgrad.render.network` adds to a network's derivation:

* the Jacobian view of one sample's backward pass: per boundary between Dense layers,
  the row vector dl/da of a hidden layer is the row dl/dz of the next layer times the
  Jacobian dz/da, ``[1 x d_f] = [1 x d_g] . [d_g x d_f]`` with this network's sizes, and
  the fan-out sum: a hidden unit feeds every unit of the next layer, so its gradient
  sums over them;
* batch gradient descent, SGD and minibatch SGD written with the model's own loss (the
  per-sample loss is the model's l(p, y) with p_i, y_i substituted by SymPy);
* the update rule of the model's own optimizer (SGD, momentum, Nesterov, Adam, AdamW,
  weight decay) with its settings, tagged with the plan's `UPDATE_KEY` so the kernel's
  ``_step`` call cites it.

Render may not import the runtime, so the optimizer is read by duck typing: its
``hyper()`` values, its ``state_names`` and its ``nesterov`` / ``decoupled`` flags,
exactly what the kernel generator reads from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgrad.definition.formulas import P, Y
from symgrad.derive.plan import UPDATE_KEY, NetworkPlan
from symgrad.render.document import Derivation
from symgrad.render.latex_printer import layer_latex, layer_str
from symgrad.render.network_names import mtex

__all__ = ["UpdateRule", "update_rule", "jacobian_chain", "training_section",
           "optimizer_section", "jacobian_section"]

# The update's symbols: w a parameter, g its gradient dL/dw, the optimizer's state and
# hyperparameters (named as the optimizer's ``hyper()`` keys), t the step count.
W, G, T = sp.symbols("w g t", real=True)
M, V = sp.symbols("m v", real=True)   # Adam's two moments
VEL = V                               # SGD's velocity (another optimizer, same letter)
M_HAT, V_HAT = sp.symbols("m_hat v_hat", real=True)
HYPER = {name: sp.Symbol(name, positive=True)
         for name in ("lr", "momentum", "beta1", "beta2", "eps", "weight_decay")}
_HYPER_TEX = {"lr": r"\eta", "momentum": r"\mu", "beta1": r"\beta_1", "beta2": r"\beta_2",
              "eps": r"\epsilon", "weight_decay": r"\lambda"}
_SYMBOL_TEX = {HYPER[k]: v for k, v in _HYPER_TEX.items()}
_SYMBOL_TEX.update({M_HAT: r"\hat{m}", V_HAT: r"\hat{v}"})


@dataclass(frozen=True)
class UpdateRule:
    """An optimizer's step as SymPy assignments, in the order the kernel runs them.

    ``steps``: (target, value, arrow) with arrow True for an update of stored state or
    of the weight (printed ``<-``), False for a definition (``=``). ``settings``: the
    optimizer's hyperparameters by name, as it passes them to the kernel.
    """

    name: str
    steps: tuple[tuple[sp.Symbol, sp.Expr, bool], ...]
    settings: dict[str, float]


def update_rule(optimizer: object) -> UpdateRule:
    """The update rule of ``optimizer`` (an SGD, Adam or AdamW object) as SymPy steps.

    >>> class Plain:
    ...     state_names = ()
    ...     def hyper(self): return {"lr": 0.1}
    >>> [f"{lhs} <- {rhs}" for lhs, rhs, _ in update_rule(Plain()).steps]
    ['w <- -g*lr + w']

    Raises `ValueError` for an optimizer whose state this printout does not know.
    """
    settings = dict(optimizer.hyper())
    h = {name: HYPER[name] for name in settings}
    states = tuple(getattr(optimizer, "state_names", ()))
    steps: list[tuple[sp.Symbol, sp.Expr, bool]] = []
    decoupled = bool(getattr(optimizer, "decoupled", False))
    if "weight_decay" in h and decoupled:
        steps.append((W, W - h["lr"] * h["weight_decay"] * W, True))
    elif "weight_decay" in h:
        steps.append((G, G + h["weight_decay"] * W, False))
    if states == ():
        steps.append((W, W - h["lr"] * G, True))
        name = "SGD"
    elif states == ("velocity",):
        steps.append((VEL, h["momentum"] * VEL + G, True))
        if getattr(optimizer, "nesterov", False):
            steps.append((W, W - h["lr"] * (G + h["momentum"] * VEL), True))
            name = "SGD with Nesterov momentum"
        else:
            steps.append((W, W - h["lr"] * VEL, True))
            name = "SGD with momentum"
    elif states == ("m", "v"):
        b1, b2 = h["beta1"], h["beta2"]
        steps += [(M, b1 * M + (1 - b1) * G, True), (V, b2 * V + (1 - b2) * G**2, True),
                  (M_HAT, M / (1 - b1**T), False), (V_HAT, V / (1 - b2**T), False),
                  (W, W - h["lr"] * M_HAT / (sp.sqrt(V_HAT) + h["eps"]), True)]
        name = "AdamW" if decoupled else "Adam"
    else:
        raise ValueError(f"the printout knows no update rule for {type(optimizer).__name__} "
                         f"(state {states})")
    return UpdateRule(name, tuple(steps), settings)


def _rule_rows(rule: UpdateRule) -> list[tuple[str, str]]:
    rows = []
    for lhs, rhs, arrow in rule.steps:
        tex_lhs = sp.latex(lhs, symbol_names=_SYMBOL_TEX)
        tex_rhs, txt_rhs = _latex(rhs), sp.sstr(rhs)
        if lhs in (W, G) and rhs.has(lhs):
            # Read as the rule is said: "w minus the step", "g plus the decay term".
            change = sp.factor_terms(rhs - lhs)
            sign, size = ("-", -change) if change.could_extract_minus_sign() else ("+", change)
            tex_rhs = f"{tex_lhs} {sign} {_latex(size)}"
            txt_rhs = f"{lhs} {sign} {sp.sstr(size)}"
        op = r"\leftarrow" if arrow else "="
        rows.append((rf"{tex_lhs} &{op} {tex_rhs}",
                     f"{lhs} {'<-' if arrow else '='} {txt_rhs}"))
    return rows


def _latex(expr: sp.Expr) -> str:
    return sp.latex(expr, symbol_names=_SYMBOL_TEX)


def _number(value: float) -> tuple[str, str]:
    text = f"{value:g}"
    if "e" in text:
        mant, exp = text.split("e")
        tex = (rf"10^{{{int(exp)}}}" if mant == "1" else rf"{mant} \cdot 10^{{{int(exp)}}}")
        return tex, text
    return text, text


def optimizer_section(doc: Derivation, optimizer: object) -> None:
    """The step of the model's optimizer, with the settings it trains with."""
    rule = update_rule(optimizer)
    sec = doc.section(f"The update rule of this model's optimizer: {rule.name}")
    uses = {str(s) for _, rhs, _ in rule.steps for s in rhs.free_symbols}
    text = ("After the backward pass every parameter $w$ (each entry of every $W_j$ and "
            "$b_j$) is updated by the optimizer, with $g$ its gradient from the lines above, "
            "in this order (the kernel runs these lines in one loop per parameter")
    if "v" in uses and rule.name.startswith("SGD"):
        text += "; $v$ is the velocity, kept per parameter and zero at the start"
    if "m" in uses:
        text += ("; $m$ and $v$ are running means of $g$ and $g^2$, kept per parameter and "
                 "zero at the start, and the step count $t$ starts at 1; dividing by "
                 "$1 - \\beta^t$ corrects their bias towards 0 in the first steps")
    if "weight_decay" in rule.settings:
        text += ("; the weight decay is " + ("decoupled: it shrinks $w$ before the step"
                                             if getattr(optimizer, "decoupled", False) else
                                             "L2: it adds its term to the gradient"))
    rows = _rule_rows(rule)
    sec.add(text=text + "):", math=r" \\ ".join(t for t, _ in rows),
            plain="\n".join(t for _, t in rows), tag=UPDATE_KEY)
    if "m" in uses:
        # The kernel's arithmetic differs from the lines (not their value): say how.
        sec.add(text=("The kernel folds both bias corrections into two factors computed once "
                      "per step, so each element takes one division and one square root:"),
                math=(r"w \leftarrow w - \frac{\eta}{1 - \beta_1^t}\, "
                      r"\frac{m}{\sqrt{v}\,/\sqrt{1 - \beta_2^t} + \epsilon}"),
                plain="w <- w - (lr/(1 - beta1^t)) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps)")
    values = [(_HYPER_TEX[k], k, *_number(v)) for k, v in rule.settings.items()]
    sec.add(text="With this model's settings:",
            math=r", \quad ".join(f"{tex} = {num}" for tex, _, num, _ in values),
            plain=", ".join(f"{name} = {txt}" for _, name, _, txt in values))


# -- batch GD, SGD, minibatch -----------------------------------------------------------
def _sample_loss(plan: NetworkPlan) -> tuple[str, str]:
    """The loss of one sample i: the model's l(p, y) with p_i, y_i substituted (SymPy)."""
    out, k = plan.output, plan.output_dim
    p_i, y_i = sp.Symbol("p_i", real=True), sp.Symbol("y_i", real=True)
    if k == 1:
        expr = out.loss_formula.subs({P: p_i, Y: y_i}, simultaneous=True)
        return layer_latex(expr), layer_str(expr)
    scale = "" if out.reduction == "rows" else rf"\frac{{1}}{{{k}}} "
    scale_txt = "" if out.reduction == "rows" else f"1/{k} * "
    return (rf"{scale}\sum_{{c=1}}^{{{k}}} l(p_{{ic}}, y_{{ic}})",
            f"{scale_txt}sum_c l(p_ic, y_ic)")


def training_section(doc: Derivation, plan: NetworkPlan, optimizer: object = None,
                     batch_size: int | None = None) -> None:
    """Batch gradient descent, SGD and minibatch SGD with this model's loss (seed 002)."""
    sec = doc.section("Batch, stochastic and minibatch gradient descent")
    lr = dict(optimizer.hyper()).get("lr") if optimizer is not None else None
    eta = _number(lr)[0] if lr is not None else r"\eta"
    eta_txt = _number(lr)[1] if lr is not None else "lr"
    l_tex, l_txt = _sample_loss(plan)
    sec.add(text=("The loss of one sample $i$ is this model's loss on its prediction $p_i$ "
                  "and target $y_i$:"),
            math=rf"\ell_i(w) = {l_tex}", plain=f"l_i(w) = {l_txt}")
    sec.add(text=("Full-batch gradient descent averages it over all $N$ training samples and "
                  "takes one step per pass over the data"
                  + (f" (step size $\\eta$ = {eta_txt}, this model's learning rate)"
                     if lr is not None else "") + ":"),
            math=(r"L(S, w) = \frac{1}{N} \sum_{i=1}^{N} \ell_i(w), \qquad "
                  rf"w \leftarrow w - {eta} \, \frac{{\partial L(S, w)}}{{\partial w}}"),
            plain=(f"L(S, w) = 1/N * sum_i l_i(w),   w <- w - {eta_txt} * dL(S, w)/dw"))
    sec.add(text=("Stochastic gradient descent (SGD) picks one sample $i$ and steps on its "
                  "loss alone: a noisy step, but the average of many of them follows the "
                  "full gradient, at a fraction of the cost:"),
            math=rf"w \leftarrow w - {eta} \, \frac{{\partial \ell_i(w)}}{{\partial w}}",
            plain=f"w <- w - {eta_txt} * dl_i(w)/dw")
    size_tex = str(batch_size) if batch_size else r"|B|"
    size_txt = str(batch_size) if batch_size else "|B|"
    sec.add(text=("Minibatch SGD, what fit runs, averages over a batch $B$ of samples: the "
                  "matrices above hold one row per sample of $B$, so $n$ = |B|"
                  + (f" = {batch_size} (the batch size this printout was made for)"
                     if batch_size else " (the batch_size passed to fit)")
                  + ", and the $1/n$ of the loss is this average:"),
            math=(rf"w \leftarrow w - {eta} \, \frac{{1}}{{{size_tex}}} \sum_{{i \in B}} "
                  r"\frac{\partial \ell_i(w)}{\partial w}"),
            plain=f"w <- w - {eta_txt} * 1/{size_txt} * sum_(i in B) dl_i(w)/dw")
    if optimizer is not None and getattr(optimizer, "state_names", ()) != ():
        sec.add(text=("This model's optimizer replaces the plain step by its own rule (next "
                      "section), fed with the same minibatch gradient."))


# -- the Jacobian view and the fan-out sum ----------------------------------------------
@dataclass(frozen=True)
class JacobianStep:
    """dl/d(target) = dl/d(source) . d(source)/d(target) for one sample, with shapes."""

    target: str        # printout name of the variable the error arrives at ("A1")
    source: str        # the next variable ("Z2")
    target_dim: int
    source_dim: int

    @property
    def shapes(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """([1 x d_f], [1 x d_g], [d_g x d_f]): result, incoming row, Jacobian."""
        return ((1, self.target_dim), (1, self.source_dim),
                (self.source_dim, self.target_dim))


def jacobian_chain(plan: NetworkPlan) -> list[JacobianStep]:
    """The per-sample backward pass as Jacobian products, output first.

    Per Dense layer j from the last: z_j -> a_{j-1} through W_j (Jacobian W_j^T), then
    a_{j-1} -> z_{j-1} through the activation (a diagonal Jacobian).
    """
    steps = []
    for layer in reversed(plan.layers[1:]):
        j = layer.index + 1
        h, k = layer.in_dim, layer.out_dim
        steps.append(JacobianStep(f"A{j - 1}", f"Z{j}", h, k))
        steps.append(JacobianStep(f"Z{j - 1}", f"A{j - 1}", h, h))
    return steps


def _vec(name: str) -> tuple[str, str]:
    """Per-sample row vector of a layer matrix: A1 -> a_1."""
    letter, j = name[0], int(name[1:])
    return rf"{letter.lower()}_{{{j}}}", f"{letter.lower()}{j}"


def jacobian_section(doc: Derivation, plan: NetworkPlan) -> None:
    """Seed 002's Jacobian view with this network's sizes, and the fan-out sum."""
    if len(plan.layers) < 2:
        return
    sec = doc.section("The same chain as Jacobians, one sample at a time")
    sec.add(text=("For one sample the variables are row vectors: $a_j$ is row $i$ of "
                  f"${mtex('A', 1)}$ and so on. The gradient of the scalar loss with respect "
                  "to a vector is a row of the same length, and the chain rule multiplies it "
                  "by the Jacobian of each module, whose entry $(r, s)$ is the derivative of "
                  "output $r$ with respect to input $s$. A module from $d_f$ inputs to $d_g$ "
                  "outputs passes back $[1 \\times d_f] = [1 \\times d_g] \\cdot "
                  "[d_g \\times d_f]$; here, last layer first:"))
    rows = []
    for step in jacobian_chain(plan):
        (_, df), (_, dg), _ = step.shapes
        t_tex, t_txt = _vec(step.target)
        s_tex, s_txt = _vec(step.source)
        dims = (rf"[1 \times {df}] = [1 \times {dg}] \cdot [{dg} \times {df}]",
                f"[1 x {df}] = [1 x {dg}] . [{dg} x {df}]")
        rows.append((rf"\frac{{\partial \ell}}{{\partial {t_tex}}} &= "
                     rf"\frac{{\partial \ell}}{{\partial {s_tex}}} \, "
                     rf"\frac{{\partial {s_tex}}}{{\partial {t_tex}}} \quad {dims[0]}",
                     f"dl/d{t_txt} = dl/d{s_txt} . d{s_txt}/d{t_txt}    {dims[1]}"))
    for start in range(0, len(rows), 6):
        chunk = rows[start:start + 6]
        sec.add(math=r" \\ ".join(t for t, _ in chunk), plain="\n".join(t for _, t in chunk))
    sec.add(text=("Through a Dense layer the Jacobian of $z_{j} = a_{j-1} W_j + b_j$ with "
                  "respect to $a_{j-1}$ is $W_j^T$; through an elementwise activation it is "
                  "diagonal, with $f'(z)$ on the diagonal, which is why the matrix form "
                  "multiplies elementwise instead. Stacking the $n$ rows of a batch gives the "
                  "matrix lines of the layer sections."))
    _fan_out(sec, plan)


def _fan_out(sec, plan: NetworkPlan) -> None:
    """dl/da_r = sum over the units c the hidden unit r feeds of dl/dz_c * w_rc."""
    for layer in reversed(plan.layers[1:]):
        j = layer.index + 1
        h, k = layer.in_dim, layer.out_dim
        a, z, w = f"a_{{{j - 1}}}", f"z_{{{j}}}", f"W_{{{j}}}"
        if k == 1:
            text = (f"A hidden unit $r$ of layer {j - 1} feeds every unit of layer {j}; here "
                    f"layer {j} has a single unit, so the sum over them has one term:")
            math = (rf"\frac{{\partial \ell}}{{\partial ({a})_r}} = "
                    rf"\frac{{\partial \ell}}{{\partial ({z})_1}} \, ({w})_{{r1}}, "
                    rf"\qquad r = 1, \dots, {h}")
            plain = f"dl/da{j - 1}[r] = dl/dz{j}[1] * W{j}[r, 1],   r = 1..{h}"
        else:
            text = (f"A hidden unit $r$ of layer {j - 1} feeds all {k} units of layer {j}: "
                    f"nudging it moves every $({z})_c$ by $({w})_{{rc}}$ times the nudge, "
                    "and the loss moves by the sum of those changes, so its gradient sums "
                    "over the units it feeds:")
            math = (rf"\frac{{\partial \ell}}{{\partial ({a})_r}} = \sum_{{c=1}}^{{{k}}} "
                    rf"\frac{{\partial \ell}}{{\partial ({z})_c}} \, ({w})_{{rc}}, "
                    rf"\qquad r = 1, \dots, {h}")
            plain = f"dl/da{j - 1}[r] = sum_c dl/dz{j}[c] * W{j}[r, c],   c = 1..{k}, r = 1..{h}"
        sec.add(text=text, math=math, plain=plain)
