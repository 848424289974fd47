"""Shared test fixtures, and the page check every LaTeX document of the suite passes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REQUIRE_PDFLATEX = os.environ.get("SYMGRAD_REQUIRE_PDFLATEX") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "latex_unchecked: Derivation.to_tex in this test is not compiled and "
        "checked for overfull boxes (for tests of deliberately broken documents)")


@pytest.fixture
def pdflatex() -> str:
    """Path of pdflatex; CI sets SYMGRAD_REQUIRE_PDFLATEX=1, so there a missing one fails."""
    path = shutil.which("pdflatex")
    if path is None:
        if REQUIRE_PDFLATEX:
            pytest.fail("pdflatex is required (SYMGRAD_REQUIRE_PDFLATEX=1) but not on PATH")
        pytest.skip("pdflatex not installed; CI installs it and sets SYMGRAD_REQUIRE_PDFLATEX=1")
    return path


@pytest.fixture(scope="session")
def fuzz():
    """``tools/fuzz_formulas.py`` as a module: tests rebuild the models its runs failed on."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tools" / "fuzz_formulas.py"
    spec = importlib.util.spec_from_file_location("fuzz_formulas", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page_problems(tex: Path, compiled: bool) -> list[str]:
    """Overfull boxes of a written .tex file; compiled in a scratch folder unless it was.

    A scratch folder keeps pdflatex's .aux/.log/.pdf out of the caller's folder
    (tests check what a command leaves there). A document that does not compile
    raises, as it should.
    """
    from symgrad.render.document import compile_tex, overfull_boxes

    if compiled:
        return overfull_boxes(tex.with_suffix(".log"))
    with tempfile.TemporaryDirectory(prefix="symgrad-page-") as folder:
        copy = Path(folder) / tex.name
        shutil.copyfile(tex, copy)
        compile_tex(copy)
        return overfull_boxes(copy.with_suffix(".log"))


@pytest.fixture(autouse=True)
def every_latex_document_fits_the_page(request, monkeypatch):
    """Every ``Derivation.to_tex`` a test calls also compiles, and fails the test on an
    overfull box (issue 10: nothing runs off the page), so no document can skip the check.

    Needs pdflatex: without it the check is skipped, unless SYMGRAD_REQUIRE_PDFLATEX=1
    (CI), where a to_tex call then fails. ``@pytest.mark.latex_unchecked`` opts a test out.
    Documents written by subprocesses are not seen here: tests/test_overfull.py runs the
    demo and the examples in process for that.
    """
    if request.node.get_closest_marker("latex_unchecked") or (
            shutil.which("pdflatex") is None and not REQUIRE_PDFLATEX):
        yield
        return
    from symgrad.render.document import Derivation

    original = Derivation.to_tex

    def checked(self, path, compile_pdf: bool = False, strict: bool = False):
        if shutil.which("pdflatex") is None:   # CI requires it: the check must not lapse
            pytest.fail("pdflatex is required (SYMGRAD_REQUIRE_PDFLATEX=1) to check the "
                        "page of every to_tex document, but it is not on PATH")
        result = original(self, path, compile_pdf=compile_pdf, strict=strict)
        boxes = page_problems(Path(path), compiled=compile_pdf or strict)
        if boxes:
            pytest.fail(f"{len(boxes)} overfull box(es) in the LaTeX of {self.title!r} "
                        f"({Path(path).name}):\n" + "\n".join(boxes), pytrace=False)
        return result

    monkeypatch.setattr(Derivation, "to_tex", checked)
    yield


@pytest.fixture(scope="module")
def scratch_registries():
    """Activations and losses a test module defines are gone after it (the registry tests
    that walk every entry must not inherit throwaway formulas)."""
    from symgrad.definition.activations import REGISTRY
    from symgrad.definition.losses import LOSSES

    saved = dict(REGISTRY), dict(LOSSES)
    yield
    for registry, before in zip((REGISTRY, LOSSES), saved, strict=True):
        registry.clear()
        registry.update(before)
