"""Kernel line <-> equation (issue 10, item 14): every numbered equation of a network
printout that has a key is cited by the kernel line implementing it (``# [eq dW_l]``: the
Dense layers run as one loop, whose lines implement every layer's equation), the cited
line is that statement, every backward statement is cited, and the printout's appendix
lists each equation number beside its kernel line. Render and codegen agree by
construction: both take the keys from the plan stage (`symgrad.derive.plan`)."""

from __future__ import annotations

import re

import pytest

import symgrad as sg
from symgrad.derive.plan import NetworkPlan, citing_key, generic_dense_key
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


# A line that does work calls a kernel (a GEMM, a shared loop, the output, a step);
# the others are the loop's bookkeeping (sizes, offsets, views, branches).
_CALL = re.compile(r"^\s*(?:\w+(?:, \w+)? = )?(_mm\w*|_column_sums|_add_bias|a\d+_\w+|lk_\w+|"
                   r"_output|_step|_prologue)\(")


def _statements(lines: list[str]) -> list[str]:
    """Lines that call a kernel (not comments, bookkeeping or the docstring)."""
    return [line for line in lines if _CALL.match(line)]


def _cited(source: str, key: str, dense_layers: int = 3) -> list[str]:
    """The lines citing equation ``key`` (directly or by its layer-generic key)."""
    lines = kernel_lines(source)
    found = lines.get(key) or lines.get(citing_key(key, dense_layers), [])
    return [code for _, code in found]


@pytest.mark.parametrize("name", ["mlp", "fused", "cnn"])
def test_every_tagged_equation_has_a_citing_kernel_line(name, request):
    model = request.getfixturevalue(name)
    tagged = model.derivation.equation_numbers()
    cited = kernel_lines(model.source)
    dense = len(model.plan.layers)
    missing = [key for key in tagged if key not in cited
               and citing_key(key, dense) not in cited]
    assert not missing
    # ... and every key the kernel cites is an equation of the printout, the generic key
    # of some of them, or a line of the Dense loop no layer of this model runs (with one
    # Dense layer there is no dA).
    resolved = set(tagged) | {citing_key(key, dense) for key in tagged}
    loop = {generic_dense_key(what) for what in ("Z", "dZ", "dW", "db", "dA")}
    assert set(cited) - resolved <= loop, set(cited) - resolved


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_every_backward_statement_is_cited(name, request):
    source = request.getfixturevalue(name).source
    statements = _statements(_function(source, "_backward"))
    assert len(statements) >= 4
    uncited = [line for line in statements if "[eq " not in line]
    assert not uncited, uncited


def test_cited_lines_are_the_implementing_statements(mlp):
    # Every Dense layer's dW is the loop's one dW product, and so on.
    src = mlp.source
    for j in (1, 2, 3):
        assert _cited(src, f"dW{j}") == [
            "_mm_tn(src, D, _dense_view(gtheta, w_at, n_in, n_out), ONE, ZERO, ab)"]
        assert _cited(src, f"db{j}") == ["_column_sums(D, gtheta[b_at:b_at + n_out])"]
        assert _cited(src, f"Z{j}")[0] == "_mm(src, W, out, ONE, ZERO, ab)"
    for j in (1, 2):
        assert _cited(src, f"dA{j}") == ["_mm_nt(D, W, below, ONE, ZERO, ab)"]
        bwd = _cited(src, f"dZ{j}")           # one branch per activation: relu, tanh
        assert len(bwd) == 2 and all(re.fullmatch(r"a\d_bwd\(below, src, src\)", c) for c in bwd)
    assert "_output(" in _cited(src, "dZ3")[0]                        # p - y, Step C
    assert all(line.startswith(("_prologue(", "_step(")) for line in _cited(src, "update"))
    assert _cited(src, "update")[-1] == "_step(theta, gtheta, S[0], S[1], Hs)"   # one call


def test_the_loop_branches_to_each_layers_own_activation(mlp):
    # The layout table's activation column picks the branch whose comment names it.
    from symgrad.runtime.training import trainer_for

    module = trainer_for(mlp).module
    src = _function(mlp.source, "_forward")
    branch = {int(m.group(1)): m.group(2) for line in src
              if (m := re.search(r"act == (\d+):  # (\w+)", line))}
    codes = [int(row[4]) for row in module.DENSE_LAYOUT]
    assert [branch[c] for c in codes[:-1]] == ["relu", "tanh"] and codes[-1] == -1


def test_fused_sgd_cites_gradient_and_update_on_the_gemm(fused):
    src = fused.source
    step = _function(src, "_backward_step")
    dw = [line for line in step if "[eq dW_l update]" in line]
    assert len(dw) == 1 and "_mm_tn(src, D, W, alpha, beta, ab)" in dw[0]
    # Identity between the layers: dZ1 = dA1 is the dA product itself (in _backward and
    # in _backward_step).
    assert _cited(src, "dZ1", 2) == ["_mm_nt(D, W, below, ONE, ZERO, ab)"] * 2
    assert _cited(src, "dA1", 2) == _cited(src, "dZ1", 2)


def test_cnn_lines(cnn):
    src = cnn.source
    # Image layer indices: conv0 0, maxpool0 1, conv1 2, avgpool0 3, flatten0 4.
    # Channel-major maps: the kernel (O, C, kh, kw) is the GEMM's (O, K) as it is.
    assert _cited(src, "conv1.dW") == [
        "_mm_nt(lk_cm(FD2, G[2, 3]), lk_cm(FC2, G[2, 0] * 4), lk_cm(gCW2, G[2, 3]), ONE, ZERO, ab)"]
    assert _cited(src, "conv1.dX")[0].startswith(
        "_mm_tn(lk_cm(CW2, G[2, 3]), lk_cm(FD2, G[2, 3]), lk_cm(FC2, G[2, 0] * 4),")
    assert _cited(src, "conv1.dX")[1].startswith("lk_col2im(FC2,")
    assert _cited(src, "conv0.db") == ["lk_row_sums(FD0, gCb0, FS0)"]
    assert _cited(src, "maxpool0.dX")[0].startswith("lk_maxpool_back(FA0, FA1, FD1,")
    assert _cited(src, "avgpool0.dX")[0].startswith("lk_avgpool_back(FD3,")
    assert _cited(src, "flatten0.dX") == ["lk_rows_to_map(FD4, FD3)"]
    assert _cited(src, "dF")[0].startswith(
        "_mm_nt(_dense_view(Dbuf, 0, m, n0), _dense_view(theta, LT[0, 2], m0, n0), FD4,")
    assert re.match(r"a\d_bwd\(FD2, FA2, FA2\)", _cited(src, "conv1.dZ")[0])   # tanh'
    assert _cited(src, "conv1.fwd")[1].startswith("_mm(lk_cm(CW2, G[2, 3]), lk_cm(FC2,")
    assert re.match(r"a\d_fwd_cb\(lk_cm\(FA2, G\[2, 3\]\), Cb2\)",
                    _cited(src, "conv1.fwd")[2])   # bias + tanh, one bias per channel row
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
    dense = len(model.plan.layers)
    for key, (number, line, code) in entries.items():
        assert number == numbers[key]
        keys = re.search(r"\[eq ([^\]]+)\]", lines[line - 1]).group(1).split()
        assert key in keys or citing_key(key, dense) in keys
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
    assert "[eq dW_l]" in driver(4)
