"""Write a model's kernels as a standalone module (numpy + numba only).

The generated kernel module already carries a small NumPy-level API
(``load_weights``, ``train_epoch``, ``predict``, ``evaluate``,
``loss_and_grads``); exporting writes that same source, with a usage note,
to a file of the user's choice, and optionally the current weights next to
it. The exported file never imports sympy or symgrad.
"""

from __future__ import annotations

import os
import tempfile

__all__ = ["export_source", "USAGE"]

USAGE = '''
# ---------------------------------------------------------------------------
# Usage (exported by symgrad; needs only numpy and numba):
#
#     import trainer
#     trainer.load_weights("weights.npz")          # names/shapes as PARAM_NAMES/SHAPES
#     loss, acc = trainer.train_epoch(X, Y, batch_size=32, seed=0)  # hyper: HYPER_DEFAULT
#     P = trainer.predict(X)                       # Y: (n, OUTPUT_DIM) target rows
# ---------------------------------------------------------------------------
'''


def export_source(source: str, path: str | os.PathLike, hyper: tuple[float, ...] = ()) -> str:
    """Write ``source`` plus the usage note to ``path`` atomically; returns the path.

    ``hyper`` (the optimizer's hyperparameter values) becomes the module's
    ``HYPER_DEFAULT`` so ``train_epoch`` works without naming them.
    """
    path = os.fspath(path)
    if not path.endswith(".py"):
        raise ValueError(f"export path must end in .py (it is imported as a module), got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".symgrad-export-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(source + USAGE)
            if hyper:
                handle.write(f"HYPER_DEFAULT = {tuple(float(h) for h in hyper)!r}\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
