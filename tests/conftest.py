"""Shared test fixtures."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture
def pdflatex() -> str:
    """Path of pdflatex; CI sets SYMGRAD_REQUIRE_PDFLATEX=1, so there a missing one fails."""
    path = shutil.which("pdflatex")
    if path is None:
        if os.environ.get("SYMGRAD_REQUIRE_PDFLATEX") == "1":
            pytest.fail("pdflatex is required (SYMGRAD_REQUIRE_PDFLATEX=1) but not on PATH")
        pytest.skip("pdflatex not installed; CI installs it and sets SYMGRAD_REQUIRE_PDFLATEX=1")
    return path


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
