"""The derivation printout of convolutional networks (issue 9, item 3).

Expectations come from the compiled plan and the layer-kind registry (shapes from
the FeaturePlans, formulas from each kind's index_formula, rules and notes from its
BackwardRules), so a printout that drops a layer, a rule or a shape, or types one by
hand, fails here. One network's lines are also written out in full, as a reader sees
them (the shapes of dW for conv0 with padding 1 on 8x8 images).
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.formulas import A, Z
from symgrad.definition.layer_kinds import LAYER_KINDS, layer_kind
from symgrad.definition.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d
from symgrad.derive.plan import NetworkPlan
from symgrad.render.document import Derivation
from symgrad.render.latex_printer import layer_str
from symgrad.render.network import network_derivation
from symgrad.render.network_feature_names import (
    index_text,
    layer_setting,
    rule_operands,
    substitute_latex,
)

S = sg.Sequential


def _networks(swish) -> dict[str, tuple[sg.Sequential, str]]:
    return {
        # max and avg pooling, padding, activations after each convolution
        "main": (S(Conv2d(1, 4, 3, padding=1), sg.ReLU(), MaxPool2d(2), Conv2d(4, 8, 3),
                   sg.Tanh(), AvgPool2d(2), Flatten(), Dense(8, 16), sg.ReLU(), Dense(16, 10),
                   sg.Softmax(), input_shape=(1, 8, 8)), "cross_entropy"),
        # (h, w) stride and padding, no bias, a 3x3 max window, a user activation after a pool
        "pairs": (S(Conv2d(2, 3, (2, 3), stride=(1, 2), padding=(0, 1), bias=False),
                    MaxPool2d(3, stride=2), swish(), Flatten(), Dense(12, 1), sg.Sigmoid(),
                    input_shape=(2, 7, 9)), "bce"),
        # a pooling layer first (nothing below the first convolution needs the error)
        "poolfirst": (S(MaxPool2d(2), sg.Tanh(), Conv2d(1, 2, 3), AvgPool2d(3, stride=1),
                        sg.ReLU(), Flatten(), Dense(8, 2), input_shape=(1, 12, 12)), "mse"),
        # wide: 64..256 channels, a 5x5 kernel, a 3x3 max window, a long activation formula
        "wide": (S(Conv2d(3, 64, 5, padding=2), sg.ReLU(), MaxPool2d(3, stride=2),
                   Conv2d(64, 128, 3, stride=2), sg.GELU(), AvgPool2d(3, stride=2),
                   Conv2d(128, 256, 1), sg.ELU(), Flatten(), Dense(2304, 128), sg.ReLU(),
                   Dense(128, 10), sg.Softmax(), input_shape=(3, 32, 32)), "cross_entropy"),
    }


@pytest.fixture(scope="module")
def models(scratch_registries) -> dict[str, sg.Model]:
    x = sg.var("x")
    swish = sg.activation("cnn_test_swish", x * sg.sigmoid(x))   # a user name with '_'
    return {name: sg.compile(net, loss=loss) for name, (net, loss) in _networks(swish).items()}


@pytest.fixture(scope="module")
def plans(models) -> dict[str, NetworkPlan]:
    return {name: model.plan for name, model in models.items()}


@pytest.fixture(scope="module")
def docs(models) -> dict[str, Derivation]:
    return {name: model.derivation for name, model in models.items()}


@pytest.fixture(scope="module")
def texts(docs) -> dict[str, str]:
    return {name: doc.text() for name, doc in docs.items()}


def _batch(shape: tuple[int, ...]) -> str:
    return f"(n x {shape[0]})" if len(shape) == 1 else "(n, " + ", ".join(map(str, shape)) + ")"


def _tensors(plan: NetworkPlan) -> list[tuple[str, str, str]]:
    """(input, layer output, output after the activation) names of each image layer."""
    out, prev = [], "X"
    for f in plan.features:
        letter = str(layer_kind(f.kind).index_formula(f.layer)[0].base.label)
        raw = "F" if len(f.out_shape) == 1 else f"{letter}_{f.name}"
        after = f"A_{f.name}" if f.activation is not None else raw
        out.append((prev, raw, after))
        prev = after
    return out


def _first_trained(plan: NetworkPlan) -> int:
    return next(f.index for f in plan.features if f.param_shapes)


def _section(text: str, title_start: str) -> str:
    part = text[text.index("\n" + title_start) + 1:] + "\n\n"   # the last section too
    return part[:part.index("\n\n")]


def test_model_derivation_is_the_printout_of_its_plan(models, docs):
    # The model adds what the plan does not carry: its optimizer and its kernel source.
    from symgrad.runtime.optimizers import get_optimizer

    for name, model in models.items():
        expected = network_derivation(model.plan, optimizer=get_optimizer(model.optimizer),
                                      source=model.source)
        assert docs[name].text() == expected.text(), name


def test_forward_pass_lists_every_image_layer_with_its_shape(plans, texts):
    for name, plan in plans.items():
        text = texts[name]
        forward = _section(text, "Forward pass with shapes")
        assert f"X: {_batch(plan.input_shape)}" in forward
        c, h, w = plan.input_shape
        assert f"n images of shape (C, H, W) = ({c}, {h}, {w})" in forward
        assert f"rows of {plan.input_dim} features" not in text   # the MLP sentence is wrong here
        for f, (inp, raw, after) in zip(plan.features, _tensors(plan), strict=True):
            assert f"{raw} = {f.name}({inp})    {_batch(f.out_shape)}    {f.layer!r}" in forward
            if f.activation is not None:
                names = {Z: (raw, raw), A: (after, after)}
                assert (f"{after} = {layer_str(f.activation.forward, names)}    "
                        f"{_batch(f.out_shape)}") in forward
        k = plan.layers[0].out_dim
        bias = " + b1" if plan.layers[0].bias else ""
        assert f"Z1 = F @ W1{bias}    (n x {k})" in forward
        assert ", ".join(plan.param_names) in forward
        # The journey runs from the loss through F down to the first kernel.
        journey = re.sub(r"^\(\d+\)\s*", "", forward.splitlines()[-1].strip())   # (n) number
        first = plan.features[_first_trained(plan)].name
        assert journey.startswith("L <- p <- ") and journey.endswith(f"Z_{first} <- W_{first}")
        assert " <- Z1 <- F <- " in journey


def test_each_layer_is_defined_by_its_kinds_index_formula(plans, texts, docs):
    for name, plan in plans.items():
        text, latex = texts[name], docs[name].latex()
        definitions = _section(text, "The image layers, defined in index notation")
        assert "symgrad.prove.layer_rules" in definitions
        for f in plan.features:
            lhs, rhs = layer_kind(f.kind).index_formula(f.layer)
            # The layer's settings typeset (arrows, times) in LaTeX; its repr in the text rows.
            assert f"{f.name} = ${layer_setting(f.layer)[0]}$: {layer_kind(f.kind).title}." \
                in docs[name].markdown()
            assert f"{f.name}(" in text and repr(f.layer) in text
            assert sp.latex(lhs) in latex
            if isinstance(rhs, sp.Max):
                # One element per window position, row-major, each printed by SymPy.
                line = next(row for row in definitions.splitlines()
                            if re.sub(r"^\(\d+\)\s*", "", row.strip())
                            .startswith(f"{sp.sstr(lhs)} = max("))
                args = [sp.sstr(a) for a in rhs.args]
                assert sorted(args) == sorted(re.findall(r"X\[[^\]]*\]", line))
                assert len(args) == f.layer.kernel[0] * f.layer.kernel[1]
                for a in rhs.args:
                    assert sp.latex(a) in latex
            else:
                assert f"{sp.sstr(lhs)} = {sp.sstr(rhs)}" in definitions
                assert sp.latex(rhs) in latex


def test_every_needed_backward_rule_is_printed_with_its_shapes(plans, texts, docs):
    for name, plan in plans.items():
        text, latex = texts[name], docs[name].latex()
        first = _first_trained(plan)
        for f, (inp, raw, _) in zip(plan.features, _tensors(plan), strict=True):
            if f.index < first:
                continue
            section = _section(text, f"Back through {f.name} ")
            kind = layer_kind(f.kind)
            assert "symgrad.prove.layer_rules" in section
            assert f"d{raw} = dL/d{raw}, shape {_batch(f.out_shape)}" in section
            params = dict(f.param_shapes)
            for rule in kind.rules:
                if rule.target != "dX" and rule.target[1:] not in params:
                    assert f"{rule.target}_{f.name}" not in text     # Conv2d(bias=False)
                    continue
                if rule.target == "dX" and f.index == first:
                    assert "dX" in section and "is not needed" in section
                    assert f"d{inp}: " not in section
                    continue
                assert f"In words: {rule.text}." in section
                assert index_text(rule.index_latex) in section
                assert rule.index_latex.split("=", 1)[1].strip() in latex
                assert rule.latex.split("=", 1)[1].strip() in latex
                given = (f"d{inp}: {_batch(f.in_shape)}" if rule.target == "dX" else
                         f"{rule.target}_{f.name}: {params[rule.target[1:]]}")
                assert f"shapes: {given} from " in section, (name, f.name, rule.target)
            for p, shape in f.param_shapes:
                assert f"{p} = {f.name}.{p} {shape}" in section


def test_conv0_reads_as_the_lecture_would_write_it(texts):
    # The brief's example, whole: dW of conv0 with its shapes, and the reshape of Flatten.
    text = texts["main"]
    assert ("shapes: dW_conv0: (4, 1, 3, 3) from X: (n, 1, 8, 8), dZ_conv0: (n, 4, 8, 8)"
            in text)
    assert "shapes: db_conv0: (4,) from dZ_conv0: (n, 4, 8, 8)" in text
    assert "shapes: dY_avgpool0: (n, 8, 1, 1) from dF: (n x 8)" in text
    assert "shapes: dY_maxpool0: (n, 4, 4, 4) from dZ_conv1: (n, 8, 2, 2), W_conv1: (8, 4, 3, 3)" \
        in text
    assert "dF = dZ1 @ W1.T    (n x 16) . (16 x 8) -> n x 8" in text
    assert "dW1 = F.T @ dZ1    (8 x n) . (n x 16) -> 8 x 16" in text
    assert "dX = dZ_1 W_1^T is not needed" not in text
    assert "Sizes: s = 1, P = 1, (k_h, k_w) = (3, 3), k = k_h k_w = 9. X reads 0 outside" in text


def test_pooling_rules_explain_the_mask_and_the_spread(plans, texts):
    text = texts["main"]
    maxpool = _section(text, "Back through maxpool0 ")
    for note in LAYER_KINDS["maxpool2d"].notes:
        assert note in maxpool                     # derivative of max is 1 at the max; ties
    assert "first maximum" in maxpool and "ties included" in maxpool
    # The mask reads where the maxima are: the pool's input is among what the rule reads.
    assert "from dY_maxpool0: (n, 4, 4, 4), A_conv0: (n, 4, 8, 8)" in maxpool
    avgpool = _section(text, "Back through avgpool0 ")
    assert "k = k_h k_w = 4" in avgpool and "1/(k_h k_w)" in avgpool
    assert "spread over each window" in avgpool
    flatten = _section(text, "Back through flatten0 ")
    assert "reshaped to (n, C, H, W)" in flatten
    assert "(n, C, H, W) = (n, 8, 1, 1)" in flatten


def test_activation_derivative_is_multiplied_in(plans, texts):
    for name, plan in plans.items():
        text = texts[name]
        first = _first_trained(plan)
        for f, (_, raw, after) in zip(plan.features, _tensors(plan), strict=True):
            if f.activation is None:
                continue
            names = {Z: (raw, raw), A: (after, after)}
            deriv = layer_str(f.activation.derivative, names)
            header = f"The activation after {f.name}: {f.activation.name}"
            if f.index < first:     # below the first trained layer no error is needed
                assert header not in text
                continue
            section = _section(text, header)
            assert f"f'(z) = {layer_str(f.activation.derivative_raw, {Z: ('z', 'z')})}" \
                in section
            assert f"d{raw} = d{after} * " in section and deriv in section
            assert f"{_batch(f.out_shape)}" in section
    # ReLU's mask after conv0, tanh's 1 - a^2 after conv1, the user's swish after a pool.
    assert "dZ_conv0 = dA_conv0 * (A_conv0 > 0)" in texts["main"]
    assert "dZ_conv1 = dA_conv1 * (1 - A_conv1**2)" in texts["main"]
    assert "dY_maxpool0 = dA_maxpool0 * " in texts["pairs"]


def test_stride_padding_pairs_and_no_bias(plans, texts):
    text = texts["pairs"]
    assert "s = (s_h, s_w) = (1, 2) for rows and columns" in text
    assert "P = (P_h, P_w) = (0, 1) for rows and columns" in text
    assert "X[n, c, i + p, 2*j + q - 1]" in text          # SymPy's index formula, this layer
    assert "Z = X (correlation) W\n" in text               # no + b
    assert "db_conv0" not in text and "conv0.b" not in text
    assert "Back through conv0 (2-D convolution): gradients of W\n" in text


def test_layers_below_the_first_convolution_need_no_error(texts):
    text = texts["poolfirst"]
    assert "dX = dA_maxpool0 is not needed" in text
    assert "Below conv0: maxpool0" in text
    assert "activation after maxpool0" not in text
    summary = _section(text, "Summary: the backward pass as code")
    assert "dA_maxpool0 =" not in summary and "dW_conv0 = A_maxpool0 (correlation)" in summary


def test_summary_continues_from_dF_through_the_image_layers(plans, texts):
    summary = _section(texts["main"], "Summary: the backward pass as code")
    lines = ["dF = dZ1 @ W1.T", "dY_avgpool0 = dF reshaped", "dA_conv1 = dY_avgpool0 / (kh kw)",
             "dZ_conv1 = dA_conv1 * (1 - A_conv1**2)", "dW_conv1 = Y_maxpool0 (correlation)",
             "db_conv1 = sum over n, i, j of dZ_conv1", "dY_maxpool0 = full convolution of",
             "dA_conv0 = dY_maxpool0 routed", "dZ_conv0 = dA_conv0 * (A_conv0 > 0)",
             "dW_conv0 = X (correlation) dZ_conv0", "db_conv0 = sum over n, i, j of dZ_conv0"]
    positions = [summary.index(line) for line in lines]
    assert positions == sorted(positions)
    assert "dX_" not in summary and "dA_conv0 = dY_maxpool0" in summary
    saved = summary.splitlines()[-1]
    assert saved.startswith("Saved from the forward pass: X (input of conv0")
    assert "A_conv0 (read by f' after conv0; input of maxpool0, read by its rules)" in saved
    assert "F (input of layer 1, for dW_1)" in saved


def test_markdown_and_text_state_the_same_facts(plans, docs, texts):
    for name, plan in plans.items():
        md, text = docs[name].markdown(), texts[name]
        assert [ln[3:] for ln in md.splitlines() if ln.startswith("## ")] == \
            [sec.heading for sec in docs[name].ordered()]
        for f in plan.features:
            notes = layer_kind(f.kind).notes if f.index >= _first_trained(plan) else ()
            for fact in (_batch(f.out_shape), *notes):
                assert fact in md and fact in text, (name, fact)
            assert layer_setting(f.layer)[0] in md and repr(f.layer) in text
            for rule in layer_kind(f.kind).rules:
                has = rule.target == "dX" or rule.target[1:] in dict(f.param_shapes)
                if has and (f.index > _first_trained(plan) or rule.target != "dX"):
                    assert rule.text in md and rule.text in text
                    assert rule.index_latex.split("=", 1)[1].strip() in md
                    assert index_text(rule.index_latex) in text


def test_user_names_stay_escaped_and_latex_is_ascii(docs):
    latex = docs["pairs"].latex()
    assert latex.isascii()
    # In the title, the section headings, the prose and \operatorname: never raw.
    assert latex.count("cnn\\_test\\_swish") >= 4 and "cnn_test_swish" not in latex


@pytest.mark.parametrize("name", ["main", "pairs", "poolfirst", "wide"])
def test_latex_compiles_without_overfull_boxes(docs, name, tmp_path, pdflatex):
    pdf = docs[name].to_tex(tmp_path / f"{name}.tex", compile_pdf=True)
    assert pdf.read_bytes().startswith(b"%PDF")
    log = (tmp_path / f"{name}.log").read_text(errors="replace")
    assert "Overfull" not in log, re.findall(r"Overfull.*", log)


def test_a_cnn_plan_whose_layers_do_not_chain_is_rejected(plans):
    plan = plans["main"]
    broken = dataclasses.replace(plan.features[2], in_shape=(4, 5, 5))
    features = (*plan.features[:2], broken, *plan.features[3:])
    with pytest.raises(ValueError, match=r"conv1 expects input shape \(4, 5, 5\) but maxpool0 "
                                         r"gives \(4, 4, 4\)"):
        network_derivation(dataclasses.replace(plan, features=features))


# -- the helpers that read the registry's rules ---------------------------------------------
@pytest.mark.parametrize("kind", sorted(LAYER_KINDS))
def test_every_registered_rule_reads_as_plain_text_and_names_its_operands(kind):
    entry = LAYER_KINDS[kind]
    for rule in entry.rules:
        plain = index_text(rule.index_latex)
        assert "\\" not in plain and "{" not in plain and plain.startswith(f"dL/d{rule.target[1]}")
        tensors = {"X", "dZ", "dY", *entry.params}
        assert rule_operands(rule, tensors)            # every rule reads some tensor
        # Substituting every letter leaves none of the generic gradients behind.
        names = {k: (f"{k}_{{\\mathrm{{t}}}}", k) for k in
                 ("X", "dX", "Z", "dZ", "Y", "dY", "W", "dW", "b", "db")}
        assert "\\partial L" not in substitute_latex(rule.latex, names)
