"""The hand-written kernel libraries, as the text generated modules carry.

`layer_kernels.py` (the image-layer loops) and `linked_calls.py` (calls by symbol) are
Numba code, like `vecmath_kernels.py`: importing one imports Numba, 0.5-1 s that
deriving, printing and proving a model must not pay for. The generator reads their
marked parts here as text, with what it must know of the loops without importing
them: their names and the argument types drivers call them with.
"""

from __future__ import annotations

from pathlib import Path

from symgrad.codegen.source_text import marked_source

__all__ = ["LAYER_FUNCTIONS", "LAYER_LINKS", "layer_loops_source", "linked_calls_source"]

_HERE = Path(__file__).parent


def layer_loops_source() -> str:
    """`layer_kernels.py` between its markers: the shared image-layer module's body, and
    what exports inline."""
    return marked_source(_HERE / "layer_kernels.py", "# ---- begin kernel source",
                         "# ---- end kernel source ----")


def linked_calls_source() -> str:
    """`linked_calls.py` between its markers: the linker, written into the GEMM helper
    module (and inline into exports)."""
    return marked_source(_HERE / "linked_calls.py", "# ---- begin linked calls ----",
                         "# ---- end linked calls ----")


# Every function of the image-layer loops (tests check this against the source).
LAYER_FUNCTIONS = (
    "lk_cm", "lk_zero", "lk_rows_to_map", "lk_map_to_rows", "lk_window_rows", "lk_im2col",
    "lk_col2im", "lk_add_bias", "lk_row_sums", "lk_maxpool", "lk_maxpool_back", "lk_copy",
    "lk_avgpool", "lk_avgpool_back")

# The argument types drivers call the data-moving kernels with (the module's ``LINK``,
# see `symgrad.codegen.linked_calls`): maps and im2col matrices are 2-D workspaces,
# sizes int64; lower case where the kernel only reads. lk_cm (a view) stays an ordinary
# call.
_SIZES_POOL = " ".join(["i"] * 10)     # m, h_in, w_in, c_dim, kh, kw, sh, sw, oh, ow
_SIZES_CONV = " ".join(["i"] * 12)     # ... and the padding ph, pw
LAYER_LINKS = {
    "lk_zero": "A2",
    "lk_rows_to_map": "a2 A2",
    "lk_map_to_rows": "a2 A2",
    "lk_im2col": f"a2 {_SIZES_CONV} A2",
    "lk_col2im": f"a2 {_SIZES_CONV} A2",
    "lk_add_bias": "A2 a1",
    "lk_row_sums": "a2 A1 A2",
    "lk_maxpool": f"a2 {_SIZES_POOL} A2",
    "lk_maxpool_back": f"a2 a2 a2 {_SIZES_POOL} A2 A2",
    "lk_copy": "a2 A2",
    "lk_avgpool": f"a2 {_SIZES_POOL} A2",
    "lk_avgpool_back": f"a2 {_SIZES_POOL} A2",
}
