"""symgrad's compile latency for MLPs, each step in a fresh process on one cache folder.

The steps follow what a user does in a notebook: the first model ever (cold cache), the
same model again (warm), other widths, one more hidden layer, both, and a model with a
new activation. Each step is a fresh ``python`` process timed from before
``import symgrad`` to the end of the first ``fit`` epoch on 256 rows (the time until a
model is ready to train, the issue's measure), with the phases reported apart.
Issue 9's targets: a cold 3-layer MLP under 5 s; a model whose layer kinds and
activations were compiled before, whatever its widths or depth, under 1.5 s.

    python benchmarks/mlp_compile.py            # prints a Markdown table
    python benchmarks/mlp_compile.py --rounds 3 # medians of three cold-to-warm sequences
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import symgrad as sg
t1 = time.perf_counter()
widths = [int(w) for w in sys.argv[1].split(",")]
acts = {"tanh": sg.Tanh, "relu": sg.ReLU, "sigmoid": sg.Sigmoid, "gelu": sg.GELU}
if "wave" in sys.argv[2]:   # a user's formula: its kernels hold vecmath's sin and cos
    import sympy as sp
    x = sp.Symbol("x", real=True)
    acts["wave"] = sg.activation("wave", x / 2 + sp.sin(x) * sp.cos(x / 3))
act_names = sys.argv[2].split(",")
layers, prev = [], 64
for w, name in zip(widths, act_names):
    layers += [sg.Dense(prev, w), acts[name]()]
    prev = w
net = sg.Sequential(*layers, sg.Dense(prev, 10), sg.Softmax())
model = sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.1))
t2 = time.perf_counter()
rng = np.random.default_rng(0)
X, y = rng.normal(size=(256, 64)), rng.integers(0, 10, 256)
model.fit(X, y, epochs=1, batch_size=64)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "derive_s": t2 - t1, "first_fit_s": t3 - t2,
                  "ready_s": t3 - t0}))
"""

# (step, hidden widths, hidden activations); each runs after the ones above it.
STEPS = [
    ("cold: 3 layers (64-32-32-10, tanh/relu)", "32,32", "tanh,relu"),
    ("warm: the same model", "32,32", "tanh,relu"),
    ("new widths (64-48-80-10)", "48,80", "tanh,relu"),
    ("one more hidden layer (64-32-32-32-10)", "32,32,32", "tanh,relu,relu"),
    ("new depth and widths (6 hidden layers of 24-96)", "24,96,40,64,32,80",
     "tanh,relu,relu,tanh,relu,relu"),
    ("a new activation set (sigmoid/relu)", "32,32", "sigmoid,relu"),
    ("a custom activation with sin and cos (wave/relu)", "32,32", "wave,relu"),
]


def run_sequence(cache: str) -> list[dict]:
    env = dict(os.environ, SYMGRAD_CACHE_DIR=cache)
    out = []
    for _, widths, acts in STEPS:
        done = subprocess.run([sys.executable, "-c", _CHILD, widths, acts], env=env,
                              capture_output=True, text=True, timeout=600, check=True)
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1, help="cold-to-warm sequences (medians)")
    args = ap.parse_args(argv)
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as cache:
            rounds.append(run_sequence(cache))
    print("| step | import s | derive s | first fit s | ready s |")
    print("|---|---:|---:|---:|---:|")
    for k, (label, _, _) in enumerate(STEPS):
        med = {key: statistics.median(r[k][key] for r in rounds)
               for key in ("import_s", "derive_s", "first_fit_s", "ready_s")}
        print(f"| {label} | {med['import_s']:.2f} | {med['derive_s']:.2f} | "
              f"{med['first_fit_s']:.2f} | {med['ready_s']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
