"""A tiny indented line buffer and the njit options every generated kernel uses."""

from __future__ import annotations

__all__ = ["Src", "JIT"]

# error_model="numpy": float division by zero yields inf/nan (as NumPy)
# instead of raising, which also drops the zero-check branches that stop
# LLVM from vectorising the fused loops. No fastmath: it would break isnan
# and make results depend on reassociation.
JIT = 'cache=True, nogil=True, error_model="numpy"'


class Src:
    """Indented lines of generated Python: ``s("line", ...)``, ``s.indent()``, ``s.text()``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, *lines: str) -> None:
        for line in lines:
            self.lines.append(("    " * self.depth + line) if line else "")

    def indent(self) -> Src:
        self.depth += 1
        return self

    def dedent(self) -> None:
        self.depth -= 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
