"""The `symgrad` console script, run for real in subprocesses: every subcommand, good and bad input.

Bad input must end with a message naming the problem, exit status 1, and no file written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad.cli.spec import SpecError, parse_spec

SCRIPT = shutil.which("symgrad")
SPEC = "Dense(2,8) Tanh Dense(8,1) Sigmoid"


def run(*args: str, cwd: Path, script: bool = True) -> subprocess.CompletedProcess:
    cmd = [SCRIPT] if script else [sys.executable, "-m", "symgrad"]
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=env)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    np.savez(folder / "xy.npz", X=X, labels=y)
    lines = ["u,label,v"] + [f"{a:.17g},{t},{b:.17g}" for (a, b), t in zip(X, y, strict=True)]
    (folder / "xy.csv").write_text("\n".join(lines) + "\n")
    return folder


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_console_script_is_installed_and_every_subcommand_has_help(tmp_path) -> None:
    assert SCRIPT is not None, "the `symgrad` console script is not on PATH (pip install -e .)"
    for command in ("derive", "check", "train", "export", "demo"):
        proc = run(command, "--help", cwd=tmp_path)
        assert proc.returncode == 0 and f"usage: symgrad {command}" in proc.stdout
    top = run("--help", cwd=tmp_path, script=False)   # python -m symgrad: same parser
    assert top.returncode == 0 and all(c in top.stdout for c in ("derive", "train", "export"))


def test_derive_formats(tmp_path) -> None:
    proc = run("derive", SPEC, "--loss", "bce", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "P - Y" in proc.stdout and "tanh" in proc.stdout
    assert run("derive", SPEC, "--loss", "bce", "-o", "d.md", cwd=tmp_path).returncode == 0
    assert run("derive", SPEC, "--loss", "bce", "--format", "tex", "-o", "d.tex",
               cwd=tmp_path).returncode == 0
    assert "P - Y" in (tmp_path / "d.md").read_text()
    assert (tmp_path / "d.tex").read_text().startswith(r"\documentclass")
    assert _files(tmp_path) == {"d.md", "d.tex"}


def test_derive_pdf(tmp_path, pdflatex) -> None:
    proc = run("derive", SPEC, "--loss", "bce", "-o", "d.pdf", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d.pdf").read_bytes().startswith(b"%PDF")
    assert _files(tmp_path) == {"d.pdf"}   # pdflatex's aux and log files stay out


def test_bad_specs_name_the_problem_and_write_nothing(tmp_path) -> None:
    cases = {
        "Dense(2,8) Tanh Dense(9,1)": "expects 9 inputs",
        "Dense(2,8) Mystery Dense(8,1)": "unknown layer 'Mystery'",
        "Dense(2,8) Tanh; import os": "after 'Tanh'",
        "Dense(2,8) Tanh(__import__)": "Tanh",
        "Dense(2,x) Tanh Dense(8,1)": "Dense takes two positive ints",
        "Dense(2,8) Tanh Dense(8,1": "the parenthesis after 'Dense' is not closed",
        "missing_file.py": "no such Python file",
    }
    for spec, needle in cases.items():
        proc = run("derive", spec, "--loss", "bce", "-o", "out.txt", cwd=tmp_path)
        assert proc.returncode == 1, (spec, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr, (spec, proc.stderr)
    proc = run("derive", SPEC, "--loss", "nope", "-o", "out.txt", cwd=tmp_path)
    assert proc.returncode == 1 and "unknown loss 'nope'" in proc.stderr
    (tmp_path / "spec_int_loss.py").write_text("import symgrad as sg\n"
                                             "net = sg.Sequential(sg.Dense(2, 1))\nloss = 42\n")
    proc = run("derive", "spec_int_loss.py", "-o", "out.txt", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "`loss` must be a loss name" in proc.stderr and "int 42" in proc.stderr
    (tmp_path / "spec_int_loss.py").unlink()
    assert _files(tmp_path) == set()


@pytest.mark.parametrize("rows_y", [80, 5])
def test_train_refuses_an_npz_whose_targets_do_not_match_its_rows(tmp_path, rows_y) -> None:
    """More targets than rows trained silently on the wrong labels; fewer raised an
    IndexError traceback (fuzzing). Now one line naming both shapes, and no weights."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(40, 2)), y=rng.integers(0, 2, rows_y))
    proc = run("train", SPEC, "--data", "d.npz", "--loss", "bce", "-o", "w.npz", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"has {rows_y} rows" in proc.stderr and "'X' 40" in proc.stderr
    assert _files(tmp_path) == {"d.npz"}


def test_spec_parser_never_evaluates() -> None:
    """The grammar takes layer names and numbers only: code is a syntax error, not a call."""
    for text in ("__import__('os').system('true')", "Dense(2,4) eval(1)", "Dense(1+1,4)"):
        with pytest.raises(SpecError):
            parse_spec(text)
    net = parse_spec("Dense(3, 5, bias=false) -> LeakyReLU(alpha=0.2), Dense(5,2) softmax")
    layers = list(net)
    assert layers[0].bias is False and layers[1].params == {"alpha": 0.2}
    assert type(layers[3]).entry.name == "softmax"


def test_check_passes_and_fails(tmp_path, monkeypatch, capsys) -> None:
    ok = run("check", SPEC, "--loss", "bce", cwd=tmp_path)
    assert ok.returncode == 0 and "checks passed" in ok.stdout and "identity" in ok.stdout
    # A failing proof must reach the exit status (exercised in-process by a failing check).
    from symgrad.cli import main
    from symgrad.prove.identity import ProofError

    def failing(model, **kwargs):
        raise ProofError("identity dense0 activation: difference is not 0")

    monkeypatch.setattr("symgrad.prove.check.check", failing)
    assert main(["check", SPEC, "--loss", "bce"]) == 1
    assert "FAILED: identity dense0" in capsys.readouterr().err


def test_train_csv_writes_weights_plot_and_metrics(tmp_path, data_dir) -> None:
    out = tmp_path / "w.npz"
    proc = run("train", SPEC, "--loss", "bce", "--data", str(data_dir / "xy.csv"),
               "--target", "label", "--epochs", "25", "--lr", "0.05", "--val-split", "0.25",
               "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("epoch ") >= 25 and "val_accuracy" in proc.stdout
    accuracy = float(proc.stdout.split("trained 25 epochs")[1].split("accuracy ")[1].split(",")[0])
    assert accuracy > 0.9
    assert _files(tmp_path) == {"w.npz", "w_history.png"}
    model = sg.compile(parse_spec(SPEC), loss="bce")
    model.load(out)   # names and shapes fit the SPEC
    X = np.load(data_dir / "xy.npz")["X"]
    labels = np.load(data_dir / "xy.npz")["labels"]
    assert np.mean(model.predict(X) == labels) > 0.9


def test_train_npz_and_python_file_spec(tmp_path, data_dir) -> None:
    (tmp_path / "mynet.py").write_text(
        "import symgrad as sg\n"
        "net = sg.Sequential(sg.Dense(2, 6), sg.ReLU(), sg.Dense(6, 2), sg.Softmax())\n"
        "loss = 'cross_entropy'\n")
    proc = run("train", "mynet.py", "--data", str(data_dir / "xy.npz"), "--target", "labels",
               "--epochs", "5", "--quiet", "-o", "w.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "epoch " not in proc.stdout and "trained 5 epochs (classification" in proc.stdout
    assert {"w.npz", "w_history.png"} <= _files(tmp_path)


def test_bad_data_files_name_the_problem_and_write_nothing(tmp_path, data_dir) -> None:
    (tmp_path / "text.csv").write_text("a,b,y\n1,2,0\n3,oops,1\n")
    (tmp_path / "ragged.csv").write_text("a,b,y\n1,2,0\n3,1\n")
    (tmp_path / "wide.csv").write_text("a,b,c,y\n1,2,3,0\n")
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object))
    np.savez(tmp_path / "pickled.npz", X=np.array([[1, {}]], dtype=object), y=np.zeros(1))
    (tmp_path / "data.json").write_text("{}")
    before = _files(tmp_path)
    cases = {
        ("text.csv", None): "row 3, column 'b': 'oops' is not a number",
        ("ragged.csv", None): "row 3 has 2 fields",
        ("wide.csv", None): "3 feature columns but the network's first Dense layer expects 2",
        ("text.csv", "nope"): "no column 'nope'",
        ("pickled.npz", None): "pickled.npz",
        ("absent.csv", None): "no such data file",
        ("data.json", None): "unknown data format '.json'",
    }
    for (name, target), needle in cases.items():
        args = ["train", SPEC, "--loss", "bce", "--data", name, "-o", "w.npz"]
        args += ["--target", target] if target else []
        proc = run(*args, cwd=tmp_path)
        assert proc.returncode == 1, (name, proc.stdout, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr, (name, proc.stderr)
    proc = run("train", SPEC, "--loss", "bce", "--data", str(data_dir / "xy.npz"),
               "--epochs", "0", "-o", "w.npz", cwd=tmp_path)
    assert proc.returncode == 2 and "--epochs" in proc.stderr   # argparse: usage error
    assert _files(tmp_path) == before


def test_export_runs_standalone_and_checks_weights(tmp_path, data_dir) -> None:
    weights = tmp_path / "w.npz"
    model = sg.compile(parse_spec(SPEC), loss="bce", seed=3)
    model.save(weights)
    proc = run("export", SPEC, "--loss", "bce", "--weights", "w.npz", "-o", "trainer.py",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    X = np.load(data_dir / "xy.npz")["X"]
    np.save(tmp_path / "X.npy", X)
    code = ("import numpy as np, sys, trainer; trainer.load_weights('w.npz'); "
            "np.save('P.npy', trainer.predict(np.load('X.npy'))); "
            "sys.exit('symgrad' in sys.modules or 'sympy' in sys.modules)")
    standalone = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                                capture_output=True, text=True, timeout=600)
    assert standalone.returncode == 0, standalone.stderr
    np.testing.assert_allclose(np.load(tmp_path / "P.npy"), model.predict_proba(X), rtol=1e-12)
    other = run("export", "Dense(2,4) Tanh Dense(4,1) Sigmoid", "--loss", "bce", "--weights",
                "w.npz", "-o", "other.py", cwd=tmp_path)
    assert other.returncode == 1 and "dense0.W has shape (2, 8)" in other.stderr
    assert not (tmp_path / "other.py").exists()


@pytest.mark.parametrize("file_name", ["trainer.py", "my-trainer.py", "class.py"])
def test_the_printed_usage_of_an_export_runs(tmp_path, file_name) -> None:
    """`import my-trainer` is not Python: for a name that cannot be imported the usage
    loads the file by its path. The printed lines run as they are (fuzzing)."""
    sg.compile(parse_spec(SPEC), loss="bce", seed=3).save(tmp_path / "w.npz")
    proc = run("export", SPEC, "--loss", "bce", "--weights", "w.npz", "-o", file_name,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    usage = proc.stdout.split("use it with:\n", 1)[1]
    code = "import numpy as np\nX = np.zeros((3, 2))\n" + textwrap.dedent(usage) + \
        "assert P.shape == (3, 1)\n"
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert ran.returncode == 0, (usage, ran.stderr)
