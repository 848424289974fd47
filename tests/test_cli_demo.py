"""The README's first command: `python -m symgrad demo` derives, prints, proves and trains."""

import subprocess
import sys


def test_demo_derives_proves_and_trains(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "symgrad", "demo", "--out", str(tmp_path), "--epochs", "8"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # scalar part: seed-000 neuron numbers and tanh's derivative in terms of its output
    assert "1 - o**2" in out
    assert "w1.grad = +1.000000" in out and "x1.grad = -1.500000" in out
    # network part: the cancellation to p - y and the ReLU mask, then proofs and training
    assert "dZ2 = (P - Y)/n" in out and "(A1 > 0)" in out
    assert "finite differences" in out
    assert "Data set: two moons" in out and "2048 training points" in out  # the data is named
    accuracy = float(out.split("validation accuracy")[-1].split()[0])
    assert accuracy > 0.85  # two moons are not linearly separable: the hidden layer must learn
    for name in ("neuron.png", "neuron_derivation.tex", "network_derivation.tex", "loss.png"):
        assert (tmp_path / name).stat().st_size > 0
