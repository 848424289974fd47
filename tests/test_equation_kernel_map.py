"""Kernel line <-> equation (issue 10, item 14): every numbered equation of a network
printout that has a key is cited by the kernel line implementing it (``# [eq dW2]``), the
cited line is that statement, every backward statement is cited, and the printout's
appendix lists each equation number beside its kernel line. Render and codegen agree by
construction: both take the keys from the plan stage (`symgrad.derive.plan`)."""

from __future__ import annotations

import re

import pytest

import symgrad as sg
from symgrad.derive.plan import NetworkPlan
from symgrad.render.network_backward import kernel_lines


@pytest.fixture(scope="module")
def mlp():
    net = sg.Sequential(sg.Dense(3, 8), sg.ReLU(), sg.Dense(8, 5), sg.Tanh(),
                        sg.Dense(5, 1), sg.Sigmoid())
    return sg.compile(net, loss="bce", optimizer=sg.Adam())


@pytest.fixture(scope="module")
def fused():
    # Plain SGD: the step is fused into the dW GEMMs (_backward_step).
    net = sg.Sequential(sg.Dense(2, 4), sg.Identity(), sg.Dense(4, 1))
    return sg.compile(net, loss="mse", optimizer=sg.SGD(lr=0.1))


@pytest.fixture(scope="module")
def cnn():
    net = sg.Sequential(sg.Conv2d(1, 2, 3), sg.ReLU(), sg.MaxPool2d(2), sg.Conv2d(2, 3, 2),
                        sg.Tanh(), sg.AvgPool2d(2), sg.Flatten(), sg.Dense(3, 2), sg.Softmax(),
                        input_shape=(1, 10, 10))
    return sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.1, momentum=0.9))


def _function(source: str, name: str) -> list[str]:
    """The body lines of generated function ``name``."""
    start = source.index(f"def {name}(")
    end = source.find("\n@njit", start)
    body = source[start:end if end >= 0 else None].splitlines()[1:]
    return [line for line in body if line.strip()]


def _statements(lines: list[str]) -> list[str]:
    """Lines that do work: not comments, the docstring or the batch-size line."""
    return [line for line in lines if not line.strip().startswith(("#", '"""', "m = X.shape"))]


def _cited(source: str, key: str) -> list[str]:
    return [code for _, code in kernel_lines(source).get(key, [])]


@pytest.mark.parametrize("name", ["mlp", "fused", "cnn"])
def test_every_tagged_equation_has_a_citing_kernel_line(name, request):
    model = request.getfixturevalue(name)
    tagged = model.derivation.equation_numbers()
    cited = kernel_lines(model.source)
    missing = [key for key in tagged if key not in cited]
    assert not missing
    # ... and every key the kernel cites is an equation of the printout.
    assert set(cited) <= set(tagged), set(cited) - set(tagged)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_every_backward_statement_is_cited(name, request):
    source = request.getfixturevalue(name).source
    statements = _statements(_function(source, "_backward"))
    assert statements
    uncited = [line for line in statements if "[eq " not in line]
    assert not uncited, uncited


def test_cited_lines_are_the_implementing_statements(mlp):
    # Printout layer j is the kernel's index j - 1 (W_3 is W2 there, dZ_3 is D2).
    src = mlp.source
    assert _cited(src, "dW3")[0].startswith("_mm_tn(A1, D2, gW2,")      # dW3 = A2^T dZ3
    assert _cited(src, "dW2")[0].startswith("_mm_tn(A0, D1, gW1,")      # dW2 = A1^T dZ2
    assert _cited(src, "dW1")[0].startswith("_mm_tn(X, D0, gW0,")       # dW1 = X^T dZ1
    assert _cited(src, "db2") == ["_column_sums(D1, gb1)"]
    assert _cited(src, "dA2")[0].startswith("_mm_nt(D2, W2, D1,")       # dA2 = dZ3 W3^T
    assert _cited(src, "dA1")[0].startswith("_mm_nt(D1, W1, D0,")
    assert re.match(r"a\d_bwd\(D1, A1, A1\)", _cited(src, "dZ2")[0])   # tanh' in A2
    assert re.match(r"a\d_bwd\(D0, A0, A0\)", _cited(src, "dZ1")[0])   # relu' in A1
    assert "_output(" in _cited(src, "dZ3")[0]                        # p - y, Step C
    assert _cited(src, "Z1")[0].startswith("_mm(X, W0, A0,")
    assert all(line.startswith(("_prologue(", "_step(")) for line in _cited(src, "update"))
    assert len([c for c in _cited(src, "update") if c.startswith("_step(")]) == 6


def test_fused_sgd_cites_gradient_and_update_on_the_gemm(fused):
    src = fused.source
    step = _function(src, "_backward_step")
    dw = [line for line in step if "[eq dW2 update]" in line]
    assert len(dw) == 1 and "_mm_tn(A0, D1, W1, alpha, beta, ab)" in dw[0]
    # Identity between the layers: dZ1 = dA1 is the dA product itself.
    assert _cited(src, "dZ1")[0].startswith("_mm_nt(D1, W1, D0,")
    assert _cited(src, "dA1") == _cited(src, "dZ1")


def test_cnn_lines(cnn):
    src = cnn.source
    # Image layer indices: conv0 0, maxpool0 1, conv1 2, avgpool0 3, flatten0 4.
    assert _cited(src, "conv1.dW")[0].startswith("_mm_tn(FC2, FD2, FGW2,")
    assert _cited(src, "conv1.dW")[1].startswith("lk_conv_weight_grad(FGW2, gCW2)")
    assert _cited(src, "conv1.dX")[0].startswith("_mm_nt(FD2, FW2, FC2,")
    assert _cited(src, "conv1.dX")[1].startswith("lk_col2im(FC2,")
    assert _cited(src, "conv0.db") == ["_column_sums(FD0, gCb0)"]
    assert _cited(src, "maxpool0.dX")[0].startswith("lk_maxpool_back(FA0, FD1,")
    assert _cited(src, "avgpool0.dX")[0].startswith("lk_avgpool_back(FD3,")
    assert _cited(src, "flatten0.dX")[0].startswith("lk_rows_to_map(FD4,")
    assert _cited(src, "dF")[0].startswith("_mm_nt(D0, W0, FD4,")
    assert re.match(r"a\d_bwd\(FD2, FA2, FA2\)", _cited(src, "conv1.dZ")[0])   # tanh'
    assert _cited(src, "conv1.fwd")[2].startswith("_mm(FC2, FW2, FA2,")
    assert re.match(r"a\d_fwd_b\(FA2, Cb2\)", _cited(src, "conv1.fwd")[3])   # bias + tanh
    # conv0 is the first layer with parameters: no dX below it.
    assert "conv0.dX" not in kernel_lines(src)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_appendix_lists_number_line_and_code(name, request):
    model = request.getfixturevalue(name)
    doc, lines = model.derivation, model.source.splitlines()
    appendix = [s for s in doc.ordered() if s.appendix and s.title.startswith("each equation")]
    assert len(appendix) == 1
    entries = {m.group(2): (int(m.group(1)), int(m.group(3)), m.group(4))
               for step in appendix[0].steps
               if (m := re.match(r"\((\d+)\) (?:\$[^$]*\$ )?\[eq (\S+)\], line (\d+): `(.*?)`",
                                 step.text))}
    numbers = doc.equation_numbers()
    assert set(entries) == set(numbers)
    for key, (number, line, code) in entries.items():
        assert number == numbers[key]
        assert "[eq " in lines[line - 1] and key in lines[line - 1].split("[eq ")[1]
        assert lines[line - 1].strip().startswith(code)


def test_numbers_follow_the_document(mlp):
    doc = mlp.derivation
    numbers = doc.equation_numbers()
    text = doc.text()
    # dW2's number in the appendix is the number printed beside dW2 = A1.T @ dZ2.
    assert re.search(rf"^\({numbers['dW2']}\)\s*dW2 = A1\.T @ dZ2", text, re.M)
    assert f"({numbers['dW2']}) dW_2 = A_1^T dZ_2 [eq dW2], line " in text
    assert f"({numbers['dW2']}) $dW_2 = A_1^{{T}} dZ_2$ [eq dW2], line" in \
        doc.markdown()


def test_exported_module_keeps_the_citations(mlp, tmp_path):
    path = mlp.export(str(tmp_path / "trainer.py"))
    exported = open(path).read()
    assert set(kernel_lines(exported)) == set(kernel_lines(mlp.source))


def test_keys_are_the_plans_backward_names(mlp):
    plan: NetworkPlan = mlp.plan
    tagged = mlp.derivation.equation_numbers()
    assert {lhs.name for lhs, _ in plan.backward} <= set(tagged)


def test_driver_source_has_no_numbers_or_widths():
    # Citations are keys, not numbers: a change of widths keeps the cached driver.
    from symgrad.codegen.kernels import kernel_sources
    from symgrad.runtime.optimizers import Adam

    def driver(width):
        net = sg.Sequential(sg.Dense(2, width), sg.ReLU(), sg.Dense(width, 1), sg.Sigmoid())
        plan = sg.compile(net, loss="bce").plan
        return dict(kernel_sources(plan, "float64", Adam()))["driver"]

    assert driver(4) == driver(16)
    assert "[eq dW2]" in driver(4)
