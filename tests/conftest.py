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
