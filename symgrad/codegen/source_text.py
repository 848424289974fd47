"""A tiny indented line buffer, the njit options every generated kernel uses, and the
equation citation comment every implementing line carries."""

from __future__ import annotations

from pathlib import Path

from symgrad.definition.names import source_comment_text
from symgrad.derive.plan import cite

__all__ = ["Src", "JIT", "INLINE_JIT", "KERNEL_JIT", "cited", "marked_source"]

# error_model="numpy": float division by zero yields inf/nan (as NumPy)
# instead of raising, which also drops the zero-check branches that stop
# LLVM from vectorising the fused loops. Full fastmath stays off everywhere:
# nnan/ninf would delete the NaN/inf selects (isnan), and reassoc would make
# results depend on the vectoriser's order.
JIT = 'cache=True, nogil=True, error_model="numpy"'

# Small helpers (GEMM calls, the bias add, batch passes of MLP drivers) are inlined at
# Numba-IR level into their callers: a function of their own costs compile time each.
INLINE_JIT = JIT + ', inline="always"'

# The elementwise kernels (activation, output + loss, optimizer step) add
# fastmath={"contract"}: LLVM may fuse a*b + c into one FMA (one rounding
# instead of two): the loops' own arithmetic (the fused formula) needs it here;
# the vecmath functions carry the same flag themselves (`_VM_JIT`) and LLVM
# inlines them into the loops. Without it every polynomial step was a separate
# multiply and add (the exp, tanh and logistic loops 1.3-1.5x slower). The
# vecmath algorithms are written for it (Cody-Waite and Dekker splits keep
# their products exact). The
# drivers (epoch, batch passes, GEMM helpers) keep plain JIT: they only move
# data and call BLAS, and an add of theirs must not fuse with a multiply of a
# kernel that LLVM inlined into them (fit and an exported trainer call their
# kernels by symbol, and train bit-identically).
KERNEL_JIT = JIT + ', fastmath={"contract"}'


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


def cited(line: str, *keys: str, note: str = "") -> str:
    """``line`` with a trailing comment citing the printout's equations it implements.

    The keys are the plan's statement keys (`symgrad.derive.plan.dense_key`, ...); the
    printout tags its equations with the same keys and lists each beside this line.
    Comment text passes through `source_comment_text` (names are data).
    """
    return f"{line}  # {source_comment_text(cite(*keys) + (' ' + note if note else ''))}"


def marked_source(path: Path, begin: str, end: str) -> str:
    """The lines of ``path`` after the line that starts with ``begin`` and before the first
    ``end`` after it: the part of a library file written verbatim into generated modules."""
    text = path.read_text(encoding="utf-8")
    start = text.index("\n", text.index(begin)) + 1
    return text[start:text.index(end, start)]
