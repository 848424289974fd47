"""Nothing runs off the page (issue 10, item 1): every document the demo and the examples
produce compiles with pdflatex without an overfull box.

"Every document" means every `Derivation` they render in any form (printed as text,
written as .tex, shown as Markdown), not only the .tex files they write: each is
recorded while the script runs, then compiled. The .tex files a script writes are
compiled as written. The scripts run in this process, with their smallest settings.
Documents made by the rest of the suite are checked by tests/conftest.py, which
compiles every `Derivation.to_tex` call.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest

from symgrad.render.document import Derivation, compile_tex, overfull_boxes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.stem for p in EXAMPLES.glob("*.py"))
NO_DOCUMENT = {"custom_activation"}   # examples that render no Derivation at all

# This module collects every problem of a run and reports them together, so the
# per-call check of conftest.py is off here; custom_activation registers entries.
pytestmark = [pytest.mark.latex_unchecked, pytest.mark.usefixtures("scratch_registries")]


@pytest.fixture
def recorded(monkeypatch) -> dict[int, Derivation]:
    """Every Derivation rendered while the test runs and not written by `to_tex`, by id
    (a written one is checked through the file it wrote)."""
    seen: dict[int, Derivation] = {}
    wrote: set[int] = set()
    for name in ("text", "latex", "markdown"):
        original = getattr(Derivation, name)

        def record(self, *args, _original=original, **kwargs):
            if id(self) not in wrote:
                seen.setdefault(id(self), self)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Derivation, name, record)
    to_tex = Derivation.to_tex

    def record_written(self, *args, **kwargs):
        wrote.add(id(self))
        seen.pop(id(self), None)
        return to_tex(self, *args, **kwargs)

    monkeypatch.setattr(Derivation, "to_tex", record_written)
    return seen


def page_report(docs: dict[int, Derivation], written: list[Path], scratch: Path) -> list[str]:
    """'file (title): overfull line' for every problem, compiling each document once."""
    problems = []
    tex_files = list(written)
    for k, doc in enumerate(list(docs.values())):
        tex_files.append(Derivation.to_tex(doc, scratch / f"document{k}.tex"))
    for tex in tex_files:
        compile_tex(tex)   # raises if a document does not compile at all
        problems += [f"{tex.name} ({_title(tex)}): {line}"
                     for line in overfull_boxes(tex.with_suffix(".log"))]
    return problems


def _title(tex: Path) -> str:
    for line in tex.read_text(encoding="utf-8").splitlines():
        if line.startswith(r"\section*{"):
            return line[len(r"\section*{"):-1]
    return "?"


def _run_script(name: str, out: Path):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = inspect.signature(module.main).parameters
    kwargs = {}
    if "out_dir" in params:
        kwargs["out_dir"] = out
    if "epochs" in params:
        kwargs["epochs"] = 1   # the documents do not depend on training
    return module.main(**kwargs)


def test_demo_documents_fit_the_page(tmp_path, recorded, pdflatex, capsys):
    from symgrad.cli.demo import run_demo

    out = tmp_path / "demo"
    run_demo(out, epochs=1)
    written = sorted(out.glob("*.tex"))
    assert {p.name for p in written} == {"neuron_derivation.tex", "network_derivation.tex"}
    scratch = tmp_path / "scratch"
    problems = page_report(recorded, written, scratch)
    assert problems == [], "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_example_documents_fit_the_page(name, tmp_path, recorded, pdflatex, capsys):
    if name == "seed004_pytorch_layers":
        pytest.importorskip("sklearn")
    out = tmp_path / "out"
    out.mkdir()
    _run_script(name, out)
    written = sorted(out.glob("*.tex"))
    if name in NO_DOCUMENT:
        # It shows derivatives, proofs and a fit, but renders no document: nothing to lay out.
        assert not recorded and not written
        return
    assert recorded or written, f"{name} rendered no document"
    problems = page_report(recorded, written, tmp_path / "scratch")
    assert problems == [], "\n".join(problems)


def test_the_check_finds_an_equation_that_is_too_wide(tmp_path, pdflatex):
    # The detector itself: a display far wider than the page is reported with its source.
    doc = Derivation("Too wide")
    # one brace group: `break_rows` finds no top-level + to break it at
    doc.section("S").add(math="{" + " + ".join(f"x_{{{k}}}" for k in range(80)) + "}",
                         plain="x")
    problems = page_report({1: doc}, [], tmp_path)
    assert len(problems) == 1 and "Overfull \\hbox" in problems[0]
    assert "x_{79}" not in problems[0] and "x_{0} + x_{1}" in problems[0]
