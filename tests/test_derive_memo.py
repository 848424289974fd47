"""The on-disk derivation memo: served only for the exact same key, never stale, never fatal."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import sympy as sp

from symgrad.codegen.cache import CacheWarning
from symgrad.derive import memo, memo_format


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SYMGRAD_DERIVATION_CACHE", raising=False)
    return tmp_path


def _never():
    raise AssertionError("derived again although the result was on disk")


def test_second_call_reads_the_file(cache):
    key = ("memo test", sp.Symbol("x", real=True) ** 2)
    assert memo.remembered("t", key, lambda: {"value": 1}) == {"value": 1}
    assert memo.memo_path("t", key).is_file()
    assert memo.remembered("t", key, _never) == {"value": 1}


def test_key_includes_symbol_assumptions(cache):
    real, plain = sp.Symbol("x", real=True), sp.Symbol("x")
    assert str(real) == str(plain)   # printed alike: the key must not use str()
    memo.remembered("t", (real,), lambda: "real")
    assert memo.remembered("t", (plain,), lambda: "plain") == "plain"


def test_damaged_file_is_derived_again(cache):
    key = ("damaged",)
    memo.remembered("t", key, lambda: 1)
    memo.memo_path("t", key).write_bytes(b"not a memo entry")
    with pytest.warns(CacheWarning, match="damaged cache entry"):
        assert memo.remembered("t", key, lambda: 2) == 2
    assert memo_format.decode(memo.memo_path("t", key).read_bytes()) == 2


def test_switch_off(cache, monkeypatch):
    monkeypatch.setenv("SYMGRAD_DERIVATION_CACHE", "0")
    calls = []
    for _ in range(2):
        memo.remembered("t", ("off",), lambda: calls.append(1))
    assert len(calls) == 2 and not memo.memo_path("t", ("off",)).exists()


def test_unpicklable_result_is_returned_not_cached(cache):
    value = memo.remembered("t", ("closure",), lambda: (lambda: 3))
    assert value() == 3 and not memo.memo_path("t", ("closure",)).exists()


def test_fingerprint_covers_the_library_source(cache, monkeypatch):
    key = ("fingerprint",)
    before = memo.memo_path("t", key)
    monkeypatch.setattr(memo, "_library_fingerprint", lambda: "edited library")
    assert memo.memo_path("t", key) != before


def test_a_new_process_reuses_the_derivation(cache):
    """Process 1 derives and writes; process 2 must load the same plan without SymPy work."""
    script = textwrap.dedent("""
        import sys
        import symgrad as sg
        from symgrad.simplify import fusion, saved_output
        if sys.argv[1] == "second":
            def refuse(*args, **kwargs):
                raise SystemExit("derived again")
            fusion.fuse_output = refuse
            saved_output.activation_plan = refuse
        net = sg.Sequential(sg.Dense(3, 4), sg.Tanh(), sg.Dense(4, 2), sg.Softmax())
        model = sg.compile(net, loss="cross_entropy")
        print(model.plan.layers[0].activation.derivative, model.plan.output.delta)
    """)
    outs = [subprocess.run([sys.executable, "-c", script, which], capture_output=True,
                           text=True, check=True).stdout for which in ("first", "second")]
    assert outs[0] == outs[1] == "1 - a**2 p - y\n"


def test_a_new_latex_name_is_not_served_from_the_cache(cache):
    """The plan carries the LaTeX name into every printout: a process that defines the
    same formula under another latex= must print its own (fuzzing found the first
    process's name in the second's derivation)."""
    script = textwrap.dedent(r"""
        import sys
        import symgrad as sg
        p, y = sg.var("p"), sg.var("y")
        act = sg.activation("memo_tex", "x*sin(x)", latex=sys.argv[1])
        loss = sg.loss("memo_tex_loss", (p - y)**4, latex=sys.argv[1])
        model = sg.compile(sg.Sequential(sg.Dense(2, 3), act(), sg.Dense(3, 1)), loss=loss)
        tex = model.derivation.latex()
        print(tex.count(sys.argv[1]) >= 2, "AAA" in tex, "BBB" in tex)
    """)
    outs = [subprocess.run([sys.executable, "-c", script, latex], capture_output=True,
                           text=True, check=True).stdout.split()
            for latex in (r"\operatorname{AAA}", r"\operatorname{BBB}")]
    assert outs == [["True", "True", "False"], ["True", "False", "True"]]
