"""The network derivation printout (issue 3, item 5) on real derived plans.

Every expectation is computed from the plan the compiler derived (its SymPy
expressions printed with the same printers), so a wrong plan or a printout
that drops or hand-types a step makes these tests fail.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.formulas import A, P, Y, Z
from symgrad.derive.plan import LSE, NetworkPlan
from symgrad.render.document import Derivation
from symgrad.render.latex_printer import layer_latex, layer_str
from symgrad.render.network import network_derivation
from symgrad.simplify.network import derive_network

_x, _yhat, _y = sg.var("x"), sg.var("yhat"), sg.var("y")
# A user-defined activation and loss, defined the public way.
CustomSwish = sg.activation("custom_swish", _x * sg.sigmoid(_x))
LogCosh = sg.loss("logcosh", sg.log(sg.cosh(_yhat - _y)))
Dense, Sequential = sg.Dense, sg.Sequential
ReLU, Sigmoid, Softmax, Tanh = sg.ReLU, sg.Sigmoid, sg.Softmax, sg.Tanh

NETWORKS = {
    "seed001": (lambda: Sequential(Dense(2, 3), ReLU(), Dense(3, 1), Sigmoid()), "bce"),
    "tanh_mse": (lambda: Sequential(Dense(2, 4), Tanh(), Dense(4, 4), Tanh(), Dense(4, 2)), "mse"),
    "softmax_ce": (lambda: Sequential(Dense(4, 5), Tanh(), Dense(5, 3), Softmax()),
                   "cross_entropy"),
    "custom": (lambda: Sequential(Dense(3, 4), CustomSwish(), Dense(4, 1)), LogCosh),
}


@pytest.fixture(scope="module")
def models() -> dict[str, sg.Model]:
    return {name: sg.compile(make(), loss=loss) for name, (make, loss) in NETWORKS.items()}


@pytest.fixture(scope="module")
def plans(models) -> dict[str, NetworkPlan]:
    return {name: model.plan for name, model in models.items()}


@pytest.fixture(scope="module")
def docs(models) -> dict[str, Derivation]:
    # The document a user gets from the compiled model.
    return {name: model.derivation for name, model in models.items()}


def test_model_derivation_is_the_network_printout_of_its_plan(models, docs):
    from symgrad.codegen.kernels import generate_module_source
    from symgrad.runtime.optimizers import get_optimizer

    for name, model in models.items():
        assert isinstance(docs[name], Derivation)
        # The model adds its optimizer's update rule and the kernel-line appendix.
        optimizer = get_optimizer(model.optimizer)
        source = generate_module_source(model.plan, model.dtype.name, optimizer)
        assert docs[name].text() == network_derivation(model.plan, optimizer=optimizer,
                                                       source=source).text()


def names(j: int) -> dict:
    """The printout's naming for layer j: z -> Z_j, a -> A_j (what a reader sees)."""
    return {Z: (f"Z_{sub(j)}", f"Z{j}"), A: (f"A_{sub(j)}", f"A{j}")}


def sub(j: int) -> str:
    return str(j) if j < 10 else f"{{{j}}}"


def hidden(plan: NetworkPlan):
    """(1-based layer number, ActivationPlan) for every hidden activation."""
    return [(layer.index + 1, layer.activation) for layer in plan.layers if layer.activation]


def ends_step_a(text: str, step_a: sp.Expr, names: dict) -> bool:
    """Step A's display ends in the plan's dl/dp: its first line, or a line '= ...' after it."""
    display = text[text.index("dl/dp = "):].split("\n")
    last = display[0]
    for row in display[1:]:
        if not row.lstrip().startswith("= "):
            break
        last = row
    shown = re.split(r"\s{4}\(", last)[0]   # drop the reason '(cancelled)' after the line
    return shown.split("= ", 1)[1].strip() == layer_str(step_a, names)


@pytest.mark.parametrize("name", NETWORKS)
def test_output_steps_a_b_c_end_in_the_derived_delta(plans, docs, name):
    plan, doc = plans[name], docs[name]
    L = len(plan.layers)
    out, last = plan.output, {**names(L), LSE: (rf"\operatorname{{lse}}(Z_{L})", f"lse(Z{L})")}
    text, latex = doc.text(), doc.latex()
    for step in ("Step A", "Step B", "Step C"):
        assert step in text and step in latex
    # Step A and B end in the plan's derivatives (after SymPy's lines from the formulas);
    # Step C multiplies them and ends in delta.
    assert ends_step_a(text, out.step_a, last)
    assert f"= {layer_str(out.step_b, last)}" in text
    assert layer_latex(out.step_a, last) in latex and layer_latex(out.step_b, last) in latex
    ends_a_display = (r"\s*(\\end\{aligned\}\s*)?(\\tag\{\d+\}\s*)?"
                      r"\\end\{(equation|align)\*\}")
    assert re.search("= " + re.escape(layer_latex(out.delta, last)) + ends_a_display, latex), \
        "Step C must end in the cancelled delta"
    assert layer_latex(out.loss_formula, last) in latex
    assert layer_latex(out.loss_from_logits, last) in latex


def test_seed_001_cancels_to_p_minus_y(plans, docs):
    out = plans["seed001"].output
    assert sp.simplify(out.delta - (P - Y)) == 0
    text = docs["seed001"].text()
    assert "      = p - y" in text and "common factors cancel" in text
    assert "dZ2 = (P - Y)/n" in text   # the summary starts from the batch-mean error


def test_softmax_cross_entropy_names_the_one_hot_assumption(plans, docs):
    out = plans["softmax_ce"].output
    assert out.kind == "softmax" and sp.simplify(out.delta - (P - Y)) == 0
    text = docs["softmax_ce"].text()
    assert "one-hot" in text and "lse(Z2)_i = log(sum_m exp(Z2[i, m]))" in text
    assert "L = 1/n * sum_ic" in text   # rows reduction: mean over rows only


@pytest.mark.parametrize("name", NETWORKS)
def test_stable_form_is_stated(plans, docs, name):
    out = plans[name].output
    assert out.stable_note.strip()
    # the note's words reach the text rendering (inline math turned into plain text)
    words = re.findall(r"[A-Za-z]{4,}", re.sub(r"\$[^$]*\$", " ", out.stable_note))
    assert words and all(word in docs[name].text() for word in words)
    assert "\\operatorname" not in docs[name].text()


@pytest.mark.parametrize("name", NETWORKS)
def test_forward_chain_with_shapes_and_reduction(plans, docs, name):
    plan, text = plans[name], docs[name].text()
    assert f"X: (n x {plan.input_dim})" in text
    prev = "X"
    for layer in plan.layers:
        j = layer.index + 1
        assert f"Z{j} = {prev} @ W{j} + b{j}    (n x {layer.out_dim})" in text
        prev = f"A{j}"
    k = plan.output_dim
    scale = "1/n" if plan.output.reduction == "rows" or k == 1 else f"1/({k}*n)"
    # One output: no sum over a single class index.
    assert f"L = {scale} * sum_{'i' if k == 1 else 'ic'}" in text
    journey = ["L", "p"] + [f"Z{j}" if i % 2 == 0 else f"A{j - 1}"
                            for j in range(len(plan.layers), 0, -1) for i in range(2)]
    journey[-1] = "W1"
    assert " <- ".join(journey) in text


@pytest.mark.parametrize("name", NETWORKS)
def test_every_dense_layer_shows_shapes_and_why_the_transpose(plans, docs, name):
    plan, doc = plans[name], docs[name]
    text, latex = doc.text(), doc.latex()
    assert text.count("The transpose appears so that the shapes match") == len(plan.layers)
    for layer in plan.layers:
        j, h, k = layer.index + 1, layer.in_dim, layer.out_dim
        prev_txt, prev_tex = ("X", "X") if j == 1 else (f"A{j - 1}", f"A_{j - 1}")
        assert f"dW{j} = {prev_txt}.T @ dZ{j}    ({h} x n) . (n x {k}) -> {h} x {k}" in text
        assert (rf"dW_{j} = {prev_tex}^{{T}} dZ_{j} \qquad ({h} \times n) \cdot "
                rf"(n \times {k}) \to {h} \times {k}") in latex
        assert f"db{j} = dZ{j}.sum(axis=0)    (1 x n) . (n x {k}) -> 1 x {k}" in text
        if j > 1:
            assert f"dA{j - 1} = dZ{j} @ W{j}.T    (n x {k}) . ({k} x {h}) -> n x {h}" in text
    assert "dX = dZ_1 W_1^T is not needed" in text


def test_tanh_derivative_is_rewritten_in_the_saved_output(plans, docs):
    plan, text, latex = plans["tanh_mse"], docs["tanh_mse"].text(), docs["tanh_mse"].latex()
    acts = hidden(plan)
    assert len(acts) == 2
    for j, act in acts:
        # The plan must hold the derivative in a (1 - a^2); the printout shows both forms.
        assert act.derivative.free_symbols == {A}
        assert sp.simplify(act.derivative - (1 - A**2)) == 0
        raw, new = layer_str(act.derivative_raw, names(j)), layer_str(act.derivative, names(j))
        assert f"Z{j}" in raw and f"A{j}" in new
        # As derived, then the saved output substituted for tanh(Z_j), line by line.
        assert re.search(rf"f'\(Z{j}\) = {re.escape(raw)}\n\s+= {re.escape(new)}    "
                         r"\(substituted\)", text)
        assert f"dZ{j} = dA{j} * ({new})" in text
        assert rf"= {layer_latex(act.derivative, names(j))}" in latex
    assert "1 - A_1^{2}" in latex and "1 - A1**2" in text


def test_relu_derivative_is_printed_as_a_mask(plans, docs):
    plan, text, latex = plans["seed001"], docs["seed001"].text(), docs["seed001"].latex()
    [(j, act)] = hidden(plan)
    mask = layer_str(act.derivative, names(j))
    assert re.fullmatch(rf"\((A{j}|Z{j}) > 0\)", mask), mask
    assert f"dZ{j} = dA{j} * {mask}" in text
    assert re.search(rf"\\left\[(A|Z)_{j} > 0\\right\]", latex)
    assert "mask" in text and f": {mask} = 0" in text   # subgradient 0 at the kink


def test_custom_activation_and_loss_get_the_same_treatment(plans, docs):
    plan, text = plans["custom"], docs["custom"].text()
    [(j, act)] = hidden(plan)
    assert A not in act.derivative.free_symbols   # Swish: no form in a exists
    assert "no form of f' in a = f(z) alone" in text
    assert f"Z_{j} (read by f' of layer {j})" in text
    assert f"f(z) = custom_swish(z) = {layer_str(act.forward)}" in text
    assert f"f'(z) = {layer_str(act.derivative_raw)}" in text
    out = plan.output
    assert "Output layer: Steps A, B, C (identity + logcosh)" in text
    assert f"l(p, y) = {layer_str(out.loss_formula)}" in text


def test_summary_lists_the_backward_pass_in_order(plans, docs):
    plan, text = plans["seed001"], docs["seed001"].text()
    summary = text[text.index("Summary: the backward pass as code"):]
    [(_, act)] = hidden(plan)
    lines = ["dZ2 = ", "dW2 = A1.T @ dZ2", "db2 = dZ2.sum(axis=0)", "dA1 = dZ2 @ W2.T",
             f"dZ1 = dA1 * {layer_str(act.derivative, names(1))}", "dW1 = X.T @ dZ1",
             "db1 = dZ1.sum(axis=0)"]
    positions = [summary.index(line) for line in lines]
    assert positions == sorted(positions)
    # One printed line per equation of the plan's matrix-form backward pass, in its order.
    summary = summary[:summary.index("\n\n")]
    # Each line is a numbered display, "(34)dZ2 = ..." (numbers in the indent).
    code = [re.sub(r"^\(\d+\)\s*", "", row) for row in summary.splitlines()
            if re.match(r"^(\(\d+\)|    )", row)]
    assert [row.split(" = ")[0] for row in code] == [lhs.name for lhs, _ in plan.backward]
    assert "Saved from the forward pass: X (input of layer 1" in summary


def test_latex_is_ascii_and_markdown_has_display_math(docs):
    for doc in docs.values():
        assert doc.latex().isascii()
        assert doc.markdown().count("$$") >= 20


@pytest.mark.parametrize("name", NETWORKS)
def test_document_compiles_with_pdflatex(docs, name, tmp_path, pdflatex):
    pdf = docs[name].to_tex(tmp_path / f"{name}.tex", compile_pdf=True)
    assert pdf.suffix == ".pdf" and pdf.read_bytes().startswith(b"%PDF")


def test_bad_input_is_rejected_before_work(plans):
    with pytest.raises(TypeError, match="NetworkPlan"):
        network_derivation("not a plan")
    plan = plans["seed001"]
    broken = dataclasses.replace(plan.layers[1], in_dim=7)
    bad = dataclasses.replace(plan, layers=(plan.layers[0], broken))
    with pytest.raises(ValueError, match=r"dense1 expects 7 inputs but dense0 gives 3"):
        network_derivation(bad)
    with pytest.raises(ValueError, match="no Dense layers"):
        network_derivation(dataclasses.replace(plan, layers=()))


# -- every registry entry, printed the same way (nothing is keyed by name) ---------------
@pytest.fixture(scope="module")
def every_activation():
    """One network with every elementwise activation of the registry as a hidden layer."""
    from symgrad.definition.activations import REGISTRY

    acts = [cls() for _, cls in sorted(REGISTRY.items()) if cls.entry.kind == "elementwise"]
    layers: list = [Dense(2, 3)]
    for act in acts:
        layers += [act, Dense(3, 3)]
    plan = derive_network(Sequential(*layers), "mse")
    return plan, network_derivation(plan)


BUILTIN_KINKS = {"relu": True, "leaky_relu": True, "elu": False, "tanh": False, "gelu": False,
                 "sigmoid": False, "softplus": False, "swish": False, "identity": False}


def test_every_registry_activation_is_printed_from_its_plan(every_activation):
    plan, doc = every_activation
    text = doc.text()
    acts = hidden(plan)
    assert {"relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu"} <= {a.name for _, a in acts}
    for j, act in acts:
        section = text[text.index(f"Activation of layer {j}: "):]
        section = section[:section.index("\n\n")]
        raw, new = layer_str(act.derivative_raw, names(j)), layer_str(act.derivative, names(j))
        assert f"f'(z) = {layer_str(act.derivative_raw)}" in section
        if act.derivative_raw.has(sp.Piecewise) and act.derivative.has(A):
            # A piecewise f' rewritten in a is shown branch by branch, each value printed.
            assert "branch by branch" in section
            for value, _ in act.derivative.args:
                assert f"{layer_str(value, names(j))}  if A{j}" in section
        else:
            assert f"f'(Z{j}) = {raw}" in section and new in section
        free = act.derivative.free_symbols
        if free == {A}:
            assert f"reads only A_{j}" in section
        elif free == {Z}:
            assert f"Z_{j} is saved" in section
        # A kink is explained exactly where the derivative jumps (ReLU, LeakyReLU), not for
        # ELU(alpha=1), whose branches meet.
        if act.name in BUILTIN_KINKS:   # other modules may register entries of their own
            assert ("It switches at" in section) == BUILTIN_KINKS[act.name], act.name
    assert doc.latex().isascii()


def test_every_registry_activation_compiles_with_pdflatex(every_activation, tmp_path, pdflatex):
    pdf = every_activation[1].to_tex(tmp_path / "all.tex", compile_pdf=True)
    assert pdf.read_bytes().startswith(b"%PDF")
    # An 11-layer net still fits the page: no display taller than a page or far too wide.
    log = (tmp_path / "all.log").read_text(errors="replace")
    assert "Overfull \\vbox" not in log
    widths = [float(w) for w in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide", log)]
    assert max(widths, default=0.0) < 20.0, widths


@pytest.mark.parametrize("loss_name", ["mse", "mae", "bce", "huber", "cross_entropy"])
def test_every_registry_loss_shows_steps_a_b_c(loss_name):
    from symgrad.definition.losses import LOSSES

    entry = LOSSES[loss_name]
    out_layer = Softmax() if entry.requires_softmax else Sigmoid()
    plan = derive_network(Sequential(Dense(2, 3), Tanh(), Dense(3, 3), out_layer), entry)
    doc = network_derivation(plan)
    text, last = doc.text(), {**names(2), LSE: (r"\operatorname{lse}(Z_2)", "lse(Z2)")}
    out = plan.output
    assert f"l(p, y) = {layer_str(out.loss_formula, last)}" in text
    assert ends_step_a(text, out.step_a, last)
    assert f"= {layer_str(out.delta, last)}" in text
    assert f"l = {layer_str(out.loss_from_logits, last)}" in text
    assert doc.latex().isascii()


def test_matrix_lines_are_read_from_the_plan_not_retyped(plans):
    # Change one equation of the plan's backward pass: the printout must follow it.
    plan = plans["seed001"]
    eqs = tuple((lhs, 3 * rhs) if lhs.name == "dW2" else (lhs, rhs) for lhs, rhs in plan.backward)
    text = network_derivation(dataclasses.replace(plan, backward=eqs)).text()
    assert "dW2 = 3 * A1.T @ dZ2    (3 x n) . (n x 1) -> 3 x 1" in text
    assert re.search(r"^(\(\d+\)|    )\s*dW2 = 3 \* A1\.T @ dZ2$", text, re.M)


def test_a_splice_threshold_prints_as_a_power_of_two(tmp_path, pdflatex, scratch_registries):
    """x tanh(x)'s slope is spliced at |z| = 2**124 (one exponential below, as derived
    above). Its 38 digits ran 112 pt off the page in five displays; now 2^{124}."""
    from symgrad.render.document import compile_tex

    x = sg.var("x")
    act = sg.activation("render_xtanh", x * sp.tanh(x), replace=True)
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), act(), sg.Dense(3, 1)), loss="mse")
    doc = model.derivation
    assert r"< 2^{124}" in doc.latex() and "< 2**124" in doc.text()
    assert "21267647932558653966460912964485513216" not in doc.latex() + doc.text()
    compile_tex(doc.to_tex(tmp_path / "xtanh.tex"), strict=True)
    assert layer_latex(sp.Rational(-3, 2**40) * Z) == r"- \frac{3 z}{2^{40}}"
    assert layer_latex(sp.Abs(Z) < sp.Rational(3, 2**40)) == r"\left|{z}\right| < 3 \cdot 2^{-40}"
    assert layer_str(sp.Integer(1000) + Z) == "z + 1000"


def test_a_long_accuracy_note_breaks_inside_its_formula(tmp_path, pdflatex, scratch_registries):
    """The plan's note quotes the form that missed the accuracy bound as code: typewriter
    type that may break after ( and , (as one prose token it ran 1.7 pt off the page;
    fuzz_formulas --latex, seed 276)."""
    from symgrad.render.document import compile_tex

    x = sg.var("x")
    act = sg.activation("render_note", sp.log(sp.exp(sp.Piecewise(
        (4 * x, x > 0), (sp.exp(4 * x) - 1, True))) + 1), replace=True)
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), act(), sg.Dense(3, 1)), loss="mse")
    (note,) = model.plan.notes
    assert "its derivative as `Piecewise(" in note
    assert r"\texttt{Piecewise(\allowbreak{}(\allowbreak{}4," in model.derivation.latex()
    compile_tex(model.derivation.to_tex(tmp_path / "note.tex"), strict=True)


@pytest.mark.parametrize("name, formula", [
    ("logcosh", lambda p, y: sp.log(sp.cosh(p - y))),          # raw = cases: cut at the =
    ("cauchy", lambda p, y: sp.log(1 + (p - y) ** 2 / 4)),     # a long log argument
    ("focal", lambda p, y: -(y * (1 - p) ** 2 * sp.log(p)       # its delta in the logits
                             + (1 - y) * p ** 2 * sp.log(1 - p))),
])
def test_custom_losses_on_a_sigmoid_fit_the_page(name, formula, tmp_path, pdflatex,
                                                 scratch_registries):
    """Two custom losses of tools/fuzz_formulas.py --losses --latex whose printouts ran
    1.9 and 84 pt off the page."""
    from symgrad.render.document import compile_tex

    p, y = sp.symbols("p y", real=True)
    loss = sg.loss(f"render_{name}", formula(p, y), prediction=p, target=y, replace=True)
    model = sg.compile(sg.Sequential(sg.Dense(4, 5), sg.Tanh(), sg.Dense(5, 1), sg.Sigmoid()),
                       loss=loss)
    compile_tex(model.derivation.to_tex(tmp_path / f"{name}.tex"), strict=True)


def test_a_kinked_activation_with_a_long_derivative_fits_the_page(tmp_path, pdflatex,
                                                                  scratch_registries):
    """Its branch-by-branch display is a cases block whose values are sums of four long
    fractions: 376 pt off the page (fuzz_formulas --latex, seed 13) until cases values
    could break."""
    from symgrad.render.document import compile_tex

    x = sg.var("x")
    formula = (3 * x / 2 + sp.Rational(2, 3)) * sp.atanh(sp.tanh(x + 1) / 2) \
        * sp.erf(x + sp.Rational(3, 2)) * sp.Max(0, x + sp.Rational(4, 3))
    act = sg.activation("render_kinked", formula, replace=True)
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), act(), sg.Dense(3, 1)), loss="mse")
    assert r"\begin{cases} \begin{aligned}[t]&" in model.derivation.latex()
    compile_tex(model.derivation.to_tex(tmp_path / "kinked.tex"), strict=True)


def test_a_long_switching_expression_is_named_not_printed_twice(tmp_path, pdflatex,
                                                                scratch_registries):
    """max(0, g(z))'s mask switches where a long g(z) is 0: the kink display printed g(z)
    inside the bracket and again under the bar, 41 pt off the page in a CNN
    (fuzz_formulas --cnn --latex, seed 86). Now g(z) is named once in the prose."""
    from symgrad.render.document import compile_tex

    x = sg.var("x")
    formula = sp.Max(0, sp.log(sp.exp(2 * x / 3) + 1) + sp.tanh(x + 1))
    act = sg.activation("render_switch", formula, replace=True)
    net = sg.Sequential(sg.Conv2d(1, 2, 3), act(), sg.Flatten(), sg.Dense(8, 1), sg.Sigmoid(),
                        input_shape=(1, 4, 4))
    doc = sg.compile(net, loss="bce").derivation
    latex = doc.latex()
    assert r"It switches where $s = 0$, with $s = \tanh" in latex
    assert r"\left.\left[s > 0\right]\right|_{s = 0} = 0" in latex
    assert "at s = 0: " in doc.text()
    compile_tex(doc.to_tex(tmp_path / "switch.tex"), strict=True)
    relu = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.ReLU(), sg.Dense(3, 1)), loss="mse")
    assert "It switches at $A_1 = 0$. At" in relu.derivation.latex()   # a short one stays


def test_a_delta_with_its_logs_in_the_logits_says_why(scratch_registries):
    """A focal loss's delta is evaluated with log(1 - p) written in the logits (a NaN
    otherwise where p rounds to 1): Step C says so instead of "nothing cancels"."""
    focal = sg.loss("render_focal_c", "-(y*(1 - p)**2*log(p) + (1 - y)*p**2*log(1 - p))")
    model = sg.compile(sg.Sequential(sg.Dense(2, 1), sg.Sigmoid()), loss=focal)
    text = model.derivation.text()
    assert "evaluates every log, and every sum of p alone, in the logits Z_1" in text
    assert "Nothing cancels here" not in text
    assert "log1p(exp(-Abs(Z1)))" in text


def test_a_loss_evaluated_in_another_form_is_shown_beside_the_stable_one(scratch_registries):
    """A Poisson loss on a softplus: the loss from the logits is log 0 from z = -37, so
    the kernels evaluate it in p; the evaluation appendix shows both."""
    poisson = sg.loss("render_poisson", "p - y*log(p)")
    model = sg.compile(sg.Sequential(sg.Dense(2, 1), sg.Softplus()), loss=poisson)
    text = model.derivation.text()
    assert "so the kernels evaluate the equal form below" in text
    assert "l = p - y*log(p)" in text
