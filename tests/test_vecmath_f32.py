"""float32 erf, erfc and erfc(c u) (symgrad.codegen.vecmath_kernels): vectorised
loops, and accuracy where `tests/test_vecmath_accuracy.py` does not look.

* Vectorisation: a loop over a float32 array calling each function compiles to a
  ``vector.body`` with no scalar math call. erf is native float32 (``<16 x float>``
  with AVX-512, no double vector); erfc is evaluated in float64 to 2^-32 and rounded
  once (`_vm_erfc_for_f32`: fewer operations than a float32 double-float scheme), so
  its loops hold double vectors by design.
* Accuracy against mpmath itself (the 10^6-point test uses SciPy's float64 values as its
  reference): at the switch points of the approximations, in the subnormal tail of erfc,
  and for erfc(c u) with c u carried unrounded -- where erfc of the rounded float32
  product is tens of ulps off.
"""

from __future__ import annotations

import re
import sys

import mpmath
import numpy as np
import pytest
from numba import njit

from symgrad.codegen import vecmath_kernels as vk

BOUND = 2.0   # ulp, as tests/test_vecmath_accuracy.py (issue 8)
_SCALAR_MATH = re.compile(r"call [^\n]*@\"?(?:llvm\.(?:exp|log|pow)\.f\d+|(?:exp|erf|erfc)f?\b"
                          r"|[\w.]*vm_\w+)")


@njit(error_model="numpy", fastmath={"contract"})   # no cache: the IR is inspected
def _erf_loop(x, out):
    for i in range(x.size):
        out[i] = vk.vm_erf_f32(x[i])


@njit(error_model="numpy", fastmath={"contract"})   # no cache: the IR is inspected
def _erfc_loop(x, out):
    for i in range(x.size):
        out[i] = vk.vm_erfc_f32(x[i])


@njit(error_model="numpy", fastmath={"contract"})   # no cache: the IR is inspected
def _scaled_loop(x, c_hi, c_lo, out):
    for i in range(x.size):
        out[i] = vk.vm_erfc_scaled_f32(x[i], c_hi, c_lo)


def _scaled(x: np.ndarray, c) -> np.ndarray:
    with mpmath.workprec(200):
        hi = float(c)
        lo = float(mpmath.mpf(c) - hi)
    out = np.empty_like(x)
    _scaled_loop(x, hi, lo, out)
    return out


def _apply(loop, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    loop(x, out)
    return out


def _ulps(got: np.ndarray, exact: list) -> np.ndarray:
    """|got - exact| in float32 ulps of the exact value (subnormal spacing below normal)."""
    ref = np.array([float(v) for v in exact])
    tiny = float(np.finfo(np.float32).smallest_normal)
    ulp = np.spacing(np.maximum(np.abs(ref), tiny).astype(np.float32)).astype(np.float64)
    with mpmath.workprec(80):
        diff = [abs(mpmath.mpf(float(g)) - e) for g, e in zip(got, exact, strict=True)]
    return np.array([float(d) for d in diff]) / ulp


@pytest.mark.parametrize("name", ["erf", "erfc", "erfc_scaled"])
def test_float32_loop_is_vectorised(name: str) -> None:
    x = np.linspace(-12, 12, 1001, dtype=np.float32)
    if name == "erfc_scaled":
        _scaled(x, 1 / mpmath.sqrt(2))
        loop = _scaled_loop
    else:
        loop = _erf_loop if name == "erf" else _erfc_loop
        _apply(loop, x)
    ir = "\n".join(loop.inspect_llvm().values())
    assert re.search(r"^vector\.body\d*:", ir, re.M), f"{name}: the loop is not vectorised"
    assert re.search(r"<(?:4|8|16) x float>", ir), name
    if name == "erf":
        assert not re.search(r"<\d+ x double>", ir), f"{name}: the loop computes in float64"
    else:   # float64 on purpose, rounded once per value
        assert re.search(r"fptrunc <(?:4|8|16) x double>", ir), name
    assert not _SCALAR_MATH.search(ir), f"{name}: {_SCALAR_MATH.findall(ir)[:3]}"


def _around(points: list[float], n: int = 40) -> np.ndarray:
    """Each point, its float32 neighbours and a few nearby values, both signs."""
    out = []
    for p in points:
        v = np.float32(p)
        out += list(v + np.arange(-n, n + 1, dtype=np.float32) * np.spacing(v))
        out += list(np.float32(p) * (1 + np.linspace(-0.02, 0.02, n, dtype=np.float32)))
    x = np.array(out, dtype=np.float32)
    return np.concatenate([x, -x])


@pytest.mark.parametrize("name", ["erf", "erfc"])
def test_switch_points_and_subnormal_tail_against_mpmath(name: str) -> None:
    # 1/2 and 1: series / tail switches (erfc / erf); 1/1.05: t = T0 (v = 0, the pair
    # constant alone); 9.2 to 10.06: erfc's subnormal results; 10.125: the cut to 0
    x = _around([0.5, 1.0, 1 / 1.05, 2.0, 4.0, 9.2, 9.9, 10.05, 10.06, 10.125])
    x = np.concatenate([x, np.linspace(-10.2, 10.2, 1500, dtype=np.float32)])
    got = _apply(_erf_loop if name == "erf" else _erfc_loop, x)
    f = mpmath.erf if name == "erf" else mpmath.erfc
    with mpmath.workprec(80):
        exact = [f(mpmath.mpf(float(v))) for v in x]
    err = _ulps(got, exact)
    worst = int(np.argmax(err))
    print(f"| {name} | float32 vs mpmath | {err.max():.3f} ulp | {err.size} points |")
    assert err.max() <= BOUND, f"{name}({x[worst]!r}) = {got[worst]!r}: {err.max():.2f} ulp"


@pytest.mark.parametrize("c", [1 / mpmath.sqrt(2), -1 / mpmath.sqrt(2), mpmath.pi, 3])
def test_erfc_scaled_carries_the_rounding_of_c_times_u(c) -> None:
    """erfc(c u) within 2 ulp over the whole range where it is not 0 or 2, subnormal
    results included; erfc of the rounded float32 product is > 10 ulp off there."""
    rng = np.random.default_rng(7)
    x = (np.concatenate([rng.uniform(-10.2, 10.2, 2500), np.linspace(-1, 1, 300)])
         / float(c)).astype(np.float32)
    got = _scaled(x, c)
    naive = _apply(_erfc_loop, (np.float32(float(c)) * x).astype(np.float32))
    with mpmath.workprec(100):
        exact = [mpmath.erfc(mpmath.mpf(c) * mpmath.mpf(float(v))) for v in x]
    err = _ulps(got, exact)
    worst = int(np.argmax(err))
    print(f"| erfc(c u), c = {float(c):.4g} | float32 | {err.max():.3f} ulp | {err.size} points |")
    assert err.max() <= BOUND, f"u = {x[worst]!r}: {err.max():.2f} ulp"
    assert _ulps(naive, exact).max() > 10


def test_scaled_special_values() -> None:
    """c u at +-inf, NaN, 0 and -0 as erfc of the product; u = 0 at any c gives 1."""
    u = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e38, -1e38], dtype=np.float32)
    got = _scaled(u, 1 / mpmath.sqrt(2))
    np.testing.assert_array_equal(got[[0, 1, 3, 4, 5, 6]], [0.0, 2.0, 1.0, 1.0, 0.0, 2.0])
    assert np.isnan(got[2])
    np.testing.assert_array_equal(_scaled(u, -3)[[0, 1, 3]], [2.0, 0.0, 1.0])


def test_gelu_float32_kernels_are_vector_code() -> None:
    """GELU's fused float32 loops are vector code without calls; the slope (e^(-z^2/2)
    as a float32 pair) widens nothing to double, the forward widens only erfc."""
    from symgrad.definition import activations as acts
    from symgrad.definition.layers import Dense, Sequential
    from symgrad.model import compile as sg_compile
    from symgrad.runtime.training import trainer_for

    model = sg_compile(Sequential(Dense(3, 4), acts.GELU(), Dense(4, 2), acts.Softmax()),
                       loss="cross_entropy", dtype="float32")
    rng = np.random.default_rng(0)
    model.compiled_backward(rng.normal(size=(8, 3)), rng.integers(0, 2, 8))
    mod = trainer_for(model).module
    driver = sys.modules[mod._forward.py_func.__module__]
    # The driver calls them by symbol (codegen/linked_calls.py): .kernel is the dispatcher.
    kernels = {n.split("_", 1)[1]: getattr(driver, n).kernel for n in dir(driver)
               if re.fullmatch(r"a\d+_(fwd_b|bwd)", n)}
    assert sorted(kernels) == ["bwd", "fwd_b"]
    for kind, fn in kernels.items():
        for sig in fn.signatures:
            # Compiled afresh from the same source: a kernel Numba loaded from its disk
            # cache (another process may have compiled it first) has no IR to inspect.
            fresh = njit(error_model="numpy")(fn.py_func)
            fresh.compile(sig)
            ir = fresh.inspect_llvm(sig)
            assert re.search(r"^vector\.body\d*:", ir, re.M), kind
            assert re.search(r"<(?:4|8|16) x float>", ir), kind
            assert not _SCALAR_MATH.search(ir), f"{kind}: {_SCALAR_MATH.findall(ir)[:3]}"
            if kind == "bwd":
                assert "fpext" not in ir and not re.search(r"<\d+ x double>", ir), kind
