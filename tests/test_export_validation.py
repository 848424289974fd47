"""The exported standalone trainer checks every argument before compiled code runs.

Every bad call runs in a child interpreter with sympy and symgrad unimportable: a
segfault (the kernels index memory through raw pointers) ends that child, and the
case shows up as a failed test instead of killing the test run. The child reports,
per case, the exception type and message, and whether the weights and optimizer
state were left untouched.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symgrad as sg
from symgrad.codegen import checks

N = 30   # rows of X in the child

BLOCKER = textwrap.dedent("""
    import sys
    class _Block:
        # Refuse sympy and symgrad: the exported trainer must not need them.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("sympy", "symgrad"):
                raise ImportError(f"blocked for this test: {name}")
            return None
    sys.meta_path.insert(0, _Block())
""")

# The child: loads the exported trainer and weights, runs each case given on the command
# line (a Python expression calling the trainer), prints one JSON line per case at once.
RUNNER = BLOCKER + textwrap.dedent("""
    import json
    import numpy as np
    import trainer as T
    X, Y = np.load("X.npy"), np.load("Y.npy")
    W = lambda **kw: {**T.WEIGHTS, **kw}        # the weights with some entries replaced
    S = lambda **kw: {**T.STATE, **kw}          # the optimizer state likewise
    ro = np.zeros((5, 4)); ro.flags.writeable = False
    for code in json.loads(sys.argv[1]):
        T.load_weights("weights.npz")
        T.STATE["t"][0] = 7
        before = {k: v.copy() for k, v in {**T.WEIGHTS, **T.STATE}.items()}
        out = {"case": code}
        try:
            eval(code)
            out["error"] = None
        except Exception as err:
            out["error"] = type(err).__name__
            out["value_error"] = isinstance(err, ValueError)
            out["message"] = str(err.args[0]) if err.args else str(err)
        out["untouched"] = all(np.array_equal(v, {**T.WEIGHTS, **T.STATE}[k])
                               for k, v in before.items())
        print(json.dumps(out), flush=True)
""")

# (call, exception type, regular expression the message must match): each names the
# argument and the bad value.
CASES = [
    # order: past the end segfaulted, negative read out of bounds
    (f"T.train_epoch(X, Y, order=list(range({N - 1})) + [10**9])", "ValueError",
     rf"order\[{N - 1}\] = 1000000000 .*\[0, {N}\)"),
    (f"T.train_epoch(X, Y, order=[-1] + list(range(1, {N})))", "ValueError",
     rf"order\[0\] = -1 .*\[0, {N}\)"),
    ("T.train_epoch(X, Y, order=[3, -2])", "ValueError", r"order\[1\] = -2"),
    (f"T.train_epoch(X, Y, order=np.arange({N}.0))", "ValueError",
     r"order .*integer.*float64"),
    (f"T.train_epoch(X, Y, order=np.ones({N}, bool))", "ValueError", r"order .*integer.*bool"),
    (f"T.train_epoch(X, Y, order=[0] * {N})", "ValueError",
     r"order is not a permutation.*row 0 appears 30 times"),
    (f"T.train_epoch(X, Y, order=np.arange({N}).reshape(2, -1))", "ValueError",
     r"order must be a 1-D.*\(2, 15\)"),
    (f"T.train_epoch(X, Y, order=np.arange({N + 1}) % {N})", "ValueError", r"order .*\(31,\)"),
    ("T.train_epoch(X, Y, order=np.array([], int))", "ValueError", r"order .*\(0,\)"),
    # batch_size: 0 gave a raw ValueError from range()
    ("T.train_epoch(X, Y, batch_size=0)", "ValueError", r"batch_size .*got 0"),
    ("T.train_epoch(X, Y, batch_size=-4)", "ValueError", r"batch_size .*got -4"),
    ("T.train_epoch(X, Y, batch_size=2.5)", "ValueError", r"batch_size .*got 2\.5"),
    ("T.train_epoch(X, Y, batch_size=True)", "ValueError", r"batch_size .*got True"),
    # seed and hyperparameters
    ("T.train_epoch(X, Y, seed=2**40)", "ValueError", r"seed .*1099511627776"),
    ("T.train_epoch(X, Y, seed='1')", "ValueError", r"seed .*'1'"),
    ("T.train_epoch(X, Y, hyper=(0.01,))", "ValueError", r"hyper must give 4 .*\(0\.01,\)"),
    ("T.train_epoch(X, Y, hyper=(-1.0, 0.9, 0.999, 1e-8))", "ValueError",
     r"optimizer lr must be finite and > 0, got -1\.0"),
    ("T.train_epoch(X, Y, hyper=(0.01, 1.5, 0.999, 1e-8))", "ValueError",
     r"optimizer beta1 must be in \[0, 1\), got 1\.5"),
    ("T.train_epoch(X, Y, hyper=(0.01, 0.9, float('nan'), 1e-8))", "ValueError",
     r"optimizer beta2 must be finite.*nan"),
    ("T.train_epoch(X, Y, hyper=('0.01', 0.9, 0.999, 1e-8))", "TypeError",
     r"optimizer lr must be a number, got '0\.01'"),
    ("T.train_epoch(X, Y, hyper={'lr': 0.1})", "ValueError", r"missing \['beta1'"),
    # params: a wrong shape read out of bounds (loss 3.5e86)
    ("T.train_epoch(X, Y, params=W(**{'dense0.W': np.zeros((6, 4))}))", "ValueError",
     r"dense0\.W has shape \(6, 4\), expected \(5, 4\)"),
    ("T.train_epoch(X, Y, params=W(**{'dense1.W': np.zeros((4, 1))}))", "ValueError",
     r"dense1\.W has shape \(4, 1\), expected \(4, 2\)"),
    ("T.train_epoch(X, Y, params=W(**{'dense0.b': np.zeros(3)}))", "ValueError",
     r"dense0\.b has shape \(3,\), expected \(4,\)"),
    ("T.train_epoch(X, Y, params=W(**{'dense0.W': np.zeros((5, 4), np.float32)}))",
     "ValueError", r"dense0\.W must be .*float64.*dtype float32"),
    ("T.train_epoch(X, Y, params=W(**{'dense0.W': np.zeros((5, 4), order='F')}))",
     "ValueError", r"dense0\.W must be .*not C-contiguous"),
    ("T.train_epoch(X, Y, params=W(**{'dense0.W': ro}))", "ValueError",
     r"dense0\.W must be .*read-only"),
    ("T.train_epoch(X, Y, params=W(**{'dense0.W': np.zeros((5, 4)).tolist()}))", "ValueError",
     r"dense0\.W must be .*a list, not a NumPy array"),
    ("T.train_epoch(X, Y, params=W(**{'dense1.W': np.full((4, 2), np.inf)}))", "ValueError",
     r"dense1\.W has a non-finite value inf at row 0, column 0"),
    ("T.train_epoch(X, Y, params={k: v for k, v in T.WEIGHTS.items() if k != 'dense1.b'})",
     "KeyError", r"dense1\.b is missing"),
    ("T.train_epoch(X, Y, params=[1, 2])", "TypeError", r"params must be a dict"),
    # optimizer state (Adam: m and v per parameter, and the step counter t)
    ("T.train_epoch(X, Y, state={k: v for k, v in T.STATE.items() if k != 'm:dense0.W'})",
     "KeyError",
     r"m:dense0\.W is missing"),
    ("T.train_epoch(X, Y, state=S(**{'v:dense1.W': np.zeros((2, 4))}))", "ValueError",
     r"v:dense1\.W must be .*shape \(4, 2\)"),
    ("T.train_epoch(X, Y, state=S(t=np.zeros(1)))", "ValueError", r"state t must be .*int64"),
    ("T.train_epoch(X, Y, state=S(t=np.array([-5])))", "ValueError", r"state t .*>= 0"),
    ("T.train_epoch(X, Y, state=S(**{'v:dense0.b': np.full(4, np.nan)}))", "ValueError",
     r"v:dense0\.b has a non-finite value nan at row 0"),
    # data
    ("T.train_epoch(X[:, :3], Y)", "InputShapeError", r"train_epoch: X must have shape \(n, 5\)"
     r".*\(30, 3\)"),
    ("T.train_epoch(np.where((np.arange(30)[:, None] == 2) & (np.arange(5) == 1), np.nan, X), Y)",
     "InputShapeError", r"X has a non-finite value nan at row 2, column 1"),
    ("T.train_epoch(X, Y[:29])", "InputShapeError", r"X has 30 rows .*y has 29"),
    ("T.train_epoch(X, Y[:, :1])", "InputShapeError", r"targets must have shape \(n, 2\)"),
    ("T.train_epoch(X.astype(str), Y)", "InputShapeError", r"X must be numeric"),
    ("T.train_epoch(X, np.where(Y > 0, np.inf, Y))", "InputShapeError",
     r"targets has a non-finite value inf"),
    # the other entry points
    ("T.predict(X[:, :2])", "InputShapeError", r"predict: X must have shape \(n, 5\)"),
    ("T.predict(X, params=W(**{'dense0.W': np.zeros((5, 5))}))", "ValueError",
     r"dense0\.W has shape \(5, 5\)"),
    ("T.evaluate(X, Y[:, :1])", "InputShapeError", r"evaluate: targets must have shape"),
    ("T.loss_and_grads(X, Y, params=W(**{'dense0.b': np.full(4, np.nan)}))", "ValueError",
     r"dense0\.b has a non-finite value nan"),
    ("T.load_weights(W(**{'dense1.W': np.zeros((2, 4))}))", "ValueError",
     r"dense1\.W has shape \(2, 4\), expected \(4, 2\)"),
    ("T.load_weights(W(**{'dense1.W': np.full((4, 2), np.nan)}))", "ValueError",
     r"dense1\.W has a non-finite value nan"),
    # weights files: as Model.load, an extra array is refused, and so is what is no archive
    ("T.load_weights('extra.npz')", "WeightsFileError",
     r"extra\.npz: parameter names do not match .*unexpected \['dense9\.W'\]"),
    ("T.load_weights('X.npy')", "WeightsFileError", r"X\.npy: not a weights archive"),
    ("T.load_weights('object.npz')", "WeightsFileError",
     r"object\.npz: not a weights archive .*pickle"),
]


def _run_child(folder, codes: list[str]) -> tuple[dict[str, dict], subprocess.CompletedProcess]:
    proc = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(codes)], cwd=folder,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            results[row["case"]] = row
    return results, proc


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny Adam regression model, exported once, with its weights and data."""
    folder = tmp_path_factory.mktemp("export_checks")
    net = sg.Sequential(sg.Dense(5, 4), sg.Tanh(), sg.Dense(4, 2))
    model = sg.compile(net, loss="mse", optimizer=sg.Adam(lr=0.05), seed=3)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(N, 5))
    Y = np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]], axis=1)
    np.save(folder / "X.npy", X)
    np.save(folder / "Y.npy", Y)
    model.export(str(folder / "trainer.py"))
    model.save(str(folder / "weights.npz"))
    np.savez(folder / "extra.npz", **model.params, **{"dense9.W": np.zeros((2, 2))})
    np.savez(folder / "object.npz", **{**model.params, "dense0.b": np.array([{}], object)})
    return model, folder, X, Y


@pytest.fixture(scope="module")
def outcomes(exported):
    """Every case's outcome; after a crash the child restarts past the case that crashed."""
    _, folder, _, _ = exported
    todo = [code for code, _, _ in CASES]
    results: dict[str, dict] = {}
    while todo:
        got, proc = _run_child(folder, todo)
        results.update(got)
        todo = [code for code in todo if code not in results]
        if todo:   # the child died in todo[0]: record it, go on with the rest
            results[todo[0]] = {"crashed": proc.returncode, "stderr": proc.stderr[-2000:]}
            todo = todo[1:]
    return results


@pytest.mark.parametrize(("code", "error", "match"), CASES, ids=[c[0][:60] for c in CASES])
def test_bad_argument_is_refused_with_a_clear_message(outcomes, code, error, match) -> None:
    out = outcomes[code]
    assert "crashed" not in out, f"the interpreter crashed ({out.get('crashed')}): {out}"
    assert out["error"] == error, out
    assert out["value_error"] == (error not in ("KeyError", "TypeError")), out
    assert re.search(match, out["message"]), out["message"]
    # Refused before any compiled code ran: weights and optimizer state untouched.
    assert out["untouched"], out


def test_messages_are_those_of_model_fit(exported) -> None:
    model, folder, X, Y = exported
    # The exported module carries the very functions fit uses, not a copy kept by hand.
    source = (folder / "trainer.py").read_text()
    for fn in (checks.check_order, checks.check_params, checks.check_xy, checks.first_nonfinite,
               checks.c_array):
        assert inspect.getsource(fn) in source
    calls = {   # the same bad input through fit and through the exported trainer
        "batch": ("dict(batch_size=0)", None),
        "order": (f"dict(order=[-1] + list(range(1, {N})))", None),
        "X": ("dict()", "np.where(np.arange(30)[:, None] == 4, np.inf, X)"),
    }
    codes = [f"T.train_epoch({x or 'X'}, Y, **{kw})" for kw, x in calls.values()]
    got, proc = _run_child(folder, codes)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for (kw, x), code in zip(calls.values(), codes, strict=True):
        env = {"np": np, "X": X}
        with pytest.raises(ValueError) as err:
            model.fit(eval(x, env) if x else X, Y, **eval(kw))
        fit_message = str(err.value).removeprefix("fit: ")
        assert got[code]["message"].removeprefix("train_epoch: ") == fit_message


def test_valid_arguments_train_exactly_like_fit(exported) -> None:
    model, folder, X, Y = exported
    perm = np.random.default_rng(4).permutation(N)
    subset = perm[:17]
    code = BLOCKER + textwrap.dedent(f"""
        import json
        import numpy as np
        import trainer as T
        X, Y = np.load("X.npy"), np.load("Y.npy")
        T.load_weights("weights.npz")
        params = {{k: v.copy() for k, v in T.WEIGHTS.items()}}
        state = T.init_state(params)
        for _ in range(2):
            T.train_epoch(X, Y, batch_size=8, order=np.array({perm.tolist()}), params=params,
                          state=state)
        # WEIGHTS, STATE; the seed must not reshuffle the order given
        T.train_epoch(X, Y, batch_size=8, order={subset.tolist()}, seed=11)
        print(json.dumps({{"full": {{k: v.tolist() for k, v in params.items()}},
                          "subset": {{k: v.tolist() for k, v in T.WEIGHTS.items()}},
                          "t": int(state["t"][0])}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    start = {k: v.copy() for k, v in model.params.items()}
    twin = sg.compile(model.net, loss="mse", optimizer=sg.Adam(lr=0.05), seed=3)
    twin.set_params(start)
    twin.fit(X, Y, epochs=2, batch_size=8, order=perm)
    assert out["t"] == 2 * 4   # ceil(30 / 8) Adam steps per epoch
    for name, value in twin.params.items():
        np.testing.assert_array_equal(out["full"][name], value)
    # A subset order trains on those rows only, in that order.
    sub = sg.compile(model.net, loss="mse", optimizer=sg.Adam(lr=0.05), seed=3)
    sub.set_params(start)
    sub.fit(X[subset], Y[subset], epochs=1, batch_size=8, order=np.arange(len(subset)))
    for name, value in sub.params.items():
        np.testing.assert_array_equal(out["subset"][name], value)
