"""Your own activation and loss, one formula each: gradient, kernel and proof in one step.

Mish, x * tanh(softplus(x)), as the hidden activation and log-cosh as the loss,
fitting y = sin(x). SymPy derives both derivatives (Mish's stays in z: no form in
its output exists; log-cosh's error signal comes out as tanh(p - y)), `sg.check`
proves every rewrite, the kernel is generated from the same expressions, and the
Numba trainer fits the curve. Run ``python examples/custom_activation.py``.
"""

from __future__ import annotations

import numpy as np

import symgrad as sg
from symgrad.codegen.vecmath import function_name


def main(epochs: int = 150) -> dict:
    x = sg.var("x")
    Mish = sg.activation("mish", x * sg.tanh(sg.softplus(x)))
    yhat, y = sg.var("yhat"), sg.var("y")
    LogCosh = sg.loss("logcosh", sg.log(sg.cosh(yhat - y)))

    net = sg.Sequential(sg.Dense(1, 32), Mish(), sg.Dense(32, 1))
    model = sg.compile(net, loss=LogCosh, optimizer=sg.Adam(lr=0.01), seed=0)
    act = model.plan.layers[0].activation
    print("mish'(z) as SymPy derived it:", act.derivative_raw)
    print("evaluated as                :", act.derivative, "  reads", act.saved)
    print("log-cosh error signal dl/dz :", model.plan.output.delta)
    report = sg.check(model)
    print(report)
    # The kernel's own tanh (vectorisable, written into the module), where a loop calls it.
    tanh = function_name("tanh", model.dtype)
    kernel_lines = [line for line in model.source.splitlines()
                    if f"{tanh}(" in line and not line.lstrip().startswith(("def ", "#"))]
    print("a kernel line:", kernel_lines[0].strip() if kernel_lines else "(none)")

    rng = np.random.default_rng(0)
    X = rng.uniform(-3.0, 3.0, (512, 1))
    Y = np.sin(X) + rng.normal(0.0, 0.05, X.shape)
    hist = model.fit(X, Y, epochs=epochs, batch_size=32, shuffle=True, seed=0)
    print(f"loss {hist.history['loss'][0]:.4f} -> {hist.history['loss'][-1]:.4f}")
    grid = np.linspace(-3.0, 3.0, 7)[:, None]
    err = float(np.max(np.abs(model.predict(grid) - np.sin(grid))))
    print(f"max |prediction - sin(x)| on a grid: {err:.3f}")
    return {"derivative": act.derivative, "saved": act.saved,
            "delta": model.plan.output.delta, "report": report,
            "loss": hist.history["loss"], "max_error": err,
            "kernel_lines": kernel_lines}


if __name__ == "__main__":
    main()
