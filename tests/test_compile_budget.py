"""Every symbolic step of sg.compile sits under one time budget, in any thread.

Nested tanh as the output layer with huber or mse spent 35-456 s in tidy() ->
sympy.simplify. Past the budget the unsimplified (still proven) form is used and
the derivation says so.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.activations import REGISTRY
from symgrad.prove.check import check_gradients
from symgrad.simplify.zero import bounded_step, run_within_budget

x = sp.Symbol("x", real=True)


def _nested(depth: int, tag: str):
    f = x
    for _ in range(depth):
        f = sp.tanh(f)
    return sg.activation(f"test_budget_nested{depth}_{tag}", f)


@pytest.fixture
def fresh(monkeypatch):
    # Derive from scratch: no plan remembered on disk from an earlier run.
    monkeypatch.setenv("SYMGRAD_DERIVATION_CACHE", "0")
    made = []
    yield made
    for cls in made:
        REGISTRY.pop(cls.entry.name, None)


@pytest.mark.parametrize("depth, loss", [(8, "mse"), (10, "huber")])
def test_nested_tanh_output_compiles_within_a_bound_and_says_it_fell_back(depth, loss, fresh):
    act = _nested(depth, loss)
    fresh.append(act)
    start = time.perf_counter()
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Dense(3, 1), act()), loss=loss)
    elapsed = time.perf_counter() - start
    assert elapsed < 60, elapsed   # a hang detector, not a benchmark (it was 35-456 s)
    assert any("symbolic budget" in note for note in model.plan.notes), model.plan.notes
    text = str(model.derivation)
    assert "symbolic budget" in text
    assert max(e.max_error for e in check_gradients(model)) <= 1e-5


def test_budget_is_configurable_and_works_in_a_worker_thread(fresh):
    act = _nested(3, "thread")
    fresh.append(act)
    out = {}

    def work():
        out["model"] = sg.compile(sg.Sequential(sg.Dense(2, 2), act(), sg.Dense(2, 1),
                                                act()), loss="huber", symbolic_budget=1e-3)
    worker = threading.Thread(target=work)
    worker.start()
    worker.join(120)
    assert not worker.is_alive()
    notes = out["model"].plan.notes
    assert any("activation 'test_budget_nested3_thread'" in n for n in notes), notes
    assert any(n.startswith("output") for n in notes), notes
    assert max(e.max_error for e in check_gradients(out["model"])) <= 1e-5


@pytest.mark.parametrize("in_thread", [False, True])
def test_work_past_the_budget_is_stopped_and_steps_fall_back(in_thread):
    def spin():
        while True:
            pass

    @bounded_step(lambda n: -n)
    def step(n):
        spin()

    got = {}

    def run():
        got["cut"] = run_within_budget(lambda: (step(1), step(2)), 0.05)
        got["stopped"] = run_within_budget(spin, 0.05)
    if in_thread:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join(60)
        assert not worker.is_alive()
    else:
        run()
    assert got["cut"].completed and got["cut"].result == (-1, -2)   # fallback, then skipped
    assert got["cut"].cut == ("test_work_past_the_budget_is_stopped_and_steps_fall_back."
                              "<locals>.step",)
    assert not got["stopped"].completed and got["stopped"].result is None


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "3", True])
def test_a_bad_budget_is_refused_before_any_work(value):
    with pytest.raises(ValueError, match="symbolic_budget"):
        sg.compile(sg.Sequential(sg.Dense(2, 1)), loss="mse", symbolic_budget=value)


def test_a_bad_budget_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("SYMGRAD_SYMBOLIC_BUDGET", "soon")
    with pytest.raises(ValueError, match="SYMGRAD_SYMBOLIC_BUDGET"):
        sg.compile(sg.Sequential(sg.Dense(2, 1)), loss="mse")


def test_a_complete_plan_on_disk_wins_over_one_cut_by_a_smaller_budget(tmp_path, monkeypatch):
    # A later process with the small budget must find the complete plan derived since,
    # not the cut one an earlier small-budget compile left on disk.
    from symgrad.simplify import network

    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SYMGRAD_DERIVATION_CACHE", "1")
    act = _nested(3, "disk")
    try:
        def build(budget):
            for memory in (network._ACTIVATIONS, network._OUTPUTS):
                memory.clear()   # as a new process: only the disk remembers
            return sg.compile(sg.Sequential(sg.Dense(2, 2), act(), sg.Dense(2, 1)),
                              loss="mse", symbolic_budget=budget)

        assert build(1e-3).plan.notes          # cut, and remembered as cut
        assert not build(60.0).plan.notes      # complete, remembered as complete
        assert not build(1e-3).plan.notes      # the complete plan is found first
    finally:
        REGISTRY.pop(act.entry.name, None)
        for memory in (network._ACTIVATIONS, network._OUTPUTS):
            memory.clear()


_PROFILED_AFTER_BUDGETS = r"""
import sys
from symgrad.simplify.zero import run_within_budget

def spin():
    while True:
        pass

run_within_budget(lambda: 42, 5.0)        # ends in time: no stop was ever sent
run_within_budget(spin, 0.05)             # stopped: the watchdog sent two
def f():
    return 1
for hook in (sys.setprofile, sys.settrace):
    hook(lambda *args: None)
    for _ in range(3):
        f()
    hook(None)
print("profiled and traced")
"""


def test_a_profiler_or_debugger_still_runs_after_budgeted_work():
    # Clearing a pending stop with PyThreadState_SetAsyncExc(tid, NULL) left CPython's
    # pending flag set for good: under cProfile, coverage or pdb the next call hung.
    done = subprocess.run([sys.executable, "-c", _PROFILED_AFTER_BUDGETS],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "profiled and traced"
