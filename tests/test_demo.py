"""`symgrad demo`: repeated limit tables shown once, a named output folder, a named data set."""

import re
from pathlib import Path

import pytest

from symgrad.cli import build_parser, main
from symgrad.cli.demo import DEFAULT_OUT, scalar_part, two_moons


def test_scalar_part_shows_each_limit_table_once(tmp_path, capsys):
    scalar_part(tmp_path)
    out = capsys.readouterr().out
    # the neuron has 2 sums and 2 products: 4 + 4 local derivatives of + and *, one tanh
    assert out.count("Local derivative (SymPy differentiates the formula):") == 9
    # one full table per distinct form (tanh, +, *), the other 6 refer back to them
    assert out.count("the limit of the difference quotient") == 3
    refs = re.findall(r"the same steps as for the (\S+) node (\S+) above", out)
    assert sorted(op for op, _ in refs) == ["*"] * 3 + ["+"] * 3
    assert {node for op, node in refs if op == "+"} == {"n"}
    # each reference still gives its own limit, with its own variable
    assert "lim_(h->0) (f(b + h) - f(b))/h = 1" in out
    assert "lim_(h->0) (f(x1 + h) - f(x1))/h = w1" in out
    assert len(out.splitlines()) < 180   # a table step is a line of prose and one of math
    # the notes' training simulation
    assert (tmp_path / "neuron.png").stat().st_size > 0
    assert (tmp_path / "neuron_training.gif").stat().st_size > 0
    tex = (tmp_path / "neuron_derivation.tex").read_text()
    assert tex.startswith(r"\documentclass") and r"\frac{\partial o}{\partial n}" in tex
    assert "animation (5 frames)" in out


def test_demo_default_folder_is_named_and_said(tmp_path, capsys, monkeypatch):
    # the network part (derive, prove, train) runs in test_cli_demo; here only where files go
    import symgrad.cli.demo as demo

    seen = []
    monkeypatch.setattr(demo, "network_part", lambda out_dir, epochs: seen.append((out_dir,
                                                                                   epochs)))
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / DEFAULT_OUT
    assert f"writing its files to {folder.resolve()}" in out
    assert seen == [(Path(DEFAULT_OUT), 3)]
    for name in ("neuron.png", "neuron_training.gif", "neuron_derivation.tex"):
        assert (folder / name).stat().st_size > 0
        assert str(Path(DEFAULT_OUT) / name) in out
    # the help documents --out and its default
    help_text = build_parser()._subparsers._group_actions[0].choices["demo"].format_help()
    assert "--out DIR" in help_text and "symgrad-demo" in help_text


def test_demo_refuses_a_file_as_out(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    from symgrad.cli.demo import run_demo

    with pytest.raises(ValueError, match="exists and is not a folder"):
        run_demo(target, 1)


def test_two_moons_is_two_half_circles():
    X, y = two_moons(400, seed=3, noise=0.0)
    upper, lower = X[y == 0], X[y == 1]
    assert abs(((upper ** 2).sum(axis=1) - 1).max()) < 1e-12
    assert abs((((lower - [1, 0.5]) ** 2).sum(axis=1) - 1).max()) < 1e-12
    assert upper[:, 1].min() >= 0 and lower[:, 1].max() <= 0.5


def test_demo_with_a_file_as_out_fails_with_one_line_not_a_traceback(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "a_file"
    target.write_text("keep me")
    proc = subprocess.run([sys.executable, "-m", "symgrad", "demo", "--out", str(target)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"symgrad demo: error: --out {str(target)!r} exists and is not a folder"]
    assert target.read_text() == "keep me"
