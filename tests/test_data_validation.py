"""Data checks shared by fit and the generated modules: labels, finiteness, batch order.

Bool class labels used to crash one_hot with IndexError; a NaN label was called "not an
integer"; the finiteness check allocated an n x d boolean mask (+750 MB for a 1M x 784
predict). The checks now name the value and its row, and allocate nothing while the
data are finite.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import symgrad as sg
from symgrad.codegen.checks import check_inputs, check_targets, check_xy, first_nonfinite
from symgrad.definition.errors import InputShapeError


@pytest.fixture(scope="module")
def classifier():
    net = sg.Sequential(sg.Dense(3, 5), sg.Tanh(), sg.Dense(5, 2), sg.Softmax())
    return net, np.random.default_rng(0).normal(size=(40, 3))


def test_bool_labels_for_cross_entropy_train_like_int_labels(classifier) -> None:
    net, X = classifier
    labels = X[:, 0] > 0
    a = sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.3), seed=4)
    b = sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.3), seed=4)
    a.fit(X, labels, epochs=2, batch_size=8, seed=1)
    b.fit(X, labels.astype(int), epochs=2, batch_size=8, seed=1)
    for name, value in b.params.items():
        np.testing.assert_array_equal(a.params[name], value)
    assert a.evaluate(X, labels) == b.evaluate(X, labels.astype(int))
    assert a.loss(X, labels) == b.loss(X, labels.astype(int))   # the NumPy reference too
    np.testing.assert_array_equal(check_targets(np.array([True, False]), 2, "rows"),
                                  [[0, 1], [1, 0]])


@pytest.mark.parametrize(("y", "match"), [
    (np.where(np.arange(40) == 3, np.nan, 1.0), r"non-finite value nan at row 3"),
    (np.where(np.arange(40) == 7, -np.inf, 0.0), r"non-finite value -inf at row 7"),
    (np.where(np.arange(40) == 5, 0.5, 1.0), r"integer class labels: got 0\.5 at row 5"),
    (np.where(np.arange(40) == 9, 2.0, 1.0), r"\[0, 2\): got 2\.0 at row 9"),
])
def test_bad_class_labels_name_the_value_and_row(classifier, y, match) -> None:
    net, X = classifier
    model = sg.compile(net, loss="cross_entropy")
    with pytest.raises(InputShapeError, match="fit: .*" + match):
        model.fit(X, y)
    with pytest.raises(InputShapeError, match=match):
        model.loss(X, y)


def test_finiteness_check_allocates_nothing_for_finite_data() -> None:
    X = np.random.default_rng(0).normal(size=(2000, 500))   # 8 MB; a bool mask is 1 MB
    tracemalloc.start()
    try:
        assert check_inputs(X, 500) is X                   # no copy, no mask
        _, clean_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        X[1999, 499] = np.nan                              # found by the chunked scan
        with pytest.raises(InputShapeError, match="nan at row 1999, column 499"):
            check_inputs(X, 500)
        _, bad_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert clean_peak < 10_000
    assert bad_peak < X.size // 8   # one chunk's mask, never the whole n x d one
    X1, Y1 = np.zeros((200_000, 1)), np.ones((200_000, 1))
    tracemalloc.start()
    try:
        check_xy(X1, Y1, 1, 1, "elements", True, "float64")   # bce targets: in [0, 1]
        _, xy_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert xy_peak < 200_000 // 8   # the [0, 1] check is a min/max, no mask either


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_first_nonfinite_finds_the_first_bad_value_anywhere(dtype) -> None:
    rng = np.random.default_rng(1)
    big = np.finfo(dtype).max
    for shape in [(1,), (7,), (300, 301), (5, 4, 3)]:
        arr = np.full(shape, big / 2, dtype=dtype)   # finite values whose sum overflows
        assert first_nonfinite(arr) is None
        for _ in range(5):
            flat = np.sort(rng.choice(arr.size, size=min(3, arr.size), replace=False))
            bad = arr.copy()
            bad.reshape(-1)[flat] = rng.choice([np.nan, np.inf, -np.inf], size=flat.size)
            assert first_nonfinite(bad, chunk=97) == np.unravel_index(flat[0], shape)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n", [4097, 4111, 33_000, 200_003])
def test_one_bad_value_is_seen_at_any_place_of_a_long_array(dtype, n) -> None:
    """Past 4096 values the test is one reduction (a sum): a single NaN, inf or
    -inf turns it non-finite wherever it sits -- first, last, in a vector remainder."""
    arr = np.random.default_rng(2).standard_normal(n).astype(dtype)
    assert first_nonfinite(arr) is None
    for i in [0, 1, 7, 15, n // 2, n - 17, n - 9, n - 2, n - 1]:
        for value in (np.nan, np.inf, -np.inf):
            bad = arr.copy()
            bad[i] = value
            assert first_nonfinite(bad) == (i,), (i, value)


def test_nan_or_inf_weights_are_refused_by_fit_and_predict(classifier) -> None:
    net, X = classifier
    model = sg.compile(net, loss="cross_entropy")
    model.params["dense1.W"][2, 1] = np.inf
    with pytest.raises(ValueError, match=r"dense1\.W has a non-finite value inf at row 2, "
                                         r"column 1"):
        model.fit(X, X[:, 0] > 0)
    with pytest.raises(ValueError, match=r"dense1\.W has a non-finite"):
        model.predict(X)


def test_fit_order_names_the_bad_index(classifier) -> None:
    net, X = classifier
    model = sg.compile(net, loss="cross_entropy")
    y = X[:, 0] > 0
    order = np.arange(40)
    order[5] = 40
    with pytest.raises(ValueError, match=r"order\[5\] = 40 is not a row index of X"):
        model.fit(X, y, order=order)
    per_epoch = np.stack([np.arange(40), np.arange(40)[::-1]])
    per_epoch[1, 0] = -3
    with pytest.raises(ValueError, match=r"order\[1\]\[0\] = -3"):
        model.fit(X, y, epochs=2, order=per_epoch)
    with pytest.raises(ValueError, match=r"order\[1\] is not a permutation.*row 0 appears 2"):
        model.fit(X, y, epochs=2, order=np.stack([np.arange(40), np.r_[0, 0, 2:40]]))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_row_with_a_zero_stride_is_read_like_its_copy(dtype) -> None:
    """x[None, :] (the usual way to predict one sample) has stride 0 on its length-1 axis
    and NumPy still calls it C-contiguous: the kernels once handed BLAS that 0 as the
    leading dimension and returned garbage. Targets and parameters likewise."""
    model = sg.compile(sg.Sequential(sg.Dense(16, 16), sg.Tanh(), sg.Dense(16, 3),
                                     sg.Softmax()), loss="cross_entropy", dtype=dtype, seed=2)
    x = np.linspace(-2, 2, 16)
    view, copy = x[None, :], x.reshape(1, -1).copy()
    assert view.strides[0] == 0 and view.flags.c_contiguous
    assert check_inputs(view, 16, dtype).strides == copy.astype(dtype).strides
    np.testing.assert_array_equal(model.predict_proba(view), model.predict_proba(copy))
    target = np.array([0.0, 1.0, 0.0])
    loss_view, grads_view = model.compiled_backward(view, target[None, :])
    loss_copy, grads_copy = model.compiled_backward(copy, target.reshape(1, -1).copy())
    assert loss_view == loss_copy
    for name in grads_copy:
        np.testing.assert_array_equal(grads_view[name], grads_copy[name])
    start = {k: v.copy() for k, v in model.params.items()}
    model.fit(view, np.array([1]), epochs=2, batch_size=1)
    after_view = {k: v.copy() for k, v in model.params.items()}
    model.set_params(start)
    model.fit(copy, np.array([1]), epochs=2, batch_size=1)
    for name, value in model.params.items():
        np.testing.assert_array_equal(after_view[name], value)


def test_model_params_refuse_removal_strings_and_values_that_overflow_the_dtype(tmp_path):
    """Fuzzing: `del model.params[name]`, strings and 1e300 in a float32 model were
    accepted, and save() then wrote a file load() refuses. Now each is refused on the
    spot, naming the parameter, and the model still saves and loads."""
    model = sg.compile(sg.Sequential(sg.Dense(3, 4), sg.Tanh(), sg.Dense(4, 2)),
                       dtype="float32")
    before = {k: v.copy() for k, v in model.params.items()}
    for remove in (lambda p: p.__delitem__("dense0.b"), lambda p: p.pop("dense0.b"),
                   lambda p: p.popitem(), lambda p: p.clear()):
        with pytest.raises(ValueError, match="cannot be removed"):
            remove(model.params)
    with pytest.raises(ValueError, match=r"dense0.W holds 1e\+300 .* overflows .* float32"):
        model.params["dense0.W"] = np.full((3, 4), 1e300)
    with pytest.raises(ValueError, match="'dense1.b' must hold real numbers.*<U1"):
        model.params["dense1.b"] = np.array(["1", "2"])
    with pytest.raises(ValueError, match="'dense1.b' must hold real numbers"):
        model.params = {**model.params, "dense1.b": np.array(["1", "2"])}
    assert list(model.params) == list(before)
    for name, value in before.items():
        np.testing.assert_array_equal(model.params[name], value)
    model.save(tmp_path / "w.npz")
    model.load(tmp_path / "w.npz")


def test_a_finite_value_that_overflows_float32_is_named_as_such(recwarn):
    """1e39 is finite: the message names it and float32, not "inf", and no NumPy
    overflow warning leaks (fuzzing)."""
    model = sg.compile(sg.Sequential(sg.Dense(2, 1)), dtype="float32")
    X = np.zeros((3, 2))
    X[1, 1] = -1e39
    with pytest.raises(InputShapeError, match=r"X holds -1e\+39 at row 1, column 1, which "
                                              r"overflows float32"):
        model.predict(X)
    with pytest.raises(InputShapeError, match=r"targets holds 1e\+40 at row 2.*float32"):
        model.fit(np.zeros((3, 2)), np.array([0.0, 1.0, 1e40]), verbose=0)
    with pytest.raises(InputShapeError, match="non-finite value inf"):   # a real inf
        model.predict(np.full((1, 2), np.inf))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_saving_into_a_missing_folder_names_the_users_path(tmp_path):
    model = sg.compile(sg.Sequential(sg.Dense(2, 1)))
    with pytest.raises(FileNotFoundError, match=r"w.npz: cannot write it, the folder .*nowhere"
                                                 r" does not exist"):
        model.save(tmp_path / "nowhere" / "w.npz")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        model.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_argument_checks_call_no_blas(monkeypatch) -> None:
    """The checks `fit` runs before each epoch use reductions that do not reach BLAS: a
    multi-threaded BLAS call there wakes OpenBLAS's pool thread, which then spins beside a
    split epoch's parts (LeNet float64: 218-238 ms an epoch instead of 125-153, with
    `np.dot(x, x)` as the NaN test; docs/design.md)."""
    def no_blas(*args, **kwargs):
        raise AssertionError("a BLAS call in the argument checks")

    for name in ("dot", "vdot", "inner", "matmul", "tensordot", "einsum"):
        monkeypatch.setattr(np, name, no_blas)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4096, 40))
    labels = rng.integers(0, 3, 4096)
    Xa, Ya = check_xy(X, labels, 40, 3, "rows", False, "float64")
    assert first_nonfinite(Xa) is None and Ya.shape == (4096, 3)
    X[100, 7] = np.nan
    with pytest.raises(ValueError, match=r"row 100, column 7"):
        check_xy(X, labels, 40, 3, "rows", False, "float64")


@pytest.mark.parametrize("dtype", ["float16", "longdouble", "float32"])
def test_float_labels_of_any_width_pass_the_compiled_checks(classifier, dtype: str) -> None:
    """Once a trainer is loaded the checks test arrays with its compiled loop (float32 and
    float64 only): float16 or long double class labels go to NumPy's test instead, a NaN
    among them is named, and integral ones train."""
    from symgrad.codegen import checks

    net, X = classifier
    model = sg.compile(net, loss="cross_entropy")
    y = (X[:, 0] > 0).astype(np.int64)
    model.fit(X, y, epochs=1, batch_size=16)
    assert checks.all_finite.__module__ != checks.__name__   # the compiled one is installed
    model.fit(X, y.astype(dtype), epochs=1, batch_size=16)
    bad = y.astype(dtype)
    bad[5] = np.nan
    with pytest.raises(InputShapeError, match=r"non-finite value nan at row 5"):
        model.fit(X, bad, epochs=1, batch_size=16)
