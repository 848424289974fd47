"""Benchmark symgrad's scalar `Value` side by side with micrograd's: random graphs and moons MLP.

Both engines build the *same* expression from the same recipe, so their graphs
have the same nodes (only ops both have: ``+``, ``*``, ``**k``, ReLU and
products with constants):

- ``random N``: N op nodes; each applies a random op to the previous node and
  a random earlier one (so the root reaches every node and the graph is N
  deep); a node whose value leaves [-2, 2] is scaled by 0.25, so values stay
  finite. The recipe is plain data drawn from a fixed seed.
- ``moons``: micrograd's demo network, MLP(2, [16, 16, 1]) with ReLU hidden
  layers, on 100 points of two moons; loss = mean SVM hinge + 1e-4 * sum p².
  The network classes below are micrograd's ``nn.py`` written over any
  ``Value`` class.

Per graph and engine: forward (build the graph) and backward, each the median
of ``--repeats`` runs in this process after a warm-up; the largest relative
difference between the two engines' leaf gradients (a check that both compute
the same thing). Then, each in a fresh process (``--fresh-runs`` times,
medians): ``import`` of the engine, the forward and the *first* backward. For
symgrad twice: with an empty cache directory (``cold``: SymPy derives every
op's local derivatives) and again on the same directory (``warm``: the printed
derivatives are read back; see ``symgrad.derive.scalar_steps``).

micrograd's ``build_topo`` recurses once per node: the recursion limit is
raised to fit the graph (Python >= 3.11 runs Python-to-Python recursion
without growing the C stack).

    pip install micrograd          # or: pip install -e ".[bench]"
    python benchmarks/bench_scalar.py --sizes 1000,10000,100000 --repeats 7 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve()
ENGINES = ("symgrad", "micrograd")
SEED = 20261130


def value_class(engine: str) -> type:
    """The ``Value`` class of ``engine`` (imported on demand)."""
    if engine == "symgrad":
        return importlib.import_module("symgrad").Value
    if engine == "micrograd":
        return importlib.import_module("micrograd.engine").Value
    raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


# -- random graphs ------------------------------------------------------------

def random_recipe(n_ops: int, seed: int = SEED) -> tuple[list[float], list[tuple]]:
    """Leaf values and a list of steps ``(op, i, j_or_k)`` building ``n_ops`` op nodes.

    ``op`` is "add"/"mul" (nodes i and j), "pow" (node i, exponent k), "relu"
    (node i) or "scale" (node i times 0.25, a constant). Node indices count
    leaves first, then one node per step. Values are simulated in floats so
    every step is defined (no x**-1 near 0) and stays in [-2, 2].

    >>> leaves, steps = random_recipe(50, seed=1)
    >>> sum(1 + (s[0] == "scale") for s in steps) >= 50 and len(leaves) == 10
    True
    """
    if n_ops < 1:
        raise ValueError(f"random graph needs at least one op node, got {n_ops}")
    rng = random.Random(seed)
    values = [rng.uniform(-1.0, 1.0) for _ in range(10)]
    leaves = list(values)
    steps: list[tuple] = []
    made = 0
    while made < n_ops:
        i, j = len(values) - 1, rng.randrange(len(values))
        a, b = values[i], values[j]
        op = rng.choices(("add", "mul", "pow", "relu"), weights=(4, 3, 2, 1))[0]
        if op == "add":
            out, step = a + b, ("add", i, j)
        elif op == "mul":
            out, step = a * b, ("mul", i, j)
        elif op == "relu":
            out, step = max(a, 0.0), ("relu", i, 0)
        else:
            k = -1 if abs(a) > 0.5 and rng.random() < 0.3 else rng.choice((2, 3))
            out, step = a**k, ("pow", i, k)
        steps.append(step)
        values.append(out)
        made += 1
        if abs(out) > 2.0 or (op == "relu" and out == 0.0):
            # Scale down large values; lift a dead ReLU with the other operand so
            # the chain below it keeps a gradient.
            if abs(out) > 2.0:
                steps.append(("scale", len(values) - 1, 0))
                values.append(out * 0.25)
            else:
                steps.append(("add", len(values) - 1, j))
                values.append(out + b)
            made += 1
    return leaves, steps


def build_random(value: type, recipe: tuple[list[float], list[tuple]]) -> tuple[object, list]:
    """Build the recipe's graph with ``value``; return (root, leaves)."""
    leaves_data, steps = recipe
    leaves = [value(x) for x in leaves_data]
    nodes = list(leaves)
    for op, i, j in steps:
        a = nodes[i]
        if op == "add":
            nodes.append(a + nodes[j])
        elif op == "mul":
            nodes.append(a * nodes[j])
        elif op == "pow":
            nodes.append(a**j)
        elif op == "relu":
            nodes.append(a.relu())
        else:
            nodes.append(a * 0.25)
    return nodes[-1], leaves


# -- micrograd's moons demo, over any Value class -------------------------------

def moons(n: int = 100, noise: float = 0.1,
          seed: int = SEED) -> tuple[list[list[float]], list[int]]:
    """Two interleaving half circles (as sklearn's make_moons), labels -1/+1, no NumPy."""
    rng = random.Random(seed)
    xs, ys = [], []
    for i in range(n):
        t = math.pi * (i % (n // 2)) / (n // 2 - 1)
        if i < n // 2:
            x, y, label = math.cos(t), math.sin(t), -1
        else:
            x, y, label = 1 - math.cos(t), 0.5 - math.sin(t), 1
        xs.append([x + rng.gauss(0, noise), y + rng.gauss(0, noise)])
        ys.append(label)
    return xs, ys


class Neuron:
    """micrograd.nn.Neuron over ``value``: ReLU(w·x + b) or linear."""

    def __init__(self, value: type, nin: int, nonlin: bool, rng: random.Random) -> None:
        self.w = [value(rng.uniform(-1, 1)) for _ in range(nin)]
        self.b = value(0.0)
        self.nonlin = nonlin

    def __call__(self, x: list) -> object:
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self) -> list:
        return [*self.w, self.b]


class MLP:
    """micrograd.nn.MLP over ``value``: ReLU hidden layers, linear output."""

    def __init__(self, value: type, nin: int, nouts: list[int], seed: int = SEED) -> None:
        rng = random.Random(seed)
        sizes = [nin, *nouts]
        self.layers = [[Neuron(value, sizes[i], i != len(nouts) - 1, rng)
                        for _ in range(sizes[i + 1])] for i in range(len(nouts))]

    def __call__(self, x: list) -> object:
        for layer in self.layers:
            x = [n(x) for n in layer]
        return x[0] if len(x) == 1 else x

    def parameters(self) -> list:
        return [p for layer in self.layers for n in layer for p in n.parameters()]


def build_moons(value: type) -> tuple[object, list]:
    """The demo's loss graph (SVM hinge + L2); return (loss, parameters)."""
    model = MLP(value, 2, [16, 16, 1])
    xs, ys = moons()
    scores = [model(x) for x in xs]
    losses = [(1 + -yi * si).relu() for yi, si in zip(ys, scores, strict=True)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum(p * p for p in model.parameters())
    return data_loss + reg_loss, model.parameters()


def builder(graph: str) -> Callable[[type], tuple[object, list]]:
    """``moons`` or ``random:N`` -> a function building that graph with a Value class."""
    if graph == "moons":
        return build_moons
    if graph.startswith("random:") and graph[7:].isdigit():
        recipe = random_recipe(int(graph[7:]))
        return lambda value: build_random(value, recipe)
    raise ValueError(f"unknown graph {graph!r}; use 'moons' or 'random:N'")


def count_nodes(root: object) -> int:
    """Nodes reachable from ``root`` (micrograd's ``_prev``; symgrad has it too)."""
    seen, stack = {id(root)}, [root]
    while stack:
        for child in stack.pop()._prev:
            if id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return len(seen)


def _fit_recursion(nodes: int) -> None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * nodes + 1000))


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()  # each run starts without the previous one's garbage
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(engine: str, graph: str, repeats: int) -> dict:
    """Forward and backward medians of ``engine`` on ``graph``, plus its leaf gradients."""
    value, build = value_class(engine), builder(graph)
    root, leaves = build(value)
    nodes = count_nodes(root)
    _fit_recursion(nodes)
    root.backward()  # warm-up: symgrad compiles each op's backward step once per process
    forward = _median_s(lambda: build(value), repeats)
    backward = _median_s(root.backward, repeats)
    root, leaves = build(value)
    root.backward()  # on a fresh graph: micrograd accumulates across calls
    return {"nodes": nodes, "forward_s": forward, "backward_s": backward,
            "grads": [float(p.grad) for p in leaves]}


def probe(engine: str, graph: str) -> dict:
    """In this (fresh) process: import time, forward and the first and second backward."""
    t0 = time.perf_counter()
    value = value_class(engine)
    t1 = time.perf_counter()
    root, _ = builder(graph)(value)
    t2 = time.perf_counter()
    _fit_recursion(count_nodes(root))
    t3 = time.perf_counter()
    root.backward()
    t4 = time.perf_counter()
    root.backward()
    t5 = time.perf_counter()
    return {"import_s": t1 - t0, "forward_s": t2 - t1, "first_backward_s": t4 - t3,
            "second_backward_s": t5 - t4}


def fresh(engine: str, graph: str, env: dict[str, str], timeout: float) -> dict:
    """Run `probe` in a new interpreter; its JSON, or {"error": ...}."""
    try:
        proc = subprocess.run([sys.executable, str(HERE), "--probe", engine, graph],
                              capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def fresh_medians(engine: str, graph: str, runs: int, timeout: float) -> dict[str, dict]:
    """Medians over ``runs`` fresh processes: micrograd once, symgrad cold and warm."""
    samples: dict[str, list[dict]] = {}
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench_scalar_cache_") as cache:
            env = dict(os.environ, SYMGRAD_CACHE_DIR=cache)
            env.pop("SYMGRAD_DERIVATION_CACHE", None)
            phases = ("cold", "warm") if engine == "symgrad" else ("-",)
            for phase in phases:
                samples.setdefault(phase, []).append(fresh(engine, graph, env, timeout))
    out = {}
    for phase, runs_ in samples.items():
        errors = [r["error"] for r in runs_ if "error" in r]
        if errors:
            out[phase] = {"error": errors[0]}
            continue
        out[phase] = {k: statistics.median(r[k] for r in runs_) for k in runs_[0]}
    return out


def max_rel_diff(a: list[float], b: list[float]) -> float:
    """Largest |a - b| / max(1, |b|) over paired gradients (inf if the lengths differ)."""
    if len(a) != len(b):
        return math.inf
    return max((abs(x - y) / max(1.0, abs(y)) for x, y in zip(a, b, strict=True)), default=0.0)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    ms = seconds * 1e3
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def markdown(report: dict) -> str:
    """The in-process table and the fresh-process table."""
    lines = ["In one process (medians; ratio < 1: symgrad faster):", "",
             "| graph | nodes | forward ms symgrad | micrograd | sg/mg | backward ms symgrad "
             "| micrograd | sg/mg | max rel Δgrad |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["graphs"]:
        sg_, mg = row.get("symgrad", {}), row.get("micrograd", {})
        diff = row.get("max_rel_grad_diff")
        lines.append(
            f"| {row['graph']} | {sg_.get('nodes', mg.get('nodes', 'n/a'))} "
            f"| {_ms(sg_.get('forward_s'))} | {_ms(mg.get('forward_s'))} "
            f"| {_ratio(sg_.get('forward_s'), mg.get('forward_s'))} "
            f"| {_ms(sg_.get('backward_s'))} | {_ms(mg.get('backward_s'))} "
            f"| {_ratio(sg_.get('backward_s'), mg.get('backward_s'))} "
            f"| {'n/a' if diff is None else f'{diff:.0e}'} |")
    if report.get("fresh"):
        lines += ["", "Fresh process (medians; symgrad cold = empty cache directory, warm = "
                  "second process on it), ms:", "",
                  "| graph | engine | import | forward | first backward | second backward "
                  "| first backward / micrograd's |", "|---|---|---:|---:|---:|---:|---:|"]
        for graph, by_engine in report["fresh"].items():
            mg = by_engine.get("micrograd", {}).get("-", {})
            for engine, phases in by_engine.items():
                for phase, r in phases.items():
                    name = engine if phase == "-" else f"{engine} ({phase})"
                    if "error" in r:
                        lines.append(f"| {graph} | {name} | {r['error']} |||||")
                        continue
                    lines.append(
                        f"| {graph} | {name} | {_ms(r['import_s'])} | {_ms(r['forward_s'])} "
                        f"| {_ms(r['first_backward_s'])} | {_ms(r['second_backward_s'])} "
                        f"| {_ratio(r['first_backward_s'], mg.get('first_backward_s'))} |")
    if report.get("notes"):
        lines += ["", "Notes:"] + [f"- {k}: {v}" for k, v in sorted(report["notes"].items())]
    return "\n".join(lines)


def run(graphs: list[str], fresh_graphs: list[str], engines: list[str], repeats: int,
        fresh_runs: int, timeout: float, log: Callable[[str], None] = print) -> dict:
    """Measure every engine on every graph; see the module docstring."""
    report: dict = {"graphs": [], "fresh": {}, "notes": {}, "versions": {}}
    usable = []
    for engine in engines:
        try:
            module = value_class(engine).__module__.split(".")[0]
            report["versions"][engine] = getattr(sys.modules[module], "__version__", None)
            usable.append(engine)
        except ImportError as exc:
            report["notes"][engine] = f"not installed ({exc})"
    for graph in graphs:
        row: dict = {"graph": graph}
        for engine in usable:
            t0 = time.perf_counter()
            row[engine] = measure(engine, graph, repeats)
            log(f"  {graph:<14} {engine:<9} {time.perf_counter() - t0:6.1f} s")
        if "symgrad" in row and "micrograd" in row:
            row["max_rel_grad_diff"] = max_rel_diff(row["symgrad"]["grads"],
                                                    row["micrograd"]["grads"])
        for engine in usable:
            row[engine].pop("grads")
        report["graphs"].append(row)
    for graph in fresh_graphs:
        report["fresh"][graph] = {}
        for engine in usable:
            report["fresh"][graph][engine] = fresh_medians(engine, graph, fresh_runs, timeout)
            log(f"  fresh {graph:<8} {engine}: done")
    report["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                         "python": platform.python_version(), "loadavg_at_end": os.getloadavg()}
    return report


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000",
                    help="op nodes of the random graphs, comma list")
    ap.add_argument("--no-moons", action="store_true", help="leave out the moons MLP")
    ap.add_argument("--fresh", default="moons,random:10000",
                    help="graphs timed in fresh processes ('moons', 'random:N'); '' for none")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma list of symgrad,micrograd")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per cell (median)")
    ap.add_argument("--fresh-runs", type=int, default=3, help="fresh processes per cell (median)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per fresh process")
    ap.add_argument("--json", type=Path, help="also write the full results here")
    ap.add_argument("--probe", nargs=2, metavar=("ENGINE", "GRAPH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(*args.probe)))
        return 0
    for name in ("repeats", "fresh_runs"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    sizes = _csv(args.sizes)
    bad = [s for s in sizes if not s.isdigit() or int(s) < 1]
    if bad:
        raise SystemExit(f"--sizes: {bad} are not positive integers")
    engines = _csv(args.engines)
    if not engines or any(e not in ENGINES for e in engines):
        raise SystemExit(f"--engines: choose from {','.join(ENGINES)}, got {args.engines!r}")
    graphs = [f"random:{s}" for s in sizes] + ([] if args.no_moons else ["moons"])
    fresh_graphs = _csv(args.fresh)
    for g in graphs + fresh_graphs:
        try:
            builder(g)
        except ValueError as exc:
            raise SystemExit(f"--fresh: {exc}") from None
    print(f"# bench_scalar: graphs={','.join(graphs)} fresh={','.join(fresh_graphs) or 'none'} "
          f"repeats={args.repeats} cpus={os.cpu_count()}", file=sys.stderr)
    report = run(graphs, fresh_graphs, engines, args.repeats, args.fresh_runs, args.timeout,
                 log=lambda s: print(s, file=sys.stderr, flush=True))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    print(markdown(report))
    bad_grads = [r["graph"] for r in report["graphs"]
                 if r.get("max_rel_grad_diff") is not None and r["max_rel_grad_diff"] > 1e-9]
    if bad_grads:
        print(f"error: symgrad and micrograd gradients differ on {', '.join(bad_grads)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
